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
