//! The deployment controller's view of this server's runner: its
//! sliding-window metrics and its provisioned (kept-warm) instances, by
//! function id.

use std::sync::Weak;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hotswap_deployments::Fleet;
use hotswap_domain::{DeploymentMetrics, Function, FunctionVersion, LayerVersion};
use hotswap_runner::Runner;

pub struct RunnerFleet(pub Weak<Runner>);

#[async_trait]
impl Fleet for RunnerFleet {
    fn window(&self, function: &str, version: u32, since: DateTime<Utc>) -> DeploymentMetrics {
        match self.0.upgrade() {
            Some(r) => r.metrics().window(function, version, since),
            None => DeploymentMetrics::default(),
        }
    }

    async fn provision(
        &self,
        function: &Function,
        version: &FunctionVersion,
        layers: &[LayerVersion],
        count: u32,
    ) -> Result<usize, String> {
        let runner = self.0.upgrade().ok_or("the runner has stopped")?;
        runner
            .provision(function, version, layers, count)
            .await
            .map_err(|e| {
                let mut s = e.to_string();
                let mut cause = std::error::Error::source(&e);
                while let Some(c) = cause {
                    s.push_str(": ");
                    s.push_str(&c.to_string());
                    cause = c.source();
                }
                s
            })
    }

    fn release(&self, function: &str, version: u32) {
        if let Some(r) = self.0.upgrade() {
            r.release(function, version);
        }
    }

    fn watch(&self, function: &str, version: u32) {
        if let Some(r) = self.0.upgrade() {
            r.metrics().watch(function, version);
        }
    }

    fn unwatch(&self, function: &str, version: u32) {
        if let Some(r) = self.0.upgrade() {
            r.metrics().unwatch(function, version);
        }
    }
}
