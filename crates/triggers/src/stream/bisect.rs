//! What a stream consumer does after an attempt at a batch: how far the
//! checkpoint moves and which sub-batches it tries next.
//!
//! - A success moves past the batch.
//! - A partial success (`batchItemFailures`) moves past the records before
//!   the lowest failed one and retries the rest (with
//!   `bisectBatchOnFunctionError` too, Lambda splits at that record).
//! - A complete failure retries the batch; with
//!   `bisectBatchOnFunctionError` it is split in two halves, tried in
//!   order (the second only once the first is through), down to single
//!   records.

// A `Vec` of ranges here is a list of sub-batches, one range each.
#![allow(clippy::single_range_in_vec_init)]

use std::ops::Range;

use super::response::StreamOutcome;

/// After an attempt at a batch of `len` records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPlan {
    /// The leading records now done: the checkpoint moves past them.
    pub done: usize,
    /// The sub-batches to try next, in order (ranges of the batch's
    /// indices, together exactly `done..len`).
    pub next: Vec<Range<usize>>,
}

/// The two halves of `r` (the first one the smaller when odd), or `None`
/// for a single record (or none).
pub fn bisect(r: Range<usize>) -> Option<(Range<usize>, Range<usize>)> {
    let len = r.end.checked_sub(r.start)?;
    if len < 2 {
        return None;
    }
    let mid = r.start + len / 2;
    Some((r.start..mid, mid..r.end))
}

/// The plan after `outcome` of an attempt at `len` records.
pub fn plan_after(len: usize, outcome: &StreamOutcome, bisect_on_error: bool) -> RetryPlan {
    match outcome {
        StreamOutcome::AllSucceeded => RetryPlan {
            done: len,
            next: Vec::new(),
        },
        StreamOutcome::Partial { first_failed, .. } if *first_failed > 0 => {
            let from = (*first_failed).min(len);
            RetryPlan {
                done: from,
                next: if from < len {
                    vec![from..len]
                } else {
                    Vec::new()
                },
            }
        }
        // A partial success that names the first record is a complete
        // failure (see `StreamOutcome`).
        StreamOutcome::AllFailed | StreamOutcome::Partial { .. } => {
            let halves = if bisect_on_error {
                bisect(0..len)
            } else {
                None
            };
            RetryPlan {
                done: 0,
                next: match halves {
                    Some((a, b)) => vec![a, b],
                    None if len == 0 => Vec::new(),
                    None => vec![0..len],
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partial(i: usize) -> StreamOutcome {
        StreamOutcome::Partial {
            first_failed: i,
            sequence_number: i.to_string(),
        }
    }

    #[test]
    fn halves() {
        assert_eq!(bisect(0..10), Some((0..5, 5..10)));
        assert_eq!(bisect(0..5), Some((0..2, 2..5)));
        assert_eq!(bisect(4..6), Some((4..5, 5..6)));
        assert_eq!(bisect(3..4), None);
        assert_eq!(bisect(3..3), None);
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = 5..3;
        assert_eq!(bisect(backwards), None);
    }

    #[test]
    fn success_moves_past_the_batch() {
        assert_eq!(
            plan_after(8, &StreamOutcome::AllSucceeded, true),
            RetryPlan {
                done: 8,
                next: vec![]
            }
        );
    }

    #[test]
    fn failure_without_bisect_retries_the_batch() {
        assert_eq!(
            plan_after(8, &StreamOutcome::AllFailed, false),
            RetryPlan {
                done: 0,
                next: vec![0..8]
            }
        );
    }

    #[test]
    fn failure_with_bisect_splits_in_two() {
        assert_eq!(
            plan_after(8, &StreamOutcome::AllFailed, true),
            RetryPlan {
                done: 0,
                next: vec![0..4, 4..8]
            }
        );
        // One record cannot be split.
        assert_eq!(
            plan_after(1, &StreamOutcome::AllFailed, true),
            RetryPlan {
                done: 0,
                next: vec![0..1]
            }
        );
    }

    #[test]
    fn partial_success_retries_from_the_lowest_failure() {
        for bisect_on_error in [false, true] {
            assert_eq!(
                plan_after(8, &partial(3), bisect_on_error),
                RetryPlan {
                    done: 3,
                    next: vec![3..8]
                }
            );
        }
    }

    #[test]
    fn odd_partials_stay_in_bounds() {
        // Index 0 is a complete failure; an index past the end is done.
        assert_eq!(plan_after(4, &partial(0), true).next, vec![0..2, 2..4]);
        assert_eq!(
            plan_after(4, &partial(9), true),
            RetryPlan {
                done: 4,
                next: vec![]
            }
        );
        assert_eq!(
            plan_after(0, &StreamOutcome::AllFailed, true),
            RetryPlan {
                done: 0,
                next: vec![]
            }
        );
    }

    #[test]
    fn repeated_bisection_isolates_a_poison_record() {
        // Records 0..8, record 5 always fails: bisect until it is alone.
        let poison = 5;
        let mut queue = vec![0..8usize];
        let mut succeeded = Vec::new();
        let mut isolated = None;
        while let Some(r) = queue.first().cloned() {
            queue.remove(0);
            let outcome = if r.contains(&poison) {
                StreamOutcome::AllFailed
            } else {
                StreamOutcome::AllSucceeded
            };
            let plan = plan_after(r.len(), &outcome, true);
            succeeded.extend(r.start..r.start + plan.done);
            let next: Vec<Range<usize>> = plan
                .next
                .into_iter()
                .map(|n| r.start + n.start..r.start + n.end)
                .collect();
            if next == [r.clone()] {
                isolated = Some(r);
                continue;
            }
            queue.splice(0..0, next);
        }
        assert_eq!(isolated, Some(5..6));
        assert_eq!(succeeded, [0, 1, 2, 3, 4, 6, 7]);
    }
}
