//! When a stream consumer stops retrying: `maximumRetryAttempts` (-1:
//! until the records expire) and `maximumRecordAgeInSeconds` (-1: never).
//! Records given up on are described to `onFailure` (if any) and the
//! checkpoint moves past them, so one bad record cannot block its shard
//! forever, unless both limits are -1.

/// Why a batch is given up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discard {
    /// It failed `maximumRetryAttempts` + 1 times.
    RetriesExhausted,
    /// Its oldest record is older than `maximumRecordAgeInSeconds`.
    RecordExpired,
}

/// Whether to give up on a batch that has failed `failed_attempts` times
/// (its first attempt included) and whose oldest record arrived at
/// `oldest_arrival_ms`, at `now_ms` (milliseconds since the epoch).
pub fn give_up(
    failed_attempts: u32,
    maximum_retry_attempts: Option<u32>,
    oldest_arrival_ms: i64,
    maximum_record_age_s: Option<u32>,
    now_ms: i64,
) -> Option<Discard> {
    if is_expired(oldest_arrival_ms, maximum_record_age_s, now_ms) {
        return Some(Discard::RecordExpired);
    }
    match maximum_retry_attempts {
        Some(max) if failed_attempts > max => Some(Discard::RetriesExhausted),
        _ => None,
    }
}

/// Whether a record that arrived at `arrival_ms` is past the maximum age
/// at `now_ms` (such records are not sent at all).
pub fn is_expired(arrival_ms: i64, maximum_record_age_s: Option<u32>, now_ms: i64) -> bool {
    match maximum_record_age_s {
        Some(age) => now_ms.saturating_sub(arrival_ms) > i64::from(age) * 1000,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_700_000_000_000;

    #[test]
    fn retries_are_counted_after_the_first_attempt() {
        // maximumRetryAttempts 2: three attempts in all.
        assert_eq!(give_up(1, Some(2), T, None, T), None);
        assert_eq!(give_up(2, Some(2), T, None, T), None);
        assert_eq!(
            give_up(3, Some(2), T, None, T),
            Some(Discard::RetriesExhausted)
        );
        // 0: no retry.
        assert_eq!(
            give_up(1, Some(0), T, None, T),
            Some(Discard::RetriesExhausted)
        );
    }

    #[test]
    fn unlimited_retries_never_give_up_on_count() {
        assert_eq!(give_up(u32::MAX, None, T, None, T + 10_000_000), None);
    }

    #[test]
    fn old_records_expire() {
        assert!(!is_expired(T, Some(60), T + 60_000));
        assert!(is_expired(T, Some(60), T + 60_001));
        assert!(!is_expired(T, None, T + 1_000_000_000));
        assert_eq!(
            give_up(1, None, T, Some(60), T + 61_000),
            Some(Discard::RecordExpired)
        );
        // A clock behind the arrival time is not an expiry.
        assert!(!is_expired(T, Some(60), T - 1_000_000));
        assert!(!is_expired(i64::MAX, Some(60), i64::MIN));
    }
}
