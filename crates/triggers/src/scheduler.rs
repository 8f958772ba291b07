//! The scheduler: turns each tick of an enabled `Scheduled` trigger into one
//! asynchronous invocation carrying the EventBridge "Scheduled Event"
//! (its `time` is the tick's scheduled time), so retries and dead letters
//! apply as for any `Event` invocation.
//!
//! - **Once per tick**: every server computes the same ticks (they depend
//!   only on the expression, the time zone and the trigger's creation) and
//!   claims each in the store (`claim_tick`: a unique (trigger, tick) row
//!   written in the same transaction as the invocation). One claim wins;
//!   a server that dies after its claim has already queued the invocation,
//!   which any server's async worker runs.
//! - **Late and missed ticks**: a tick is fired while it is at most
//!   `max_lateness` (default 60 s) old, so a short stall or a restart loses
//!   nothing. Ticks missed for longer (every server down) are not replayed
//!   (as EventBridge Scheduler does); the gap is logged and counted in
//!   `state.skipped`. Ticks that pass while a trigger is disabled are not
//!   fired when it is enabled again, nor counted.
//! - **Disable / delete**: a claim checks, in the same statement, that the
//!   trigger exists and is enabled, so a disable or delete answered by any
//!   server stops the next tick on every server; the trigger list itself is
//!   re-read whenever a trigger changes here and at least every second.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::Utc;
use chrono_tz::Tz;
use hotswap_domain::time::Timestamp;
use hotswap_domain::trigger::schedule::Schedule;
use hotswap_domain::{AsyncInvocation, Trigger, TriggerType};
use hotswap_router::Router;

use crate::events::{scheduled_event, DEFAULT_REGION};
use crate::stats::{Labels, Outcome, TriggerStats};

/// Most ticks of one trigger fired in one poll.
const MAX_TICKS_PER_POLL: usize = 100;
/// How often claims older than a day are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Oldest a tick may be and still fire.
    pub max_lateness: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            max_lateness: Duration::from_secs(60),
        }
    }
}

/// The time zone of a schedule (UTC when none or unknown).
pub fn time_zone(t: &Trigger) -> Tz {
    t.config
        .timezone
        .as_deref()
        .and_then(|z| z.parse().ok())
        .unwrap_or(Tz::UTC)
}

/// When an enabled scheduled trigger fires next after `now` (`None`: it
/// never fires again, is disabled, or is not a schedule).
pub fn next_run(t: &Trigger, now: Timestamp) -> Option<Timestamp> {
    if t.trigger_type != TriggerType::Scheduled || !t.is_enabled {
        return None;
    }
    let schedule = Schedule::parse(t.config.schedule_expression.as_deref()?).ok()?;
    schedule.next_after(now, t.created_at, time_zone(t))
}

/// The resource a tick's event names.
pub fn schedule_arn(owner: &str, trigger_id: &str) -> String {
    format!("arn:hotswap:scheduler:{DEFAULT_REGION}:{owner}:schedule/{trigger_id}")
}

struct Known {
    triggers: Vec<Trigger>,
    epoch: u64,
    loaded: Option<Instant>,
    /// The last tick handled per trigger.
    cursors: HashMap<String, Timestamp>,
    pruned: Option<Instant>,
}

/// The scheduler; [`Scheduler::poll`] is one run of its `scheduler` task.
pub struct Scheduler {
    router: Arc<Router>,
    stats: Arc<TriggerStats>,
    config: SchedulerConfig,
    known: tokio::sync::Mutex<Known>,
}

fn labels<'a>(t: &'a Trigger, owner: &'a str) -> Labels<'a> {
    Labels {
        trigger_id: &t.trigger_id,
        kind: "schedule",
        function: &t.function_name,
        owner,
    }
}

impl Scheduler {
    pub fn new(router: Arc<Router>, stats: Arc<TriggerStats>, config: SchedulerConfig) -> Self {
        Self {
            router,
            stats,
            config,
            known: tokio::sync::Mutex::new(Known {
                triggers: Vec::new(),
                epoch: u64::MAX,
                loaded: None,
                cursors: HashMap::new(),
                pruned: None,
            }),
        }
    }

