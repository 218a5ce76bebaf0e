//! Transactions on a real log: the last stable offset, the aborted list a read_committed fetch
//! gets, the `.txnindex` files, recovery of both, fencing by markers, and control batches from
//! clients refused.

use bytes::Bytes;
use ringlet_engine::runtime::{self, BackendChoice};
use ringlet_engine::{BatchError, LogConfig, LogError, Partition, PartitionLog};
use ringlet_format::batch::{self, ATTR_TRANSACTIONAL};
use ringlet_format::control::{marker_batch, set_producer, Marker};
use std::path::PathBuf;

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ringlet-txn-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn run<F: std::future::Future<Output = ()> + 'static>(f: F) {
    runtime::block_on(BackendChoice::Auto, f).unwrap();
}

/// A transactional batch of `n` records from producer `pid`, epoch `epoch`, sequence `seq`.
fn txn_batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Bytes {
    let values: Vec<Vec<u8>> = (0..n).map(|i| format!("v{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
    let mut b = batch::build_batch(&refs, 1000);
    set_producer(&mut b, pid, epoch, seq, ATTR_TRANSACTIONAL);
    Bytes::from(b)
}

fn marker(pid: i64, epoch: i16, m: Marker) -> Bytes {
    Bytes::from(marker_batch(pid, epoch, m, 0, 1000))
}

#[test]
fn lso_aborted_list_and_recovery() {
    let d = dir("lso");
    let d2 = d.clone();
    run(async move {
        let p = Partition::new(PartitionLog::open(&d2, LogConfig::default(), true).unwrap());
        p.append(Bytes::from(batch::build_batch(&[b"plain"], 1000)))
            .await
            .unwrap(); // 0
        p.append(txn_batch(7, 0, 0, 3)).await.unwrap(); // 1..=3, open
        p.append(txn_batch(8, 0, 0, 2)).await.unwrap(); // 4..=5, open
        assert_eq!(p.high_watermark(), 6);
        assert_eq!(p.last_stable_offset(), 1);
        assert_eq!(p.open_transactions(), 2);
        // Clients may not write markers.
        match p.append(marker(7, 0, Marker::Abort)).await {
            Err(LogError::Batch(BatchError::ControlFromClient)) => {}
            other => panic!("a client's control batch was not refused: {other:?}"),
        }
        // A fencing abort (InitProducerId from a new instance): the marker carries epoch 1.
        p.append_marker(marker(7, 1, Marker::Abort)).await.unwrap(); // 6
        assert_eq!(p.last_stable_offset(), 4, "producer 8 still open");
        p.append_marker(marker(8, 0, Marker::Commit)).await.unwrap(); // 7
        assert_eq!(p.last_stable_offset(), 8);
        let aborted = p.aborted_transactions(0, 8);
        assert_eq!(aborted.len(), 1);
        assert_eq!(
            (
                aborted[0].producer_id,
                aborted[0].first_offset,
                aborted[0].last_offset
            ),
            (7, 1, 6)
        );
        // A read_committed read below an open transaction stops at it.
        p.append(txn_batch(9, 0, 0, 1)).await.unwrap(); // 8, open
        let r = p.read_isolated(0, 1 << 20, false, true).await.unwrap();
        assert_eq!(r.last_stable_offset, 8);
        assert_eq!(r.aborted.len(), 1);
        let bytes = r.region.unwrap().read_all().await.unwrap();
        let mut rest = &bytes[..];
        let mut last = -1;
        while let Ok(b) = batch::next_batch(rest) {
            last = batch::BatchHeader::parse(b).unwrap().last_offset();
            rest = &rest[b.len()..];
        }
        assert_eq!(last, 7, "nothing at or past the LSO is returned");
        p.flush_if_due(true).await.unwrap();
    });
    // The aborted entry is in the segment's .txnindex, Kafka's 34-byte layout.
    let idx = std::fs::read(d.join("00000000000000000000.txnindex")).unwrap();
    assert_eq!(idx.len(), 34);
    assert_eq!(&idx[0..2], &[0, 0]);
    assert_eq!(i64::from_be_bytes(idx[2..10].try_into().unwrap()), 7);
    // Reopened (unclean): the aborted list and the open transaction of producer 9 come back.
    let d3 = d.clone();
    run(async move {
        let p = Partition::new(PartitionLog::open(&d3, LogConfig::default(), false).unwrap());
        assert_eq!(p.last_stable_offset(), 8);
        assert_eq!(p.aborted_transactions(0, 9).len(), 1);
        // Producer 7's epoch-1 abort marker fenced epoch 0; epoch 1 starts at sequence 0.
        assert!(p.append(txn_batch(7, 0, 3, 1)).await.is_err());
        p.append(txn_batch(7, 1, 0, 1)).await.unwrap();
    });
    // Without the index file, the markers in the log's tail bring the entry back.
    std::fs::remove_file(d.join("00000000000000000000.txnindex")).unwrap();
    run(async move {
        let p = Partition::new(PartitionLog::open(&d, LogConfig::default(), true).unwrap());
        assert_eq!(p.aborted_transactions(0, 9).len(), 1);
        let _ = std::fs::remove_dir_all(&d);
    });
}

/// Kafka's `<offset>.snapshot`, version 1: version, CRC-32C, entries of 46 bytes.
fn snapshot_entries(path: &std::path::Path) -> Vec<(i64, i16, i32, i64, i64)> {
    let b = std::fs::read(path).unwrap();
    assert_eq!(i16::from_be_bytes([b[0], b[1]]), 1);
    assert_eq!(
        u32::from_be_bytes(b[2..6].try_into().unwrap()),
        crc32c::crc32c(&b[6..])
    );
    let n = i32::from_be_bytes(b[6..10].try_into().unwrap()) as usize;
    assert_eq!(b.len(), 10 + 46 * n);
    (0..n)
        .map(|k| {
            let e = &b[10 + 46 * k..10 + 46 * (k + 1)];
            let i64_at = |o: usize| i64::from_be_bytes(e[o..o + 8].try_into().unwrap());
            (
                i64_at(0),
                i16::from_be_bytes([e[8], e[9]]),
                i32::from_be_bytes(e[10..14].try_into().unwrap()),
                i64_at(14),
                i64_at(38),
            )
        })
        .collect()
}

#[test]
fn producer_state_snapshots_are_written_and_read_back() {
    let d = dir("snapshot");
    let d2 = d.clone();
    run(async move {
        let cfg = LogConfig {
            segment_bytes: 300,
            ..LogConfig::default()
        };
        {
            let p = Partition::new(PartitionLog::open(&d2, cfg.clone(), true).unwrap());
            p.append(txn_batch(7, 2, 0, 2)).await.unwrap(); // 0..=1, stays open
            for i in 0..6 {
                p.append(Bytes::from(batch::build_batch(&[&[i; 60][..]], 1000)))
                    .await
                    .unwrap(); // 2..=7, rolling segments
            }
            p.flush_if_due(true).await.unwrap();
            p.log_for_tests().borrow_mut().close().unwrap();
        }
        // A clean shutdown leaves a snapshot at the log end (8) holding the open transaction;
        // two are kept.
        let snaps: Vec<_> = std::fs::read_dir(&d2)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".snapshot"))
            .collect();
        assert!(snaps.len() <= 2, "{snaps:?}");
        let at_end = d2.join("00000000000000000008.snapshot");
        assert_eq!(snapshot_entries(&at_end), vec![(7, 2, 1, 1, 0)]);
        // Reopened, the open transaction comes from the snapshot: rewrite it so that the
        // transaction starts at offset 1 instead, which no scan of the log could find.
        let mut b = std::fs::read(&at_end).unwrap();
        b[10 + 38..10 + 46].copy_from_slice(&1i64.to_be_bytes());
        let crc = crc32c::crc32c(&b[6..]);
        b[2..6].copy_from_slice(&crc.to_be_bytes());
        std::fs::write(&at_end, &b).unwrap();
        let p = Partition::new(PartitionLog::open(&d2, cfg.clone(), true).unwrap());
        assert_eq!(p.open_transactions(), 1);
        assert_eq!(
            p.last_stable_offset(),
            1,
            "the snapshot's transaction start"
        );
        p.append_marker(marker(7, 2, Marker::Commit)).await.unwrap(); // 8
        assert_eq!(p.last_stable_offset(), 9);
        // A snapshot past the log end (a truncated log) is never used; without a usable one
        // the log's tail is scanned as before.
        std::fs::write(d2.join("00000000000000000099.snapshot"), &b).unwrap();
        drop(p);
        let p = Partition::new(PartitionLog::open(&d2, cfg, false).unwrap());
        assert!(!d2.join("00000000000000000099.snapshot").exists());
        assert_eq!(p.open_transactions(), 0);
    });
    std::fs::remove_dir_all(d).unwrap();
}
