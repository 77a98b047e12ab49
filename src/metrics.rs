//! Prometheus metrics, one registry per running application (so that tests running several
//! applications in one process see only their own figures).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The application's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// Creates the registry and every metric in it.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kairos");
        let up = Gauge::<i64>::default();
        up.set(1);
        registry.register("up", "1 while the process runs", up);
        Self { registry }
    }

    /// The registry, to register further metrics at start-up.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The metrics in Prometheus's text exposition format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
