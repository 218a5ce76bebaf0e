//! Seeded model-based test of the partition log: random appends, reads, retention, flushes, clean
//! restarts and crashes (unflushed bytes dropped, the last write torn at a random byte, indexes
//! lost), checked against an in-memory model, on every I/O backend. A failure prints its seed;
//! rerun one with `RINGLET_MODEL_SEED=<seed>`.

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ringlet_engine::runtime::{self, BackendChoice, FaultConfig, RuntimeConfig};
use ringlet_engine::{LogConfig, LogError, Partition, PartitionLog};
use ringlet_format::batch;
use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Batches the model knows, by base offset, with their bytes as stored.
#[derive(Default)]
struct Model {
    batches: BTreeMap<i64, Vec<u8>>,
    log_start: i64,
    end: i64,
}

impl Model {
    fn truncate(&mut self, end: i64) {
        self.batches.retain(|&b, _| b < end);
        self.end = end;
    }
}

fn temp_dir(tag: &str, seed: u64) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ringlet-model-{}-{tag}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config(rng: &mut StdRng) -> LogConfig {
    LogConfig {
        segment_bytes: rng.gen_range(300..4000),
        index_interval_bytes: rng.gen_range(50..600),
        flush_interval_messages: if rng.gen_bool(0.5) { 1 } else { u64::MAX },
        retention_ms: -1,
        ..LogConfig::default()
    }
}

fn random_batch(rng: &mut StdRng) -> Vec<u8> {
    let n = rng.gen_range(1..5);
    let values: Vec<Vec<u8>> = (0..n)
        .map(|_| {
            let len = rng.gen_range(0..120);
            (0..len).map(|_| rng.gen()).collect()
        })
        .collect();
    let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
    batch::build_batch(&refs, 1_700_000_000_000 + rng.gen_range(0..1000))
}

/// Drops what a crash may lose: each segment keeps its flushed bytes plus a random prefix of the
/// rest; index files may vanish.
fn crash(log: &PartitionLog, rng: &mut StdRng) {
    for (path, size, flushed) in log.segment_files() {
        let keep = if size > flushed {
            rng.gen_range(flushed..=size)
        } else {
            size
        };
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(keep).unwrap();
        if rng.gen_bool(0.3) {
            let _ = std::fs::remove_file(path.with_extension("index"));
        }
        if rng.gen_bool(0.1) && keep > 0 {
            // Garbage where a torn write left a hole.
            let at = rng.gen_range(flushed..=keep.max(flushed));
            if at < keep {
                f.write_at(&[0xAB], at).unwrap();
            }
        }
    }
}

async fn verify_read(p: &Rc<Partition>, model: &Model, offset: i64, seed: u64) {
    let r = p
        .read(offset, 1 + (offset.unsigned_abs() as usize * 37) % 3000)
        .await;
    if offset < model.log_start || offset > model.end {
        assert!(
            matches!(r, Err(LogError::OffsetOutOfRange { .. })),
            "seed {seed}: read {offset} should be out of range"
        );
        return;
    }
    let r = r.unwrap_or_else(|e| panic!("seed {seed}: read {offset}: {e}"));
    assert_eq!(r.high_watermark, model.end, "seed {seed}");
    let Some(region) = r.region else {
        assert_eq!(
            offset, model.end,
            "seed {seed}: empty read below the end at {offset}"
        );
        return;
    };
    let bytes = region
        .read_all()
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: read {offset}: {e}"));
    let mut rest = &bytes[..];
    let mut first = true;
    while let Ok(b) = batch::next_batch(rest) {
        let h =
            batch::validate(b).unwrap_or_else(|e| panic!("seed {seed}: served batch invalid: {e}"));
        if first {
            assert!(
                h.base_offset <= offset && offset <= h.last_offset(),
                "seed {seed}: first batch {h:?} misses {offset}"
            );
            first = false;
        }
        let want = model
            .batches
            .get(&h.base_offset)
            .unwrap_or_else(|| panic!("seed {seed}: batch at {} not in model", h.base_offset));
        assert_eq!(b, &want[..], "seed {seed}: batch {} differs", h.base_offset);
        rest = &rest[b.len()..];
    }
    assert!(
        !first,
        "seed {seed}: a read at {offset} returned no whole batch"
    );
}

/// Opens the log; under injected write faults (which reach its checkpoint writes too) an open
/// may fail with an I/O error, and is tried again.
fn open(dir: &Path, cfg: &LogConfig, clean: bool, faults: bool, seed: u64) -> PartitionLog {
    for _ in 0..100 {
        match PartitionLog::open(dir, cfg.clone(), clean) {
            Ok(log) => return log,
            Err(LogError::Io { .. }) if faults => continue,
            Err(e) => panic!("seed {seed}: open failed: {e}"),
        }
    }
    panic!("seed {seed}: open kept failing");
}

