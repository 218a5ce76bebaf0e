//! Hot-path benchmarks of the engine, each beside a baseline measured in the same run.
//!
//! Run: `cargo bench -p ringlet-benches --bench engine`. Figures go to docs/benchmarks.md.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringlet_engine::offset_index::OffsetIndex;
use ringlet_engine::runtime::{self, BackendChoice};
use ringlet_engine::{LogConfig, Partition, PartitionLog};
use ringlet_format::batch;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const RECORD: usize = 1024;

/// An uncompressed batch of `bytes / RECORD` records of 1 KiB with a fixed, seeded payload.
fn batch_of(bytes: usize) -> Vec<u8> {
    let n = (bytes / RECORD).max(1);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let values: Vec<Vec<u8>> = (0..n)
        .map(|_| {
            (0..RECORD)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        })
        .collect();
    let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
    batch::build_batch(&refs, 1_700_000_000_000)
}

/// The I/O backend under test: `RINGLET_BENCH_BACKEND=portable|uring` (default: auto).
fn backend() -> BackendChoice {
    match std::env::var("RINGLET_BENCH_BACKEND").as_deref() {
        Ok("portable") => BackendChoice::Portable(None),
        Ok("uring") => BackendChoice::Uring,
        _ => BackendChoice::Auto,
    }
}

/// `RINGLET_BENCH_WRITEBACK=0` turns off the early writeback (`ringlet.log.writeback.bytes`).
fn writeback_bytes() -> u64 {
    std::env::var("RINGLET_BENCH_WRITEBACK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(LogConfig::default().writeback_bytes)
}

fn bench_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ringlet-bench-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn validation(c: &mut Criterion) {
    let mut g = c.benchmark_group("validate");
    for size in [16 * 1024, 256 * 1024] {
        let b = batch_of(size);
        g.throughput(Throughput::Bytes(b.len() as u64));
        g.bench_with_input(BenchmarkId::new("crc32c_only", size), &b, |bench, b| {
            bench.iter(|| crc32c::crc32c(&b[21..]))
        });
        g.bench_with_input(BenchmarkId::new("batch_validate", size), &b, |bench, b| {
            bench.iter(|| batch::validate(b).unwrap())
        });
    }
    g.finish();
}

/// Appends through the partition (validation, offset assignment, group write, optional
/// fdatasync), one batch per append, awaiting each: the latency-bound worst case for grouping.
fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(4));
    for (label, size) in [("16KiB", 16 * 1024), ("256KiB", 256 * 1024)] {
        for fsync in [false, true] {
            let b = Bytes::from(batch_of(size));
            g.throughput(Throughput::Bytes(b.len() as u64));
            let name = if fsync {
                "ringlet_fdatasync"
            } else {
                "ringlet_pagecache"
            };
            g.bench_function(BenchmarkId::new(name, label), |bench| {
                bench.iter_custom(|iters| {
                    let dir = bench_dir(&format!("append-{label}-{fsync}"));
                    let b = b.clone();
                    let d = dir.clone();
                    let t = runtime::block_on(backend(), async move {
                        let cfg = LogConfig {
                            flush_interval_messages: if fsync { 1 } else { u64::MAX },
                            writeback_bytes: writeback_bytes(),
                            ..LogConfig::default()
                        };
                        let p = Partition::new(PartitionLog::open(&d, cfg, true).unwrap());
                        let start = Instant::now();
                        for _ in 0..iters {
                            p.append(b.clone()).await.unwrap();
                        }
                        start.elapsed()
                    })
                    .unwrap();
                    let _ = std::fs::remove_dir_all(dir);
                    t
                })
            });
            // Baseline: a plain pwrite (and fdatasync) loop of the same size on the same disk.
            let base = if fsync {
                "baseline_pwrite_fdatasync"
            } else {
                "baseline_pwrite"
            };
            g.bench_function(BenchmarkId::new(base, label), |bench| {
                bench.iter_custom(|iters| {
                    let dir = bench_dir(&format!("base-{label}-{fsync}"));
                    std::fs::create_dir_all(&dir).unwrap();
                    let f = std::fs::File::create(dir.join("f")).unwrap();
                    let start = Instant::now();
                    let mut pos = 0u64;
                    for _ in 0..iters {
                        f.write_all_at(&b, pos).unwrap();
                        pos += b.len() as u64;
                        if fsync {
                            f.sync_data().unwrap();
                        }
                    }
                    let t = start.elapsed();
                    let _ = std::fs::remove_dir_all(dir);
                    t
                })
            });
        }
    }
    g.finish();
}

/// Group commit: 64 producers' appends outstanding at once, one fdatasync per group.
fn group_commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("group_commit");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(4));
    let b = Bytes::from(batch_of(16 * 1024));
    g.throughput(Throughput::Bytes(b.len() as u64 * 64));
    g.bench_function("ringlet_fdatasync_64_concurrent_16KiB", |bench| {
        bench.iter_custom(|iters| {
            let dir = bench_dir("group");
            let d = dir.clone();
            let b = b.clone();
            let t = runtime::block_on(backend(), async move {
                let cfg = LogConfig {
                    flush_interval_messages: 1,
                    ..LogConfig::default()
                };
                let p = Partition::new(PartitionLog::open(&d, cfg, true).unwrap());
                let start = Instant::now();
                for _ in 0..iters {
                    let tasks: Vec<_> = (0..64)
                        .map(|_| {
                            let p = p.clone();
                            let b = b.clone();
                            runtime::spawn(async move { p.append(b).await.unwrap() })
                        })
                        .collect();
                    for t in tasks {
                        t.await;
                    }
                }
                start.elapsed()
            })
            .unwrap();
            let _ = std::fs::remove_dir_all(dir);
            t
        })
    });
    g.finish();
}

fn index_lookup(c: &mut Criterion) {
    let mut idx = OffsetIndex::new(0);
    for i in 1..=1_000_000u32 {
        idx.append(i64::from(i) * 16, i * 4096);
    }
    let mut x = 12345u64;
    c.bench_function("offset_index_lookup_1M_entries", |b| {
        b.iter(|| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            idx.lookup((x % 16_000_000) as i64)
        })
    });
}

/// Resolving a fetch offset to a file region (index lookup plus header scan) on a 64 MiB log.
fn read_region(c: &mut Criterion) {
    let dir = bench_dir("read");
    let d = dir.clone();
    let b = Bytes::from(batch_of(16 * 1024));
    c.bench_function("read_region_resolution_16KiB_batches", |bench| {
        bench.iter_custom(|iters| {
            let d = d.clone();
            let b = b.clone();
            runtime::block_on(backend(), async move {
                let p = Partition::new(PartitionLog::open(&d, LogConfig::default(), true).unwrap());
                while p.log_for_tests().borrow().log_end_offset() < 4096 * 16 {
                    p.append(b.clone()).await.unwrap();
                }
                let end = p.log_for_tests().borrow().log_end_offset();
                let mut x = 7u64;
                let start = Instant::now();
                for _ in 0..iters {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    let r = p.read((x % end as u64) as i64, 1 << 20).await.unwrap();
                    assert!(r.region.is_some());
                }
                start.elapsed()
            })
            .unwrap()
        })
    });
    let _ = std::fs::remove_dir_all(dir);
}

criterion_group!(
    benches,
    validation,
    append,
    group_commit,
    index_lookup,
    read_region
);
criterion_main!(benches);
