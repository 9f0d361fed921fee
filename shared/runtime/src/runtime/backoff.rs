//! Exponential failure backoff per object, as controller-runtime's rate limiter (750ms → 15m).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The delay before retry number `failures + 1`: `min * 2^failures`, capped at `max`.
pub fn backoff_delay(min: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 2u32.checked_pow(failures.min(31)).unwrap_or(u32::MAX);
    min.checked_mul(factor).unwrap_or(max).min(max)
}

/// Counts consecutive failures per object key and hands out their backoff delays.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// A backoff from `min` doubling up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff { min, max, failures: Mutex::new(HashMap::new()) }
    }

    /// Records a failure of `key` and returns how long to wait before retrying it.
    pub fn next_delay(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = failures.entry(key.to_string()).or_insert(0);
        let delay = backoff_delay(self.min, self.max, *count);
        *count = count.saturating_add(1);
        delay
    }

    /// Forgets the failures of `key` after a success.
    pub fn reset(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        failures.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(750);
    const MAX: Duration = Duration::from_secs(900);

    #[test]
    fn delays_double_up_to_the_cap() {
        for (failures, expected) in [
            (0, Duration::from_millis(750)),
            (1, Duration::from_millis(1500)),
            (2, Duration::from_secs(3)),
            (10, Duration::from_millis(768_000)),
            (11, MAX),
            (64, MAX),
            (u32::MAX, MAX),
        ] {
            assert_eq!(backoff_delay(MIN, MAX, failures), expected, "{failures}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_wait_the_backoff_and_reset_on_success() {
        let backoff = Backoff::new(MIN, MAX);
        let start = tokio::time::Instant::now();
        for _ in 0..4 {
            tokio::time::sleep(backoff.next_delay("ns/app")).await;
        }
        // 0.75 + 1.5 + 3 + 6 seconds.
        assert_eq!(start.elapsed(), Duration::from_millis(11_250));
        // Another object has its own count.
        assert_eq!(backoff.next_delay("ns/other"), MIN);
        backoff.reset("ns/app");
        assert_eq!(backoff.next_delay("ns/app"), MIN);
    }
}
