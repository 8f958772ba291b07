//! The autoscaler's arithmetic for one function version. Pure: times and
//! loads are arguments.
//!
//! Modelled on Knative's KPA. Every tick the driver observes the calls in
//! flight; then
//!
//! - `stable` = ⌈mean in-flight over the stable window ÷ per-instance
//!   concurrency⌉, `panic` = the same over the panic window (6 s). The
//!   stable window is the `scaleDownCooldown` clamped to 6–60 s (Knative's
//!   default is 60 s; a shorter cooldown asks for a quicker reaction).
//! - Panic mode starts when `panic` ≥ 2 × the instances there are (and is
//!   more than them), and lasts a stable window after the last time that
//!   held. In panic the wanted count is the larger of `panic` and `stable`
//!   and never goes down; otherwise it is `stable`.
//! - `keep` = the largest wanted count over the last `scaleDownCooldown`,
//!   within `minInstances` (at least 1 with keep-warm) and `maxInstances`:
//!   what the runner keeps initialised; idle instances past it go once
//!   idle for `scaleDownCooldown`. With `minInstances` 0 that reaches 0:
//!   scale to zero.
//! - `start` = what is missing to reach `minInstances` at once, else what
//!   is missing to reach `keep`, at most once per `scaleUpCooldown` (calls
//!   still start instances on demand: this only starts them ahead).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hotswap_domain::value::ScalingConfig;

/// The panic window.
pub const PANIC_WINDOW: Duration = Duration::from_secs(6);
/// The longest stable window.
pub const MAX_STABLE_WINDOW: Duration = Duration::from_secs(60);
/// `panic` over the instances there are that starts panic mode.
pub const PANIC_THRESHOLD: f64 = 2.0;

/// A version's bounds, from its function's `ScalingConfig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// `minInstances`, at least 1 with keep-warm; 0 for a version no alias
    /// routes to (other than `$LATEST` of a function without aliases).
    pub min: u32,
    pub max: u32,
    /// Concurrent calls one instance takes.
    pub per_instance: u32,
    pub scale_up_cooldown: Duration,
    pub scale_down_cooldown: Duration,
}

impl Bounds {
    /// The bounds of a version; `routed`: an alias routes to it (or it is
    /// `$LATEST` of a function with no alias), so `minInstances` and
    /// keep-warm apply.
    pub fn new(c: &ScalingConfig, routed: bool, per_instance: u32) -> Bounds {
        let floor = if routed {
            c.min_instances.max(u32::from(c.keep_warm_enabled))
        } else {
            0
        };
        let max = c.max_instances.max(1);
        Bounds {
            min: floor.min(max),
            max,
            per_instance: per_instance.max(1),
            scale_up_cooldown: c.scale_up_cooldown,
            scale_down_cooldown: c.scale_down_cooldown,
        }
    }

    /// The window the stable average is taken over.
    pub fn stable_window(&self) -> Duration {
        self.scale_down_cooldown
            .clamp(PANIC_WINDOW, MAX_STABLE_WINDOW)
    }
}

/// What to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Instances the load asks for now (before the bounds).
    pub desired: u32,
    /// Instances to keep initialised.
    pub keep: u32,
    /// Instances to start now, ahead of calls.
    pub start: u32,
    pub panic: bool,
}

/// The autoscaler of one version.
#[derive(Debug, Default)]
pub struct Autoscaler {
    /// In-flight observations, oldest first.
    samples: VecDeque<(Instant, f64)>,
    /// Wanted counts, oldest first.
    wanted: VecDeque<(Instant, u32)>,
    panic_until: Option<Instant>,
    last_start: Option<Instant>,
}