    /// Fires every due tick of every enabled schedule.
    pub async fn poll(&self) -> Result<(), String> {
        let mut known = self.known.lock().await;
        let control = self.router.control();
        let epoch = control.trigger_epoch();
        if known.epoch != epoch
            || known
                .loaded
                .is_none_or(|l| l.elapsed() >= Duration::from_secs(1))
        {
            let all = control
                .store()
                .list_triggers(None)
                .await
                .map_err(|e| format!("cannot list triggers: {e}"))?;
            known.triggers = all
                .into_iter()
                .filter(|t| t.trigger_type == TriggerType::Scheduled)
                .collect();
            known.epoch = epoch;
            known.loaded = Some(Instant::now());
            let ids: std::collections::HashSet<String> = known
                .triggers
                .iter()
                .map(|t| t.trigger_id.clone())
                .collect();
            known.cursors.retain(|id, _| ids.contains(id));
        }
        let now = hotswap_domain::time::now();
        let floor = now - chrono::Duration::from_std(self.config.max_lateness).unwrap_or_default();
        let mut first_error = None;
        let triggers = known.triggers.clone();
        for t in &triggers {
            if !t.is_enabled {
                // Ticks pass by while disabled: enabling does not replay them.
                known.cursors.insert(t.trigger_id.clone(), now);
                continue;
            }
            let Some(schedule) = t
                .config
                .schedule_expression
                .as_deref()
                .and_then(|e| Schedule::parse(e).ok())
            else {
                continue;
            };
            let tz = time_zone(t);
            let cursor = match known.cursors.get(&t.trigger_id) {
                Some(c) => *c,
                None => match self.start_cursor(t, &schedule, tz, floor).await {
                    Ok(c) => c,
                    Err(e) => {
                        first_error.get_or_insert(e);
                        continue;
                    }
                },
            };
            // However the cursor fell behind (a stall, a store outage, a
            // suspended host), ticks older than the lateness bound are
            // skipped, never fired late: their claims may be pruned already.
            let mut cursor = if cursor < floor {
                if schedule
                    .next_after(cursor, t.created_at, tz)
                    .is_some_and(|next| next < floor)
                {
                    tracing::warn!(trigger = %t.trigger_id, function = %t.function_name, from = %cursor, to = %floor, "scheduled ticks later than the lateness bound are skipped");
                    self.stats
                        .record(labels(t, ""), Outcome::Skipped, None, Utc::now(), false);
                }
                floor
            } else {
                cursor
            };
            for _ in 0..MAX_TICKS_PER_POLL {
                let Some(tick) = schedule.next_after(cursor, t.created_at, tz) else {
                    break;
                };
                if tick > now {
                    break;
                }
                match self.fire(t, tick).await {
                    Ok(()) => cursor = tick,
                    Err(e) => {
                        first_error.get_or_insert(e);
                        break;
                    }
                }
            }
            known.cursors.insert(t.trigger_id.clone(), cursor);
        }
        if known.pruned.is_none_or(|p| p.elapsed() >= PRUNE_EVERY) {
            known.pruned = Some(Instant::now());
            if let Err(e) = control
                .store()
                .prune_ticks(now - chrono::Duration::days(1))
                .await
            {
                tracing::warn!(error = %e, "cannot prune old schedule claims");
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Where a trigger's schedule resumes on this server: after its newest
    /// claim, but never before `floor` (older ticks are not replayed).
    async fn start_cursor(
        &self,
        t: &Trigger,
        schedule: &Schedule,
        tz: Tz,
        floor: Timestamp,
    ) -> Result<Timestamp, String> {
        let last = self
            .router
            .control()
            .store()
            .last_tick(&t.trigger_id)
            .await
            .map_err(|e| format!("cannot read the last tick of trigger {}: {e}", t.trigger_id))?;
        let resume = last.unwrap_or(t.created_at).max(t.created_at);
        if resume >= floor {
            return Ok(resume);
        }
        // Ticks in (resume, floor) were missed by every server.
        if let Some(missed) = schedule
            .last_at_or_before(floor, t.created_at, tz)
            .filter(|m| *m > resume)
        {
            tracing::warn!(trigger = %t.trigger_id, function = %t.function_name, from = %resume, to = %missed, "scheduled ticks missed while no server ran them are not replayed");
            self.stats
                .record(labels(t, ""), Outcome::Skipped, None, Utc::now(), false);
        }
        Ok(floor)
    }

    /// Claims one tick and queues its invocation. A tick of a function that
    /// is gone is dropped (and reported); a store failure is retried at the
    /// next poll.
    async fn fire(&self, t: &Trigger, tick: Timestamp) -> Result<(), String> {
        // Only the function's owner and name are needed here: the worker
        // resolves the qualifier when it runs the invocation.
        let f = match self.router.control().function_by_id(&t.function_id).await {
            Ok(Some(f)) => f,
            Ok(None) => {
                let m = format!("function '{}' not found", t.function_name);
                self.stats.error(labels(t, ""), m.clone());
                self.stats
                    .record(labels(t, ""), Outcome::Failed, None, Utc::now(), false);
                tracing::warn!(trigger = %t.trigger_id, tick = %tick, error = %m, "scheduled tick dropped");
                return Ok(());
            }
            Err(e) => return Err(format!("trigger {}: {e}", t.trigger_id)),
        };
        let request_id = uuid::Uuid::new_v4().to_string();
        let event = scheduled_event(
            &request_id,
            tick,
            &schedule_arn(&f.owner_id, &t.trigger_id),
            DEFAULT_REGION,
            &f.owner_id,
        );
        let payload = base64::engine::general_purpose::STANDARD.encode(event.to_string());
        let mut inv = AsyncInvocation::new(
            request_id,
            f.name.clone(),
            &t.target_version,
            f.owner_id.clone(),
            payload,
            "application/json",
        );
        inv.function_id = Some(f.function_id.clone());
        inv.trigger_id = Some(t.trigger_id.clone());
        let claimed = self
            .router
            .control()
            .store()
            .claim_tick(&t.trigger_id, tick, &inv)
            .await
            .map_err(|e| format!("cannot claim a tick of trigger {}: {e}", t.trigger_id))?;
        if claimed {
            self.stats.clear_error(&t.trigger_id);
            self.stats.record(
                labels(t, &f.owner_id),
                Outcome::Succeeded,
                None,
                Utc::now(),
                false,
            );
            tracing::info!(trigger = %t.trigger_id, function = %f.name, tick = %tick, request = %inv.request_id, "scheduled tick queued");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotswap_domain::TriggerConfig;

    fn schedule(expr: &str, tz: Option<&str>, created: &str) -> Trigger {
        let mut t = Trigger::new(
            "f",
            TriggerType::Scheduled,
            TriggerConfig {
                schedule_expression: Some(expr.into()),
                timezone: tz.map(Into::into),
                ..TriggerConfig::default()
            },
        );
        t.created_at = created.parse().unwrap();
        t
    }

    fn utc(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn next_run_follows_the_expression_zone_and_enablement() {
        let t = schedule("rate(2 seconds)", None, "2030-01-01T00:00:00Z");
        assert_eq!(
            next_run(&t, utc("2030-01-01T00:00:03Z")),
            Some(utc("2030-01-01T00:00:04Z"))
        );
        // 02:30 every day, Paris: on 2031-03-30 (clocks jump 02:00 → 03:00)
        // the local time does not exist and the tick is skipped, as on
        // EventBridge Scheduler; the next is the day after.
        let t = schedule(
            "cron(30 2 * * ? *)",
            Some("Europe/Paris"),
            "2031-01-01T00:00:00Z",
        );
        assert_eq!(
            next_run(&t, utc("2031-03-29T12:00:00Z")),
            Some(utc("2031-03-31T00:30:00Z"))
        );
        assert_eq!(
            next_run(&t, utc("2031-03-28T12:00:00Z")),
            Some(utc("2031-03-29T01:30:00Z"))
        );
        let mut off = t.clone();
        off.is_enabled = false;
        assert_eq!(next_run(&off, utc("2031-03-28T12:00:00Z")), None);
        let once = schedule("at(2031-05-01T10:00:00)", None, "2031-01-01T00:00:00Z");
        assert_eq!(next_run(&once, utc("2031-06-01T00:00:00Z")), None);
    }
}
