//! The per-shard executor: a run queue of `async-task` runnables, woken from any thread.

use async_task::Runnable;
use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::Mutex;
use std::thread::ThreadId;

/// The run queue of one shard. Wakers from other threads push here and kick the shard's eventfd.
pub(crate) struct RunQueue {
    queue: Mutex<VecDeque<Runnable>>,
    wake_fd: RawFd,
    owner: ThreadId,
}

impl RunQueue {
    pub(crate) fn new(wake_fd: RawFd) -> RunQueue {
        RunQueue {
            queue: Mutex::new(VecDeque::with_capacity(1024)),
            wake_fd,
            owner: std::thread::current().id(),
        }
    }

    pub(crate) fn push(&self, r: Runnable) {
        self.queue.lock().expect("run queue poisoned").push_back(r);
        if std::thread::current().id() != self.owner {
            kick(self.wake_fd);
        }
    }

    /// Takes up to `max` runnables, in order.
    pub(crate) fn take(&self, max: usize, into: &mut Vec<Runnable>) {
        let mut q = self.queue.lock().expect("run queue poisoned");
        let n = q.len().min(max);
        into.extend(q.drain(..n));
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.lock().expect("run queue poisoned").len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.lock().expect("run queue poisoned").is_empty()
    }
}

/// Wakes a shard sleeping in its reactor.
pub(crate) fn kick(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a local u64 to an eventfd; failure (counter full) still wakes.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

/// Creates a non-blocking eventfd.
pub(crate) fn eventfd() -> std::io::Result<RawFd> {
    // SAFETY: eventfd takes no pointers.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}
