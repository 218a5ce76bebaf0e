//! Log compaction (`cleanup.policy=compact`) on a real log, on both backends: the latest record
//! of every key survives with its offset, older ones go, tombstones last until their delete
//! horizon, the active segment is untouched, a reopened (and a recovered) log reads the same;
//! every state a crash can leave in the middle of a swap opens to a correct log; and cleanings
//! under injected I/O faults never lose or corrupt what was there.

use bytes::Bytes;
use ringlet_engine::cleaner::{self, CleanerConfig};
use ringlet_engine::runtime::{self, BackendChoice, FaultConfig};
use ringlet_engine::{LogConfig, Partition, PartitionLog};
use ringlet_format::batch;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ringlet-compact-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn config(direct: bool) -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 512,
        compact: true,
        delete: false,
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms: 3_600_000,
        direct_io: direct,
        read_ahead_bytes: 8192,
        ..LogConfig::default()
    }
}

/// `(offset, key, value)` of every record readable from the log start, read the way a fetch
/// reads (batch by batch from the offset asked), checking each batch as a stored batch.
type Rec = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

async fn read_records(p: &Rc<Partition>) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut offset = p.log_start_offset();
    while offset < p.high_watermark() {
        let r = p.read(offset, 64 * 1024).await.unwrap();
        let Some(region) = r.region else { break };
        let bytes = region.read_all().await.unwrap();
        let mut rest = &bytes[..];
        let before = offset;
        while let Ok(b) = batch::next_batch(rest) {
            let h = batch::validate_stored(b).unwrap();
            if h.last_offset() >= offset {
                batch::walk_records(b, |r| {
                    if r.offset >= offset {
                        out.push((
                            r.offset,
                            r.key.map(<[u8]>::to_vec),
                            r.value.map(<[u8]>::to_vec),
                        ));
                    }
                    true
                })
                .unwrap();
                offset = h.last_offset() + 1;
            }
            rest = &rest[b.len()..];
        }
        assert!(offset > before, "a read at {before} made no progress");
    }
    out
}

/// Batch `i` of three records: keys `k{(i*3+j) % 7}`, values naming their batch, and key `dead`
/// deleted by a tombstone in batch 20.
fn batch_of(i: usize) -> Bytes {
    let vals: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..3)
        .map(|j| {
            if i == 10 && j == 0 {
                (b"dead".to_vec(), Some(b"alive".to_vec()))
            } else if i == 20 && j == 0 {
                (b"dead".to_vec(), None)
            } else {
                (
                    format!("k{}", (i * 3 + j) % 7).into_bytes(),
                    Some(format!("v{i}-{j}-{}", "x".repeat(i % 40)).into_bytes()),
                )
            }
        })
        .collect();
    let refs: Vec<batch::KeyValue<'_>> = vals
        .iter()
        .map(|(k, v)| (Some(k.as_slice()), v.as_deref()))
        .collect();
    Bytes::from(batch::build_keyed_batch(
        &refs,
        1_700_000_000_000 + i as i64,
    ))
}

/// What a compacted log must hold, from everything written (`all`) and the active segment's
/// base: below it, only each key's latest record there (tombstones while `tombstones`); from it
/// on, everything.
fn expected(all: &[Rec], active_base: i64, tombstones: bool) -> Vec<Rec> {
    // The cleaner's map covers what it may clean, below the active segment (as Kafka's).
    let mut latest: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
    for (o, k, _) in all.iter().filter(|r| r.0 < active_base) {
        latest.insert(k.clone().unwrap(), *o);
    }
    all.iter()
        .filter(|(o, k, v)| {
            *o >= active_base || (latest[k.as_ref().unwrap()] == *o && (v.is_some() || tombstones))
        })
        .cloned()
        .collect()
}

async fn clean_now(p: &Rc<Partition>, cfg: &CleanerConfig, now: i64) -> bool {
    match p.clean_plan(now) {
        Some(plan) => cleaner::clean(p, plan, cfg).await.unwrap(),
        None => false,
    }
}

fn small_cleaner() -> CleanerConfig {
    CleanerConfig {
        io_buffer_size: 1000,
        ..CleanerConfig::default()
    }
}

