//! What a deployment does, step by step, and when it moves on: each
//! strategy's plan, the analysis of the target's measured metrics against the
//! rollback thresholds, and the controller's decision for one tick. Pure: the
//! controller supplies the clock and the measurements, and applies the
//! decision.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{
    Deployment, DeploymentConfig, DeploymentMetrics, DeploymentStatus, DeploymentStrategy,
    DEFAULT_AB_PERCENTAGE, DEFAULT_ALL_AT_ONCE_BAKE, DEFAULT_BATCH_DURATION,
    DEFAULT_CANARY_DURATION, DEFAULT_TEST_DURATION,
};

/// What ends a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Its duration, then a healthy verdict.
    Timer,
    /// A person's promote (or rollback).
    Manual,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub phase: String,
    /// Percent of the alias's live traffic on the target during the step.
    pub target_percent: f64,
    pub duration: Duration,
    pub gate: Gate,
}

impl Step {
    fn timed(phase: String, target_percent: f64, duration: Duration) -> Self {
        Self {
            phase,
            target_percent,
            duration,
            gate: Gate::Timer,
        }
    }
}

fn pct(p: f64) -> String {
    let s = format!("{p:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The bake after all traffic is on the target.
fn bake(d: &Deployment) -> Duration {
    match (d.config.bake_duration, d.strategy) {
        (Some(b), _) => b,
        (None, DeploymentStrategy::AllAtOnce) if d.config.has_thresholds() => {
            DEFAULT_ALL_AT_ONCE_BAKE
        }
        _ => Duration::ZERO,
    }
}

/// Nodes moved after each batch of a rolling deployment over `fleet`
/// nodes: `batch_size` is a fraction of the fleet (≤ 1) or a node count.
pub fn rolling_batches(batch_size: Option<f64>, fleet: usize) -> Vec<usize> {
    let fleet = fleet.max(1);
    let per = match batch_size {
        Some(b) if b > 1.0 => b as usize,
        Some(b) if b > 0.0 => ((b * fleet as f64).ceil() as usize).max(1),
        _ => ((0.25 * fleet as f64).ceil() as usize).max(1),
    }
    .min(fleet);
    let mut moved = Vec::new();
    let mut n = 0;
    while n < fleet {
        n = (n + per).min(fleet);
        moved.push(n);
    }
    moved
}

/// The steps of `d`'s strategy. Rolling plans over `d.rolling_nodes` (the
/// healthy runner nodes when it started).
pub fn plan(d: &Deployment) -> Vec<Step> {
    let mut steps = strategy_steps(d);
    // With thresholds, at least one step must watch the target: a plan of
    // zero-length steps would pass without a verdict.
    if d.config.has_thresholds()
        && steps
            .iter()
            .all(|s| s.gate == Gate::Timer && s.duration.is_zero())
    {
        if let Some(last) = steps.last_mut() {
            last.duration = DEFAULT_ALL_AT_ONCE_BAKE;
        }
    }
    steps
}

fn strategy_steps(d: &Deployment) -> Vec<Step> {
    let c: &DeploymentConfig = &d.config;
    let bake = bake(d);
    let all_in = |label: &str| Step::timed(label.to_owned(), 100.0, bake);
    match d.strategy {
        DeploymentStrategy::AllAtOnce => vec![all_in("All traffic on the target")],
        DeploymentStrategy::Canary => {
            let duration = c.canary_duration.unwrap_or(DEFAULT_CANARY_DURATION);
            c.canary_steps()
                .into_iter()
                .map(|p| {
                    if p >= 100.0 {
                        all_in("Promoted: all traffic on the target")
                    } else {
                        Step::timed(format!("Canary {}%", pct(p)), p, duration)
                    }
                })
                .collect()
        }
        DeploymentStrategy::BlueGreen => vec![
            Step::timed(
                "Testing green (test traffic only)".into(),
                0.0,
                c.test_duration.unwrap_or(DEFAULT_TEST_DURATION),
            ),
            all_in("Switched to green"),
        ],
        DeploymentStrategy::Rolling => {
            let fleet = d.rolling_nodes.len().max(1);
            let batches = rolling_batches(c.batch_size, fleet);
            let n = batches.len();
            let duration = c.batch_duration.unwrap_or(DEFAULT_BATCH_DURATION);
            batches
                .iter()
                .enumerate()
                .map(|(i, &moved)| {
                    let mut phase = format!(
                        "Rolling batch {}/{n}: {moved} of {fleet} runner node{}",
                        i + 1,
                        if fleet == 1 { "" } else { "s" }
                    );
                    if fleet == 1 {
                        phase.push_str(" (one runner: one batch)");
                    }
                    let last = i + 1 == n;
                    Step::timed(
                        phase,
                        100.0 * moved as f64 / fleet as f64,
                        if last { bake.max(duration) } else { duration },
                    )
                })
                .collect()
        }
        DeploymentStrategy::ABTesting => {
            let p = c.canary_percentage.unwrap_or(DEFAULT_AB_PERCENTAGE);
            vec![
                Step {
                    phase: format!("A/B split {}% (waiting for promote)", pct(p)),
                    target_percent: p,
                    duration: Duration::ZERO,
                    gate: Gate::Manual,
                },
                all_in("Promoted: all traffic on the target"),
            ]
        }
    }
}

/// The alias's traffic (version → percent) when `target_percent` of it goes
/// to the target.
pub fn split(d: &Deployment, target_percent: f64) -> BTreeMap<u32, f64> {
    match d.source_version {
        Some(s) if s != d.target_version && target_percent < 100.0 => {
            if target_percent <= 0.0 {
                BTreeMap::from([(s, 100.0)])
            } else {
                BTreeMap::from([
                    (s, 100.0 - target_percent),
                    (d.target_version, target_percent),
                ])
            }
        }
        _ => BTreeMap::from([(d.target_version, 100.0)]),
    }
}

/// A threshold the target's metrics crossed.
#[derive(Debug, Clone, PartialEq)]
pub struct Breach {
    /// The seed's name of the threshold.
    pub threshold: &'static str,
    pub value: f64,
    pub limit: f64,
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.threshold {
            "RollbackOnErrorRate" => write!(
                f,
                "error rate {}% exceeded RollbackOnErrorRate {}%",
                pct(self.value),
                pct(self.limit)
            ),
            "RollbackOnSuccessRate" => write!(
                f,
                "success rate {}% fell below RollbackOnSuccessRate {}%",
                pct(self.value),
                pct(self.limit)
            ),
            _ => write!(
                f,
                "p99 duration {} ms exceeded RollbackOnLatencyP99 {} ms",
                pct(self.value),
                pct(self.limit)
            ),
        }
    }
}

/// What the metrics say.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Too few invocations to judge: never a pass.
    NoVerdict {
        invocations: u64,
        needed: u64,
    },
    Healthy,
    Breach(Breach),
}

