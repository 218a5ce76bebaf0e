//! Async I/O on the current shard: each function submits one op and awaits its completion.

use super::op::{Completion, OpKind};
use super::{try_with_reactor, with_reactor};
use bytes::Bytes;
use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// A submitted op. Dropping it before completion leaves the buffers with the reactor until the
/// kernel is done with them.
pub struct Op {
    id: usize,
    taken: bool,
}

impl Op {
    /// Submits `kind` to the current shard's reactor.
    pub fn submit(kind: OpKind) -> Op {
        let id = with_reactor(|r| r.submit(kind));
        Op { id, taken: false }
    }

    /// Asks the reactor to cancel this op; it then completes with `-ECANCELED` unless done.
    pub fn cancel(&self) {
        if !self.taken {
            with_reactor(|r| r.cancel(self.id));
        }
    }
}

impl Future for Op {
    type Output = Completion;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Completion> {
        assert!(!self.taken, "op polled after completion");
        let id = self.id;
        let p = with_reactor(|r| r.poll_op(id, cx));
        if p.is_ready() {
            self.taken = true;
        }
        p
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        if !self.taken {
            let id = self.id;
            try_with_reactor(|r| r.abandon(id));
        }
    }
}

/// Accepts one connection on a listening socket; the new socket is non-blocking.
pub async fn accept(fd: RawFd) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let c = Op::submit(OpKind::Accept { fd }).await;
    let raw = c.io_result()? as RawFd;
    // SAFETY: a successful accept returns a new descriptor that nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) })
}

/// Receives into the spare capacity of `buf`, returning the buffer with its length advanced.
pub async fn recv(fd: RawFd, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
    assert!(buf.capacity() > buf.len(), "recv needs spare capacity");
    let res = loop {
        let c = Op::submit(OpKind::Recv { fd, buf }).await;
        let res = c.io_result();
        let OpKind::Recv { buf: b, .. } = c.op else {
            unreachable!("recv completes as recv")
        };
        buf = b;
        match res {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                if let Err(e) = poll_ready(fd, libc::POLLIN).await {
                    break Err(e);
                }
            }
            other => break other,
        }
    };
    if let Ok(n) = res {
        assert!(buf.len() + n <= buf.capacity());
        // SAFETY: the kernel initialised `n` bytes of spare capacity.
        unsafe { buf.set_len(buf.len() + n) };
    }
    (res, buf)
}

/// Writes every buffer, in order, to a socket (`offset == None`) or a file at `offset`, looping on
/// short writes. Returns the total written.
pub async fn write_all(fd: RawFd, mut bufs: Vec<Bytes>, offset: Option<u64>) -> io::Result<usize> {
    let total: usize = bufs.iter().map(|b| b.len()).sum();
    let mut done = 0usize;
    // At most IOV_MAX (1024) buffers per op.
    while done < total {
        let chunk: Vec<Bytes> = if bufs.len() > 1024 {
            let rest = bufs.split_off(1024);
            std::mem::replace(&mut bufs, rest)
        } else {
            std::mem::take(&mut bufs)
        };
        let chunk_len: usize = chunk.iter().map(|b| b.len()).sum();
        let started = offset.map(|_| std::time::Instant::now());
        let c = Op::submit(OpKind::writev(fd, chunk, offset.map(|o| o + done as u64))).await;
        if let Some(t) = started {
            crate::stats::log_write(t.elapsed());
        }
        let n = match c.io_result() {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && offset.is_none() => {
                // io_uring answers EAGAIN for read/write ops on O_NONBLOCK sockets instead of
                // waiting; wait for room, then retry the same buffers.
                let OpKind::Writev { bufs: back, .. } = c.op else {
                    unreachable!("writev completes as writev")
                };
                let mut back = back;
                back.append(&mut bufs);
                bufs = back;
                poll_ready(fd, libc::POLLOUT).await?;
                continue;
            }
            Err(e) => return Err(e),
        };
        if n == 0 && chunk_len > 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0"));
        }
        done += n;
        if n < chunk_len {
            // Short write: put the unwritten tail back in front.
            let OpKind::Writev { bufs: mut back, .. } = c.op else {
                unreachable!("writev completes as writev")
            };
            let mut skip = n;
            back.retain_mut(|b| {
                if skip >= b.len() {
                    skip -= b.len();
                    false
                } else {
                    *b = b.slice(skip..);
                    skip = 0;
                    true
                }
            });
            back.append(&mut bufs);
            bufs = back;
        }
    }
    Ok(total)
}

