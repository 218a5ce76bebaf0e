//! The portable backend: plain syscalls, `poll(2)` for sockets, and seeded fault injection.
//!
//! File operations run at submission (page-cache writes and reads are short; `fdatasync` blocks the
//! shard thread, which is the price of running where io_uring is disabled). Socket operations are
//! tried at once on non-blocking descriptors and parked on `poll(2)` when they would block.
//! Timeouts live in a small list checked on every turn.

use super::op::OpKind;
use super::reactor::Slab;
use std::os::fd::RawFd;
use std::time::Instant;

/// Faults the portable backend injects, for tests: into positioned file writes and `fdatasync`
/// on the ring, and into the shard's other file operations ([`super::fs`]: segment creation and
/// roll, truncation, retention deletes, checkpoint files, directory syncs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultConfig {
    /// Seed of the fault RNG; the same seed gives the same faults.
    pub seed: u64,
    /// Probability, in parts per million, that a positioned write fails.
    pub write_error_ppm: u32,
    /// Probability, in parts per million, that an `fdatasync` fails.
    pub fsync_error_ppm: u32,
    /// When a write fails, write a random prefix first (a torn write).
    pub torn_writes: bool,
    /// The errno injected (`EIO` when zero).
    pub errno: i32,
    /// Probability, in parts per million, that a file operation of [`super::fs`] fails: segment
    /// create and truncate, index and checkpoint writes, fsyncs and renames, directory fsyncs,
    /// deletes (everything but the ring's segment writes and `fdatasync`s above).
    pub metadata_error_ppm: u32,
}

pub(crate) struct FaultInjector {
    config: FaultConfig,
    state: u64,
}