fn scenario(backend: BackendChoice, direct: bool, tag: &str) {
    let d = dir(tag);
    runtime::block_on(backend, async move {
        let p = Partition::new(PartitionLog::open(&d, config(direct), true).unwrap());
        for i in 0..120 {
            p.append(batch_of(i)).await.unwrap();
        }
        let all = read_records(&p).await;
        assert_eq!(all.len(), 360);
        let segments = p.log_for_tests().borrow().segment_count();
        assert!(segments > 3, "the log rolled ({segments} segments)");
        let bytes = p.log_for_tests().borrow().size_bytes();
        let active = p.log_for_tests().borrow().active().base_offset;
        let cfg = small_cleaner();
        assert!(
            clean_now(&p, &cfg, config::now()).await,
            "a dirty log is cleaned"
        );
        let want = expected(&all, active, true);
        assert_eq!(read_records(&p).await, want);
        assert!(p.log_for_tests().borrow().size_bytes() < bytes / 2);
        // Nothing new is dirty: no second cleaning.
        assert!(p.clean_plan(config::now()).is_none());
        // Past the delete horizon, a cleaning (forced by a new dirty segment) drops the tombstone.
        for i in 120..135 {
            p.append(batch_of(i)).await.unwrap();
        }
        let all = read_records_all(&all, &p).await;
        let active = p.log_for_tests().borrow().active().base_offset;
        assert!(clean_now(&p, &cfg, config::now() + 7_200_000).await);
        let want = expected(&all, active, false);
        assert_eq!(read_records(&p).await, want);
        // Segments grouped by their size before this cleaning: the small cleaned ones merged.
        assert!(p.log_for_tests().borrow().segment_count() < segments);
        assert!(!want.iter().any(|r| r.1.as_deref() == Some(b"dead")));
        // Reopened cleanly, then recovered from scratch (no recovery point: every segment is
        // validated, gaps and all): the same records.
        p.log_for_tests().borrow_mut().close().unwrap();
        drop(p);
        let p = Partition::new(PartitionLog::open(&d, config(direct), true).unwrap());
        assert_eq!(read_records(&p).await, want);
        drop(p);
        std::fs::remove_file(d.join("recovery-point")).unwrap();
        let p = Partition::new(PartitionLog::open(&d, config(direct), false).unwrap());
        assert_eq!(read_records(&p).await, want);
        // Writing goes on after the offsets the cleaner kept.
        let end = p.log_end_offset();
        assert_eq!(p.append(batch_of(200)).await.unwrap().base_offset, end);
    })
    .unwrap();
}

/// `before` (already read) plus the records appended since.
async fn read_records_all(before: &[Rec], p: &Rc<Partition>) -> Vec<Rec> {
    let last = before.last().map_or(-1, |r| r.0);
    let mut all = before.to_vec();
    all.extend(read_records(p).await.into_iter().filter(|r| r.0 > last));
    all
}

mod config {
    pub fn now() -> i64 {
        ringlet_engine::config::now_ms()
    }
}

#[test]
fn compaction_keeps_the_latest_record_of_each_key_portable() {
    scenario(BackendChoice::Portable(None), false, "portable");
}

#[test]
fn compaction_keeps_the_latest_record_of_each_key_auto_direct() {
    // io_uring where the kernel has it (direct writes where the file system takes them).
    scenario(BackendChoice::Auto, true, "auto-direct");
}

/// Copies every file of `from` into a fresh `to`.
fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn read_dir_records(d: &Path) -> Vec<Rec> {
    let d = d.to_path_buf();
    runtime::block_on(BackendChoice::Portable(None), async move {
        let p = Partition::new(PartitionLog::open(&d, config(false), false).unwrap());
        read_records(&p).await
    })
    .unwrap()
}

