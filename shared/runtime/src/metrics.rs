//! Prometheus metrics with Flux's `gotk_*` names, plus the runtime's reconcile and queue figures.
//!
//! Names follow fluxcd/pkg `runtime/metrics/recorder.go` (`gotk_reconcile_duration_seconds`,
//! `gotk_suspend_status`) and controller-runtime (`controller_runtime_reconcile_total`, …).
//! The registry is exposed in the OpenMetrics text format at `/metrics` by
//! [`crate::runtime::serve_metrics`].

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels identifying one reconciled object.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    /// The object's kind, e.g. `GitRepository`.
    pub kind: String,
    /// The object's name.
    pub name: String,
    /// The object's namespace.
    pub namespace: String,
}

/// Labels identifying one controller (one kind inside a binary).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// The controller name, the lower-case kind (e.g. `gitrepository`).
    pub controller: String,
}

/// Labels of a reconcile result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// The controller name.
    pub controller: String,
    /// `success`, `error`, `requeue_after` or `requeue`.
    pub result: String,
}

/// Labels of a work queue (named after the controller, as in controller-runtime).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    /// The queue name (the controller name).
    pub name: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Go's `prometheus.ExponentialBucketsRange(min, max, count)`: `min * factor^i`.
pub fn exponential_buckets_range(min: f64, max: f64, count: u16) -> Vec<f64> {
    let factor = (max / min).powf(1.0 / f64::from(count.saturating_sub(1).max(1)));
    (0..count).map(|i| min * factor.powi(i32::from(i))).collect()
}

fn reconcile_duration_histogram() -> Histogram {
    // ExponentialBucketsRange(0.01, 1800, 10) in fluxcd/pkg runtime/metrics.
    Histogram::new(exponential_buckets_range(0.01, 1800.0, 10))
}

