//! Waiting for a condition another task or shard makes true, without polling it on a timer.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{fence, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

/// Tasks (on any shard) waiting for a condition. Whoever makes the condition true calls
/// [`WaitList::notify_all`] after; a waiter re-checks its condition after registering, so no
/// wake-up is lost. `notify_all` with nobody waiting costs one atomic load.
#[derive(Default)]
pub struct WaitList {
    waiting: AtomicUsize,
    wakers: Mutex<Vec<Waker>>,
}

impl WaitList {
    pub fn new() -> WaitList {
        WaitList::default()
    }

    /// Wakes every waiter (each re-checks its condition).
    pub fn notify_all(&self) {
        // Pairs with the fence in `UntilTrue::poll`: either the waiter sees the condition, or
        // this sees the waiter.
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) == 0 {
            return;
        }
        let wakers = std::mem::take(&mut *self.wakers.lock().expect("wait list poisoned"));
        self.waiting.fetch_sub(wakers.len(), Ordering::Relaxed);
        for w in wakers {
            w.wake();
        }
    }

    /// Resolves once `cond` is true: at once, or after a [`WaitList::notify_all`] finds it so.
    pub fn wait_until<C: Fn() -> bool>(&self, cond: C) -> UntilTrue<'_, C> {
        UntilTrue { list: self, cond }
    }
}

/// The future of [`WaitList::wait_until`].
pub struct UntilTrue<'a, C> {
    list: &'a WaitList,
    cond: C,
}

impl<C: Fn() -> bool + Unpin> Future for UntilTrue<'_, C> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if (self.cond)() {
            return Poll::Ready(());
        }
        {
            let mut w = self.list.wakers.lock().expect("wait list poisoned");
            if !w.iter().any(|x| x.will_wake(cx.waker())) {
                w.push(cx.waker().clone());
                self.list.waiting.fetch_add(1, Ordering::Relaxed);
            }
        }
        fence(Ordering::SeqCst);
        if (self.cond)() {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[test]
    fn a_waiter_on_another_thread_wakes_when_the_condition_turns_true() {
        let list = Arc::new(WaitList::new());
        let flag = Arc::new(AtomicBool::new(false));
        let (l, f) = (list.clone(), flag.clone());
        let setter = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            f.store(true, Ordering::SeqCst);
            l.notify_all();
        });
        crate::runtime::block_on(crate::runtime::BackendChoice::Portable(None), async move {
            list.wait_until(|| flag.load(Ordering::SeqCst)).await;
        })
        .unwrap();
        setter.join().unwrap();
    }
}
