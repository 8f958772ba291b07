//! Parallelization within a shard: with `parallelizationFactor` N a
//! consumer runs up to N batches of one shard at once, each from its own
//! lane. A partition key always maps to the same lane (a stable hash, the
//! same in every process and release), so one key's records are never
//! processed out of order; lanes keep the shard's order.

/// The lane (0..`factor`) of `partition_key`.
pub fn lane_of(partition_key: &str, factor: u32) -> usize {
    let lanes = u64::from(factor.max(1));
    // Lanes number at most u32::MAX, so the remainder fits any usize
    // HotSwap builds for.
    usize::try_from(fnv1a64(partition_key.as_bytes()) % lanes).unwrap_or(0)
}

/// FNV-1a, 64 bits: stable, unlike std's `DefaultHasher`.
fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// `records` grouped by lane: at most `factor` non-empty sub-batches,
/// ascending by lane, each keeping the records' order.
pub fn split_by_key<T>(
    records: impl IntoIterator<Item = T>,
    factor: u32,
    key: impl Fn(&T) -> &str,
) -> Vec<(usize, Vec<T>)> {
    let mut lanes: Vec<Vec<T>> = (0..factor.max(1)).map(|_| Vec::new()).collect();
    for r in records {
        let lane = lane_of(key(&r), factor);
        if let Some(l) = lanes.get_mut(lane) {
            l.push(r);
        }
    }
    lanes
        .into_iter()
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_fnv1a() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn lanes_are_stable_and_in_range() {
        for f in 1..=10 {
            for k in ["", "a", "user-1", "user-2", "ünï"] {
                let l = lane_of(k, f);
                assert!(l < f as usize);
                assert_eq!(l, lane_of(k, f));
            }
        }
        assert_eq!(lane_of("anything", 1), 0);
        assert_eq!(lane_of("anything", 0), 0);
    }

    #[test]
    fn keys_spread_over_lanes() {
        let mut used = [0usize; 4];
        for i in 0..1000 {
            used[lane_of(&format!("key-{i}"), 4)] += 1;
        }
        assert!(used.iter().all(|&n| n > 150), "{used:?}");
    }

    #[test]
    fn split_keeps_each_keys_records_together_and_in_order() {
        let records: Vec<(String, u32)> = (0..200).map(|i| (format!("k{}", i % 7), i)).collect();
        let lanes = split_by_key(records.clone(), 4, |r| r.0.as_str());
        assert!(lanes.len() <= 4);
        assert!(lanes.windows(2).all(|w| w[0].0 < w[1].0));
        let total: usize = lanes.iter().map(|(_, l)| l.len()).sum();
        assert_eq!(total, 200);
        for (lane, batch) in &lanes {
            assert!(!batch.is_empty());
            // Shard order kept within the lane.
            assert!(batch.windows(2).all(|w| w[0].1 < w[1].1));
            for r in batch {
                assert_eq!(lane_of(&r.0, 4), *lane);
            }
        }
        // Each key in exactly one lane.
        for k in 0..7 {
            let key = format!("k{k}");
            let holding = lanes
                .iter()
                .filter(|(_, l)| l.iter().any(|r| r.0 == key))
                .count();
            assert_eq!(holding, 1, "{key}");
        }
    }

    #[test]
    fn factor_one_is_the_batch_as_is() {
        let lanes = split_by_key(vec!["a", "b", "a"], 1, |r| r);
        assert_eq!(lanes, vec![(0, vec!["a", "b", "a"])]);
        assert!(split_by_key(Vec::<&str>::new(), 3, |r| r).is_empty());
    }
}
