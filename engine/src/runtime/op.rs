//! The operations a reactor performs, each owning the buffers it needs until its completion arrives.
//!
//! An [`OpKind`] moves into the reactor at submission and comes back with the result, so a buffer is
//! never freed or reused while the kernel may still touch it, even when the future that asked for the
//! operation is dropped first (the reactor then keeps the op as an orphan until its completion).

use bytes::Bytes;
use std::os::fd::RawFd;
use std::time::Duration;

/// One I/O operation with every buffer it references.
#[derive(Debug)]
pub enum OpKind {
    /// `accept4(fd)`; the result is the new socket's descriptor.
    Accept { fd: RawFd },
    /// `recv(fd)` into the spare capacity of `buf` (from `buf.len()` to `buf.capacity()`).
    Recv { fd: RawFd, buf: Vec<u8> },
    /// `send(fd, buf)`; may send a prefix.
    Send { fd: RawFd, buf: Bytes },
    /// `IORING_OP_SEND_ZC`: sends from `buf` without copying it into the socket (a plain `send` on
    /// the portable backend). The kernel posts the result (flagged "more"), then a notification
    /// once it no longer reads `buf`; the op completes, and hands `buf` back, only then.
    SendZc {
        fd: RawFd,
        buf: Bytes,
        /// The result from the first completion, kept until the notification.
        result: Option<i32>,
    },
    /// `pwritev(fd, bufs, offset)`; `offset == None` writes at the current position (sockets).
    Writev {
        fd: RawFd,
        bufs: Vec<Bytes>,
        iovecs: Vec<libc::iovec>,
        offset: Option<u64>,
        /// An `O_DIRECT` file write (aligned buffers, offset and length): it always goes to the
        /// ring, since done inline it would wait for the device on the shard thread.
        direct: bool,
    },
    /// `pread(fd)` into the spare capacity of `buf` at `offset`, at most `max` bytes (an
    /// `O_DIRECT` read must ask for a whole number of blocks, whatever the spare capacity).
    Read {
        fd: RawFd,
        buf: Vec<u8>,
        offset: u64,
        max: usize,
    },
    /// `fdatasync(fd)`.
    Fsync { fd: RawFd },
    /// `splice(fd_in @ off_in -> fd_out, len)`; one side must be a pipe.
    Splice {
        fd_in: RawFd,
        off_in: Option<u64>,
        fd_out: RawFd,
        len: u32,
    },
    /// `sync_file_range(fd, offset, len, SYNC_FILE_RANGE_WRITE)`: start writeback, do not wait.
    Writeback { fd: RawFd, offset: u64, len: u32 },
    /// Waits until `fd` is ready for `events` (`POLLIN`, `POLLOUT`); the result is the revents.
    Poll { fd: RawFd, events: i16 },
    /// Completes after `duration` with `-ETIME`.
    Timeout {
        duration: Duration,
        timespec: Box<io_uring::types::Timespec>,
    },
    /// Placeholder left behind once a completion has been taken.
    Done,
}

impl OpKind {
    /// Builds a vectored write; the iovec array points into the `Bytes`, whose heap storage does
    /// not move when the `OpKind` itself moves.
    pub fn writev(fd: RawFd, bufs: Vec<Bytes>, offset: Option<u64>) -> OpKind {
        OpKind::writev_as(fd, bufs, offset, false)
    }

    /// As [`OpKind::writev`]; `direct` marks an `O_DIRECT` file write.
    pub fn writev_as(fd: RawFd, bufs: Vec<Bytes>, offset: Option<u64>, direct: bool) -> OpKind {
        let iovecs = bufs
            .iter()
            .map(|b| libc::iovec {
                iov_base: b.as_ptr() as *mut libc::c_void,
                iov_len: b.len(),
            })
            .collect();
        OpKind::Writev {
            fd,
            bufs,
            iovecs,
            offset,
            direct,
        }
    }

    /// Builds a timeout op.
    pub fn timeout(duration: Duration) -> OpKind {
        let timespec = Box::new(
            io_uring::types::Timespec::new()
                .sec(duration.as_secs())
                .nsec(duration.subsec_nanos()),
        );
        OpKind::Timeout { duration, timespec }
    }

    /// Total bytes a write op carries.
    pub fn write_len(&self) -> usize {
        match self {
            OpKind::Writev { bufs, .. } => bufs.iter().map(|b| b.len()).sum(),
            OpKind::Send { buf, .. } | OpKind::SendZc { buf, .. } => buf.len(),
            _ => 0,
        }
    }
}

/// The outcome of an op: the syscall-style result (`>= 0` success, `-errno` failure) and the op
/// with its buffers handed back.
#[derive(Debug)]
pub struct Completion {
    pub result: i32,
    pub op: OpKind,
}

impl Completion {
    /// Converts the raw result into an `io::Result`.
    pub fn io_result(&self) -> std::io::Result<usize> {
        if self.result < 0 {
            Err(std::io::Error::from_raw_os_error(-self.result))
        } else {
            Ok(self.result as usize)
        }
    }
}
