//! Cold reads in direct mode (`ringlet.log.read.ahead.bytes`): fetches that miss the tail cache
//! read the segment with `O_DIRECT` into aligned windows, and a sequential reader always has the
//! next window in flight.
//!
//! With direct writes the page cache holds none of the log, so a read through the buffered
//! descriptor goes to the device in the kernel's read-ahead steps (128 KiB by default) and copies
//! everything into the page cache, where nothing reads it again. Here a partition that is read
//! cold holds one window (`read.ahead.bytes`, block aligned) read straight from the device; the
//! batch headers a fetch walks to find its offset are parsed from the window rather than read one
//! by one, the response is slices of the window (one send, no copy), and as soon as a window is
//! loaded the next one is read in the background, so a consumer reading from the start keeps the
//! device busy with two reads rather than waiting for each.
//!
//! Memory is bounded per shard: windows and reads in flight are counted against
//! [`WINDOWS_PER_SHARD`] windows; past that a read still goes straight to the device but the
//! window is not kept and nothing is read ahead. The bytes a window holds below the readable end
//! (the high watermark's position when it was read) never change until a truncation, which
//! drops the window ([`ReadAhead::forget`]).

use crate::error::LogError;
use crate::partition_log::ReadPlan;
use crate::runtime::{self, fs, io};
use bytes::Bytes;
use futures_channel::oneshot;
use ringlet_format::batch;
use std::cell::{Cell, RefCell};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::rc::Rc;

/// Windows (of the configured size) a shard may hold or have in flight.
pub const WINDOWS_PER_SHARD: usize = 64;

thread_local! {
    static HELD: Cell<usize> = const { Cell::new(0) };
}

/// Bytes of read-ahead windows held or in flight on this shard.
pub fn shard_read_ahead_bytes() -> usize {
    HELD.with(Cell::get)
}

/// A share of the shard's read-ahead budget, released when dropped.
struct Held(usize);

impl Held {
    fn take(n: usize) -> Held {
        HELD.with(|h| h.set(h.get() + n));
        Held(n)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = HELD.try_with(|h| h.set(h.get().saturating_sub(self.0)));
    }
}

/// Segment bytes `[pos, pos + buf.len())`, all below the readable end when they were read.
struct Window {
    seg_base: i64,
    pos: u64,
    buf: Bytes,
    _held: Held,
}

impl Window {
    fn end(&self) -> u64 {
        self.pos + self.buf.len() as u64
    }
}

type Prefetch = oneshot::Receiver<std::io::Result<Window>>;

/// A partition's cold-read state (only ever touched by its shard).
#[derive(Default)]
pub(crate) struct ReadAhead {
    window: RefCell<Option<Window>>,
    /// The read of the next window: `(segment base, position, result)`.
    pending: RefCell<Option<(i64, u64, Prefetch)>>,
    /// The `O_DIRECT` descriptor of the segment read last.
    file: RefCell<Option<(i64, Rc<File>)>>,
    /// The file system refused `O_DIRECT` reads: fetches read through the page cache.
    unsupported: Cell<bool>,
}

/// What a cold read found: the response's pieces (empty when no batch holds the offset).
pub(crate) struct ColdRead {
    pub parts: Vec<Bytes>,
    pub len: usize,
}

const A: u64 = io::DIRECT_ALIGN as u64;

fn corrupt(plan: &ReadPlan, position: u64, reason: String) -> LogError {
    LogError::Corrupt {
        path: plan.path.clone(),
        position,
        reason,
    }
}

impl ReadAhead {
    /// Drops the window, any read in flight and the open descriptor (the log's end moved back,
    /// or the cleaner replaced segments: a new file may now carry the same base).
    pub(crate) fn forget(&self) {
        self.window.borrow_mut().take();
        self.pending.borrow_mut().take();
        self.file.borrow_mut().take();
    }

    /// Reads what a fetch at `offset` returns (at most `max_bytes`, but always the whole first
    /// batch, as KIP-74 asks) with direct reads through the window. `Ok(None)` when direct reads
    /// are not possible here: the caller reads through the page cache instead.
    pub(crate) async fn read(
        &self,
        plan: &ReadPlan,
        offset: i64,
        max_bytes: usize,
        window: usize,
    ) -> Result<Option<ColdRead>, LogError> {
        let Some(file) = self.file_for(plan)? else {
            return Ok(None);
        };
        let window = (window as u64).div_ceil(A).max(1) * A;
        let mut pos = plan.scan_position;
        let first_size = loop {
            if pos >= plan.end_position {
                return Ok(Some(ColdRead {
                    parts: Vec::new(),
                    len: 0,
                }));
            }
            let head = self
                .gather(
                    plan,
                    &file,
                    window,
                    pos,
                    batch::HEADER_SIZE,
                    batch::HEADER_SIZE,
                )
                .await?;
            let head = if head.len() == 1 {
                head.into_iter().next().expect("one part")
            } else {
                Bytes::from(head.concat())
            };
            if head.len() < batch::HEADER_SIZE {
                return Err(corrupt(plan, pos, "short batch header".into()));
            }
            let h =
                batch::BatchHeader::parse(&head).map_err(|e| corrupt(plan, pos, e.to_string()))?;
            if h.last_offset() >= offset {
                break h.size();
            }
            pos += h.size() as u64;
        };
        let len = (plan.end_position - pos).min(max_bytes.max(first_size) as u64) as usize;
        let parts = self.gather(plan, &file, window, pos, len, len).await?;
        let got: usize = parts.iter().map(Bytes::len).sum();
        if got < first_size.min(len) {
            return Err(corrupt(plan, pos, "the segment ends inside a batch".into()));
        }
        self.read_next(plan, &file, window);
        Ok(Some(ColdRead { parts, len: got }))
    }

