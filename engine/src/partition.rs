//! A partition on its owning shard: the log plus the appender that group-commits to it.
//!
//! # The append contract
//! [`Partition::append`] returns once the request's batches are *written* (readable, and in the
//! page cache or, in direct mode, on the device: see [`crate::direct`]) and, when the flush policy asks for it (`log.flush.interval.messages`,
//! `log.flush.interval.ms`), *flushed* by an fdatasync that completed successfully. Appends that
//! arrive while a group is being written queue up (bounded by `append_queue_max`) and go out
//! together as the next group: one write at the segment's end (vectored through the page cache,
//! or one block-aligned `O_DIRECT` buffer that then feeds the tail cache), then at most one
//! fdatasync for the whole group, then every producer in the group is answered.
//!
//! A failed write is cut off the file and reported to every producer in the group; a failed
//! fdatasync takes the partition offline, since the kernel may have dropped the dirty pages.

use crate::config::{now_ms, LogConfig};
use crate::direct::DirectWriter;
use crate::error::LogError;
use crate::partition_log::{AppendInfo, PartitionLog, PreparedAppend};
use crate::read_ahead::ReadAhead;
use crate::runtime::{self, io};
use bytes::Bytes;
use futures_channel::oneshot;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

/// Where an append comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// A producer.
    Client,
    /// Batches copied from the leader (offsets kept), not produced here.
    Replica,
    /// A transaction coordinator's markers (control batches allowed).
    Coordinator,
}

struct PendingAppend {
    records: Bytes,
    origin: Origin,
    reply: oneshot::Sender<Result<AppendInfo, LogError>>,
}

/// A readable region of a segment file, ready to be copied or spliced to a socket.
#[derive(Clone, Debug)]
pub struct FileRegion {
    pub file: Rc<std::fs::File>,
    pub position: u64,
    pub len: usize,
}

/// Where a read's bytes are: a region of a segment file, or buffers of the tail cache (direct
/// mode), in order.
#[derive(Clone, Debug)]
pub enum Region {
    File(FileRegion),
    Memory { parts: Vec<Bytes>, len: usize },
}

