//! The framework's metrics (`eventweave_core::telemetry`), served for Prometheus.
//!
//! `cargo run -p bank --features metrics -- --metrics 127.0.0.1:9000` serves them at
//! `http://127.0.0.1:9000/metrics` while the bank runs, and after its transcript until standard
//! input closes (press Enter), so they can be scraped:
//!
//! ```text
//! curl -s http://127.0.0.1:9000/metrics | grep eventweave_commands_total
//! eventweave_commands_total{aggregate="account",command="Deposit",outcome="ok"} 4
//! ```
//!
//! The exporter runs on a thread of its own (with a one-thread tokio runtime), so it answers
//! whatever the bank's runtime is doing. Without the `metrics` feature, `--metrics` is refused
//! with a message saying how to build the bank with it.

use std::error::Error;
use std::net::SocketAddr;

/// Any error of setting the exporter up.
type Failure = Box<dyn Error + Send + Sync>;

/// The exporter, once started by [`serve`] (nothing when `--metrics` was not given).
#[derive(Debug)]
pub struct Metrics {
    address: Option<SocketAddr>,
}

/// Parses the address of `--metrics ADDR` (`host:port`; a port alone means 127.0.0.1).
pub fn address(text: &str) -> Result<SocketAddr, Failure> {
    let text = text.trim();
    let full = if text.contains(':') {
        text.to_owned()
    } else {
        format!("127.0.0.1:{text}")
    };
    full.parse().map_err(|e| {
        format!("--metrics {text}: expected an address such as 127.0.0.1:9000 ({e})").into()
    })
}

/// Starts the Prometheus exporter on `address` (when given) and installs its recorder as the
/// process's `metrics` recorder. Fails if the address cannot be bound, if a recorder is already
/// installed, or if the bank was built without the `metrics` feature.
pub fn serve(address: Option<&str>) -> Result<Metrics, Failure> {
    let Some(text) = address else {
        return Ok(Metrics { address: None });
    };
    let address = self::address(text)?;
    start(address)?;
    eventweave_core::telemetry::describe_metrics();
    Ok(Metrics {
        address: Some(address),
    })
}

#[cfg(feature = "metrics")]
fn start(address: SocketAddr) -> Result<(), Failure> {
    use metrics_exporter_prometheus::PrometheusBuilder;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (recorder, exporter) = {
        // `build` binds the listener and spawns the recorder's upkeep on this runtime.
        let _inside = runtime.enter();
        PrometheusBuilder::new()
            .with_http_listener(address)
            .build()
            .map_err(|e| format!("--metrics {address}: {e}"))?
    };
    std::thread::Builder::new()
        .name("metrics-exporter".into())
        .spawn(move || runtime.block_on(exporter))?;
    ::metrics::set_global_recorder(recorder).map_err(|e| format!("--metrics: {e}"))?;
    Ok(())
}

#[cfg(not(feature = "metrics"))]
fn start(address: SocketAddr) -> Result<(), Failure> {
    Err(format!(
        "--metrics {address}: this bank was built without metrics; run \
         `cargo run -p bank --features metrics -- --metrics {address}`"
    )
    .into())
}

impl Metrics {
    /// Where the metrics are served, if they are.
    pub fn address(&self) -> Option<SocketAddr> {
        self.address
    }

    /// When serving: says where, then keeps serving until standard input closes or a line is
    /// read (press Enter), so the final figures can be scraped. Otherwise returns at once.
    pub fn linger(&self) {
        if let Some(address) = self.address {
            println!(
                "\nMetrics at http://{address}/metrics; press Enter (or close stdin) to exit."
            );
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        }
    }
}
