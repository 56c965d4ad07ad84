//! Work split over the machine's cores, with results in input order, so that a parallel
//! compilation gives exactly what a sequential one would.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `task` on consecutive slices of `items` (of `min_slice` items or more, but the
/// last) on as many threads as there are cores, and returns the results in slice order: the
/// same as one call on all of `items` would give, if `task` is pure and its results
/// concatenate.
pub fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    min_slice: usize,
    task: impl Fn(&[T]) -> R + Sync,
) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.min(items.len() / min_slice.max(1)).max(1);
    if threads == 1 {
        return vec![task(items)];
    }
    // Several slices per thread, taken from a shared counter, so that a thread that gets
    // less CPU (a busy machine) does not hold the others up.
    let size = items.len().div_ceil(threads * 8).max(min_slice);
    let slices: Vec<&[T]> = items.chunks(size).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(slice) = slices.get(i) else {
                return done;
            };
            done.push((i, task(slice)));
        }
    };
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        let mut all = work();
        for helper in helpers {
            match helper.join() {
                Ok(done) => all.extend(done),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all
    });
    results.sort_unstable_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::in_parallel;

    #[test]
    fn results_come_back_in_input_order() {
        let items: Vec<usize> = (0..10_000).collect();
        let parts = in_parallel(&items, 7, |slice| slice.to_vec());
        assert_eq!(parts.concat(), items);
        // Too few items for a second thread, and none at all: one call on everything.
        assert_eq!(in_parallel(&items[..100], 64, <[usize]>::len), vec![100]);
        assert_eq!(in_parallel(&items[..0], 64, <[usize]>::len), vec![0]);
    }
}
