//! What becomes of a message whose batch failed: SQS's redrive rule. A
//! message received `maxReceiveCount` times that failed again is
//! dead-lettered instead of being received once more; earlier failures
//! make it visible again after the visibility timeout. A throttled batch
//! (the function had no capacity) was never really received: it goes back
//! at once and its receive does not count.

/// The fate of one failed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Visible again after the visibility timeout.
    Retry,
    /// To the dead-letter target (or kept and counted, without one).
    DeadLetter,
}

/// After a failure of a message received `receive_count` times (this
/// receive included).
pub fn after_failure(receive_count: u32, max_receive_count: u32) -> AfterFailure {
    if receive_count >= max_receive_count.max(1) {
        AfterFailure::DeadLetter
    } else {
        AfterFailure::Retry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_lettered_after_max_receives() {
        assert_eq!(after_failure(1, 3), AfterFailure::Retry);
        assert_eq!(after_failure(2, 3), AfterFailure::Retry);
        assert_eq!(after_failure(3, 3), AfterFailure::DeadLetter);
        assert_eq!(after_failure(4, 3), AfterFailure::DeadLetter);
        assert_eq!(after_failure(1, 1), AfterFailure::DeadLetter);
        // 0 is refused by validation; read as 1 rather than "never".
        assert_eq!(after_failure(1, 0), AfterFailure::DeadLetter);
    }
}
