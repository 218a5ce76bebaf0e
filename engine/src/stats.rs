//! Per-shard counters and latency histograms, for the broker's metrics endpoint.
//!
//! Everything here is thread-local and updated with plain `Cell`s: a shard only ever touches its
//! own counters, so the hot path pays an add, never an atomic or a lock. A reader takes a
//! [`ShardStats`] snapshot on the shard itself (the broker asks each shard with `call_on`).

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

/// Upper bounds of the latency buckets, in microseconds (Prometheus `le`); one more bucket
/// counts everything above the last bound.
pub const BUCKETS_US: [u64; 16] = [
    25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 5_000_000,
];

/// A fixed-bucket latency histogram (Prometheus's cumulative form is computed when rendered).
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    /// Count per bucket; the last one is "above every bound".
    pub counts: [u64; BUCKETS_US.len() + 1],
    pub sum_us: u64,
    pub count: u64,
}

impl Histogram {
    pub fn record(&mut self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        let i = BUCKETS_US.partition_point(|&b| b < us);
        self.counts[i] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
        self.count += 1;
    }

    /// Adds another histogram's counts into this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
        self.count += other.count;
    }
}

/// A snapshot of one shard's engine counters.
#[derive(Clone, Debug, Default)]
pub struct ShardStats {
    /// Seconds the shard's thread spent waiting for I/O with nothing to run.
    pub idle_seconds: f64,
    /// Seconds since the shard started.
    pub uptime_seconds: f64,
    /// Ops handed to the reactor (socket, file, fsync, splice, timers).
    pub ops_submitted: u64,
    /// Ops whose completion was reaped.
    pub ops_completed: u64,
    /// Ops in flight now.
    pub ops_in_flight: u64,
    /// Calls into the kernel to submit and reap (`io_uring_enter`, or `poll` on the portable
    /// backend).
    pub reactor_turns: u64,
    /// Runnable tasks waiting in the run queue now.
    pub run_queue_depth: u64,
    /// Cross-shard messages waiting in the inbox now.
    pub inbox_depth: u64,
    /// Positioned (log) writes, from submission to completion.
    pub log_write: Histogram,
    /// fdatasync calls, from submission to completion.
    pub log_flush: Histogram,
}

struct Counters {
    started: Instant,
    idle: Cell<Duration>,
    ops_submitted: Cell<u64>,
    ops_completed: Cell<u64>,
    reactor_turns: Cell<u64>,
    log_write: RefCell<Histogram>,
    log_flush: RefCell<Histogram>,
}

thread_local! {
    static COUNTERS: Counters = Counters {
        started: Instant::now(),
        idle: Cell::new(Duration::ZERO),
        ops_submitted: Cell::new(0),
        ops_completed: Cell::new(0),
        reactor_turns: Cell::new(0),
        log_write: RefCell::new(Histogram::default()),
        log_flush: RefCell::new(Histogram::default()),
    };
}

fn bump(c: &Cell<u64>) {
    c.set(c.get().wrapping_add(1));
}

pub(crate) fn op_submitted() {
    COUNTERS.with(|c| bump(&c.ops_submitted));
}

pub(crate) fn op_completed() {
    COUNTERS.with(|c| bump(&c.ops_completed));
}

pub(crate) fn reactor_turn(idle_wait: Option<Duration>) {
    COUNTERS.with(|c| {
        bump(&c.reactor_turns);
        if let Some(d) = idle_wait {
            c.idle.set(c.idle.get() + d);
        }
    });
}

pub(crate) fn log_write(d: Duration) {
    COUNTERS.with(|c| c.log_write.borrow_mut().record(d));
}

pub(crate) fn log_flush(d: Duration) {
    COUNTERS.with(|c| c.log_flush.borrow_mut().record(d));
}

/// This thread's counters (zeros on a thread that never ran a shard). Queue depths are filled in
/// by the runtime, which owns the queues.
pub fn snapshot() -> ShardStats {
    COUNTERS.with(|c| ShardStats {
        idle_seconds: c.idle.get().as_secs_f64(),
        uptime_seconds: c.started.elapsed().as_secs_f64(),
        ops_submitted: c.ops_submitted.get(),
        ops_completed: c.ops_completed.get(),
        reactor_turns: c.reactor_turns.get(),
        log_write: c.log_write.borrow().clone(),
        log_flush: c.log_flush.borrow().clone(),
        ..ShardStats::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_take_values_at_their_bound() {
        let mut h = Histogram::default();
        h.record(Duration::from_micros(25));
        h.record(Duration::from_micros(26));
        h.record(Duration::from_secs(60));
        assert_eq!(h.counts[0], 1);
        assert_eq!(h.counts[1], 1);
        assert_eq!(h.counts[BUCKETS_US.len()], 1);
        assert_eq!(h.count, 3);
        assert_eq!(h.sum_us, 25 + 26 + 60_000_000);
        let mut m = Histogram::default();
        m.merge(&h);
        m.merge(&h);
        assert_eq!(m.count, 6);
        assert_eq!(m.counts[1], 2);
    }
}