/// Writes `buf` (aligned to [`DIRECT_ALIGN`] in memory, offset and length) at `offset` of an
/// `O_DIRECT` descriptor, through the ring on both backends' terms: never inline on the shard.
/// A short write continues at the block where it stopped.
pub async fn write_direct(fd: RawFd, mut buf: Bytes, mut offset: u64) -> io::Result<()> {
    debug_assert_eq!(buf.as_ptr() as usize % DIRECT_ALIGN, 0);
    while !buf.is_empty() {
        let started = std::time::Instant::now();
        let c = Op::submit(OpKind::writev_as(fd, vec![buf.clone()], Some(offset), true)).await;
        crate::stats::log_write(started.elapsed());
        let n = c.io_result()?;
        if n == 0 || n % DIRECT_ALIGN != 0 && n < buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("direct write stopped after {n} bytes"),
            ));
        }
        let n = n.min(buf.len());
        bytes::Buf::advance(&mut buf, n);
        offset += n as u64;
    }
    Ok(())
}

/// Alignment of `O_DIRECT` buffers, file offsets and lengths: 4 KiB, the page size and the
/// largest logical block size of the devices we run on.
pub const DIRECT_ALIGN: usize = 4096;

/// A buffer of `len` bytes (a multiple of [`DIRECT_ALIGN`]) whose first byte is aligned for
/// `O_DIRECT`: `parts` back to back, then zeros to `len`. Only the padding is zeroed. (Zeroing the
/// whole buffer first showed as 7% of the broker's CPU under produce; without it the copy's share
/// rose by as much and throughput did not move: the first touch of the buffer's lines costs, not
/// the memset. See docs/adr/0010-direct-io.md.) Built without `unsafe`: the
/// vector is over-allocated by one alignment unit and sliced at the aligned byte.
pub fn aligned_buffer<'a>(len: usize, parts: impl IntoIterator<Item = &'a [u8]>) -> Bytes {
    let mut v: Vec<u8> = Vec::with_capacity(len + DIRECT_ALIGN);
    let skip = v.as_ptr().align_offset(DIRECT_ALIGN).min(DIRECT_ALIGN);
    v.resize(skip, 0);
    for p in parts {
        v.extend_from_slice(p);
    }
    assert!(v.len() <= skip + len, "the parts fit the buffer");
    v.resize(skip + len, 0);
    let b = Bytes::from(v).slice(skip..);
    assert_eq!(
        b.as_ptr() as usize % DIRECT_ALIGN,
        0,
        "Bytes::from(Vec) keeps the allocation"
    );
    b
}

/// Reads up to `len` bytes (a multiple of [`DIRECT_ALIGN`]) at `offset` (aligned) of an
/// `O_DIRECT` descriptor into a new aligned buffer, through the ring; shorter only at the end of
/// the file. Built like [`aligned_buffer`]: the vector's length is set to the unaligned head, so
/// the kernel fills its spare capacity from the aligned byte on.
pub async fn read_direct(fd: RawFd, offset: u64, len: usize) -> io::Result<Bytes> {
    debug_assert_eq!(len % DIRECT_ALIGN, 0);
    debug_assert_eq!(offset % DIRECT_ALIGN as u64, 0);
    let mut v: Vec<u8> = Vec::with_capacity(len + DIRECT_ALIGN);
    let skip = v.as_ptr().align_offset(DIRECT_ALIGN).min(DIRECT_ALIGN);
    v.resize(skip, 0);
    while v.len() - skip < len {
        let got = v.len() - skip;
        let c = Op::submit(OpKind::Read {
            fd,
            max: len - got,
            buf: v,
            offset: offset + got as u64,
        })
        .await;
        let res = c.io_result();
        let OpKind::Read { buf, .. } = c.op else {
            unreachable!("read completes as read")
        };
        v = buf;
        let n = res?;
        if n == 0 {
            break;
        }
        assert!(v.len() + n <= v.capacity());
        // SAFETY: the kernel initialised `n` bytes of spare capacity.
        unsafe { v.set_len(v.len() + n) };
        if n % DIRECT_ALIGN != 0 {
            break; // the end of the file
        }
    }
    let b = Bytes::from(v).slice(skip..);
    debug_assert_eq!(b.as_ptr() as usize % DIRECT_ALIGN, 0);
    Ok(b)
}

