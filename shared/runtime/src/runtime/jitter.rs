//! Interval jitter: spreads periodic reconciles so objects with equal intervals do not align.

use std::time::Duration;

/// `interval` moved by up to `percentage` percent either way; `sample` in `[0, 1)` picks where.
///
/// `sample = 0` gives `interval * (1 - p)`, `sample → 1` approaches `interval * (1 + p)`, and
/// `0.5` gives `interval`, as fluxcd/pkg `runtime/jitter/interval.go` does with its random
/// source. Pure so that tests choose the sample; [`jittered`] draws it.
pub fn jitter(interval: Duration, percentage: u8, sample: f64) -> Duration {
    let fraction = f64::from(percentage.min(99)) / 100.0;
    let sample = sample.clamp(0.0, 1.0);
    let factor = 1.0 + fraction * (2.0 * sample - 1.0);
    interval.mul_f64(factor)
}

/// `interval` with a random jitter of up to `percentage` percent.
pub fn jittered(interval: Duration, percentage: u8) -> Duration {
    jitter(interval, percentage, rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(interval_secs: u64, percentage: u8, sample: f64, expected_millis: u64) {
        let got = jitter(Duration::from_secs(interval_secs), percentage, sample);
        assert_eq!(
            got,
            Duration::from_millis(expected_millis),
            "{interval_secs}s {percentage}% {sample}"
        );
    }

    #[test]
    fn jitter_table() {
        check(600, 5, 0.5, 600_000);
        check(600, 5, 0.0, 570_000);
        check(600, 5, 0.75, 615_000);
        check(600, 0, 0.9, 600_000);
        check(60, 10, 0.25, 57_000);
        check(60, 10, 1.0, 66_000);
        // Out-of-range samples are clamped rather than producing a negative factor.
        check(60, 10, -3.0, 54_000);
    }

    #[test]
    fn jittered_stays_in_bounds() {
        let interval = Duration::from_secs(300);
        for _ in 0..1000 {
            let got = jittered(interval, 5);
            assert!(got >= Duration::from_secs(285) && got <= Duration::from_secs(315), "{got:?}");
        }
    }
}
