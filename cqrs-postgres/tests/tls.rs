//! TLS against throwaway clusters (`cqrs-test-cluster`): one serving TLS with a certificate
//! signed by a CA made here (SAN `localhost` and `127.0.0.1`), one without TLS. Every
//! `sslmode` is checked for what it must accept and refuse, and that the store's sessions are
//! encrypted when they should be (`pg_stat_ssl`).
//!
//! Needs PostgreSQL's server binaries (`initdb`, `pg_ctl`); skipped without them.
//!
//! It also runs an append and read round trip under `verify-full`.

use std::path::PathBuf;

use cqrs_test_cluster::{Options, TempCluster};
use eventweave_core::{
    EventStore, ExpectedVersion, NewEvent, Payload, Position, StreamId, UserMetadata, new_id,
};
use eventweave_postgres::{OpenError, PostgresConfig, PostgresStore, SslMode};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio_postgres::NoTls;

/// A CA: its certificate (PEM) and what signs with it.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A server certificate for `localhost` and `127.0.0.1` signed by `ca`: (cert, key) PEM.
fn server_cert(ca: &Ca) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "cqrs test server");
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Writes `pem` to a fresh file (the root certificate a configuration names).
fn pem_file(pem: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "cqrs-tls-test-{}-{}.pem",
        std::process::id(),
        eventweave_core::new_id()
    ));
    std::fs::write(&path, pem).unwrap();
    path
}

fn start(options: Options) -> Option<TempCluster> {
    match TempCluster::start(options) {
        Ok(cluster) => Some(cluster),
        Err(e) => {
            eventweave_core::testing::report_skip("tls", &format!("no throwaway cluster: {e}"));
            None
        }
    }
}

/// A key=value connection string for `host` (connecting to 127.0.0.1 whatever the name).
fn conninfo(cluster: &TempCluster, host: &str, mode: &str) -> String {
    format!(
        "host={host} hostaddr=127.0.0.1 port={} user=postgres dbname=postgres sslmode={mode} \
         application_name=tls_{}",
        cluster.port(),
        mode.replace('-', "_"),
    )
}

/// Whether every session named `application_name` on the cluster is encrypted (and there is
/// at least one).
async fn sessions_encrypted(cluster: &TempCluster, application_name: &str) -> bool {
    let (client, connection) = tokio_postgres::connect(&cluster.url(), NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT count(*), coalesce(bool_and(s.ssl), false)
               FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
              WHERE a.application_name = $1",
            &[&application_name],
        )
        .await
        .unwrap();
    let sessions: i64 = row.get(0);
    assert!(sessions > 0, "no session named {application_name}");
    row.get(1)
}

async fn open(conninfo: &str, schema: &str) -> Result<PostgresStore, OpenError> {
    PostgresStore::open(PostgresConfig::parse(conninfo).unwrap().schema(schema)).await
}

fn tls_refused(result: Result<PostgresStore, OpenError>, what: &str) -> String {
    match result {
        Err(error @ OpenError::Tls(_)) => {
            println!("{what}: {error}");
            error.to_string()
        }
        Err(other) => panic!("{what}: expected a TLS error, got {other:?}"),
        Ok(_) => panic!("{what}: connected"),
    }
}

