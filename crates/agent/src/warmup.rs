//! The warm-up weight ramp, pure (go-nerve's idea): an instance that just became healthy gets a
//! small share of traffic, which grows in steps to the full weight over its health check's
//! `warmup_ms`, so that cold caches and lazy initialisation meet a trickle rather than a flood.
//!
//! The agent owns the ramp: it reports each step to the server with the instance's health
//! (`{"port", "weight"}`), the fleet keeps the weight, and the registry publishes it (each step
//! is a new registry version, which wakes the load balancers' watches).

use caravan_fleet::ENDPOINT_WEIGHT_FULL;

/// The ramp: from what share of the warm-up on (in percent) each weight applies. The first
/// step starts at once; the last is the full weight at the end of the warm-up.
pub const STEPS: [(u64, u32); 5] = [
    (0, 10),
    (25, 25),
    (50, 50),
    (75, 75),
    (100, ENDPOINT_WEIGHT_FULL),
];

/// The weight of an instance healthy for `elapsed_ms` with a warm-up of `warmup_ms` (0: the
/// full weight at once).
pub fn weight_at(elapsed_ms: u64, warmup_ms: u64) -> u32 {
    let mut weight = STEPS[0].1;
    for &(percent, step_weight) in &STEPS {
        if reached(elapsed_ms, warmup_ms, percent) {
            weight = step_weight;
        }
    }
    weight
}

/// When (in time healthy) the next step after `elapsed_ms` comes, or `None` at full weight.
pub fn next_step_ms(elapsed_ms: u64, warmup_ms: u64) -> Option<u64> {
    STEPS
        .iter()
        .find(|&&(percent, _)| !reached(elapsed_ms, warmup_ms, percent))
        .map(|&(percent, _)| step_start_ms(warmup_ms, percent))
}

/// Whether `elapsed_ms` is at least `percent` of `warmup_ms` (exact, in integers).
fn reached(elapsed_ms: u64, warmup_ms: u64, percent: u64) -> bool {
    u128::from(elapsed_ms) * 100 >= u128::from(warmup_ms) * u128::from(percent)
}

/// The first millisecond at which `percent` of `warmup_ms` is reached.
fn step_start_ms(warmup_ms: u64, percent: u64) -> u64 {
    let product = u128::from(warmup_ms) * u128::from(percent);
    // The quotient rounded up is at most `warmup_ms` (percent <= 100), so it fits.
    u64::try_from(product.div_ceil(100)).unwrap_or(warmup_ms)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_ramp_steps_up_to_full_over_the_warm_up() {
        let weights: Vec<u32> = [0, 249, 250, 499, 500, 750, 999, 1_000, 5_000]
            .iter()
            .map(|&t| weight_at(t, 1_000))
            .collect();
        assert_eq!(weights, [10, 10, 25, 25, 50, 75, 75, 100, 100]);
        assert_eq!(next_step_ms(0, 1_000), Some(250));
        assert_eq!(next_step_ms(250, 1_000), Some(500));
        assert_eq!(next_step_ms(999, 1_000), Some(1_000));
        assert_eq!(next_step_ms(1_000, 1_000), None);
        // Steps land on the first millisecond that reaches them, rounding up.
        assert_eq!(next_step_ms(0, 10), Some(3));
        assert_eq!(weight_at(2, 10), 10);
        assert_eq!(weight_at(3, 10), 25);
    }

    #[test]
    fn no_warm_up_is_full_weight_at_once() {
        assert_eq!(weight_at(0, 0), ENDPOINT_WEIGHT_FULL);
        assert_eq!(next_step_ms(0, 0), None);
        assert_eq!(weight_at(u64::MAX, u64::MAX), ENDPOINT_WEIGHT_FULL);
    }

    proptest! {
        /// The weight never decreases with time, the next step is when it changes, and the
        /// end of the warm-up is always full weight.
        #[test]
        fn weights_grow_and_steps_are_where_they_change(
            warmup in 0..10_000_000u64, t in 0..20_000_000u64,
        ) {
            prop_assert!(weight_at(t, warmup) <= weight_at(t + 1, warmup));
            prop_assert_eq!(weight_at(warmup, warmup), ENDPOINT_WEIGHT_FULL);
            match next_step_ms(t, warmup) {
                None => prop_assert_eq!(weight_at(t, warmup), ENDPOINT_WEIGHT_FULL),
                Some(next) => {
                    prop_assert!(next > t);
                    prop_assert_eq!(weight_at(next - 1, warmup), weight_at(t, warmup));
                    prop_assert!(weight_at(next, warmup) > weight_at(t, warmup));
                }
            }
        }
    }
}