/// The metrics of one controller binary.
pub struct Metrics {
    registry: Registry,
    reconcile_duration: HistogramFamily<ObjectLabels>,
    suspend_status: Family<ObjectLabels, Gauge>,
    reconcile_total: Family<ResultLabels, Counter>,
    reconcile_errors: Family<ControllerLabels, Counter>,
    active_workers: Family<ControllerLabels, Gauge>,
    max_concurrent: Family<ControllerLabels, Gauge>,
    queue_retries: Family<QueueLabels, Counter>,
    queue_longest_backoff: Family<QueueLabels, Gauge<f64, AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered and no samples.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let reconcile_duration: HistogramFamily<ObjectLabels> =
            Family::new_with_constructor(reconcile_duration_histogram);
        registry.register(
            "gotk_reconcile_duration_seconds",
            "The duration in seconds of a GitOps Toolkit resource reconciliation.",
            reconcile_duration.clone(),
        );
        let suspend_status = Family::<ObjectLabels, Gauge>::default();
        registry.register(
            "gotk_suspend_status",
            "The current suspend status of a GitOps Toolkit resource.",
            suspend_status.clone(),
        );
        // prometheus-client appends `_total` to counter names.
        let reconcile_total = Family::<ResultLabels, Counter>::default();
        registry.register(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller.",
            reconcile_total.clone(),
        );
        let reconcile_errors = Family::<ControllerLabels, Counter>::default();
        registry.register(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller.",
            reconcile_errors.clone(),
        );
        let active_workers = Family::<ControllerLabels, Gauge>::default();
        registry.register(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller.",
            active_workers.clone(),
        );
        let max_concurrent = Family::<ControllerLabels, Gauge>::default();
        registry.register(
            "controller_runtime_max_concurrent_reconciles",
            "Maximum number of concurrent reconciles per controller.",
            max_concurrent.clone(),
        );
        let queue_retries = Family::<QueueLabels, Counter>::default();
        registry.register(
            "workqueue_retries",
            "Total number of retries (error backoffs) handled by the work queue.",
            queue_retries.clone(),
        );
        let queue_longest_backoff = Family::<QueueLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "workqueue_last_backoff_seconds",
            "The most recent failure backoff scheduled by the work queue, in seconds.",
            queue_longest_backoff.clone(),
        );
        Metrics {
            registry,
            reconcile_duration,
            suspend_status,
            reconcile_total,
            reconcile_errors,
            active_workers,
            max_concurrent,
            queue_retries,
            queue_longest_backoff,
        }
    }

    /// Records the duration of one reconcile of an object.
    pub fn observe_reconcile(&self, object: &ObjectLabels, duration: Duration) {
        self.reconcile_duration.get_or_create(object).observe(duration.as_secs_f64());
    }

    /// Records whether an object is suspended.
    pub fn set_suspended(&self, object: &ObjectLabels, suspended: bool) {
        self.suspend_status.get_or_create(object).set(i64::from(suspended));
    }

    /// Forgets the per-object series of a deleted object.
    pub fn remove_object(&self, object: &ObjectLabels) {
        self.reconcile_duration.remove(object);
        self.suspend_status.remove(object);
    }

    /// Counts one reconcile result (`success`, `error`, `requeue_after` or `requeue`).
    pub fn count_result(&self, controller: &str, result: &str) {
        let labels =
            ResultLabels { controller: controller.to_string(), result: result.to_string() };
        self.reconcile_total.get_or_create(&labels).inc();
        if result == "error" {
            self.reconcile_errors
                .get_or_create(&ControllerLabels { controller: controller.to_string() })
                .inc();
        }
    }

    /// Adjusts the number of busy workers of a controller by `delta`.
    pub fn add_active_workers(&self, controller: &str, delta: i64) {
        self.active_workers
            .get_or_create(&ControllerLabels { controller: controller.to_string() })
            .inc_by(delta);
    }

    /// Records the configured concurrency of a controller.
    pub fn set_max_concurrent(&self, controller: &str, concurrency: u16) {
        self.max_concurrent
            .get_or_create(&ControllerLabels { controller: controller.to_string() })
            .set(i64::from(concurrency));
    }

    /// Counts one failure backoff of a controller's queue.
    pub fn count_retry(&self, controller: &str, backoff: Duration) {
        let labels = QueueLabels { name: controller.to_string() };
        self.queue_retries.get_or_create(&labels).inc();
        self.queue_longest_backoff.get_or_create(&labels).set(backoff.as_secs_f64());
    }

    /// The registry in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> ObjectLabels {
        ObjectLabels {
            kind: "GitRepository".into(),
            name: "podinfo".into(),
            namespace: "flux-system".into(),
        }
    }

    #[test]
    fn reconcile_duration_uses_flux_buckets() {
        let metrics = Metrics::new();
        metrics.observe_reconcile(&labels(), Duration::from_millis(250));
        let text = metrics.encode();
        let buckets: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("gotk_reconcile_duration_seconds_bucket"))
            .collect();
        // Ten finite buckets from 0.01 to 1800 plus +Inf.
        assert_eq!(buckets.len(), 11, "{text}");
        assert!(buckets[0].contains("le=\"0.01\""), "{}", buckets[0]);
        let last = exponential_buckets_range(0.01, 1800.0, 10)[9];
        assert!((last - 1800.0).abs() < 1e-6, "{last}");
        assert!(buckets[10].contains("le=\"+Inf\""));
        assert!(text.contains(
            "gotk_reconcile_duration_seconds_count{kind=\"GitRepository\",name=\"podinfo\",namespace=\"flux-system\"} 1"
        ));
    }

    #[test]
    fn suspend_status_and_counters() {
        let metrics = Metrics::new();
        metrics.set_suspended(&labels(), true);
        metrics.count_result("gitrepository", "success");
        metrics.count_result("gitrepository", "error");
        metrics.set_max_concurrent("gitrepository", 2);
        metrics.add_active_workers("gitrepository", 1);
        metrics.count_retry("gitrepository", Duration::from_millis(750));
        let text = metrics.encode();
        for expected in [
            "gotk_suspend_status{kind=\"GitRepository\",name=\"podinfo\",namespace=\"flux-system\"} 1",
            "controller_runtime_reconcile_total{controller=\"gitrepository\",result=\"success\"} 1",
            "controller_runtime_reconcile_errors_total{controller=\"gitrepository\"} 1",
            "controller_runtime_max_concurrent_reconciles{controller=\"gitrepository\"} 2",
            "controller_runtime_active_workers{controller=\"gitrepository\"} 1",
            "workqueue_retries_total{name=\"gitrepository\"} 1",
            "workqueue_last_backoff_seconds{name=\"gitrepository\"} 0.75",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        metrics.remove_object(&labels());
        assert!(!metrics.encode().contains("gotk_suspend_status{"));
    }
}
