//! The deployment controller's view of this server's runner: its
//! sliding-window metrics and its provisioned (kept-warm) instances, by
//! function id.

use std::sync::Weak;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hotswap_deployments::Fleet;
use hotswap_domain::DeploymentMetrics;
use hotswap_router::Router;

/// Warm-ups go through the router like every invocation; windows and
/// pins are the runner's.
pub struct RunnerFleet(pub Weak<Router>);

#[async_trait]
impl Fleet for RunnerFleet {
    fn window(&self, function: &str, version: u32, since: DateTime<Utc>) -> DeploymentMetrics {
        match self.0.upgrade() {
            Some(r) => r.metrics().window(function, version, since),
            None => DeploymentMetrics::default(),
        }
    }

    async fn provision(&self, function_id: &str, version: u32) -> Result<usize, String> {
        let router = self.0.upgrade().ok_or("the runner has stopped")?;
        let route = router
            .resolve_by_id(function_id, &hotswap_router::qualifier_of(version))
            .await
            .map_err(|e| e.to_string())?;
        let count = route
            .function
            .scaling_config
            .pre_provisioned_concurrency
            .max(1);
        router.provision(&route, count).await.map_err(|e| {
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
            r.runner().release(function, version);
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
