//! Probing many targets at once, with a bound on how many are in flight.

use std::num::NonZeroUsize;
use std::time::Duration;

use futures::StreamExt as _;

use crate::{HealthReport, ProbePolicy, ProbeResult, ProbeTarget, Prober};

/// A bound on probes in flight that suits a host with a few hundred instances: 64
/// sockets at a time, so 100 hung instances cost two timeouts, not a hundred.
pub const DEFAULT_CONCURRENCY: NonZeroUsize = NonZeroUsize::new(64).unwrap();

impl Prober {
    /// Probes every target once, at most `concurrency` at a time, each within
    /// `timeout`. Results come in the order of `targets`.
    ///
    /// A slow target does not hold up the others: as soon as any probe ends, the next
    /// target starts, whatever its place in the list. With `concurrency` at least the
    /// number of targets, the whole takes about one `timeout` at worst.
    pub async fn probe_many(
        &self,
        targets: &[ProbeTarget],
        timeout: Duration,
        concurrency: NonZeroUsize,
    ) -> Vec<ProbeResult> {
        in_order(targets, concurrency, |target| self.probe(target, timeout)).await
    }

    /// Waits for every target to become healthy, each with its own policy, at most
    /// `concurrency` waits at a time. Reports come in the order of `targets`.
    pub async fn wait_many(
        &self,
        targets: &[(ProbeTarget, ProbePolicy)],
        concurrency: NonZeroUsize,
    ) -> Vec<HealthReport> {
        in_order(targets, concurrency, |(target, policy)| {
            self.wait_healthy(target, policy)
        })
        .await
    }
}

/// Runs `work` on every item, `concurrency` at a time, and returns the outputs in the
/// order of `items`.
///
/// `buffered` would keep the order by itself, but it counts finished outputs that wait
/// behind a slow one against the bound, so one hung target at the head would stop new
/// work from starting. Unordered, then put back in place.
async fn in_order<'a, T, F, Fut, R>(items: &'a [T], concurrency: NonZeroUsize, work: F) -> Vec<R>
where
    F: Fn(&'a T) -> Fut,
    Fut: Future<Output = R>,
{
    let mut slots: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    let mut done = futures::stream::iter(items.iter().enumerate())
        .map(|(i, item)| {
            let output = work(item);
            async move { (i, output.await) }
        })
        .buffer_unordered(concurrency.get());
    while let Some((i, output)) = done.next().await {
        slots[i] = Some(output);
    }
    slots.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_slow_head_does_not_hold_up_the_rest() {
        // Item 0 takes 100 s, the others 1 s each; two at a time. In order, the others
        // finish around 9 s, long before the head.
        let items: Vec<u64> = std::iter::once(100)
            .chain(std::iter::repeat_n(1, 9))
            .collect();
        let began = tokio::time::Instant::now();
        let finished = in_order(&items, NonZeroUsize::new(2).unwrap(), |&secs| async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            (secs, began.elapsed().as_secs())
        })
        .await;
        insta::assert_snapshot!(format!("{finished:?}"), @"[(100, 100), (1, 1), (1, 2), (1, 3), (1, 4), (1, 5), (1, 6), (1, 7), (1, 8), (1, 9)]");
    }
}
