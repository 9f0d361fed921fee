//! Rate limiting of identical events: one event per key per `--rate-limit-interval`.
//!
//! Flux uses sethvargo/go-limiter's memory store with one token per interval: the first event
//! with a key passes, and the same key is refused (429) until the interval that started with
//! it has passed. Old keys are swept so memory stays bounded by the event rate.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A fixed-window limiter of one event per key per interval.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    windows: Mutex<HashMap<String, Instant>>,
}

impl RateLimiter {
    /// A limiter allowing one event per key every `interval` (zero disables limiting).
    pub fn new(interval: Duration) -> Self {
        RateLimiter { interval, windows: Mutex::new(HashMap::new()) }
    }

    /// Whether an event with `key` may pass now; records it when it does.
    pub fn allow(&self, key: &str) -> bool {
        self.allow_at(key, Instant::now())
    }

    /// [`RateLimiter::allow`] at a given instant.
    pub fn allow_at(&self, key: &str, now: Instant) -> bool {
        if self.interval.is_zero() {
            return true;
        }
        let mut windows = self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Sweep expired windows once the map grows, so a stream of unique events cannot grow
        // it without bound.
        if windows.len() > 4096 {
            windows.retain(|_, started| now.duration_since(*started) < self.interval);
        }
        match windows.get(key) {
            Some(started) if now.duration_since(*started) < self.interval => false,
            _ => {
                windows.insert(key.to_string(), now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_key_per_interval() {
        let limiter = RateLimiter::new(Duration::from_secs(300));
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        // (key, seconds after start, allowed)
        let cases = [
            ("a", 0, true),
            ("a", 1, false),
            ("b", 1, true),
            ("a", 299, false),
            ("a", 300, true),
            ("a", 301, false),
            ("b", 302, true),
        ];
        for (key, secs, allowed) in cases {
            assert_eq!(limiter.allow_at(key, at(secs)), allowed, "{key} at {secs}s");
        }
    }

    #[test]
    fn zero_interval_disables_limiting() {
        let limiter = RateLimiter::new(Duration::ZERO);
        assert!(limiter.allow("a"));
        assert!(limiter.allow("a"));
    }
}
