//! Counters and HDR histograms shared by producer, consumer and progress threads.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Latencies are recorded in microseconds, up to an hour, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

pub struct Stats {
    pub started: Instant,
    /// Results count only while this is set (after warm-up, before the end).
    pub measuring: AtomicBool,
    /// Wall clock (µs) when measuring began: records stamped earlier are warm-up.
    pub measure_start_us: AtomicI64,
    pub produced_records: AtomicU64,
    pub produced_bytes: AtomicU64,
    pub consumed_records: AtomicU64,
    pub consumed_bytes: AtomicU64,
    pub in_flight: AtomicI64,
    pub errors: Mutex<BTreeMap<String, u64>>,
    /// Produce acknowledgement latency from each record's intended send time (CO-corrected).
    pub ack_intended: Mutex<Histogram<u64>>,
    /// Produce acknowledgement latency from the actual send of the request.
    pub ack_actual: Mutex<Histogram<u64>>,
    /// End-to-end latency: producer timestamp in the record to its arrival at a consumer.
    pub end_to_end: Mutex<Histogram<u64>>,
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            started: Instant::now(),
            measuring: AtomicBool::new(false),
            measure_start_us: AtomicI64::new(i64::MAX),
            produced_records: AtomicU64::new(0),
            produced_bytes: AtomicU64::new(0),
            consumed_records: AtomicU64::new(0),
            consumed_bytes: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            ack_intended: Mutex::new(new_histogram()),
            ack_actual: Mutex::new(new_histogram()),
            end_to_end: Mutex::new(new_histogram()),
        }
    }

    pub fn measuring(&self) -> bool {
        self.measuring.load(Ordering::Relaxed)
    }

    pub fn error(&self, name: &str, n: u64) {
        *self
            .errors
            .lock()
            .expect("errors lock")
            .entry(name.to_string())
            .or_default() += n;
    }

    /// Starts the measured phase: clears everything counted during warm-up.
    pub fn start_measuring(&self) {
        self.produced_records.store(0, Ordering::Relaxed);
        self.produced_bytes.store(0, Ordering::Relaxed);
        self.consumed_records.store(0, Ordering::Relaxed);
        self.consumed_bytes.store(0, Ordering::Relaxed);
        self.errors.lock().expect("errors lock").clear();
        for h in [&self.ack_intended, &self.ack_actual, &self.end_to_end] {
            h.lock().expect("histogram lock").reset();
        }
        self.measure_start_us.store(now_us(), Ordering::Relaxed);
        self.measuring.store(true, Ordering::Release);
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

/// Percentiles of one histogram, in milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub p9999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        let q = |x: f64| h.value_at_quantile(x) as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            p50_ms: q(0.5),
            p90_ms: q(0.9),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            p9999_ms: q(0.9999),
            max_ms: h.max() as f64 / 1000.0,
            mean_ms: h.mean() / 1000.0,
        }
    }
}