/// Compares the target's metrics with the thresholds, once it has at least
/// `MinInvocations` invocations. Timeouts and out-of-memory kills are errors
/// in these metrics.
pub fn analyse(c: &DeploymentConfig, m: &DeploymentMetrics) -> Verdict {
    let needed = c.min_invocations();
    if m.invocation_count < needed {
        return Verdict::NoVerdict {
            invocations: m.invocation_count,
            needed,
        };
    }
    let success_rate = 100.0 - m.error_rate;
    if let Some(limit) = c.rollback_on_error_rate {
        if m.error_rate > limit {
            return Verdict::Breach(Breach {
                threshold: "RollbackOnErrorRate",
                value: m.error_rate,
                limit,
            });
        }
    }
    if let Some(limit) = c.rollback_on_success_rate {
        if success_rate < limit {
            return Verdict::Breach(Breach {
                threshold: "RollbackOnSuccessRate",
                value: success_rate,
                limit,
            });
        }
    }
    if let Some(limit) = c.rollback_on_latency_p99 {
        if m.p99_duration > limit {
            return Verdict::Breach(Breach {
                threshold: "RollbackOnLatencyP99",
                value: m.p99_duration,
                limit,
            });
        }
    }
    Verdict::Healthy
}

/// How long a timed step may wait for enough traffic after its duration:
/// as long again, at least 30 s.
pub fn verdict_grace(step: &Step) -> Duration {
    step.duration.max(Duration::from_secs(30))
}

/// The instant after which a timed step without a verdict is rolled back.
pub fn step_deadline(d: &Deployment, step: &Step) -> Option<DateTime<Utc>> {
    if step.gate == Gate::Manual {
        return None;
    }
    let started = d.step_started_at?;
    let total = step.duration.saturating_add(verdict_grace(step));
    let total = chrono::Duration::from_std(total).unwrap_or(chrono::Duration::MAX);
    Some(
        started
            .checked_add_signed(total)
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    )
}

