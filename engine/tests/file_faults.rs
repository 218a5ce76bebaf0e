//! The portable backend's fault injection reaches the log's file operations outside the append
//! path (`metadata_error_ppm`: segment creation at roll, index and checkpoint writes and syncs,
//! truncation of a failed write, retention deletes, directory syncs), not only its ring writes
//! and fsyncs. Seeded runs of
//! appends, rolls and retention under those faults: a failure is an error (the partition may go
//! offline and is reopened), never a panic, and every acknowledged append is still there, byte for
//! byte, when the log is reopened without faults.

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ringlet_engine::runtime::{self, BackendChoice, FaultConfig};
use ringlet_engine::{LogConfig, Partition, PartitionLog};
use ringlet_format::batch;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ringlet-faults-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        index_interval_bytes: 100,
        flush_interval_messages: 1,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

/// Every batch in the log's segment files, by base offset, as stored.
fn batches_on_disk(dir: &Path) -> BTreeMap<i64, Vec<u8>> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    let mut out = BTreeMap::new();
    for p in logs {
        let data = std::fs::read(&p).unwrap();
        let mut rest = &data[..];
        while let Ok(b) = batch::next_batch(rest) {
            let h = batch::validate(b).expect("a valid batch on disk");
            out.insert(h.base_offset, b.to_vec());
            rest = &rest[b.len()..];
        }
    }
    out
}

/// `RINGLET_FAULTS_TRACE=<seed>` prints that seed's operations.
fn trace(seed: u64, what: std::fmt::Arguments<'_>) {
    if std::env::var("RINGLET_FAULTS_TRACE").is_ok_and(|s| s == seed.to_string()) {
        eprintln!("seed {seed}: {what}");
    }
}

/// Opens the log, retrying while injected faults make the open fail (each failure an error).
fn open_retrying(dir: &Path, clean: bool, failures: &mut u32) -> PartitionLog {
    for _ in 0..1000 {
        match PartitionLog::open(dir, config(), clean) {
            Ok(log) => return log,
            Err(_) => *failures += 1,
        }
    }
    panic!("the log never opened under faults");
}

/// What a faulty run leaves: the acknowledged batches still in the log, the batches truncated
/// away (which must never come back), the log start the last open saw, and the failures.
struct Outcome {
    acked: BTreeMap<i64, Vec<u8>>,
    truncated: Vec<Vec<u8>>,
    log_start: i64,
    failures: u32,
}

/// Runs one seeded sequence of appends, retention and truncations under `faults`.
fn faulty_run(seed: u64, dir: &Path, faults: FaultConfig) -> Outcome {
    let dir = dir.to_path_buf();
    runtime::block_on(BackendChoice::Portable(Some(faults)), async move {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut failures = 0u32;
        let mut acked: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
        let mut p = Partition::new(open_retrying(&dir, true, &mut failures));
        let mut log_start = 0;
        let mut truncated = Vec::new();
        for _ in 0..300 {
            if rng.gen_bool(0.03) && !acked.is_empty() {
                // Truncation to a batch boundary (a follower cutting a divergent suffix).
                let bases: Vec<i64> = acked.range(log_start..).map(|(&b, _)| b).collect();
                if let Some(&to) = bases.get(rng.gen_range(0..bases.len().max(1))) {
                    let r = p.truncate_to(to).await;
                    trace(seed, format_args!("truncate_to {to}: {r:?}"));
                    match r {
                        Ok(()) => truncated.extend(acked.split_off(&to).into_values()),
                        Err(_) => {
                            // A failed truncation may still have cut any suffix past `to`
                            // (newest segments first): those batches may be gone, or not.
                            acked.split_off(&to);
                            failures += 1;
                            if p.log_for_tests().borrow().is_offline() {
                                drop(p);
                                p = Partition::new(open_retrying(&dir, false, &mut failures));
                                log_start = p.log_start_offset();
                            }
                        }
                    }
                }
                continue;
            }
            if rng.gen_bool(0.05) {
                // Retention by size, under faults: a failed delete is an error, not a panic.
                let mut log = p.log_for_tests().borrow_mut();
                log.config.retention_bytes = 1200;
                let r = log.apply_retention(0);
                trace(seed, format_args!("retention: {r:?}"));
                if r.is_err() {
                    failures += 1;
                }
                log.config.retention_bytes = -1;
                log_start = log.log_start_offset();
                continue;
            }
            let n = rng.gen_range(1..4);
            let values: Vec<Vec<u8>> = (0..n)
                .map(|_| (0..rng.gen_range(10..90)).map(|_| rng.gen()).collect())
                .collect();
            let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
            let mut b = batch::build_batch(&refs, 1_700_000_000_000);
            let r = p.append(Bytes::from(b.clone())).await;
            trace(
                seed,
                format_args!("append: {:?}", r.as_ref().map(|i| i.base_offset)),
            );
            match r {
                Ok(info) => {
                    b[0..8].copy_from_slice(&info.base_offset.to_be_bytes());
                    acked.insert(info.base_offset, b);
                }
                Err(_) => {
                    failures += 1;
                    if p.log_for_tests().borrow().is_offline() {
                        // Offline after a storage error: as a restarted broker would, reopen
                        // (recovering, since the log was not closed cleanly).
                        drop(p);
                        p = Partition::new(open_retrying(&dir, false, &mut failures));
                        log_start = p.log_start_offset();
                        trace(seed, format_args!("reopened: end {}", p.log_end_offset()));
                    }
                }
            }
        }
        let _ = p.log_for_tests().borrow_mut().close();
        Outcome {
            acked,
            truncated,
            log_start,
            failures,
        }
    })
    .unwrap()
}

