//! Segment roll, retention, truncation, timestamps and producer sequences on a real log.

use bytes::Bytes;
use ringlet_engine::runtime::{self, BackendChoice};
use ringlet_engine::{BatchError, LogConfig, LogError, Partition, PartitionLog};
use ringlet_format::batch::{self, TimestampType};
use std::path::PathBuf;

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ringlet-plog-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn run<F: std::future::Future<Output = ()> + 'static>(f: F) {
    runtime::block_on(BackendChoice::Auto, f).unwrap();
}

fn value(i: usize) -> Vec<u8> {
    format!("value-{i:06}").into_bytes()
}

#[test]
fn segments_roll_at_segment_bytes_and_reads_cross_them() {
    let d = dir("roll");
    let d2 = d.clone();
    run(async move {
        let cfg = LogConfig {
            segment_bytes: 1000,
            index_interval_bytes: 200,
            ..LogConfig::default()
        };
        let p = Partition::new(PartitionLog::open(&d2, cfg.clone(), true).unwrap());
        for i in 0..100 {
            let b = batch::build_batch(&[&value(i)], 1_000 + i as i64);
            assert_eq!(
                p.append(Bytes::from(b)).await.unwrap().base_offset,
                i as i64
            );
        }
        let segs = p.log_for_tests().borrow().segment_count();
        assert!(segs > 5, "expected several segments, got {segs}");
        let names: Vec<String> = std::fs::read_dir(&d2)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.contains(&"00000000000000000000.log".to_string()));
        assert!(
            names.contains(&"00000000000000000000.index".to_string()),
            "a rolled segment has its index written"
        );
        for off in [0i64, 13, 50, 99] {
            let r = p.read(off, 1).await.unwrap();
            let region = r.region.unwrap();
            let buf = region.read_all().await.unwrap();
            let h = batch::validate(batch::next_batch(&buf).unwrap()).unwrap();
            assert_eq!(h.base_offset, off);
        }
        // Offsets by timestamp: batch i has timestamp 1000 + i.
        assert_eq!(
            p.offset_for_timestamp(1_042).await.unwrap(),
            Some((42, 1_042))
        );
        assert_eq!(p.offset_for_timestamp(0).await.unwrap(), Some((0, 1_000)));
        assert_eq!(p.offset_for_timestamp(5_000).await.unwrap(), None);
        // A clean reopen keeps everything and loads the indexes.
        p.log_for_tests().borrow_mut().close().unwrap();
        drop(p);
        let log = PartitionLog::open(&d2, cfg, true).unwrap();
        assert_eq!(log.log_end_offset(), 100);
        assert_eq!(log.segment_count(), segs);
    });
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn retention_by_bytes_and_time_deletes_oldest_segments() {
    let d = dir("retention");
    let d2 = d.clone();
    run(async move {
        let cfg = LogConfig {
            segment_bytes: 500,
            ..LogConfig::default()
        };
        let p = Partition::new(PartitionLog::open(&d2, cfg, true).unwrap());
        for i in 0..60 {
            p.append(Bytes::from(batch::build_batch(
                &[&value(i)],
                10_000 + i as i64,
            )))
            .await
            .unwrap();
        }
        let ls = {
            let mut log = p.log_for_tests().borrow_mut();
            let before = log.segment_count();
            log.config.retention_bytes = 1000;
            let deleted = log.apply_retention(0).unwrap();
            assert!(deleted > 0 && log.size_bytes() < 1500);
            assert_eq!(log.segment_count(), before - deleted);
            let start = log.log_start_offset();
            assert!(start > 0);
            log.config.retention_bytes = -1;
            // Time: everything older than 1 ms at "now" = far future, except the active segment.
            log.config.retention_ms = 1;
            log.apply_retention(1_000_000_000).unwrap();
            assert_eq!(log.segment_count(), 1, "only the active segment stays");
            assert!(log.log_start_offset() > start);
            log.log_start_offset()
        };
        assert!(matches!(
            p.read(ls - 1, 100).await,
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert!(p.read(ls, 100).await.unwrap().region.is_some());
    });
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn delete_records_moves_the_log_start_durably() {
    let d = dir("delete-records");
    let d2 = d.clone();
    run(async move {
        let cfg = LogConfig {
            segment_bytes: 500,
            retention_ms: -1,
            ..LogConfig::default()
        };
        let p = Partition::new(PartitionLog::open(&d2, cfg.clone(), true).unwrap());
        for i in 0..60 {
            p.append(Bytes::from(batch::build_batch(&[&value(i)], 10_000)))
                .await
                .unwrap();
        }
        let segments = p.log_for_tests().borrow().segment_count();
        // Past the high watermark: out of range, nothing moves.
        assert!(matches!(
            p.delete_records(61),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        // Inside a segment: the log start moves there, the segments wholly below it go.
        assert_eq!(p.delete_records(37).unwrap(), 37);
        assert!(p.log_for_tests().borrow().segment_count() < segments);
        assert!(matches!(
            p.read(36, 100).await,
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert!(p.read(37, 100).await.unwrap().region.is_some());
        // Never backwards.
        assert_eq!(p.delete_records(10).unwrap(), 37);
        drop(p);
        // Kept across a restart, clean or not.
        for clean in [true, false] {
            let p = Partition::new(PartitionLog::open(&d2, cfg.clone(), clean).unwrap());
            assert_eq!(p.log_start_offset(), 37, "clean={clean}");
        }
        // -1 is the high watermark: everything.
        let p = Partition::new(PartitionLog::open(&d2, cfg.clone(), true).unwrap());
        assert_eq!(p.delete_records(-1).unwrap(), 60);
        assert_eq!(p.log_for_tests().borrow().segment_count(), 1);
        assert_eq!(
            p.append(Bytes::from(batch::build_batch(&[b"x"], 1)))
                .await
                .unwrap()
                .base_offset,
            60
        );
        // A follower behind its leader's log start starts again there, empty.
        p.reset_to(500).await.unwrap();
        let o = p.offsets();
        assert_eq!((o.log_start, o.log_end, o.high_watermark), (500, 500, 500));
        drop(p);
        let p = Partition::new(PartitionLog::open(&d2, cfg, false).unwrap());
        assert_eq!((p.log_start_offset(), p.log_end_offset()), (500, 500));
    });
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn truncate_to_an_offset() {
    let d = dir("truncate");
    let d2 = d.clone();
    run(async move {
        let cfg = LogConfig {
            segment_bytes: 400,
            ..LogConfig::default()
        };
        let p = Partition::new(PartitionLog::open(&d2, cfg, true).unwrap());
        for i in 0..40 {
            p.append(Bytes::from(batch::build_batch(&[&value(i)], 0)))
                .await
                .unwrap();
        }
        p.log_for_tests().borrow_mut().truncate_to(17).unwrap();
        assert_eq!(p.log_for_tests().borrow().log_end_offset(), 17);
        assert_eq!(p.log_for_tests().borrow().high_watermark(), 17);
        let info = p
            .append(Bytes::from(batch::build_batch(&[b"again"], 0)))
            .await
            .unwrap();
        assert_eq!(info.base_offset, 17);
    });
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn log_append_time_is_stamped() {
    let d = dir("lat");
    let d2 = d.clone();
    run(async move {
        let cfg = LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..LogConfig::default()
        };
        let p = Partition::new(PartitionLog::open(&d2, cfg, true).unwrap());
        let info = p
            .append(Bytes::from(batch::build_batch(&[b"x"], 5)))
            .await
            .unwrap();
        assert!(info.log_append_time > 1_600_000_000_000);
        let region = p.read(0, 1000).await.unwrap().region.unwrap();
        let buf = region.read_all().await.unwrap();
        let h = batch::validate(&buf).unwrap();
        assert_eq!(h.max_timestamp, info.log_append_time);
    });
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn idempotent_sequences_dedupe_and_refuse_gaps() {
    let d = dir("idem");
    let d2 = d.clone();
    run(async move {
        let p = Partition::new(PartitionLog::open(&d2, LogConfig::default(), true).unwrap());
        let b0 = batch::build_batch_with(&[b"a", b"b"], 0, 7, 0, 0);
        let b1 = batch::build_batch_with(&[b"c"], 0, 7, 0, 2);
        let first = p.append(Bytes::from(b0.clone())).await.unwrap();
        p.append(Bytes::from(b1)).await.unwrap();
        // A retry of the first batch gets its original offsets and writes nothing.
        let again = p.append(Bytes::from(b0)).await.unwrap();
        assert_eq!(
            (again.base_offset, again.last_offset),
            (first.base_offset, first.last_offset)
        );
        assert_eq!(p.log_for_tests().borrow().log_end_offset(), 3);
        // A gap is refused.
        let gap = batch::build_batch_with(&[b"d"], 0, 7, 0, 9);
        assert!(matches!(
            p.append(Bytes::from(gap)).await,
            Err(LogError::Batch(BatchError::OutOfOrderSequence { .. }))
        ));
        // An older epoch is refused.
        let old = batch::build_batch_with(&[b"e"], 0, 7, 0, 3);
        p.append(Bytes::from(batch::build_batch_with(&[b"f"], 0, 7, 1, 0)))
            .await
            .unwrap();
        assert!(matches!(
            p.append(Bytes::from(old)).await,
            Err(LogError::Batch(BatchError::InvalidProducerEpoch { .. }))
        ));
    });
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn idempotent_state_survives_restarts_clean_and_unclean() {
    for clean in [true, false] {
        let d = dir(if clean { "idem-clean" } else { "idem-crash" });
        let d2 = d.clone();
        run(async move {
            let cfg = LogConfig {
                segment_bytes: 400,
                ..LogConfig::default()
            };
            let b0 = batch::build_batch_with(&[b"a", b"b"], 0, 7, 0, 0);
            let b1 = batch::build_batch_with(&[b"c"], 0, 7, 0, 2);
            let (first, second) = {
                let p = Partition::new(PartitionLog::open(&d2, cfg.clone(), true).unwrap());
                // Enough other batches to roll segments in between.
                for i in 0..10u8 {
                    p.append(Bytes::from(batch::build_batch(&[&[i; 50][..]], 0)))
                        .await
                        .unwrap();
                }
                let first = p.append(Bytes::from(b0.clone())).await.unwrap();
                let second = p.append(Bytes::from(b1.clone())).await.unwrap();
                p.flush_if_due(true).await.unwrap();
                if clean {
                    p.log_for_tests().borrow_mut().close().unwrap();
                }
                (first, second)
            };
            // After the restart, retries of both batches are recognised, not appended again,
            // and the next sequence continues where the log left off.
            let p = Partition::new(PartitionLog::open(&d2, cfg, clean).unwrap());
            let end = p.log_for_tests().borrow().log_end_offset();
            let again = p.append(Bytes::from(b1)).await.unwrap();
            assert_eq!(again.base_offset, second.base_offset);
            let again = p.append(Bytes::from(b0)).await.unwrap();
            assert_eq!(again.base_offset, first.base_offset);
            assert_eq!(p.log_for_tests().borrow().log_end_offset(), end);
            let gap = batch::build_batch_with(&[b"d"], 0, 7, 0, 5);
            assert!(matches!(
                p.append(Bytes::from(gap)).await,
                Err(LogError::Batch(BatchError::OutOfOrderSequence { .. }))
            ));
            let next = batch::build_batch_with(&[b"d"], 0, 7, 0, 3);
            assert_eq!(p.append(Bytes::from(next)).await.unwrap().base_offset, end);
        });
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn bad_batches_are_refused_with_their_reason() {
    let d = dir("bad");
    let d2 = d.clone();
    run(async move {
        let cfg = LogConfig {
            max_message_bytes: 200,
            ..LogConfig::default()
        };
        let p = Partition::new(PartitionLog::open(&d2, cfg, true).unwrap());
        let big = batch::build_batch(&[&[0u8; 300]], 0);
        assert!(matches!(
            p.append(Bytes::from(big)).await,
            Err(LogError::Batch(BatchError::TooLarge { .. }))
        ));
        let mut bad = batch::build_batch(&[b"x"], 0);
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(matches!(
            p.append(Bytes::from(bad)).await,
            Err(LogError::Batch(BatchError::CrcMismatch { .. }))
        ));
        assert_eq!(
            p.log_for_tests().borrow().log_end_offset(),
            0,
            "nothing refused was written"
        );
    });
    std::fs::remove_dir_all(d).unwrap();
}
