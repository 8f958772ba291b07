//! The background-task driver: every loop the server runs besides serving
//! requests (heartbeats, counter flushes, window pruning, the asynchronous
//! worker, the scheduler, the HTTP route refresher, …) is a named periodic
//! task started here, so that one place starts them, stops them on
//! shutdown and reports how each is doing (`GET /v1/status`).
//!
//! A task is a closure run every `period`, one run at a time: a run that
//! takes longer than the period delays the next (ticks are not queued).
//! A run answers [`Flow::Continue`], [`Flow::Stop`] (its work is gone, e.g.
//! the runner it served has stopped) or an error, which is logged and kept
//! as the task's `lastError`; the task goes on at its next tick.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What a run tells the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Run again at the next tick.
    Continue,
    /// Stop this task for good.
    Stop,
}

/// One task's figures, as `GET /v1/status` shows them.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatus {
    /// The task's name (`async-worker`, `scheduler`, …).
    pub name: String,
    /// Milliseconds between runs.
    pub period_ms: u64,
    /// `running` (waiting for its next tick or in a run) or `stopped`.
    pub state: TaskState,
    /// Runs so far.
    pub runs: u64,
    /// Runs that ended in an error.
    pub failures: u64,
    /// When the last run began.
    pub last_run_at: Option<DateTime<Utc>>,
    /// How long the last run took, in milliseconds.
    pub last_duration_ms: Option<f64>,
    /// The last error, kept until a later run succeeds.
    pub last_error: Option<String>,
    /// When the last error happened (kept after later successes).
    pub last_error_at: Option<DateTime<Utc>>,
}

/// Whether a task still runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum TaskState {
    #[default]
    Running,
    Stopped,
}

struct Entry {
    status: Mutex<TaskStatus>,
}

/// Starts, stops and reports the named tasks.
pub struct Driver {
    tasks: Mutex<Vec<(Arc<Entry>, JoinHandle<()>)>>,
    stop: watch::Sender<bool>,
}

impl Default for Driver {
    fn default() -> Self {
        Self::new()
    }
}

impl Driver {
    pub fn new() -> Self {
        Self {
            tasks: Mutex::default(),
            stop: watch::channel(false).0,
        }
    }

    /// Runs `run` every `period` (the first run right away) until it
    /// answers [`Flow::Stop`] or the driver shuts down.
    pub fn every<F, Fut>(&self, name: &str, period: Duration, mut run: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Flow, String>> + Send + 'static,
    {
        let period = period.max(Duration::from_millis(1));
        let entry = Arc::new(Entry {
            status: Mutex::new(TaskStatus {
                name: name.to_owned(),
                period_ms: u64::try_from(period.as_millis()).unwrap_or(u64::MAX),
                ..TaskStatus::default()
            }),
        });
        let mut stop = self.stop.subscribe();
        let (e, task_name) = (entry.clone(), name.to_owned());
        let handle = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                let began = Instant::now();
                let at = Utc::now();
                // Each run in its own task: a panic is counted as a failed
                // run instead of silently ending the task.
                let outcome = match tokio::spawn(run()).await {
                    Ok(outcome) => outcome,
                    Err(e) => Err(format!("the run panicked: {e}")),
                };
                let took = began.elapsed().as_secs_f64() * 1000.0;
                let flow = {
                    let mut s = e.status.lock().unwrap_or_else(|p| p.into_inner());
                    s.runs += 1;
                    s.last_run_at = Some(at);
                    s.last_duration_ms = Some(took);
                    match outcome {
                        Ok(flow) => {
                            s.last_error = None;
                            flow
                        }
                        Err(error) => {
                            tracing::warn!(task = %task_name, %error, "background task run failed");
                            s.failures += 1;
                            s.last_error = Some(error);
                            s.last_error_at = Some(at);
                            Flow::Continue
                        }
                    }
                };
                if flow == Flow::Stop {
                    break;
                }
            }
            e.status.lock().unwrap_or_else(|p| p.into_inner()).state = TaskState::Stopped;
            tracing::debug!(task = %task_name, "background task stopped");
        });
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((entry, handle));
    }

    /// Every task's figures, in the order they were started.
    pub fn statuses(&self) -> Vec<TaskStatus> {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(e, _)| e.status.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .collect()
    }

    /// Stops every task: none starts another run; a run in progress is
    /// given `grace` to finish, then aborted.
    pub async fn shutdown(&self, grace: Duration) {
        let _ = self.stop.send(true);
        let handles: Vec<JoinHandle<()>> = self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter_mut()
            .map(|(_, h)| std::mem::replace(h, tokio::spawn(async {})))
            .collect();
        for mut h in handles {
            if tokio::time::timeout(grace, &mut h).await.is_err() {
                h.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn runs_reports_errors_and_stops() {
        let driver = Driver::new();
        let n = Arc::new(AtomicU32::new(0));
        let m = n.clone();
        driver.every("flaky", Duration::from_secs(1), move || {
            let k = m.fetch_add(1, Ordering::SeqCst);
            async move {
                match k {
                    1 => Err("boom".to_owned()),
                    3 => Ok(Flow::Stop),
                    _ => Ok(Flow::Continue),
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let s = &driver.statuses()[0];
        assert_eq!((s.runs, s.failures), (2, 1));
        assert_eq!(s.last_error.as_deref(), Some("boom"));
        assert_eq!(s.state, TaskState::Running);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let s = &driver.statuses()[0];
        assert_eq!(s.runs, 3);
        assert_eq!(s.last_error, None, "a success clears the error");
        assert!(s.last_error_at.is_some());
        tokio::time::sleep(Duration::from_secs(3)).await;
        let s = &driver.statuses()[0];
        assert_eq!((s.runs, s.state), (4, TaskState::Stopped));
        assert_eq!(n.load(Ordering::SeqCst), 4, "no run after Stop");
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_run_is_a_failure_not_the_end() {
        let driver = Driver::new();
        let n = Arc::new(AtomicU32::new(0));
        let m = n.clone();
        driver.every("panicky", Duration::from_secs(1), move || {
            let k = m.fetch_add(1, Ordering::SeqCst);
            async move {
                assert!(k != 0, "first run panics");
                Ok(Flow::Continue)
            }
        });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let s = &driver.statuses()[0];
        assert_eq!((s.runs, s.failures, s.state), (2, 1, TaskState::Running));
        assert!(s.last_error_at.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_every_task() {
        let driver = Driver::new();
        let n = Arc::new(AtomicU32::new(0));
        for name in ["a", "b"] {
            let m = n.clone();
            driver.every(name, Duration::from_millis(100), move || {
                m.fetch_add(1, Ordering::SeqCst);
                async { Ok(Flow::Continue) }
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        driver.shutdown(Duration::from_secs(1)).await;
        let seen = n.load(Ordering::SeqCst);
        assert_eq!(seen, 6);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(n.load(Ordering::SeqCst), seen);
        assert!(driver
            .statuses()
            .iter()
            .all(|s| s.state == TaskState::Stopped));
    }
}