#[tokio::test]
async fn every_sslmode_against_a_tls_server() {
    let ours = ca("cqrs test CA");
    let (cert, key) = server_cert(&ours);
    let Some(cluster) = start(Options::new().tls(cert, key)) else {
        return;
    };
    let ca_file = pem_file(&ours.pem);
    let other_ca_file = pem_file(&ca("another CA").pem);

    // require: encrypted, certificate not checked (no root given).
    let store = open(&conninfo(&cluster, "127.0.0.1", "require"), "tls_require")
        .await
        .expect("require connects");
    store.head().await.unwrap();
    assert!(sessions_encrypted(&cluster, "tls_require").await);

    // prefer (the default): encrypted when the server offers TLS.
    let store_prefer = open(&conninfo(&cluster, "127.0.0.1", "prefer"), "tls_prefer")
        .await
        .expect("prefer connects");
    store_prefer.head().await.unwrap();
    assert!(sessions_encrypted(&cluster, "tls_prefer").await);

    // disable: plain.
    let store_plain = open(&conninfo(&cluster, "127.0.0.1", "disable"), "tls_disable")
        .await
        .expect("disable connects");
    store_plain.head().await.unwrap();
    assert!(!sessions_encrypted(&cluster, "tls_disable").await);

    // verify-full with the right CA, to the name in the certificate: connects, encrypted; a
    // full append and read_all round trip over it.
    let full = |host: &str, root: &PathBuf| {
        PostgresConfig::parse(&conninfo(&cluster, host, "verify-full"))
            .unwrap()
            .ssl_root_cert(root)
            .schema("tls_verify_full")
    };
    let store_full = PostgresStore::open(full("localhost", &ca_file))
        .await
        .expect("verify-full connects to localhost with the CA");
    let stream = StreamId::from("tls-1");
    let appended = store_full
        .append(
            &stream,
            ExpectedVersion::NoStream,
            vec![NewEvent {
                event_id: new_id(),
                event_name: "tls.opened".into(),
                event_version: 1,
                payload: Payload::from_json(r#"{"over":"tls"}"#.to_owned()),
                correlation_id: None,
                causation_id: None,
                metadata: UserMetadata::empty(),
                tags: eventweave_core::Tags::empty(),
            }],
        )
        .await
        .unwrap();
    let all = store_full.read_all(Position::ZERO, 10).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].meta.event_id, appended[0].meta.event_id);
    assert_eq!(all[0].meta.event_name, "tls.opened");
    assert!(sessions_encrypted(&cluster, "tls_verify_full").await);

    // verify-full refuses another CA, and a host name that is not in the certificate.
    let message = tls_refused(
        PostgresStore::open(full("localhost", &other_ca_file)).await,
        "verify-full with another CA",
    );
    assert!(message.contains("certificate"), "{message}");
    let message = tls_refused(
        PostgresStore::open(full("db.example.invalid", &ca_file)).await,
        "verify-full with a name not in the certificate",
    );
    assert!(message.contains("certificate"), "{message}");

    // verify-ca: the chain, not the name.
    let ca_only = |root: &PathBuf| {
        PostgresConfig::parse(&conninfo(&cluster, "db.example.invalid", "verify-ca"))
            .unwrap()
            .ssl_root_cert(root)
            .schema("tls_verify_ca")
    };
    let store_ca = PostgresStore::open(ca_only(&ca_file))
        .await
        .expect("verify-ca accepts a name mismatch");
    store_ca.head().await.unwrap();
    assert!(sessions_encrypted(&cluster, "tls_verify_ca").await);
    tls_refused(
        PostgresStore::open(ca_only(&other_ca_file)).await,
        "verify-ca with another CA",
    );

    // require with a root certificate checks the chain (as libpq); `sslrootcert` in the
    // connection string works like the method.
    let with_root = format!(
        "{} sslrootcert={}",
        conninfo(&cluster, "127.0.0.1", "require"),
        other_ca_file.display()
    );
    assert_eq!(
        PostgresConfig::parse(&with_root).unwrap().get_ssl_mode(),
        SslMode::Require
    );
    tls_refused(
        open(&with_root, "tls_require_root").await,
        "require with a root certificate of another CA",
    );

    let _ = std::fs::remove_file(ca_file);
    let _ = std::fs::remove_file(other_ca_file);
}

#[tokio::test]
async fn a_server_without_tls() {
    let Some(cluster) = start(Options::new()) else {
        return;
    };
    // require refuses it, with a TLS error that says so.
    let message = tls_refused(
        open(&conninfo(&cluster, "127.0.0.1", "require"), "plain_require").await,
        "require against a server without TLS",
    );
    assert!(message.contains("does not support TLS"), "{message}");
    for mode in ["verify-ca", "verify-full"] {
        tls_refused(
            open(&conninfo(&cluster, "localhost", mode), "plain_verify").await,
            mode,
        );
    }
    // prefer falls back to plain.
    let store = open(&conninfo(&cluster, "127.0.0.1", "prefer"), "plain_prefer")
        .await
        .expect("prefer connects without TLS");
    store.head().await.unwrap();
    assert!(!sessions_encrypted(&cluster, "tls_prefer").await);
}