fn check(tag: &str, faults: FaultConfig) {
    for seed in 0..12u64 {
        let dir = temp_dir(&format!("{tag}-{seed}"));
        let faults = FaultConfig {
            seed: seed + 1,
            ..faults.clone()
        };
        let Outcome {
            acked,
            truncated,
            log_start,
            failures,
        } = faulty_run(seed, &dir, faults);
        assert!(failures > 0, "seed {seed}: no fault was injected");
        assert!(!acked.is_empty(), "seed {seed}: nothing was acknowledged");
        // Reopen without faults (recovering): every acknowledged batch at or past the log start
        // is there, byte for byte.
        let end = runtime::block_on(BackendChoice::Portable(None), {
            let dir = dir.clone();
            async move {
                PartitionLog::open(&dir, config(), false)
                    .unwrap()
                    .log_end_offset()
            }
        })
        .unwrap();
        let disk = batches_on_disk(&dir);
        for (base, bytes) in acked.range(log_start..) {
            let got = disk.get(base).unwrap_or_else(|| {
                let files: Vec<_> = std::fs::read_dir(&dir)
                    .unwrap()
                    .map(|e| {
                        let e = e.unwrap();
                        (e.file_name(), e.metadata().unwrap().len())
                    })
                    .collect();
                panic!(
                    "seed {seed}: acknowledged batch {base} lost ({failures} faults); log start \
                     {log_start}, end {end}; on disk {:?}; files {files:?}",
                    disk.keys().collect::<Vec<_>>()
                )
            });
            assert_eq!(got, bytes, "seed {seed}: batch {base} changed");
            assert!(
                *base < end,
                "seed {seed}: batch {base} past the log end {end}"
            );
        }
        for t in &truncated {
            assert!(
                !disk.values().any(|b| b[8..] == t[8..]),
                "seed {seed}: a truncated batch came back"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn metadata_faults_reach_rolls_truncations_checkpoints_and_retention() {
    check(
        "metadata",
        FaultConfig {
            metadata_error_ppm: 60_000,
            ..FaultConfig::default()
        },
    );
}

#[test]
fn data_fsync_faults_with_rolls_and_truncations() {
    check(
        "fsync",
        FaultConfig {
            fsync_error_ppm: 30_000,
            ..FaultConfig::default()
        },
    );
}

#[test]
fn every_kind_of_fault_at_once() {
    check(
        "all",
        FaultConfig {
            metadata_error_ppm: 40_000,
            fsync_error_ppm: 20_000,
            write_error_ppm: 20_000,
            torn_writes: true,
            errno: libc::ENOSPC,
            ..FaultConfig::default()
        },
    );
}