/// Whether a step's deadline can roll it back: it waits for a verdict
/// (thresholds are set and it lasts some time).
pub fn needs_verdict(d: &Deployment, step: &Step) -> bool {
    step.gate == Gate::Timer && d.config.has_thresholds() && !step.duration.is_zero()
}

/// The controller's move for one tick.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Stay in the step; `note` says why, for the phase shown to users.
    Wait { note: Option<String> },
    /// Begin step `step` (move the traffic to its split).
    Enter { step: u32 },
    /// Move all traffic back to the source.
    RollBack { reason: String },
    /// All steps passed.
    Complete,
}

/// Decides what a deployment does next, given the target's metrics over the
/// current step.
pub fn decide(
    d: &Deployment,
    steps: &[Step],
    now: DateTime<Utc>,
    target: &DeploymentMetrics,
) -> Decision {
    match d.status {
        DeploymentStatus::Pending => return Decision::Enter { step: 0 },
        DeploymentStatus::InProgress => {}
        _ => return Decision::Wait { note: None },
    }
    let i = d.step as usize;
    let Some(step) = steps.get(i) else {
        return Decision::Complete;
    };
    let at = format!("step {}/{} ({})", i + 1, steps.len(), step.phase);
    let verdict = if d.config.has_thresholds() {
        analyse(&d.config, target)
    } else {
        Verdict::Healthy
    };
    if let Verdict::Breach(b) = &verdict {
        return Decision::RollBack {
            reason: format!("{b} at {at}"),
        };
    }
    if step.gate == Gate::Manual {
        return Decision::Wait {
            note: Some("waiting for promote or rollback".into()),
        };
    }
    let started = d.step_started_at.unwrap_or(now);
    let elapsed = (now - started).to_std().unwrap_or_default();
    if elapsed < step.duration {
        return Decision::Wait { note: None };
    }
    if let Verdict::NoVerdict {
        invocations,
        needed,
    } = verdict
    {
        if needs_verdict(d, step) {
            if step_deadline(d, step).is_some_and(|dl| now >= dl) {
                return Decision::RollBack {
                    reason: format!(
                        "no verdict: only {invocations} of the {needed} invocations of version {} needed by the deadline of {at}",
                        d.target_version
                    ),
                };
            }
            return Decision::Wait {
                note: Some(format!(
                    "waiting for traffic: {invocations}/{needed} invocations"
                )),
            };
        }
    }
    if i + 1 >= steps.len() {
        Decision::Complete
    } else {
        Decision::Enter { step: d.step + 1 }
    }
}