/// Sends all of `buf` on a socket with zero-copy sends (`IORING_OP_SEND_ZC`; plain sends on
/// the portable backend). Each send completes once the kernel no longer needs the bytes.
pub async fn send_zc_all(fd: RawFd, mut buf: Bytes) -> io::Result<()> {
    while !buf.is_empty() {
        let c = Op::submit(OpKind::SendZc {
            fd,
            buf: buf.clone(),
            result: None,
        })
        .await;
        match c.io_result() {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes::Buf::advance(&mut buf, n),
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                poll_ready(fd, libc::POLLOUT).await?
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads up to `len` bytes at `offset` into a new buffer (shorter only at end of file).
pub async fn read_at(fd: RawFd, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(len);
    while out.len() < len {
        let at = offset + out.len() as u64;
        let c = Op::submit(OpKind::Read {
            fd,
            max: len - out.len(),
            buf: out,
            offset: at,
        })
        .await;
        let res = c.io_result();
        let OpKind::Read { buf, .. } = c.op else {
            unreachable!("read completes as read")
        };
        out = buf;
        let n = res?;
        if n == 0 {
            break;
        }
        assert!(out.len() + n <= out.capacity());
        // SAFETY: the kernel initialised `n` bytes of spare capacity.
        unsafe { out.set_len(out.len() + n) };
    }
    Ok(out)
}

/// `fdatasync(fd)`. A failure is returned, never retried as if the data were safe.
pub async fn fdatasync(fd: RawFd) -> io::Result<()> {
    let started = std::time::Instant::now();
    let c = Op::submit(OpKind::Fsync { fd }).await;
    crate::stats::log_flush(started.elapsed());
    c.io_result().map(|_| ())
}

/// Moves up to `len` bytes from `fd_in` (at `off_in`, or its position) to `fd_out`; one side must
/// be a pipe.
pub async fn splice(
    fd_in: RawFd,
    off_in: Option<u64>,
    fd_out: RawFd,
    len: u32,
) -> io::Result<usize> {
    loop {
        let res = Op::submit(OpKind::Splice {
            fd_in,
            off_in,
            fd_out,
            len,
        })
        .await
        .io_result();
        match res {
            // A full non-blocking output (socket or pipe): wait for room, then retry.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                poll_ready(fd_out, libc::POLLOUT).await?
            }
            other => return other,
        }
    }
}

/// Starts writeback of `len` bytes at `offset` without waiting for it (`sync_file_range` with
/// `SYNC_FILE_RANGE_WRITE`). Not a durability point: it only keeps dirty pages from piling up.
pub async fn writeback(fd: RawFd, offset: u64, len: u32) -> io::Result<()> {
    Op::submit(OpKind::Writeback { fd, offset, len })
        .await
        .io_result()
        .map(|_| ())
}

/// Waits until `fd` is ready for `events` (`POLLIN`, `POLLOUT`).
pub async fn poll_ready(fd: RawFd, events: i16) -> io::Result<()> {
    Op::submit(OpKind::Poll { fd, events })
        .await
        .io_result()
        .map(|_| ())
}

/// Sleeps for `duration` on the reactor's timer.
pub async fn sleep(duration: Duration) {
    let c = Op::submit(OpKind::timeout(duration)).await;
    debug_assert!(c.result == -libc::ETIME || c.result == -libc::ECANCELED || c.result >= 0);
}

/// A pipe for moving file bytes to a socket with two splices, never through user space.
pub struct SplicePipe {
    read: std::io::PipeReader,
    write: std::io::PipeWriter,
    capacity: usize,
}

impl SplicePipe {
    /// Creates a pipe and asks for `capacity` bytes of buffer (the kernel may give less).
    pub fn new(capacity: usize) -> io::Result<SplicePipe> {
        use std::os::fd::AsRawFd;
        let (read, write) = std::io::pipe()?;
        // SAFETY: fcntl on a descriptor we own, with an integer argument.
        let got = unsafe {
            libc::fcntl(
                write.as_raw_fd(),
                libc::F_SETPIPE_SZ,
                capacity as libc::c_int,
            )
        };
        let capacity = if got > 0 { got as usize } else { 64 * 1024 };
        for fd in [read.as_raw_fd(), write.as_raw_fd()] {
            // SAFETY: fcntl flag changes on descriptors we own.
            unsafe {
                let fl = libc::fcntl(fd, libc::F_GETFL);
                libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
            }
        }
        Ok(SplicePipe {
            read,
            write,
            capacity,
        })
    }

    /// Moves `len` bytes at `offset` of `file` to `socket`: file -> pipe -> socket, in chunks of
    /// the pipe's capacity. The pipe is empty again when this returns `Ok`.
    pub async fn file_to_socket(
        &self,
        file: RawFd,
        mut offset: u64,
        mut len: usize,
        socket: RawFd,
    ) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        while len > 0 {
            let chunk = len.min(self.capacity) as u32;
            let n = splice(file, Some(offset), self.write.as_raw_fd(), chunk).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file ended inside a fetch region",
                ));
            }
            let mut left = n;
            while left > 0 {
                let m = splice(self.read.as_raw_fd(), None, socket, left as u32).await?;
                if m == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "socket closed during splice",
                    ));
                }
                left -= m;
            }
            offset += n as u64;
            len -= n;
        }
        Ok(())
    }
}