impl Region {
    pub fn len(&self) -> usize {
        match self {
            Region::File(f) => f.len,
            Region::Memory { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes themselves (a copy from the file, or the cached buffers joined): for readers
    /// that parse what they read (the group coordinator loading offsets, tests).
    pub async fn read_all(&self) -> std::io::Result<Bytes> {
        match self {
            Region::File(f) => {
                use std::os::fd::AsRawFd;
                Ok(Bytes::from(
                    io::read_at(f.file.as_raw_fd(), f.position, f.len).await?,
                ))
            }
            Region::Memory { parts, .. } if parts.len() == 1 => Ok(parts[0].clone()),
            Region::Memory { parts, .. } => Ok(Bytes::from(parts.concat())),
        }
    }
}

/// What a fetch of one partition sees.
#[derive(Debug)]
pub struct ReadResult {
    pub high_watermark: i64,
    /// The last stable offset (KIP-98): the high watermark unless a transaction is open.
    pub last_stable_offset: i64,
    /// For a `read_committed` read: the aborted transactions with records in what it returns.
    pub aborted: Vec<crate::AbortedTxn>,
    pub log_start_offset: i64,
    pub region: Option<Region>,
}

/// A partition's offsets: log start, log end (the next offset) and high watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offsets {
    pub log_start: i64,
    pub log_end: i64,
    pub high_watermark: i64,
}

/// Traffic counters of one partition, for metrics (plain cells: only the owning shard updates
/// them).
#[derive(Debug, Default)]
pub struct PartitionCounters {
    /// Bytes of record batches appended (as stored).
    pub bytes_in: Cell<u64>,
    /// Records appended.
    pub records_in: Cell<u64>,
    /// Appends refused or failed (validation, queue full, I/O).
    pub append_errors: Cell<u64>,
    /// Bytes of log handed to fetches (before a response's own size limit trims them).
    pub bytes_out: Cell<u64>,
    /// Fetch reads of this partition that returned data.
    pub reads: Cell<u64>,
}

fn add(c: &Cell<u64>, n: u64) {
    c.set(c.get().wrapping_add(n));
}

pub struct Partition {
    /// Private to the engine: the server asks the partition (the methods below) and the shard's
    /// [`crate::log_manager`], never the log's internals.
    pub(crate) log: RefCell<PartitionLog>,
    pub counters: PartitionCounters,
    queue: RefCell<VecDeque<PendingAppend>>,
    appender_running: Cell<bool>,
    /// Position in the active segment up to which writeback was started.
    writeback_from: Cell<(i64, u64)>,
    /// Wakes fetches parked on this partition (long poll) when the high watermark moves.
    watchers: RefCell<Vec<std::task::Waker>>,
    /// Wakes a truncation waiting for the appender to go idle.
    idle_waiters: RefCell<Vec<std::task::Waker>>,
    /// Direct mode: the partial block at the segment's end and the tail cache.
    direct: DirectWriter,
    /// Direct mode: the window cold reads go through.
    read_ahead: ReadAhead,
}

/// Most appends taken into one group (bounded by iovec count: two buffers per batch).
const GROUP_MAX: usize = 256;

impl Partition {
    pub fn new(log: PartitionLog) -> Rc<Partition> {
        crate::tail_cache::set_shard_budget(log.config.tail_cache_bytes as usize);
        Rc::new(Partition {
            direct: DirectWriter::default(),
            read_ahead: ReadAhead::default(),
            log: RefCell::new(log),
            queue: RefCell::new(VecDeque::new()),
            appender_running: Cell::new(false),
            writeback_from: Cell::new((i64::MIN, 0)),
            watchers: RefCell::new(Vec::new()),
            idle_waiters: RefCell::new(Vec::new()),
            counters: PartitionCounters::default(),
        })
    }

    /// The log's three offsets, read together.
    pub fn offsets(&self) -> Offsets {
        let log = self.log.borrow();
        Offsets {
            log_start: log.log_start_offset(),
            log_end: log.log_end_offset(),
            high_watermark: log.high_watermark(),
        }
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.borrow().log_start_offset()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log.borrow().log_end_offset()
    }

    pub fn high_watermark(&self) -> i64 {
        self.log.borrow().high_watermark()
    }

    /// The largest record timestamp in the log (ListOffsets -3), if any record has one.
    pub fn max_timestamp(&self) -> Option<i64> {
        self.log.borrow().max_timestamp()
    }

    /// The leader epoch of the last batch (Fetch's `last_fetched_epoch`).
    pub fn latest_epoch(&self) -> i32 {
        self.log.borrow().latest_epoch()
    }

    /// OffsetForLeaderEpoch's answer `(epoch, end offset)` from the leader-epoch cache. A log
    /// that never had its epochs recorded (a single broker's) is all one epoch, its own.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let log = self.log.borrow();
        if log.epochs().is_empty() && !log.is_replicated() {
            return if epoch >= 0 && epoch == log.leader_epoch() {
                (epoch, log.log_end_offset())
            } else {
                (-1, -1)
            };
        }
        log.end_offset_for_epoch(epoch)
    }

    /// Starts leader epoch `epoch` at the log end (this replica became leader).
    pub fn begin_leader_epoch(&self, epoch: i32) -> Result<(), LogError> {
        self.log.borrow_mut().begin_leader_epoch(epoch)
    }

    pub fn is_replicated(&self) -> bool {
        self.log.borrow().is_replicated()
    }

    /// Writes the high watermark checkpoint (replicated logs only; a no-op otherwise).
    pub fn checkpoint_high_watermark(&self) -> Result<(), LogError> {
        let log = self.log.borrow();
        if !log.is_replicated() {
            return Ok(());
        }
        log.checkpoint_high_watermark()
    }

    /// Replaces the log's topic configuration (AlterConfigs); it applies from the next append,
    /// roll or retention check.
    pub fn set_config(&self, config: LogConfig) {
        self.log.borrow_mut().config = config;
    }

    /// Size on disk and segment count, for the metrics.
    pub fn storage(&self) -> (u64, usize) {
        let log = self.log.borrow();
        (log.size_bytes(), log.segment_count())
    }

    /// Engine tests and benches reach the log itself; the server must not (scripts/check_limits.py
    /// refuses the call outside the engine).
    #[doc(hidden)]
    pub fn log_for_tests(&self) -> &RefCell<PartitionLog> {
        &self.log
    }

    /// Appends a produce request's record set; see the module's contract.
    pub async fn append(self: &Rc<Self>, records: Bytes) -> Result<AppendInfo, LogError> {
        self.enqueue(records).await
    }

    /// Appends batches fetched from the leader, keeping their offsets and leader epochs.
    pub async fn append_replica(self: &Rc<Self>, records: Bytes) -> Result<AppendInfo, LogError> {
        self.enqueue_as(records, Origin::Replica).await
    }

    /// Appends a transaction marker (a control batch) as the transaction coordinator's
    /// WriteTxnMarkers does; clients' produce requests may not carry control batches.
    pub async fn append_marker(self: &Rc<Self>, records: Bytes) -> Result<AppendInfo, LogError> {
        self.enqueue_as(records, Origin::Coordinator).await
    }

    /// The last stable offset (`read_committed` consumers read below it).
    pub fn last_stable_offset(&self) -> i64 {
        self.log.borrow_mut().last_stable_offset()
    }

    /// Whether a producer has a transaction open here under an epoch.
    pub fn in_transaction(&self, producer_id: i64, epoch: i16) -> bool {
        self.log.borrow().in_transaction(producer_id, epoch)
    }

    /// Transactions open on this partition.
    pub fn open_transactions(&self) -> usize {
        self.log.borrow().open_transactions()
    }

    /// Idempotent and transactional producers known here (DescribeProducers).
    pub fn producers(&self) -> Vec<crate::ProducerInfo> {
        self.log.borrow().producers()
    }

    /// Aborted transactions with records in `[from, upto)` (a `read_committed` fetch's list).
    pub fn aborted_transactions(&self, from: i64, upto: i64) -> Vec<crate::AbortedTxn> {
        self.log.borrow().aborted_transactions(from, upto)
    }

    /// Raises the high watermark and wakes the fetches and producers waiting on it.
    pub fn set_high_watermark(&self, hw: i64) -> bool {
        let moved = self.log.borrow_mut().raise_high_watermark(hw);
        if moved {
            self.notify_watchers();
        }
        moved
    }

    /// Waits until no append is queued or being written, then truncates the log at `offset`
    /// (a follower removing what its leader does not have).
    pub async fn truncate_to(self: &Rc<Self>, offset: i64) -> Result<(), LogError> {
        self.appends_idle().await;
        self.forget_tail();
        let r = self.log.borrow_mut().truncate_to(offset);
        self.notify_watchers();
        r
    }

    /// Resolves once no append is queued or being written (a follower about to lead waits for
    /// the batches it fetched to land before its epoch starts at the log end).
    pub async fn appends_idle(self: &Rc<Self>) {
        std::future::poll_fn(|cx| {
            if !self.appender_running.get() && self.queue.borrow().is_empty() {
                return std::task::Poll::Ready(());
            }
            self.idle_waiters.borrow_mut().push(cx.waker().clone());
            std::task::Poll::Pending
        })
        .await;
    }

    /// DeleteRecords: moves the log start to `offset` (-1: the high watermark) and deletes the
    /// segments wholly below it; returns the new log start.
    pub fn delete_records(&self, offset: i64) -> Result<i64, LogError> {
        self.log.borrow_mut().delete_records_to(offset, now_ms())
    }

    /// A follower takes its leader's log start (bounded by its own high watermark).
    pub fn follow_log_start(&self, leader_log_start: i64) -> Result<(), LogError> {
        self.log
            .borrow_mut()
            .follow_log_start(leader_log_start, now_ms())
    }

    /// A follower behind its leader's log start: waits until no append is in flight, then empties
    /// the log and starts it at `offset`.
    pub async fn reset_to(self: &Rc<Self>, offset: i64) -> Result<(), LogError> {
        self.appends_idle().await;
        self.forget_tail();
        let r = self.log.borrow_mut().reset_to(offset);
        self.notify_watchers();
        r
    }

    /// What the cleaner would take from this log now (see [`PartitionLog::clean_plan`]).
    pub fn clean_plan(&self, now_ms: i64) -> Option<crate::partition_log::CleanPlan> {
        self.log.borrow().clean_plan(now_ms)
    }

    /// `(first dirty offset, dirty bytes, clean bytes)` of a compacted log, for metrics.
    pub fn cleaner_status(&self) -> Option<(i64, u64, u64)> {
        self.log.borrow().cleaner_status()
    }

    /// Installs segments the cleaner wrote (see [`PartitionLog::install_cleaned`]); cached reads
    /// of the old segments are dropped.
    pub fn install_cleaned(
        &self,
        groups: Vec<crate::partition_log::CleanedGroup>,
        end: i64,
    ) -> Result<bool, LogError> {
        let r = self.log.borrow_mut().install_cleaned(groups, end);
        if matches!(r, Ok(true)) {
            self.direct.clear_cache();
            self.read_ahead.forget();
        }
        r
    }

    /// Drops the direct-mode tail state and cache (the log's end moved back, or a write failed).
    fn forget_tail(&self) {
        self.direct.forget();
        self.read_ahead.forget();
    }

    /// Bytes of this partition's tail cache.
    pub fn cached_bytes(&self) -> usize {
        self.direct.cached_bytes()
    }

    /// Queues `records` behind every append queued before (synchronously: the order of calls is
    /// the order in the log) and returns the future of its outcome. A connection that pipelines
    /// produce requests queues the next one while the previous one waits for its group commit,
    /// so one producer's requests can share an fdatasync.
    pub fn enqueue(
        self: &Rc<Self>,
        records: Bytes,
    ) -> impl std::future::Future<Output = Result<AppendInfo, LogError>> + 'static {
        self.enqueue_as(records, Origin::Client)
    }