impl Autoscaler {
    /// Records the calls in flight now.
    pub fn observe(&mut self, now: Instant, in_flight: f64) {
        self.samples.push_back((now, in_flight.max(0.0)));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > MAX_STABLE_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    fn mean(&self, now: Instant, window: Duration) -> f64 {
        let (sum, n) = self
            .samples
            .iter()
            .filter(|(t, _)| now.saturating_duration_since(*t) <= window)
            .fold((0.0, 0u32), |(s, n), (_, v)| (s + v, n + 1));
        if n == 0 {
            0.0
        } else {
            sum / f64::from(n)
        }
    }

    /// The decision with `instances` running, idle or starting now.
    pub fn decide(&mut self, now: Instant, instances: u32, b: &Bounds) -> Decision {
        let per = f64::from(b.per_instance.max(1));
        let ceil = |x: f64| -> u32 { (x / per).ceil().min(f64::from(u32::MAX)) as u32 };
        let stable = ceil(self.mean(now, b.stable_window()));
        let panic = ceil(self.mean(now, PANIC_WINDOW));
        if panic > instances && f64::from(panic) >= PANIC_THRESHOLD * f64::from(instances.max(1)) {
            self.panic_until = Some(now + b.stable_window());
        }
        let panicking = self.panic_until.is_some_and(|t| now < t);
        let before = self.wanted.back().map(|(_, w)| *w).unwrap_or(0);
        let desired = if panicking {
            panic.max(stable).max(before)
        } else {
            stable
        };
        self.wanted.push_back((now, desired));
        while self.wanted.len() > 1
            && self
                .wanted
                .front()
                .is_some_and(|(t, _)| now.saturating_duration_since(*t) > b.scale_down_cooldown)
        {
            self.wanted.pop_front();
        }
        let held = self.wanted.iter().map(|(_, w)| *w).max().unwrap_or(0);
        let keep = held.min(b.max).max(b.min);
        let start = if instances < b.min {
            b.min - instances
        } else if keep > instances
            && self
                .last_start
                .is_none_or(|t| now.saturating_duration_since(t) >= b.scale_up_cooldown)
        {
            keep - instances
        } else {
            0
        };
        if start > 0 {
            self.last_start = Some(now);
        }
        Decision {
            desired,
            keep,
            start,
            panic: panicking,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn bounds(min: u32, max: u32, up: u64, down: u64) -> Bounds {
        Bounds {
            min,
            max,
            per_instance: 1,
            scale_up_cooldown: S * up as u32,
            scale_down_cooldown: S * down as u32,
        }
    }

    /// Observes `load` once a second for `secs` seconds, deciding each time
    /// with the instances the previous decision asked for.
    fn run(
        a: &mut Autoscaler,
        t: &mut Instant,
        b: &Bounds,
        instances: &mut u32,
        load: f64,
        secs: u32,
    ) -> Vec<Decision> {
        (0..secs)
            .map(|_| {
                *t += S;
                a.observe(*t, load);
                let d = a.decide(*t, *instances, b);
                *instances = (*instances + d.start).max(d.keep).min(b.max);
                d
            })
            .collect()
    }

    #[test]
    fn min_instances_are_started_at_once_and_kept_without_load() {
        let mut a = Autoscaler::default();
        let b = bounds(2, 10, 30, 300);
        let t = Instant::now();
        a.observe(t, 0.0);
        let d = a.decide(t, 0, &b);
        assert_eq!((d.keep, d.start), (2, 2));
        // Reaching min ignores the scale-up cooldown.
        let d = a.decide(t + S, 1, &b);
        assert_eq!((d.keep, d.start), (2, 1));
        let d = a.decide(t + S * 600, 2, &b);
        assert_eq!((d.keep, d.start), (2, 0));
    }

    #[test]
    fn keep_warm_means_one_and_an_unrouted_version_none() {
        let c = ScalingConfig {
            min_instances: 0,
            keep_warm_enabled: true,
            ..ScalingConfig::default()
        };
        assert_eq!(Bounds::new(&c, true, 1).min, 1);
        assert_eq!(Bounds::new(&c, false, 1).min, 0);
        let c = ScalingConfig {
            min_instances: 3,
            ..ScalingConfig::default()
        };
        assert_eq!(Bounds::new(&c, true, 1).min, 3);
    }

    #[test]
    fn steady_load_asks_for_in_flight_over_target() {
        let mut a = Autoscaler::default();
        let mut b = bounds(0, 100, 0, 60);
        b.per_instance = 10;
        let (mut t, mut n) = (Instant::now(), 0);
        let ds = run(&mut a, &mut t, &b, &mut n, 35.0, 30);
        assert_eq!(ds.last().unwrap().desired, 4, "ceil(35 / 10)");
    }

    #[test]
    fn a_burst_panics_and_never_scales_down_while_it_lasts() {
        let mut a = Autoscaler::default();
        let b = bounds(0, 100, 0, 60);
        let (mut t, mut n) = (Instant::now(), 2);
        run(&mut a, &mut t, &b, &mut n, 2.0, 60);
        let ds = run(&mut a, &mut t, &b, &mut n, 20.0, 2);
        let d = ds.last().unwrap();
        assert!(d.panic, "{d:?}");
        // The panic window (6 s) sees the burst before the stable one:
        // (5 × 2 + 2 × 20) / 7 ≈ 7.1 calls against ≈ 2.6 over 60 s.
        assert_eq!(d.desired, 8, "{d:?}");
        let peak = d.desired;
        let ds = run(&mut a, &mut t, &b, &mut n, 1.0, 10);
        assert!(ds.iter().all(|d| d.panic && d.desired >= peak), "{ds:?}");
    }

    #[test]
    fn scale_up_waits_for_its_cooldown() {
        let mut a = Autoscaler::default();
        let b = bounds(0, 100, 5, 60);
        let (mut t, mut n) = (Instant::now(), 1);
        let starts: Vec<u32> = run(&mut a, &mut t, &b, &mut n, 8.0, 10)
            .iter()
            .map(|d| d.start)
            .collect();
        let at: Vec<usize> = starts
            .iter()
            .enumerate()
            .filter(|(_, s)| **s > 0)
            .map(|(i, _)| i)
            .collect();
        assert!(!at.is_empty(), "{starts:?}");
        assert!(at.windows(2).all(|w| w[1] - w[0] >= 5), "{starts:?}");
    }

    #[test]
    fn instances_go_only_after_the_scale_down_cooldown_and_to_zero() {
        let mut a = Autoscaler::default();
        let b = bounds(0, 100, 0, 10);
        let (mut t, mut n) = (Instant::now(), 0);
        run(&mut a, &mut t, &b, &mut n, 4.0, 20);
        // Idle from now: the stable window (10 s) empties, then the
        // highest wanted count is held for the cooldown (10 s).
        let ds = run(&mut a, &mut t, &b, &mut n, 0.0, 40);
        let first_zero = ds.iter().position(|d| d.keep == 0).expect("scales to zero");
        assert!(first_zero >= 10, "kept {first_zero} s: {ds:?}");
        assert!(ds[first_zero..].iter().all(|d| d.keep == 0));
        assert!(ds[..first_zero].iter().all(|d| d.keep >= 1));
    }

    #[test]
    fn keep_stays_within_min_and_max() {
        let mut a = Autoscaler::default();
        let b = bounds(1, 3, 0, 10);
        let (mut t, mut n) = (Instant::now(), 0);
        let ds = run(&mut a, &mut t, &b, &mut n, 50.0, 10);
        assert!(ds.iter().all(|d| (1..=3).contains(&d.keep)), "{ds:?}");
        let ds = run(&mut a, &mut t, &b, &mut n, 0.0, 60);
        assert_eq!(ds.last().unwrap().keep, 1);
    }
}