/// Percent done: whole steps plus the elapsed part of the current one.
pub fn progress(d: &Deployment, steps: &[Step], now: DateTime<Utc>) -> f64 {
    if d.status == DeploymentStatus::Completed {
        return 100.0;
    }
    if steps.is_empty() || d.status == DeploymentStatus::Pending {
        return 0.0;
    }
    let i = (d.step as usize).min(steps.len() - 1);
    let step = &steps[i];
    let part = match (step.gate, d.step_started_at) {
        (Gate::Timer, Some(started)) if !step.duration.is_zero() => {
            let elapsed = (now - started).to_std().unwrap_or_default();
            (elapsed.as_secs_f64() / step.duration.as_secs_f64()).min(1.0)
        }
        _ => 0.0,
    };
    let p = 100.0 * (i as f64 + part) / steps.len() as f64;
    (p * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(strategy: DeploymentStrategy, config: DeploymentConfig) -> Deployment {
        Deployment::new("f", "prod", Some(1), 2, strategy, config, "alice")
    }

    fn metrics(n: u64, errors: u64, p99: f64) -> DeploymentMetrics {
        DeploymentMetrics {
            invocation_count: n,
            error_count: errors,
            error_rate: if n == 0 {
                0.0
            } else {
                100.0 * errors as f64 / n as f64
            },
            avg_duration: p99 / 2.0,
            p99_duration: p99,
            ..DeploymentMetrics::default()
        }
    }

    fn secs(s: i64) -> chrono::Duration {
        chrono::Duration::seconds(s)
    }

    #[test]
    fn canary_plan_walks_the_increments_then_bakes() {
        let d = dep(
            DeploymentStrategy::Canary,
            DeploymentConfig {
                canary_increments: Some(vec![10.0, 25.0, 50.0]),
                canary_duration: Some(Duration::from_secs(30)),
                ..Default::default()
            },
        );
        let steps = plan(&d);
        let splits: Vec<f64> = steps.iter().map(|s| s.target_percent).collect();
        assert_eq!(splits, vec![10.0, 25.0, 50.0, 100.0]);
        assert_eq!(steps[0].phase, "Canary 10%");
        assert_eq!(steps[0].duration, Duration::from_secs(30));
        assert_eq!(steps[3].duration, Duration::ZERO);
    }

    #[test]
    fn all_at_once_with_thresholds_watches_a_minute() {
        let mut d = dep(DeploymentStrategy::AllAtOnce, DeploymentConfig::default());
        assert_eq!(plan(&d)[0].duration, Duration::ZERO);
        d.config.rollback_on_error_rate = Some(5.0);
        assert_eq!(plan(&d)[0].duration, Duration::from_secs(60));
        d.config.bake_duration = Some(Duration::from_secs(7));
        assert_eq!(plan(&d)[0].duration, Duration::from_secs(7));
        assert_eq!(plan(&d)[0].target_percent, 100.0);
    }

    #[test]
    fn blue_green_tests_green_without_live_traffic_first() {
        let d = dep(DeploymentStrategy::BlueGreen, DeploymentConfig::default());
        let steps = plan(&d);
        assert_eq!(steps[0].target_percent, 0.0);
        assert_eq!(steps[0].duration, DEFAULT_TEST_DURATION);
        assert_eq!(steps[1].target_percent, 100.0);
        assert_eq!(split(&d, 0.0), BTreeMap::from([(1, 100.0)]));
    }

    #[test]
    fn rolling_batches_by_fraction_or_count() {
        assert_eq!(rolling_batches(Some(0.25), 8), vec![2, 4, 6, 8]);
        assert_eq!(rolling_batches(Some(3.0), 8), vec![3, 6, 8]);
        assert_eq!(rolling_batches(Some(0.5), 1), vec![1]);
        assert_eq!(rolling_batches(None, 1), vec![1]);
        let mut d = dep(DeploymentStrategy::Rolling, DeploymentConfig::default());
        d.rolling_nodes = vec!["local".into()];
        let steps = plan(&d);
        assert_eq!(steps.len(), 1);
        assert!(
            steps[0].phase.contains("one runner: one batch"),
            "{}",
            steps[0].phase
        );
        d.rolling_nodes = vec!["a".into(), "b".into(), "c".into(), "d".into()];
        d.config.batch_size = Some(0.5);
        let splits: Vec<f64> = plan(&d).iter().map(|s| s.target_percent).collect();
        assert_eq!(splits, vec![50.0, 100.0]);
    }

    #[test]
    fn ab_testing_waits_for_a_person() {
        let mut d = dep(DeploymentStrategy::ABTesting, DeploymentConfig::default());
        let steps = plan(&d);
        assert_eq!(steps[0].target_percent, 50.0);
        assert_eq!(steps[0].gate, Gate::Manual);
        d.start("x").unwrap();
        d.step_started_at = Some(d.started_at);
        let later = d.started_at + secs(3600);
        assert!(matches!(
            decide(&d, &steps, later, &metrics(1000, 0, 5.0)),
            Decision::Wait { .. }
        ));
    }

    #[test]
    fn split_of_a_canary_step() {
        let d = dep(DeploymentStrategy::Canary, DeploymentConfig::default());
        assert_eq!(split(&d, 10.0), BTreeMap::from([(1, 90.0), (2, 10.0)]));
        assert_eq!(split(&d, 100.0), BTreeMap::from([(2, 100.0)]));
    }

    #[test]
    fn analysis_needs_the_minimum_and_names_the_threshold() {
        let c = DeploymentConfig {
            rollback_on_error_rate: Some(10.0),
            rollback_on_latency_p99: Some(200.0),
            rollback_on_success_rate: Some(95.0),
            min_invocations: Some(20),
            ..Default::default()
        };
        assert_eq!(
            analyse(&c, &metrics(19, 19, 900.0)),
            Verdict::NoVerdict {
                invocations: 19,
                needed: 20
            }
        );
        assert_eq!(analyse(&c, &metrics(100, 0, 50.0)), Verdict::Healthy);
        match analyse(&c, &metrics(100, 30, 50.0)) {
            Verdict::Breach(b) => {
                assert_eq!(b.threshold, "RollbackOnErrorRate");
                assert_eq!(b.value, 30.0);
                assert_eq!(
                    b.to_string(),
                    "error rate 30% exceeded RollbackOnErrorRate 10%"
                );
            }
            v => panic!("{v:?}"),
        }
        match analyse(&c, &metrics(100, 6, 50.0)) {
            Verdict::Breach(b) => assert_eq!(b.threshold, "RollbackOnSuccessRate"),
            v => panic!("{v:?}"),
        }
        match analyse(&c, &metrics(100, 0, 250.0)) {
            Verdict::Breach(b) => {
                assert_eq!(b.threshold, "RollbackOnLatencyP99");
                assert_eq!(b.value, 250.0);
            }
            v => panic!("{v:?}"),
        }
    }

    fn canary() -> (Deployment, Vec<Step>) {
        let mut d = dep(
            DeploymentStrategy::Canary,
            DeploymentConfig {
                canary_percentage: Some(10.0),
                canary_duration: Some(Duration::from_secs(60)),
                rollback_on_error_rate: Some(10.0),
                min_invocations: Some(10),
                ..Default::default()
            },
        );
        let steps = plan(&d);
        assert_eq!(
            decide(&d, &steps, d.started_at, &metrics(0, 0, 0.0)),
            Decision::Enter { step: 0 }
        );
        d.start("Canary 10%").unwrap();
        d.step_started_at = Some(d.started_at);
        (d, steps)
    }

    #[test]
    fn a_step_passes_only_after_its_duration_with_a_verdict() {
        let (d, steps) = canary();
        let t0 = d.started_at;
        assert_eq!(
            decide(&d, &steps, t0 + secs(30), &metrics(50, 0, 5.0)),
            Decision::Wait { note: None }
        );
        assert_eq!(
            decide(&d, &steps, t0 + secs(61), &metrics(50, 0, 5.0)),
            Decision::Enter { step: 1 }
        );
        // No traffic is no verdict: wait, then roll back at the deadline.
        assert!(matches!(
            decide(&d, &steps, t0 + secs(61), &metrics(3, 0, 5.0)),
            Decision::Wait { note: Some(n) } if n.contains("3/10")
        ));
        match decide(&d, &steps, t0 + secs(121), &metrics(3, 0, 5.0)) {
            Decision::RollBack { reason } => assert!(reason.starts_with("no verdict"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_breach_rolls_back_at_once_naming_the_step() {
        let (d, steps) = canary();
        match decide(&d, &steps, d.started_at + secs(5), &metrics(20, 6, 5.0)) {
            Decision::RollBack { reason } => {
                assert_eq!(
                    reason,
                    "error rate 30% exceeded RollbackOnErrorRate 10% at step 1/2 (Canary 10%)"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_last_step_completes_and_progress_counts_steps() {
        let (mut d, steps) = canary();
        assert_eq!(progress(&d, &steps, d.started_at + secs(30)), 25.0);
        d.step = 1;
        assert_eq!(
            decide(&d, &steps, d.started_at + secs(1), &metrics(0, 0, 0.0)),
            Decision::Complete
        );
        assert_eq!(progress(&d, &steps, d.started_at), 50.0);
    }

    #[test]
    fn thresholds_always_get_a_watched_step() {
        let d = dep(
            DeploymentStrategy::Canary,
            DeploymentConfig {
                canary_increments: Some(vec![100.0]),
                rollback_on_error_rate: Some(1.0),
                ..Default::default()
            },
        );
        let steps = plan(&d);
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].duration, DEFAULT_ALL_AT_ONCE_BAKE);
        assert!(needs_verdict(&d, &steps[0]));
    }

    #[test]
    fn huge_durations_are_refused_and_deadlines_saturate() {
        let c = DeploymentConfig {
            canary_duration: Some(Duration::from_secs(u64::MAX / 4)),
            ..Default::default()
        };
        assert!(c
            .validate(DeploymentStrategy::Canary)
            .messages()
            .iter()
            .any(|e| e.contains("at most 30 days")));
        let mut d = dep(DeploymentStrategy::Canary, c);
        d.step_started_at = Some(d.started_at);
        let steps = plan(&d);
        assert_eq!(step_deadline(&d, &steps[0]), Some(DateTime::<Utc>::MAX_UTC));
        let _ = progress(&d, &steps, d.started_at);
    }

    #[test]
    fn without_thresholds_time_alone_advances() {
        let mut d = dep(
            DeploymentStrategy::Canary,
            DeploymentConfig {
                canary_duration: Some(Duration::from_secs(10)),
                ..Default::default()
            },
        );
        let steps = plan(&d);
        d.start("x").unwrap();
        d.step_started_at = Some(d.started_at);
        assert_eq!(
            decide(&d, &steps, d.started_at + secs(11), &metrics(0, 0, 0.0)),
            Decision::Enter { step: 1 }
        );
    }
}