    fn enqueue_as(
        self: &Rc<Self>,
        records: Bytes,
        origin: Origin,
    ) -> impl std::future::Future<Output = Result<AppendInfo, LogError>> + 'static {
        let (tx, rx) = oneshot::channel();
        let queued = {
            let mut q = self.queue.borrow_mut();
            if q.len() >= self.log.borrow().config.append_queue_max {
                add(&self.counters.append_errors, 1);
                false
            } else {
                q.push_back(PendingAppend {
                    records,
                    origin,
                    reply: tx,
                });
                true
            }
        };
        if queued && !self.appender_running.replace(true) {
            let me = self.clone();
            runtime::spawn(async move { me.run_appender().await }).detach();
        }
        async move {
            if !queued {
                return Err(LogError::QueueFull);
            }
            rx.await.unwrap_or(Err(LogError::Offline))
        }
    }

    async fn run_appender(self: Rc<Self>) {
        loop {
            let batch: Vec<PendingAppend> = {
                let mut q = self.queue.borrow_mut();
                let n = q.len().min(GROUP_MAX);
                q.drain(..n).collect()
            };
            if batch.is_empty() {
                self.appender_running.set(false);
                for w in self.idle_waiters.borrow_mut().drain(..) {
                    w.wake();
                }
                return;
            }
            self.write_group(batch).await;
        }
    }

    async fn write_group(self: &Rc<Self>, pending: Vec<PendingAppend>) {
        let now = now_ms();
        let mut prepared: Vec<(PreparedAppend, oneshot::Sender<_>)> =
            Vec::with_capacity(pending.len());
        let mut incoming = 0u64;
        let mut deferred: Vec<PendingAppend> = Vec::new();
        let mut roll_fd = None;
        {
            let mut log = self.log.borrow_mut();
            for p in pending {
                if !deferred.is_empty() {
                    deferred.push(p);
                    continue;
                }
                let size = p.records.len() as u64;
                if log.needs_roll(incoming + size, now) {
                    if prepared.is_empty() {
                        roll_fd = Some(log.write_target().0);
                    }
                    deferred.push(p);
                    continue;
                }
                let prepared_one = match p.origin {
                    Origin::Replica => log.prepare_replica_append(&p.records),
                    Origin::Client => log.prepare_append(&p.records, now),
                    Origin::Coordinator => log.prepare_append_from(&p.records, now, true),
                };
                match prepared_one {
                    Ok(pa) => {
                        incoming += pa.bytes;
                        prepared.push((pa, p.reply));
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "append refused");
                        add(&self.counters.append_errors, 1);
                        let _ = p.reply.send(Err(e));
                    }
                }
            }
        }
        if !deferred.is_empty() {
            // Put the rest back in front, in order, for the next group.
            let mut q = self.queue.borrow_mut();
            for p in deferred.into_iter().rev() {
                q.push_front(p);
            }
        }
        if let Some(fd) = roll_fd {
            // Roll first: flush the full segment, then start a new one.
            let res = io::fdatasync(fd).await;
            let mut log = self.log.borrow_mut();
            match res {
                Ok(()) => {
                    if let Err(e) = log.roll(now) {
                        tracing::error!(error = %e, "segment roll failed; partition goes offline");
                        log.fail_flush();
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, dir = %log.dir().display(), "fdatasync failed at roll; partition goes offline");
                    log.fail_flush();
                }
            }
            return;
        }
        if prepared.is_empty() {
            return;
        }
        let (fd, position) = self.log.borrow().write_target();
        let direct = self.log.borrow_mut().direct_target();
        let bufs: Vec<Bytes> = prepared
            .iter()
            .flat_map(|(p, _)| p.bufs.iter().cloned())
            .collect();
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if direct.is_none() {
            // A page-cache write (buffered mode, or direct I/O unavailable for this group): the
            // partial block kept for the next direct write is stale from now on.
            self.direct.forget_block();
        }
        let written = match &direct {
            None => io::write_all(fd, bufs, Some(position)).await.map(|_| None),
            Some(t) => self.direct.write(t, bufs, total).await.map(Some),
        };
        let staged = match written {
            Ok(staged) => staged,
            Err(e) => return self.fail_group(&e, prepared),
        };
        let group: Vec<PreparedAppend>;
        let replies: Vec<_>;
        {
            (group, replies) = prepared.into_iter().unzip();
            self.log.borrow_mut().commit_write(&group);
        }
        if let (Some(t), Some(buf)) = (&direct, staged) {
            self.direct.cache_group(t, &group, buf, total);
        }
        let (flush, end, size) = {
            let log = self.log.borrow();
            (
                log.should_flush(now_ms()),
                log.log_end_offset(),
                position + total as u64,
            )
        };
        let mut failed = false;
        if flush {
            match io::fdatasync(fd).await {
                Ok(()) => self.log.borrow_mut().mark_flushed(end, size, now_ms()),
                Err(e) => {
                    let mut log = self.log.borrow_mut();
                    tracing::error!(error = %e, dir = %log.dir().display(), "fdatasync failed; partition goes offline");
                    log.fail_flush();
                    failed = true;
                }
            }
        }
        if !flush && direct.is_none() {
            self.kick_writeback(position + total as u64);
        }
        let log_start = self.log.borrow().log_start_offset();
        for (p, reply) in group.iter().zip(replies) {
            let r = if failed {
                add(&self.counters.append_errors, 1);
                Err(LogError::Offline)
            } else {
                add(&self.counters.bytes_in, p.bytes);
                add(&self.counters.records_in, p.records);
                Ok(AppendInfo {
                    base_offset: p.base_offset,
                    last_offset: p.last_offset,
                    log_append_time: p.log_append_time,
                    log_start_offset: log_start,
                })
            };
            let _ = reply.send(r);
        }
        self.notify_watchers();
    }

    /// A group's write failed: cut what reached the file and tell every producer in it.
    fn fail_group(
        &self,
        e: &std::io::Error,
        prepared: Vec<(
            PreparedAppend,
            oneshot::Sender<Result<AppendInfo, LogError>>,
        )>,
    ) {
        self.forget_tail();
        let mut log = self.log.borrow_mut();
        tracing::error!(error = %e, dir = %log.dir().display(), "log write failed");
        log.abort_write();
        add(&self.counters.append_errors, prepared.len() as u64);
        for (_, reply) in prepared {
            let _ = reply.send(Err(LogError::io(
                log.dir(),
                std::io::Error::from_raw_os_error(e.raw_os_error().unwrap_or(libc::EIO)),
            )));
        }
    }

    /// Starts writeback of the active segment's bytes written since the last kick, once there
    /// are `writeback_bytes` of them. Runs as its own task so acknowledgements never wait for it.
    fn kick_writeback(&self, end: u64) {
        let (threshold, base, file) = {
            let log = self.log.borrow();
            let a = log.active();
            (log.config.writeback_bytes, a.base_offset, a.file.clone())
        };
        if threshold == 0 {
            return;
        }
        let (seg, from) = self.writeback_from.get();
        let from = if seg == base { from } else { 0 };
        if end < from + threshold {
            if seg != base {
                self.writeback_from.set((base, 0));
            }
            return;
        }
        self.writeback_from.set((base, end));
        let len = (end - from).min(u64::from(u32::MAX)) as u32;
        runtime::spawn(async move {
            use std::os::fd::AsRawFd;
            if let Err(e) = io::writeback(file.as_raw_fd(), from, len).await {
                tracing::debug!(error = %e, "sync_file_range failed (writeback is only a hint)");
            }
        })
        .detach();
    }

    /// Wakes every waiter (fetches, acks=all producers): data, high watermark or role changed.
    pub fn notify_watchers(&self) {
        for w in self.watchers.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Registers a waker to be woken when new data becomes readable.
    pub fn watch(&self, waker: &std::task::Waker) {
        let mut w = self.watchers.borrow_mut();
        if !w.iter().any(|x| x.will_wake(waker)) && w.len() < 4096 {
            w.push(waker.clone());
        }
    }

    /// Flushes whatever is written but not yet flushed (the `log.flush.interval.ms` path).
    pub async fn flush_if_due(self: &Rc<Self>, force: bool) -> Result<(), LogError> {
        let (due, fd, end, size) = {
            let log = self.log.borrow();
            let a = log.active();
            (
                (force && log.log_end_offset() > log.flushed_offset())
                    || log.should_flush(now_ms()),
                a.fd(),
                log.log_end_offset(),
                a.size,
            )
        };
        if !due || self.appender_running.get() {
            return Ok(());
        }
        match io::fdatasync(fd).await {
            Ok(()) => {
                self.log.borrow_mut().mark_flushed(end, size, now_ms());
                Ok(())
            }
            Err(e) => {
                let mut log = self.log.borrow_mut();
                log.fail_flush();
                Err(LogError::io(log.dir(), e))
            }
        }
    }
}

mod read;
