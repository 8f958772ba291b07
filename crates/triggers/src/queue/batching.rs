//! When a queue consumer sends what it has buffered: as Lambda does, a
//! batch goes when it holds `batchSize` messages, when its payload would
//! pass the invocation limit, or when `maximumBatchingWindow` has passed
//! since its first message arrived (a window of 0 sends at once).
//!
//! Pure: times are arguments.

use std::time::{Duration, Instant};

/// What to do with the buffer now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatch {
    /// Nothing is buffered: wait for messages.
    Idle,
    /// Send a batch now (of [`BatchPolicy::batch_len`] messages).
    Now,
    /// Wait for more messages, but send by this instant at the latest.
    WaitUntil(Instant),
}

/// A trigger's batching rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Most messages per batch (at least 1).
    pub batch_size: usize,
    /// Longest wait to fill a batch.
    pub window: Duration,
    /// Most body bytes per batch (the invocation payload limit, less the
    /// event's own overhead).
    pub max_bytes: usize,
}

impl BatchPolicy {
    pub fn new(batch_size: u32, window: Duration, max_bytes: usize) -> Self {
        Self {
            batch_size: usize::try_from(batch_size).unwrap_or(usize::MAX).max(1),
            window,
            max_bytes,
        }
    }

    /// Whether to send now: `buffered` messages of `buffered_bytes` in
    /// all, the oldest of them buffered at `first_buffered_at`.
    pub fn decide(
        &self,
        buffered: usize,
        buffered_bytes: usize,
        first_buffered_at: Instant,
        now: Instant,
    ) -> Dispatch {
        if buffered == 0 {
            return Dispatch::Idle;
        }
        if buffered >= self.batch_size || buffered_bytes >= self.max_bytes {
            return Dispatch::Now;
        }
        match first_buffered_at.checked_add(self.window) {
            Some(deadline) if deadline > now => Dispatch::WaitUntil(deadline),
            // Past the window (or a window too large to add: never wait
            // forever on arithmetic).
            Some(_) => Dispatch::Now,
            None => Dispatch::Now,
        }
    }

    /// How many of the buffered messages (body sizes in buffer order) the
    /// next batch takes: at most `batch_size`, within `max_bytes`, and at
    /// least one when any is buffered (a message larger than the limit
    /// goes alone; its invocation is refused and it fails as usual).
    pub fn batch_len(&self, sizes: &[usize]) -> usize {
        let mut total = 0usize;
        let mut n = 0;
        for &size in sizes.iter().take(self.batch_size) {
            total = total.saturating_add(size);
            if n > 0 && total > self.max_bytes {
                break;
            }
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: usize = 1 << 20;

    fn policy(batch: u32, window_s: u64) -> BatchPolicy {
        BatchPolicy::new(batch, Duration::from_secs(window_s), 6 * MB)
    }

    #[test]
    fn nothing_buffered_is_idle() {
        let t = Instant::now();
        assert_eq!(policy(10, 5).decide(0, 0, t, t), Dispatch::Idle);
    }

    #[test]
    fn a_full_batch_goes_at_once() {
        let t = Instant::now();
        assert_eq!(policy(10, 5).decide(10, 100, t, t), Dispatch::Now);
        assert_eq!(policy(10, 5).decide(25, 100, t, t), Dispatch::Now);
    }

    #[test]
    fn a_payload_at_the_limit_goes_at_once() {
        let t = Instant::now();
        assert_eq!(policy(10, 5).decide(2, 6 * MB, t, t), Dispatch::Now);
    }

    #[test]
    fn without_a_window_what_is_there_goes() {
        let t = Instant::now();
        assert_eq!(policy(10, 0).decide(1, 10, t, t), Dispatch::Now);
    }

    #[test]
    fn within_the_window_it_waits_until_the_window_ends() {
        let t = Instant::now();
        let p = policy(10, 5);
        assert_eq!(
            p.decide(3, 10, t, t + Duration::from_secs(2)),
            Dispatch::WaitUntil(t + Duration::from_secs(5))
        );
        assert_eq!(
            p.decide(3, 10, t, t + Duration::from_secs(5)),
            Dispatch::Now
        );
        assert_eq!(
            p.decide(3, 10, t, t + Duration::from_secs(9)),
            Dispatch::Now
        );
    }

    #[test]
    fn batch_size_zero_means_one() {
        assert_eq!(BatchPolicy::new(0, Duration::ZERO, MB).batch_size, 1);
    }

    #[test]
    fn batch_len_respects_count_and_bytes() {
        let p = BatchPolicy::new(3, Duration::ZERO, 100);
        assert_eq!(p.batch_len(&[]), 0);
        assert_eq!(p.batch_len(&[10, 10, 10, 10]), 3);
        assert_eq!(p.batch_len(&[60, 40, 1]), 2);
        assert_eq!(p.batch_len(&[60, 41]), 1);
        // An oversized message still goes, alone.
        assert_eq!(p.batch_len(&[500, 1]), 1);
        assert_eq!(p.batch_len(&[usize::MAX, usize::MAX]), 1);
    }
}