    /// The segment's `O_DIRECT` read descriptor, opened on its first cold read.
    fn file_for(&self, plan: &ReadPlan) -> Result<Option<Rc<File>>, LogError> {
        if self.unsupported.get() {
            return Ok(None);
        }
        if let Some((base, f)) = self.file.borrow().as_ref() {
            if *base == plan.segment_base {
                return Ok(Some(f.clone()));
            }
        }
        match fs::open_direct_read(&plan.path) {
            Ok(Some(f)) => {
                let f = Rc::new(f);
                *self.file.borrow_mut() = Some((plan.segment_base, f.clone()));
                Ok(Some(f))
            }
            Ok(None) => {
                self.unsupported.set(true);
                Ok(None)
            }
            Err(e) => Err(LogError::io(&plan.path, e)),
        }
    }

    /// The window's bytes from `pos` to at most `end`, if the window holds `pos`.
    fn cached(&self, seg_base: i64, pos: u64, end: u64) -> Option<Bytes> {
        let w = self.window.borrow();
        let w = w.as_ref()?;
        if w.seg_base != seg_base || pos < w.pos || pos >= w.end() {
            return None;
        }
        let to = end.min(w.end());
        Some(w.buf.slice((pos - w.pos) as usize..(to - w.pos) as usize))
    }

    /// The segment's bytes `[pos, pos + len)` (fewer only where the file ends) as slices of
    /// successive windows; stops early, once it has `min` bytes, rather than read a window more.
    async fn gather(
        &self,
        plan: &ReadPlan,
        file: &Rc<File>,
        window: u64,
        pos: u64,
        min: usize,
        len: usize,
    ) -> Result<Vec<Bytes>, LogError> {
        let stop = plan.end_position.min(pos + len as u64);
        let mut parts = Vec::new();
        let (mut at, mut got) = (pos, 0usize);
        while at < stop {
            let part = match self.cached(plan.segment_base, at, stop) {
                Some(b) => b,
                None if got >= min => break,
                None => {
                    self.load(plan, file, window, at).await?;
                    match self.cached(plan.segment_base, at, stop) {
                        Some(b) => b,
                        None => break, // the file is shorter than the plan says
                    }
                }
            };
            at += part.len() as u64;
            got += part.len();
            parts.push(part);
        }
        Ok(parts)
    }

    /// Makes the window hold `at`: the read ahead if it does, else a direct read now.
    async fn load(
        &self,
        plan: &ReadPlan,
        file: &Rc<File>,
        window: u64,
        at: u64,
    ) -> Result<(), LogError> {
        // A read ahead of another segment or past `at` (the reader went back) is dropped, so
        // the next one can start.
        let ahead = match self.pending.borrow_mut().take() {
            Some((base, from, rx)) if base == plan.segment_base && from <= at => Some(rx),
            _ => None,
        };
        if let Some(rx) = ahead {
            if let Ok(Ok(w)) = rx.await {
                *self.window.borrow_mut() = Some(w);
                if self.cached(plan.segment_base, at, at + 1).is_some() {
                    return Ok(());
                }
            }
        }
        let w = read_window(
            file,
            plan.segment_base,
            at / A * A,
            window,
            plan.end_position,
        )
        .await
        .map_err(|e| LogError::io(&plan.path, e))?;
        *self.window.borrow_mut() = Some(w);
        Ok(())
    }

    /// Starts reading the window after the current one, when there is more to read, none is in
    /// flight and the shard's budget allows; over budget, the current window goes too.
    fn read_next(&self, plan: &ReadPlan, file: &Rc<File>, window: u64) {
        let limit = WINDOWS_PER_SHARD * window as usize;
        if shard_read_ahead_bytes() > limit {
            self.window.borrow_mut().take();
            self.pending.borrow_mut().take();
            return;
        }
        let next = match self.window.borrow().as_ref() {
            Some(w) if w.seg_base == plan.segment_base && w.end() < plan.end_position => w.end(),
            _ => return,
        };
        if next % A != 0 || self.pending.borrow().is_some() {
            return;
        }
        let (tx, rx) = oneshot::channel();
        *self.pending.borrow_mut() = Some((plan.segment_base, next, rx));
        let (file, base, end) = (file.clone(), plan.segment_base, plan.end_position);
        runtime::spawn(async move {
            let _ = tx.send(read_window(&file, base, next, window, end).await);
        })
        .detach();
    }
}

/// One direct read of `window` bytes at `from` (aligned), cut at the readable `end`.
async fn read_window(
    file: &File,
    seg_base: i64,
    from: u64,
    window: u64,
    end: u64,
) -> std::io::Result<Window> {
    let len = window.min(end.div_ceil(A) * A - from).max(A);
    let held = Held::take(len as usize);
    let buf = io::read_direct(file.as_raw_fd(), from, len as usize).await?;
    let valid = (end.saturating_sub(from) as usize).min(buf.len());
    Ok(Window {
        seg_base,
        pos: from,
        buf: buf.slice(..valid),
        _held: held,
    })
}
