//! Fuzz targets, shared by the `cargo fuzz` harness in `fuzz/` (coverage-guided, nightly) and by
//! `server/tests/fuzz_smoke.rs` (seeded mutations of the corpus on stable, in every CI run).
//!
//! Each target must return normally for any input: errors are answers, never panics, hangs or
//! allocations sized by an unchecked length field.

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::handlers;
use bytes::Bytes;
use ringlet_engine::runtime::{self, BackendChoice};
use ringlet_engine::{LogConfig, PartitionLog};
use ringlet_format::batch;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A one-shard broker in `dir` and a runtime to drive requests through it.
pub struct RequestTarget {
    broker: Arc<Broker>,
}

impl RequestTarget {
    pub fn new(dir: &Path) -> RequestTarget {
        let mut props = BTreeMap::new();
        props.insert("log.dirs".to_string(), dir.display().to_string());
        props.insert("num.io.threads".to_string(), "1".to_string());
        props.insert("offsets.topic.num.partitions".to_string(), "1".to_string());
        props.insert("ringlet.io.backend".to_string(), "portable".to_string());
        let (config, _) = BrokerConfig::from_properties(&props).expect("fuzz broker config");
        let broker = Arc::new(Broker::new(config).expect("fuzz broker"));
        // Long polls (a fetch may ask to wait 5 minutes) answer at once, as during shutdown:
        // the target is decoding and handling, not waiting.
        broker
            .shutting_down
            .store(true, std::sync::atomic::Ordering::Release);
        RequestTarget { broker }
    }

    /// Feeds a batch of request frames (without their size prefix) through the dispatcher on a
    /// one-shard runtime. Frames that make the broker close the connection are fine; panics are
    /// not.
    pub fn run(&self, frames: Vec<Vec<u8>>) {
        let broker = self.broker.clone();
        runtime::block_on(BackendChoice::Portable(None), async move {
            broker
                .open_local_partitions()
                .expect("fuzz broker partitions");
            for f in frames {
                let _ = handlers::dispatch(&broker, Bytes::from(f), "fuzz").await;
            }
            // The partition map is thread-local and outlives this runtime: empty it so that
            // files do not pile up run after run.
            ringlet_engine::log_manager::close_all();
        })
        .expect("fuzz runtime");
    }
}

/// Record-batch validation: the header parse, the CRC and every record's framing.
pub fn batch_target(data: &[u8]) {
    if let Ok(h) = batch::validate(data) {
        // What validation accepted must be self-consistent.
        assert_eq!(h.size(), data.len());
        assert!(h.record_count >= 0);
    }
    let _ = batch::BatchHeader::parse(data);
}

/// Recovery: `data` as the only segment of a log that was not shut down cleanly; opening it must
/// keep a valid prefix (or nothing) and the log must then take appends and serve reads.
pub fn recovery_target(dir: &Path, data: &[u8], index: &[u8]) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("fuzz dir");
    std::fs::write(dir.join("00000000000000000000.log"), data).expect("segment");
    std::fs::write(dir.join("00000000000000000000.index"), index).expect("index");
    let dir: PathBuf = dir.to_path_buf();
    runtime::block_on(BackendChoice::Portable(None), async move {
        let log = match PartitionLog::open(&dir, LogConfig::default(), false) {
            Ok(l) => l,
            Err(_) => return, // refused (e.g. an inconsistent file): an answer, not a crash
        };
        log.check_invariants();
        let end = log.log_end_offset();
        let p = ringlet_engine::Partition::new(log);
        for off in [0, end / 2, end.saturating_sub(1)] {
            let _ = p.read(off, 1 << 20).await;
        }
        let b = batch::build_batch(&[b"after recovery"], ringlet_engine::config::now_ms());
        let info = p
            .append(Bytes::from(b))
            .await
            .expect("a recovered log takes appends");
        assert_eq!(info.base_offset, end);
    })
    .expect("fuzz runtime");
}
