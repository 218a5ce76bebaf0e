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
    /// Try positioned file writes inline first (see [`UringBackend::try_inline_write`]).
    inline_file_writes: bool,
    /// The filesystem refused `RWF_NOWAIT` for buffered writes; inline writes are then plain.
    nowait_unsupported: bool,
    /// The eventfd read buffer; boxed so the kernel's pointer stays valid.
    wake_buf: Box<u64>,
    wake_armed: bool,
}

impl UringBackend {
    /// Creates a ring with `entries` submission slots; fails where io_uring is unavailable.
    pub(crate) fn new(entries: u32, inline_file_writes: bool) -> std::io::Result<UringBackend> {
        let ring = IoUring::builder().build(entries)?;
        Ok(UringBackend {
            ring,
            inline_file_writes,
            nowait_unsupported: false,
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

    /// Buffered file writes on filesystems without async buffered-write support (ext4 on this
    /// kernel answers `RWF_NOWAIT` with EOPNOTSUPP) are punted by io_uring to a kernel worker
    /// thread, which costs ~55 µs per write against ~6 µs for the page-cache copy itself (see
    /// docs/adr/0001-runtime.md). So a positioned write is first tried inline with `RWF_NOWAIT`
    /// (never blocks: it fails with EAGAIN instead), and where the filesystem does not support
    /// that flag, inline without it (a page-cache copy; it may wait on dirty-page throttling,
    /// as Kafka's own writes do). Only EAGAIN goes to the ring. fdatasync always goes to the ring.
    fn try_inline_write(&mut self, op: &OpKind) -> Option<i32> {
        let OpKind::Writev {
            fd,
            iovecs,
            offset: Some(off),
            direct: false,
            ..
        } = op
        else {
            return None;
        };
        if !self.inline_file_writes {
            return None;
        }
        loop {
            let flags = if self.nowait_unsupported {
                0
            } else {
                libc::RWF_NOWAIT
            };
            // SAFETY: the iovecs point into buffers owned by the op, alive for this call.
            let ret = unsafe {
                libc::pwritev2(
                    *fd,
                    iovecs.as_ptr(),
                    iovecs.len() as i32,
                    *off as i64,
                    flags,
                )
            };
            if ret >= 0 {
                return Some(ret as i32);
            }
            let err = std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO);
            match err {
                libc::EAGAIN => return None,
                libc::EOPNOTSUPP if !self.nowait_unsupported => {
                    self.nowait_unsupported = true;
                    tracing::debug!(
                        "RWF_NOWAIT unsupported for buffered writes here; writing inline"
                    );
                }
                _ => return Some(-err),
            }
        }
    }

    pub(crate) fn push(&mut self, slab: &mut Slab, id: usize) {
        let op = slab.op_mut(id).expect("pushed op is pending");
        if let Some(res) = self.try_inline_write(op) {
            slab.complete(id, res);
            return;
        }
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
                id => {
                    let (id, flags) = (id as usize, cqe.flags());
                    if io_uring::cqueue::notif(flags) {
                        // SEND_ZC is done with the buffer: complete with the kept result.
                        let result = match slab.op_mut(id) {
                            Some(OpKind::SendZc { result, .. }) => result.unwrap_or(0),
                            _ => 0,
                        };
                        slab.complete(id, result);
                    } else if io_uring::cqueue::more(flags) {
                        // SEND_ZC's result; its notification follows.
                        if let Some(OpKind::SendZc { result, .. }) = slab.op_mut(id) {
                            *result = Some(cqe.result());
                        }
                    } else {
                        slab.complete(id, cqe.result());
                    }
                }
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
        OpKind::SendZc { fd, buf, .. } => {
            opcode::SendZc::new(types::Fd(*fd), buf.as_ptr(), buf.len() as u32)
                .flags(libc::MSG_NOSIGNAL)
                .build()
        }
        OpKind::Writev {
            fd, iovecs, offset, ..
        } => opcode::Writev::new(types::Fd(*fd), iovecs.as_ptr(), iovecs.len() as u32)
            .offset(offset.unwrap_or(u64::MAX))
            .build(),
        OpKind::Read {
            fd,
            buf,
            offset,
            max,
        } => {
            let spare = buf.spare_capacity_mut();
            opcode::Read::new(
                types::Fd(*fd),
                spare.as_mut_ptr().cast::<u8>(),
                spare.len().min(*max) as u32,
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
        OpKind::Writeback { fd, offset, len } => opcode::SyncFileRange::new(types::Fd(*fd), *len)
            .offset(*offset)
            .flags(libc::SYNC_FILE_RANGE_WRITE)
            .build(),
        OpKind::Poll { fd, events } => opcode::PollAdd::new(types::Fd(*fd), *events as u32).build(),
        OpKind::Done => opcode::Nop::new().build(),
    }
}
