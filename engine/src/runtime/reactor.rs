//! The reactor: a slab of in-flight ops in front of one I/O backend (io_uring or portable).
//!
//! Every op lives in a slot from submission until its completion has been taken by the future
//! that asked for it. A future dropped early leaves its slot as an orphan: the buffers stay owned
//! by the slot (so the kernel never writes into freed memory) and the slot is freed when the
//! completion arrives. The slab is bounded by the caller: a shard submits at most one op per task
//! at a time, and tasks are bounded by connection and partition limits.

use super::op::{Completion, OpKind};
use super::portable::PortableBackend;
use super::uring::UringBackend;
use std::os::fd::RawFd;
use std::task::{Context, Poll, Waker};

enum Slot {
    Free {
        next_free: usize,
    },
    Pending {
        op: OpKind,
        waker: Option<Waker>,
        orphan: bool,
    },
    Ready(Completion),
}

/// Ops in flight, indexed by their user data.
pub(crate) struct Slab {
    slots: Vec<Slot>,
    free_head: usize,
    in_flight: usize,
}

const NO_FREE: usize = usize::MAX;

impl Slab {
    fn new() -> Slab {
        Slab {
            slots: Vec::with_capacity(256),
            free_head: NO_FREE,
            in_flight: 0,
        }
    }

    fn insert(&mut self, op: OpKind) -> usize {
        self.in_flight += 1;
        crate::stats::op_submitted();
        let slot = Slot::Pending {
            op,
            waker: None,
            orphan: false,
        };
        if self.free_head != NO_FREE {
            let id = self.free_head;
            match self.slots[id] {
                Slot::Free { next_free } => self.free_head = next_free,
                _ => unreachable!("free list points at a used slot"),
            }
            self.slots[id] = slot;
            id
        } else {
            self.slots.push(slot);
            self.slots.len() - 1
        }
    }

    fn free(&mut self, id: usize) {
        self.slots[id] = Slot::Free {
            next_free: self.free_head,
        };
        self.free_head = id;
        self.in_flight -= 1;
        crate::stats::op_completed();
    }

    /// Access to the op of a pending slot, for backends that retry it.
    pub(crate) fn op_mut(&mut self, id: usize) -> Option<&mut OpKind> {
        match self.slots.get_mut(id) {
            Some(Slot::Pending { op, .. }) => Some(op),
            _ => None,
        }
    }

    /// Records a completion: wakes the waiting future or frees an orphan.
    pub(crate) fn complete(&mut self, id: usize, result: i32) {
        let Some(slot) = self.slots.get_mut(id) else {
            return;
        };
        let Slot::Pending { op, waker, orphan } = slot else {
            return;
        };
        if *orphan {
            self.free(id);
            return;
        }
        let op = std::mem::replace(op, OpKind::Done);
        let waker = waker.take();
        self.slots[id] = Slot::Ready(Completion { result, op });
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Which backend a reactor runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// io_uring, one ring per shard.
    Uring,
    /// Plain syscalls with `poll(2)` for sockets, and optional fault injection.
    Portable,
}

// One per shard, made once and never moved: the size difference costs nothing, a box would cost
// a pointer chase on every submission.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Backend {
    Uring(UringBackend),
    Portable(PortableBackend),
}

/// One shard's reactor.
pub struct Reactor {
    pub(crate) slab: Slab,
    pub(crate) backend: Backend,
}

impl Reactor {
    pub(crate) fn new(backend: Backend) -> Reactor {
        Reactor {
            slab: Slab::new(),
            backend,
        }
    }

    /// The backend this reactor runs on.
    pub fn kind(&self) -> BackendKind {
        match self.backend {
            Backend::Uring(_) => BackendKind::Uring,
            Backend::Portable(_) => BackendKind::Portable,
        }
    }

    /// Number of ops submitted and not yet taken.
    pub fn in_flight(&self) -> usize {
        self.slab.in_flight
    }

    /// Starts an op; its completion is collected with [`Reactor::poll_op`].
    pub(crate) fn submit(&mut self, op: OpKind) -> usize {
        let id = self.slab.insert(op);
        match &mut self.backend {
            Backend::Uring(b) => b.push(&mut self.slab, id),
            Backend::Portable(b) => b.start(&mut self.slab, id),
        }
        id
    }

    pub(crate) fn poll_op(&mut self, id: usize, cx: &mut Context<'_>) -> Poll<Completion> {
        match &mut self.slab.slots[id] {
            Slot::Pending { waker, .. } => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Slot::Ready(_) => {
                let Slot::Ready(c) =
                    std::mem::replace(&mut self.slab.slots[id], Slot::Free { next_free: NO_FREE })
                else {
                    unreachable!()
                };
                self.slab.free(id);
                Poll::Ready(c)
            }
            Slot::Free { .. } => panic!("op {id} polled after completion was taken"),
        }
    }

    /// The future for `id` was dropped before taking its completion.
    pub(crate) fn abandon(&mut self, id: usize) {
        match &mut self.slab.slots[id] {
            Slot::Ready(_) => self.slab.free(id),
            Slot::Pending { orphan, .. } => {
                *orphan = true;
                match &mut self.backend {
                    Backend::Uring(b) => b.cancel(id),
                    Backend::Portable(b) => {
                        if b.forget(id) {
                            self.slab.free(id);
                        }
                    }
                }
            }
            Slot::Free { .. } => {}
        }
    }

    /// Asks the backend to cancel op `id`; it completes with `-ECANCELED` if it had not finished.
    pub(crate) fn cancel(&mut self, id: usize) {
        match &mut self.backend {
            Backend::Uring(b) => b.cancel(id),
            Backend::Portable(b) => {
                if b.forget(id) {
                    self.slab.complete(id, -libc::ECANCELED);
                }
            }
        }
    }

    /// Submits queued ops and reaps completions; blocks until at least one event when `block`.
    pub(crate) fn turn(&mut self, block: bool, wake_fd: RawFd) -> std::io::Result<()> {
        match &mut self.backend {
            Backend::Uring(b) => b.turn(&mut self.slab, block, wake_fd),
            Backend::Portable(b) => b.turn(&mut self.slab, block, wake_fd),
        }
    }
}
