//! The io_uring backend: one ring per shard, SQEs built from ops that live in the reactor's slab.

use super::op::OpKind;
use super::reactor::Slab;
use io_uring::{opcode, squeue, types, IoUring};
use std::os::fd::RawFd;

/// User data of the eventfd read that wakes a sleeping shard.
const WAKE_TOKEN: u64 = u64::MAX;
/// User data of cancel requests, whose own completions carry nothing we need.
const CANCEL_TOKEN: u64 = u64::MAX - 1;

pub(crate) struct UringBackend {
    ring: IoUring,
    /// The eventfd read buffer; boxed so the kernel's pointer stays valid.
    wake_buf: Box<u64>,
    wake_armed: bool,
}

impl UringBackend {
    /// Creates a ring with `entries` submission slots; fails where io_uring is unavailable.
    pub(crate) fn new(entries: u32) -> std::io::Result<UringBackend> {
        let ring = IoUring::builder().build(entries)?;
        Ok(UringBackend {
            ring,
            wake_buf: Box::new(0),
            wake_armed: false,
        })
    }

    fn push_entry(&mut self, entry: squeue::Entry) {
        loop {
            // SAFETY: every pointer in `entry` refers to heap memory owned by a slab slot (or by
            // `self.wake_buf`), which stays alive and unmoved until the op's completion is reaped.
            let pushed = unsafe { self.ring.submission().push(&entry) };
            if pushed.is_ok() {
                return;
            }
            // The submission queue is full: hand what is queued to the kernel and try again.
            if let Err(e) = self.ring.submit() {
                tracing::error!(error = %e, "io_uring submit failed while the queue was full");
            }
        }
    }

    pub(crate) fn push(&mut self, slab: &mut Slab, id: usize) {
        let op = slab.op_mut(id).expect("pushed op is pending");
        let entry = build_entry(op).user_data(id as u64);
        self.push_entry(entry);
    }

    pub(crate) fn cancel(&mut self, id: usize) {
        let entry = opcode::AsyncCancel::new(id as u64)
            .build()
            .user_data(CANCEL_TOKEN);
        self.push_entry(entry);
    }

    pub(crate) fn turn(
        &mut self,
        slab: &mut Slab,
        block: bool,
        wake_fd: RawFd,
    ) -> std::io::Result<()> {
        if block && !self.wake_armed {
            let entry = opcode::Read::new(
                types::Fd(wake_fd),
                (&mut *self.wake_buf as *mut u64).cast::<u8>(),
                8,
            )
            .build()
            .user_data(WAKE_TOKEN);
            self.push_entry(entry);
            self.wake_armed = true;
        }
        let want = usize::from(block);
        match self.ring.submit_and_wait(want) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(e) => return Err(e),
        }
        let mut cq = self.ring.completion();
        cq.sync();
        for cqe in &mut cq {
            match cqe.user_data() {
                WAKE_TOKEN => self.wake_armed = false,
                CANCEL_TOKEN => {}
                id => slab.complete(id as usize, cqe.result()),
            }
        }
        Ok(())
    }
}

fn build_entry(op: &mut OpKind) -> squeue::Entry {
    match op {
        OpKind::Accept { fd } => {
            opcode::Accept::new(types::Fd(*fd), std::ptr::null_mut(), std::ptr::null_mut())
                .flags(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)
                .build()
        }
        OpKind::Recv { fd, buf } => {
            let spare = buf.spare_capacity_mut();
            opcode::Recv::new(
                types::Fd(*fd),
                spare.as_mut_ptr().cast::<u8>(),
                spare.len() as u32,
            )
            .build()
        }
        OpKind::Send { fd, buf } => {
            opcode::Send::new(types::Fd(*fd), buf.as_ptr(), buf.len() as u32)
                .flags(libc::MSG_NOSIGNAL)
                .build()
        }
        OpKind::Writev {
            fd, iovecs, offset, ..
        } => opcode::Writev::new(types::Fd(*fd), iovecs.as_ptr(), iovecs.len() as u32)
            .offset(offset.unwrap_or(u64::MAX))
            .build(),
        OpKind::Read { fd, buf, offset } => {
            let spare = buf.spare_capacity_mut();
            opcode::Read::new(
                types::Fd(*fd),
                spare.as_mut_ptr().cast::<u8>(),
                spare.len() as u32,
            )
            .offset(*offset)
            .build()
        }
        OpKind::Fsync { fd } => opcode::Fsync::new(types::Fd(*fd))
            .flags(types::FsyncFlags::DATASYNC)
            .build(),
        OpKind::Splice {
            fd_in,
            off_in,
            fd_out,
            len,
        } => opcode::Splice::new(
            types::Fd(*fd_in),
            off_in.map_or(-1, |o| o as i64),
            types::Fd(*fd_out),
            -1,
            *len,
        )
        .flags(libc::SPLICE_F_MOVE)
        .build(),
        OpKind::Timeout { timespec, .. } => {
            opcode::Timeout::new(&**timespec as *const types::Timespec).build()
        }
        OpKind::Done => opcode::Nop::new().build(),
    }
}