impl FaultInjector {
    fn next(&mut self) -> u64 {
        // xorshift64*: small, seeded, good enough to pick faults.
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(crate) fn hit(&mut self, ppm: u32) -> bool {
        ppm > 0 && (self.next() % 1_000_000) < u64::from(ppm)
    }

    pub(crate) fn config(&self) -> &FaultConfig {
        &self.config
    }

    pub(crate) fn errno(&self) -> i32 {
        if self.config.errno == 0 {
            libc::EIO
        } else {
            self.config.errno
        }
    }
}

thread_local! {
    /// The fault injector of the portable backend running on this thread, if it injects faults:
    /// shared by the ring's file ops and [`super::fs`], one seeded stream per shard.
    static FAULTS: std::cell::RefCell<Option<FaultInjector>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` on this thread's fault injector; `None` when no faults are injected here.
pub(crate) fn with_faults<R>(f: impl FnOnce(&mut FaultInjector) -> R) -> Option<R> {
    FAULTS.with(|c| c.borrow_mut().as_mut().map(f))
}

struct Waiting {
    id: usize,
    fd: RawFd,
    events: i16,
}

pub(crate) struct PortableBackend {
    waiting: Vec<Waiting>,
    timers: Vec<(Instant, usize)>,
    /// Whether this backend installed the thread's fault injector (it removes it on drop).
    faults: bool,
    pollfds: Vec<libc::pollfd>,
}

impl Drop for PortableBackend {
    fn drop(&mut self) {
        if self.faults {
            FAULTS.with(|c| c.borrow_mut().take());
        }
    }
}

/// Result of trying an op now.
enum Attempt {
    Done(i32),
    WouldBlock { fd: RawFd, events: i16 },
    Timer(Instant),
}

fn errno_result(ret: isize) -> i32 {
    if ret < 0 {
        -std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    } else {
        ret as i32
    }
}

impl PortableBackend {
    pub(crate) fn new(faults: Option<FaultConfig>) -> PortableBackend {
        let installed = faults.is_some();
        if let Some(config) = faults {
            FAULTS.with(|c| {
                *c.borrow_mut() = Some(FaultInjector {
                    state: config.seed | 1,
                    config,
                })
            });
        }
        PortableBackend {
            waiting: Vec::new(),
            timers: Vec::new(),
            faults: installed,
            pollfds: Vec::new(),
        }
    }

    fn attempt(&mut self, op: &mut OpKind) -> Attempt {
        match op {
            OpKind::Accept { fd } => {
                // SAFETY: accept4 with null address pointers only returns a descriptor.
                let ret = unsafe {
                    libc::accept4(
                        *fd,
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                        libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                    )
                };
                would_block(ret as isize, *fd, libc::POLLIN)
            }
            OpKind::Recv { fd, buf } => {
                let spare = buf.spare_capacity_mut();
                // SAFETY: the spare capacity is writable memory owned by the op's buffer.
                let ret = unsafe { libc::recv(*fd, spare.as_mut_ptr().cast(), spare.len(), 0) };
                would_block(ret, *fd, libc::POLLIN)
            }
            OpKind::Send { fd, buf } | OpKind::SendZc { fd, buf, .. } => {
                // SAFETY: `buf` is a live, initialised buffer owned by the op.
                let ret =
                    unsafe { libc::send(*fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
                would_block(ret, *fd, libc::POLLOUT)
            }
            OpKind::Writev {
                fd,
                iovecs,
                offset,
                direct,
                ..
            } => match offset {
                None => {
                    // SAFETY: the iovecs point into `bufs`, owned by the op.
                    let ret = unsafe { libc::writev(*fd, iovecs.as_ptr(), iovecs.len() as i32) };
                    would_block(ret, *fd, libc::POLLOUT)
                }
                Some(off) => {
                    let total: usize = iovecs.iter().map(|v| v.iov_len).sum();
                    let fault = with_faults(|f| {
                        if !f.hit(f.config.write_error_ppm) {
                            return None;
                        }
                        let torn = (f.config.torn_writes && total > 0)
                            .then(|| (f.next() as usize) % total);
                        Some((torn, f.errno()))
                    })
                    .flatten();
                    if let Some((torn, errno)) = fault {
                        // A direct write tears at a block boundary (unaligned writes are refused).
                        let torn = torn.map(|p| if *direct { p / 4096 * 4096 } else { p });
                        if let Some(prefix) = torn.filter(|&p| p > 0) {
                            torn_prefix_write(*fd, iovecs, *off, prefix);
                        }
                        return Attempt::Done(-errno);
                    }
                    // SAFETY: the iovecs point into `bufs`, owned by the op.
                    let ret = unsafe {
                        libc::pwritev(*fd, iovecs.as_ptr(), iovecs.len() as i32, *off as i64)
                    };
                    Attempt::Done(errno_result(ret))
                }
            },
            OpKind::Read {
                fd,
                buf,
                offset,
                max,
            } => {
                let spare = buf.spare_capacity_mut();
                let len = spare.len().min(*max);
                // SAFETY: the first `len` bytes of the spare capacity are writable memory owned
                // by the op's buffer.
                let ret =
                    unsafe { libc::pread(*fd, spare.as_mut_ptr().cast(), len, *offset as i64) };
                Attempt::Done(errno_result(ret))
            }
            OpKind::Fsync { fd } => {
                let fault = with_faults(|f| f.hit(f.config.fsync_error_ppm).then(|| f.errno()));
                if let Some(errno) = fault.flatten() {
                    return Attempt::Done(-errno);
                }
                // SAFETY: fdatasync takes only a descriptor.
                let ret = unsafe { libc::fdatasync(*fd) };
                Attempt::Done(errno_result(ret as isize))
            }
            OpKind::Splice {
                fd_in,
                off_in,
                fd_out,
                len,
            } => {
                let mut off = off_in.map(|o| o as i64);
                let off_ptr = off.as_mut().map_or(std::ptr::null_mut(), |o| o as *mut i64);
                // SAFETY: `off_ptr` is null or points at a local that outlives the call.
                let ret = unsafe {
                    libc::splice(
                        *fd_in,
                        off_ptr,
                        *fd_out,
                        std::ptr::null_mut(),
                        *len as usize,
                        libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
                    )
                };
                would_block(ret, *fd_out, libc::POLLOUT)
            }
            OpKind::Writeback { fd, offset, len } => {
                // SAFETY: sync_file_range takes only integers.
                let ret = unsafe {
                    libc::sync_file_range(
                        *fd,
                        *offset as i64,
                        i64::from(*len),
                        libc::SYNC_FILE_RANGE_WRITE,
                    )
                };
                Attempt::Done(errno_result(ret as isize))
            }
            OpKind::Poll { fd, events } => {
                let mut p = libc::pollfd {
                    fd: *fd,
                    events: *events,
                    revents: 0,
                };
                // SAFETY: polls one live pollfd with a zero timeout.
                let ret = unsafe { libc::poll(&mut p, 1, 0) };
                if ret > 0 {
                    Attempt::Done(i32::from(p.revents))
                } else if ret == 0 {
                    Attempt::WouldBlock {
                        fd: *fd,
                        events: *events,
                    }
                } else {
                    Attempt::Done(errno_result(-1))
                }
            }
            OpKind::Timeout { duration, .. } => Attempt::Timer(Instant::now() + *duration),
            OpKind::Done => Attempt::Done(0),
        }
    }

    pub(crate) fn start(&mut self, slab: &mut Slab, id: usize) {
        let op = slab.op_mut(id).expect("started op is pending");
        match self.attempt(op) {
            Attempt::Done(res) => slab.complete(id, res),
            Attempt::WouldBlock { fd, events } => self.waiting.push(Waiting { id, fd, events }),
            Attempt::Timer(deadline) => self.timers.push((deadline, id)),
        }
    }

    /// Drops a parked op; returns whether it was parked (and so has no completion coming).
    pub(crate) fn forget(&mut self, id: usize) -> bool {
        if let Some(i) = self.waiting.iter().position(|w| w.id == id) {
            self.waiting.swap_remove(i);
            return true;
        }
        if let Some(i) = self.timers.iter().position(|t| t.1 == id) {
            self.timers.swap_remove(i);
            return true;
        }
        false
    }

    pub(crate) fn turn(
        &mut self,
        slab: &mut Slab,
        block: bool,
        wake_fd: RawFd,
    ) -> std::io::Result<()> {
        let now = Instant::now();
        let timeout_ms: i32 = if !block {
            0
        } else {
            match self.timers.iter().map(|t| t.0).min() {
                Some(d) if d <= now => 0,
                Some(d) => (d - now).as_millis().min(i32::MAX as u128) as i32 + 1,
                None => -1,
            }
        };
        self.pollfds.clear();
        self.pollfds.push(libc::pollfd {
            fd: wake_fd,
            events: libc::POLLIN,
            revents: 0,
        });
        for w in &self.waiting {
            self.pollfds.push(libc::pollfd {
                fd: w.fd,
                events: w.events,
                revents: 0,
            });
        }
        // SAFETY: `pollfds` is a live array of `len` pollfd structs.
        let ret = unsafe {
            libc::poll(
                self.pollfds.as_mut_ptr(),
                self.pollfds.len() as libc::nfds_t,
                timeout_ms,
            )
        };
        if ret < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e);
            }
        }
        if self.pollfds[0].revents != 0 {
            let mut v = 0u64;
            // SAFETY: reads 8 bytes into a local u64 from a non-blocking eventfd.
            unsafe { libc::read(wake_fd, (&mut v as *mut u64).cast(), 8) };
        }
        // Retry every op whose descriptor became ready. Ready entries are collected first, as an
        // op may complete and free its slot.
        let ready: Vec<usize> = self
            .waiting
            .iter()
            .zip(&self.pollfds[1..])
            .filter(|(_, p)| p.revents != 0)
            .map(|(w, _)| w.id)
            .collect();
        for id in ready {
            let Some(i) = self.waiting.iter().position(|w| w.id == id) else {
                continue;
            };
            let w = self.waiting.swap_remove(i);
            let Some(op) = slab.op_mut(w.id) else {
                continue;
            };
            match self.attempt(op) {
                Attempt::Done(res) => slab.complete(w.id, res),
                Attempt::WouldBlock { fd, events } => self.waiting.push(Waiting {
                    id: w.id,
                    fd,
                    events,
                }),
                Attempt::Timer(_) => unreachable!("only timeouts become timers"),
            }
        }
        let now = Instant::now();
        let mut i = 0;
        while i < self.timers.len() {
            if self.timers[i].0 <= now {
                let (_, id) = self.timers.swap_remove(i);
                slab.complete(id, -libc::ETIME);
            } else {
                i += 1;
            }
        }
        Ok(())
    }
}

fn would_block(ret: isize, fd: RawFd, events: i16) -> Attempt {
    if ret < 0 {
        let err = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        if err == libc::EAGAIN || err == libc::EWOULDBLOCK {
            return Attempt::WouldBlock { fd, events };
        }
        return Attempt::Done(-err);
    }
    Attempt::Done(ret as i32)
}

/// Writes the first `prefix` bytes of `iovecs` at `off`, simulating a write torn by a crash.
fn torn_prefix_write(fd: RawFd, iovecs: &[libc::iovec], off: u64, prefix: usize) {
    let mut left = prefix;
    let mut pos = off;
    for v in iovecs {
        if left == 0 {
            break;
        }
        let n = v.iov_len.min(left);
        // SAFETY: `v` points into a buffer owned by the op; `n <= iov_len`.
        unsafe { libc::pwrite(fd, v.iov_base, n, pos as i64) };
        left -= n;
        pos += n as u64;
    }
}
