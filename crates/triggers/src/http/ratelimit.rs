//! The per-trigger rate limit: a token bucket.
//!
//! Rules: the bucket holds at most `per_second` tokens (the burst) and
//! starts full; it refills continuously at `per_second` tokens a second
//! (exact integer arithmetic, in billionths of a token); each admitted
//! request takes one token. A `now` earlier than the last one seen refills
//! nothing. `per_second == 0` admits nothing.

use std::sync::Mutex;
use std::time::Instant;

/// Billionths of a token per token.
const SCALE: u128 = 1_000_000_000;

#[derive(Debug)]
struct Bucket {
    /// Billionths of a token.
    tokens: u128,
    /// When `tokens` was last brought up to date; `None` before first use.
    last: Option<Instant>,
}

/// A token bucket shared by the requests of one trigger (put it behind an
/// `Arc`; `try_acquire` takes `&self`).
#[derive(Debug)]
pub struct RateLimiter {
    per_second: u32,
    bucket: Mutex<Bucket>,
}

impl RateLimiter {
    /// A full bucket of `per_second` tokens refilling at `per_second`/s.
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second,
            bucket: Mutex::new(Bucket {
                tokens: u128::from(per_second) * SCALE,
                last: None,
            }),
        }
    }

    /// The rate (and burst) it was built with.
    pub fn per_second(&self) -> u32 {
        self.per_second
    }

    /// Takes a token at time `now` if one is available (the request is
    /// admitted); `false` means answer 429.
    pub fn try_acquire(&self, now: Instant) -> bool {
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let rate = u128::from(self.per_second);
        let capacity = rate * SCALE;
        match b.last {
            Some(last) => {
                if let Some(elapsed) = now.checked_duration_since(last) {
                    // Tokens in billionths: elapsed_ns × rate / 1e9 × 1e9.
                    let refill = elapsed.as_nanos().saturating_mul(rate);
                    b.tokens = b.tokens.saturating_add(refill).min(capacity);
                    b.last = Some(now);
                }
            }
            None => b.last = Some(now),
        }
        if b.tokens >= SCALE {
            b.tokens -= SCALE;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn admitted(l: &RateLimiter, now: Instant, n: usize) -> usize {
        (0..n).filter(|_| l.try_acquire(now)).count()
    }

    #[test]
    fn burst_then_refuse() {
        let t0 = Instant::now();
        let l = RateLimiter::new(5);
        assert_eq!(l.per_second(), 5);
        assert_eq!(admitted(&l, t0, 10), 5);
        assert!(!l.try_acquire(t0));
    }

    #[test]
    fn refills_continuously() {
        let t0 = Instant::now();
        let l = RateLimiter::new(10);
        assert_eq!(admitted(&l, t0, 10), 10);
        // 10/s: one token per 100 ms.
        assert!(!l.try_acquire(t0 + Duration::from_millis(99)));
        assert!(l.try_acquire(t0 + Duration::from_millis(100)));
        assert!(!l.try_acquire(t0 + Duration::from_millis(100)));
        // Fractions accumulate across calls: 50 ms + 50 ms = one token.
        assert!(!l.try_acquire(t0 + Duration::from_millis(150)));
        assert!(l.try_acquire(t0 + Duration::from_millis(200)));
        // Half a second later: 5 tokens.
        assert_eq!(admitted(&l, t0 + Duration::from_millis(700), 10), 5);
    }

    #[test]
    fn refill_caps_at_burst() {
        let t0 = Instant::now();
        let l = RateLimiter::new(3);
        assert_eq!(admitted(&l, t0, 3), 3);
        assert_eq!(admitted(&l, t0 + Duration::from_secs(3600), 10), 3);
    }

    #[test]
    fn uneven_rates_are_exact() {
        let t0 = Instant::now();
        let l = RateLimiter::new(3);
        assert_eq!(admitted(&l, t0, 3), 3);
        // One token per 333.33… ms.
        assert!(!l.try_acquire(t0 + Duration::from_nanos(333_333_333)));
        assert!(l.try_acquire(t0 + Duration::from_nanos(333_333_334)));
        // Up to t0 + 10 s: 9.666… s more at 3/s, exactly 29 tokens (checks
        // before the last update refill nothing).
        let mut got = 0;
        for i in 1..=100 {
            got += admitted(&l, t0 + Duration::from_millis(100 * i), 5);
        }
        assert_eq!(got, 29);
    }

    #[test]
    fn time_going_backwards_refills_nothing() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let l = RateLimiter::new(1);
        assert!(l.try_acquire(t0));
        assert!(!l.try_acquire(t0 - Duration::from_secs(5)));
        assert!(!l.try_acquire(t0 + Duration::from_millis(999)));
        assert!(l.try_acquire(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn zero_admits_nothing() {
        let l = RateLimiter::new(0);
        let t0 = Instant::now();
        assert!(!l.try_acquire(t0));
        assert!(!l.try_acquire(t0 + Duration::from_secs(100)));
    }

    #[test]
    fn high_rate_and_shared_between_threads() {
        let l = std::sync::Arc::new(RateLimiter::new(1_000_000));
        let t0 = Instant::now();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || admitted(&l, t0, 300_000))
            })
            .collect();
        let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 1_000_000);
        // 1 µs later: one more token.
        assert!(l.try_acquire(t0 + Duration::from_micros(1)));
        assert!(!l.try_acquire(t0 + Duration::from_micros(1)));
    }
}