async fn run_sequence(seed: u64, dir: &Path, allow_write_faults: bool) {
    let mut rng = StdRng::seed_from_u64(seed);
    let cfg = config(&mut rng);
    let mut log = open(dir, &cfg, true, allow_write_faults, seed);
    let mut model = Model::default();
    let mut p = Partition::new(log);
    let ops = rng.gen_range(20..60);
    for _ in 0..ops {
        match rng.gen_range(0..100) {
            0..=54 => {
                let mut b = random_batch(&mut rng);
                match p.append(Bytes::from(b.clone())).await {
                    Ok(info) => {
                        assert_eq!(
                            info.base_offset, model.end,
                            "seed {seed}: offsets must be dense"
                        );
                        b[0..8].copy_from_slice(&info.base_offset.to_be_bytes());
                        model.end = info.last_offset + 1;
                        model.batches.insert(info.base_offset, b);
                    }
                    Err(LogError::Io { .. }) if allow_write_faults => {}
                    Err(LogError::Offline) if allow_write_faults => {
                        // A failed roll (its index or checkpoint write) takes the log offline;
                        // restart it, as the broker would be.
                        drop(p);
                        log = open(dir, &cfg, false, allow_write_faults, seed);
                        assert_eq!(
                            log.log_end_offset(),
                            model.end,
                            "seed {seed}: restart lost data"
                        );
                        p = Partition::new(log);
                    }
                    Err(e) => panic!("seed {seed}: append failed: {e}"),
                }
            }
            55..=74 => {
                let off = rng.gen_range(model.log_start.saturating_sub(2)..=model.end + 2);
                verify_read(&p, &model, off, seed).await;
            }
            75..=79 => {
                let retention = rng.gen_range(0..3000);
                let mut log = p.log_for_tests().borrow_mut();
                log.config.retention_bytes = retention;
                log.apply_retention(0).unwrap();
                log.config.retention_bytes = -1;
                model.log_start = log.log_start_offset();
                let start = model.log_start;
                model.batches.retain(|&b, _| b >= start);
            }
            80..=84 => {
                p.flush_if_due(true).await.unwrap();
            }
            85..=89 => {
                // A close whose checkpoint write fails is an unclean stop: recovery runs.
                let closed = match p.log_for_tests().borrow_mut().close() {
                    Ok(()) => true,
                    Err(LogError::Io { .. }) if allow_write_faults => false,
                    Err(e) => panic!("seed {seed}: close failed: {e}"),
                };
                drop(p);
                log = open(dir, &cfg, closed, allow_write_faults, seed);
                assert_eq!(
                    log.log_end_offset(),
                    model.end,
                    "seed {seed}: clean restart lost data"
                );
                p = Partition::new(log);
            }
            _ => {
                let flushed = p.log_for_tests().borrow().flushed_offset();
                crash(&p.log_for_tests().borrow(), &mut rng);
                drop(p);
                log = open(dir, &cfg, false, allow_write_faults, seed);
                let end = log.log_end_offset();
                assert!(
                    end >= flushed,
                    "seed {seed}: recovery lost flushed data: end {end} < flushed {flushed}"
                );
                assert!(end <= model.end, "seed {seed}: recovery invented data");
                assert!(
                    end == model.end || model.batches.contains_key(&end),
                    "seed {seed}: recovered end {end} is not a batch boundary"
                );
                model.truncate(end);
                model.log_start = log.log_start_offset();
                p = Partition::new(log);
            }
        }
    }
    // Every offset reads back as the model says.
    for off in model.log_start..=model.end {
        verify_read(&p, &model, off, seed).await;
    }
}

fn run_many(tag: &str, backend: BackendChoice, count: u64, allow_write_faults: bool) {
    run_many_with(
        tag,
        RuntimeConfig {
            backend,
            ..RuntimeConfig::default()
        },
        count,
        allow_write_faults,
    );
}

fn run_many_with(tag: &str, config: RuntimeConfig, count: u64, allow_write_faults: bool) {
    let base: u64 = std::env::var("RINGLET_MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let count = if base != 0 { 1 } else { count };
    let tag = tag.to_string();
    runtime::block_on_with(&config, async move {
        for i in 0..count {
            let seed = if base != 0 { base } else { 0x5EED_0000 + i };
            let dir = temp_dir(&tag, seed);
            eprintln!("model sequence {tag} seed {seed}");
            run_sequence(seed, &dir, allow_write_faults).await;
            let _ = std::fs::remove_dir_all(&dir);
        }
    })
    .unwrap();
}

#[test]
fn model_portable_backend() {
    run_many("portable", BackendChoice::Portable(None), 500, false);
}

#[test]
fn model_portable_backend_with_write_faults() {
    let faults = FaultConfig {
        seed: 7,
        write_error_ppm: 50_000,
        torn_writes: true,
        ..FaultConfig::default()
    };
    run_many("faults", BackendChoice::Portable(Some(faults)), 200, true);
}

#[test]
fn model_uring_backend() {
    if !runtime::uring_available() {
        eprintln!("io_uring is not available here; the uring model run is skipped (portable runs cover the log)");
        return;
    }
    run_many("uring", BackendChoice::Uring, 300, false);
}

#[test]
fn model_uring_backend_with_ring_writes() {
    if !runtime::uring_available() {
        eprintln!("io_uring is not available here; skipped");
        return;
    }
    // File writes through the ring (io-wq) rather than inline: the other uring write path.
    let config = RuntimeConfig {
        backend: BackendChoice::Uring,
        inline_file_writes: false,
        ..RuntimeConfig::default()
    };
    run_many_with("uring-ring", config, 200, false);
}
