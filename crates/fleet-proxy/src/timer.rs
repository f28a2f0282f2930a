//! hyper's header read timeout on one Tokio timer per client connection.
//!
//! hyper asks its timer for a new sleep for every request head it waits for (and drops
//! it once the head is read): with hyper-util's `TokioTimer`, an allocation, a timer
//! entry registered in Tokio's wheel and removed from it again, per request (about 3%
//! of the proxy's instructions per request). [`ConnTimer`] is given to each client
//! connection's own copy of the server settings; the sleeps hyper gets from it are
//! small handles on one Tokio sleep the connection keeps. A sleep polled moves the
//! shared one to its deadline when that is earlier; a later deadline (the usual case:
//! the next request's) leaves it be until it fires, and only then moves it on, so a
//! busy connection touches Tokio's timer about once per timeout rather than twice per
//! request. Either way a sleep ends at its own deadline, as hyper's own would.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use hyper::rt::{Sleep, Timer};

/// The timer of one client connection (see the module's documentation).
pub(crate) struct ConnTimer {
    sleep: Arc<Mutex<Pin<Box<tokio::time::Sleep>>>>,
}

impl ConnTimer {
    /// Must be called within a Tokio runtime with its timer enabled.
    pub(crate) fn new(timeout: Duration) -> Self {
        Self {
            sleep: Arc::new(Mutex::new(Box::pin(tokio::time::sleep(timeout)))),
        }
    }
}

impl Timer for ConnTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.sleep_until(self.now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(ConnSleep {
            shared: Arc::clone(&self.sleep),
            deadline: deadline.into(),
        })
    }

    fn now(&self) -> Instant {
        tokio::time::Instant::now().into()
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<ConnSleep>() {
            Some(sleep) => sleep.get_mut().deadline = new_deadline.into(),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// One deadline on a connection's shared sleep.
struct ConnSleep {
    shared: Arc<Mutex<Pin<Box<tokio::time::Sleep>>>>,
    deadline: tokio::time::Instant,
}

impl Future for ConnSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut sleep = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        poll_shared(sleep.as_mut(), self.deadline, cx)
    }
}

/// Polls for `deadline` on a Tokio sleep that several deadlines share (a connection's,
/// see the module's documentation; the lean client's response deadline is another):
/// the sleep moves at once to an earlier deadline, and on to `deadline` when it fires
/// at an earlier one. Ready once `deadline` has passed.
pub(crate) fn poll_shared(
    mut sleep: Pin<&mut tokio::time::Sleep>,
    deadline: tokio::time::Instant,
    cx: &mut Context<'_>,
) -> Poll<()> {
    if sleep.deadline() > deadline {
        sleep.as_mut().reset(deadline);
    }
    loop {
        ready!(sleep.as_mut().poll(cx));
        if sleep.deadline() >= deadline {
            return Poll::Ready(());
        }
        // An earlier deadline has passed: on to this one.
        sleep.as_mut().reset(deadline);
    }
}

impl Sleep for ConnSleep {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits for a sleep, at most 10 s, and says how long that took.
    async fn wait(sleep: Pin<Box<dyn Sleep>>) -> Duration {
        let began = tokio::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(10), sleep)
            .await
            .expect("the sleep ends at its deadline");
        began.elapsed()
    }

    #[tokio::test]
    async fn each_sleep_ends_at_its_own_deadline() {
        // The shared sleep starts 30 s away: each of these must end far sooner.
        let timer = ConnTimer::new(Duration::from_secs(30));
        // A deadline, an earlier one, a later one again.
        for millis in [60, 20, 100] {
            let wanted = Duration::from_millis(millis);
            assert!(wait(timer.sleep(wanted)).await >= wanted);
        }
        // A sleep dropped before its deadline leaves the next one alone.
        drop(timer.sleep(Duration::from_millis(1)));
        let mut sleep = timer.sleep(Duration::from_secs(60));
        let wanted = Duration::from_millis(50);
        timer.reset(&mut sleep, timer.now() + wanted);
        assert!(wait(sleep).await >= wanted - Duration::from_millis(1));
        // One not polled yet does not fire.
        let later = timer.sleep(Duration::from_millis(200));
        let sooner = timer.sleep(Duration::from_millis(20));
        assert!(wait(sooner).await >= Duration::from_millis(19));
        assert!(wait(later).await > Duration::from_millis(100));
    }
}
