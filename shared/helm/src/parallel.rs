//! Order-preserving parallel map over independent work items (rendering templates, parsing
//! rendered documents), on the cores the process may use.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Stack of each worker thread: template execution and YAML nesting recurse, and the main
/// thread's 8 MiB is what the sequential code was written against.
const WORKER_STACK_BYTES: usize = 64 << 20;

/// Fewer items than this run on the calling thread only.
const MIN_PARALLEL_ITEMS: usize = 4;

/// Worker threads to use (the calling thread included): `SLUICE_HELM_THREADS` when set, else
/// the available parallelism, at most 8.
pub(crate) fn threads() -> usize {
    if let Some(n) = std::env::var("SLUICE_HELM_THREADS").ok().and_then(|v| v.parse().ok()) {
        return usize::max(n, 1);
    }
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

/// `items.iter().map(f).collect()`, with items handed out to worker threads one at a time.
pub(crate) fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let n_threads = threads().min(items.len());
    if n_threads <= 1 || items.len() < MIN_PARALLEL_ITEMS {
        return items.iter().map(&f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let idx = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(idx) else { break };
            done.push((idx, f(item)));
        }
        done
    };
    let mut results: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for _ in 1..n_threads {
            let spawned = std::thread::Builder::new()
                .name("sluice-helm-worker".to_string())
                .stack_size(WORKER_STACK_BYTES)
                .spawn_scoped(scope, work);
            // A thread that cannot start leaves its share to the others.
            if let Ok(handle) = spawned {
                handles.push(handle);
            }
        }
        for (idx, result) in work() {
            results[idx] = Some(result);
        }
        for handle in handles {
            match handle.join() {
                Ok(done) => {
                    for (idx, result) in done {
                        results[idx] = Some(result);
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    results.into_iter().zip(items).map(|(result, item)| result.unwrap_or_else(|| f(item))).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_order() {
        let items: Vec<usize> = (0..1000).collect();
        let doubled = super::map(&items, |i| i * 2);
        assert_eq!(doubled, items.iter().map(|i| i * 2).collect::<Vec<_>>());
    }
}
