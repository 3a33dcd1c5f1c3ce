//! TLS for the store's connections, with rustls (the `ring` provider) through
//! `tokio-postgres-rustls`. The driver only knows "TLS off, optional or required"; the
//! certificate checks of libpq's `sslmode`s are made by the verifier chosen here:
//!
//! - `prefer`, `require` without a root certificate: none (encryption against passive
//!   eavesdroppers only, as libpq);
//! - `verify-ca`, and `require` with a root certificate: the chain, not the host name;
//! - `verify-full`: the chain and the host name.
//!
//! The handshake signatures are always checked, whatever the mode.
//!
//! # Choices
//!
//! - **On by default** (feature `tls`, `sslmode=prefer` as libpq): most managed PostgreSQL services
//!   require TLS.
//! - **rustls, not OpenSSL** (no system library), with the `ring` provider, not aws-lc-rs (no cmake
//!   or assembler in the build).
//! - `tokio-postgres-rustls` provides the `MakeTlsConnect` (and channel binding); the `sslmode`
//!   semantics are ours, in the verifier, because the driver knows only disable, prefer and require
//!   (`verify-*` are `Require` for it).
//! - **Default roots from `webpki-roots`**, compiled in: the same on every machine and in minimal
//!   containers without a CA bundle. A private CA is given with `sslrootcert` or
//!   `PostgresConfig::ssl_root_cert`.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::conninfo::SslMode;
use crate::error::OpenError;

/// The connector every connection of a store goes through.
pub(crate) type Tls = tokio_postgres_rustls::MakeRustlsConnect;

/// The connector for `mode`, trusting the roots in `root_cert` (PEM) or else the Mozilla set.
pub(crate) fn connector(mode: SslMode, root_cert: Option<&Path>) -> Result<Tls, OpenError> {
    // ring rather than aws-lc-rs: no cmake or assembler in the build. rustls deprecated this
    // constructor because ring has no post-quantum key exchange; classic X25519/ECDHE is what
    // PostgreSQL servers (OpenSSL) offer today.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| OpenError::Tls(format!("cannot set up TLS: {e}").into()))?;
    let verify_chain = matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull)
        || (mode == SslMode::Require && root_cert.is_some());
    let verifier: Arc<dyn ServerCertVerifier> = if !verify_chain {
        Arc::new(Unchecked { provider })
    } else {
        let roots = Arc::new(roots(root_cert)?);
        let chain = WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| OpenError::Tls(format!("cannot use the root certificates: {e}").into()))?;
        if mode == SslMode::VerifyFull {
            chain
        } else {
            Arc::new(AnyName { chain })
        }
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

fn roots(root_cert: Option<&Path>) -> Result<RootCertStore, OpenError> {
    let mut store = RootCertStore::empty();
    let Some(path) = root_cert else {
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        return Ok(store);
    };
    let unreadable = |e: &dyn std::fmt::Display| {
        OpenError::Tls(format!("cannot read sslrootcert `{}`: {e}", path.display()).into())
    };
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| unreadable(&e))? {
        let cert = cert.map_err(|e| unreadable(&e))?;
        store.add(cert).map_err(|e| unreadable(&e))?;
    }
    if store.is_empty() {
        return Err(unreadable(&"no certificate in the file"));
    }
    Ok(store)
}

/// Accepts any certificate (`prefer`, `require`), but still checks that the server holds the
/// key of the certificate it sent.
#[derive(Debug)]
struct Unchecked {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `verify-ca`: the full check, except that a certificate valid for another name passes.
/// (webpki checks the chain before the name, so a name error means the chain was good.)
#[derive(Debug)]
struct AnyName {
    chain: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.chain.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}