#[test]
fn every_crash_state_of_a_swap_opens_to_a_correct_log() {
    // A log before and after one cleaning (one group: segment.bytes is large enough).
    let before = dir("swap-before");
    let after = dir("swap-after");
    let (bases, end) = runtime::block_on(BackendChoice::Portable(None), {
        let (before, after) = (before.clone(), after.clone());
        async move {
            let cfg = LogConfig {
                segment_bytes: 2000,
                ..config(false)
            };
            let p = Partition::new(PartitionLog::open(&after, cfg.clone(), true).unwrap());
            for i in 0..40 {
                p.append(batch_of(i)).await.unwrap();
            }
            p.log_for_tests().borrow_mut().close().unwrap();
            copy_dir(&after, &before);
            let bases: Vec<i64> = p
                .log_for_tests()
                .borrow()
                .segment_files()
                .iter()
                .map(|(path, _, _)| path.file_stem().unwrap().to_string_lossy().parse().unwrap())
                .collect();
            // One group: raise segment.bytes so every non-active segment merges into one.
            p.log_for_tests().borrow_mut().config.segment_bytes = 1 << 20;
            let plan = p.clean_plan(config::now()).unwrap();
            let end = plan.end;
            assert!(cleaner::clean(&p, plan, &small_cleaner()).await.unwrap());
            p.log_for_tests().borrow_mut().close().unwrap();
            (bases, end)
        }
    })
    .unwrap();
    let original = read_dir_records(&before);
    let cleaned = read_dir_records(&after);
    assert!(cleaned.len() < original.len());
    let cleaned_log = std::fs::read(after.join(format!("{:020}.log", bases[0]))).unwrap();
    let replaced: Vec<i64> = bases.iter().copied().filter(|&b| b < end).collect();
    assert!(
        replaced.len() > 1,
        "the group merges segments: {replaced:?}"
    );
    let state = dir("swap-state");
    // Step 1 done (a .cleaned file, perhaps partial): the originals stay.
    copy_dir(&before, &state);
    std::fs::write(
        state.join(format!("{:020}.log.cleaned", bases[0])),
        &cleaned_log[..100],
    )
    .unwrap();
    assert_eq!(read_dir_records(&state), original);
    assert!(!state.join(format!("{:020}.log.cleaned", bases[0])).exists());
    // Steps 2-3 done, then 0..=n of the originals removed (step 4), then the rename (step 5 not
    // yet): every state finishes the swap.
    for removed in 0..=replaced.len() {
        copy_dir(&before, &state);
        std::fs::write(
            state.join("cleaner-swap"),
            format!("{} {}\n", bases[0], end),
        )
        .unwrap();
        std::fs::write(
            state.join(format!("{:020}.log.swap", bases[0])),
            &cleaned_log,
        )
        .unwrap();
        for &b in &replaced[..removed] {
            for ext in ["timeindex", "index", "log"] {
                let _ = std::fs::remove_file(state.join(format!("{b:020}.{ext}")));
            }
        }
        assert_eq!(
            read_dir_records(&state),
            cleaned,
            "{removed} originals removed"
        );
        assert!(!state.join("cleaner-swap").exists());
    }
    // A swap file without a manifest cannot be trusted: removed, the originals stay.
    copy_dir(&before, &state);
    std::fs::write(
        state.join(format!("{:020}.log.swap", bases[0])),
        &cleaned_log,
    )
    .unwrap();
    assert_eq!(read_dir_records(&state), original);
}

#[test]
fn cleanings_under_injected_faults_lose_nothing() {
    let mut failed = 0;
    for seed in 1..=8u64 {
        let d = dir(&format!("faults-{seed}"));
        let faults = FaultConfig {
            seed,
            write_error_ppm: 30_000,
            fsync_error_ppm: 30_000,
            metadata_error_ppm: 20_000,
            ..FaultConfig::default()
        };
        // Written without faults, then cleaned (and cleaned again) under them.
        let all = runtime::block_on(BackendChoice::Portable(None), {
            let d = d.clone();
            async move {
                let p = Partition::new(PartitionLog::open(&d, config(false), true).unwrap());
                for i in 0..80 {
                    p.append(batch_of(i)).await.unwrap();
                }
                let all = read_records(&p).await;
                p.log_for_tests().borrow_mut().close().unwrap();
                all
            }
        })
        .unwrap();
        let active = runtime::block_on(BackendChoice::Portable(Some(faults)), {
            let d = d.clone();
            async move {
                let Ok(log) = PartitionLog::open(&d, config(false), true) else {
                    return None;
                };
                let p = Partition::new(log);
                let active = p.log_for_tests().borrow().active().base_offset;
                let mut failed = 0;
                for _ in 0..3 {
                    if let Some(plan) = p.clean_plan(config::now()) {
                        failed +=
                            usize::from(cleaner::clean(&p, plan, &small_cleaner()).await.is_err());
                    }
                    if p.log_for_tests().borrow().is_offline() {
                        break;
                    }
                }
                Some((active, failed))
            }
        })
        .unwrap();
        failed += active.map_or(1, |a| a.1);
        let active = active.map(|a| a.0);
        // Reopened without faults: either cleaned or not, each key's latest record is there
        // with its offset and nothing is read that was not written.
        let got = read_dir_records(&d);
        let written: BTreeMap<i64, &Rec> = all.iter().map(|r| (r.0, r)).collect();
        for r in &got {
            assert_eq!(
                written.get(&r.0),
                Some(&r),
                "seed {seed}: record at {} as written",
                r.0
            );
        }
        let want = expected(&all, active.unwrap_or(i64::MAX), true);
        for r in &want {
            assert!(
                got.contains(r),
                "seed {seed}: lost {:?} (active {active:?}); have {:?}",
                r.0,
                got.iter().map(|r| r.0).collect::<Vec<_>>()
            );
        }
    }
    assert!(failed > 0, "no fault reached a cleaning");
}
