//! The log primitives replication stands on: a follower's byte copy of its leader's batches, the
//! leader-epoch cache and its end offsets, truncation by epoch, and a high watermark that holds
//! consumers back from what the in-sync replicas do not all have.

use bytes::Bytes;
use ringlet_engine::runtime::{self, BackendChoice};
use ringlet_engine::{LogConfig, LogError, Partition, PartitionLog};
use ringlet_format::batch;
use std::path::PathBuf;

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ringlet-repl-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn run<F: std::future::Future<Output = ()> + 'static>(f: F) {
    runtime::block_on(BackendChoice::Auto, f).unwrap();
}

/// Reads the raw bytes of every batch from `from` up to what the log lets a reader see.
async fn read_all(p: &std::rc::Rc<Partition>, from: i64, to_log_end: bool) -> Vec<u8> {
    let r = p.read_upto(from, 1 << 20, to_log_end).await.unwrap();
    let Some(region) = r.region else {
        return Vec::new();
    };
    region.read_all().await.unwrap().to_vec()
}

#[test]
fn a_follower_copies_the_leaders_batches_byte_for_byte_with_their_epochs() {
    let (dl, df) = (dir("leader"), dir("follower"));
    run(async move {
        let leader = Partition::new(PartitionLog::open(&dl, LogConfig::default(), true).unwrap());
        let follower = Partition::new(PartitionLog::open(&df, LogConfig::default(), true).unwrap());
        leader
            .log_for_tests()
            .borrow_mut()
            .set_replicated()
            .unwrap();
        follower
            .log_for_tests()
            .borrow_mut()
            .set_replicated()
            .unwrap();
        leader
            .log_for_tests()
            .borrow_mut()
            .begin_leader_epoch(3)
            .unwrap();
        for i in 0..5 {
            let b = batch::build_batch(&[format!("v{i}").as_bytes(), b"x"], 1000 + i);
            leader.append(Bytes::from(b)).await.unwrap();
        }
        leader
            .log_for_tests()
            .borrow_mut()
            .begin_leader_epoch(5)
            .unwrap();
        let b = batch::build_batch(&[b"late"], 2000);
        assert_eq!(leader.append(Bytes::from(b)).await.unwrap().base_offset, 10);
        // Replicated: the high watermark waits for the followers.
        assert_eq!(leader.log_for_tests().borrow().high_watermark(), 0);
        assert!(
            read_all(&leader, 0, false).await.is_empty(),
            "consumers see nothing yet"
        );
        let bytes = read_all(&leader, 0, true).await;
        let info = follower
            .append_replica(Bytes::from(bytes.clone()))
            .await
            .unwrap();
        assert_eq!((info.base_offset, info.last_offset), (0, 10));
        assert_eq!(
            read_all(&follower, 0, true).await,
            bytes,
            "byte-for-byte copy"
        );
        assert_eq!(
            follower.log_for_tests().borrow().epochs(),
            &[(3, 0), (5, 10)]
        );
        assert_eq!(
            leader.log_for_tests().borrow().epochs(),
            follower.log_for_tests().borrow().epochs()
        );
        // Kafka's endOffsetFor.
        let ends: Vec<(i32, i64)> = [5, 4, 3, 2, 9]
            .into_iter()
            .map(|e| follower.log_for_tests().borrow().end_offset_for_epoch(e))
            .collect();
        assert_eq!(ends, vec![(5, 11), (3, 10), (3, 10), (2, 0), (-1, -1)]);
        // A gap is refused, not written.
        let again = read_all(&leader, 10, true).await;
        let e = follower
            .append_replica(Bytes::from(again))
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                LogError::NotContiguous {
                    expected: 11,
                    got: 10
                }
            ),
            "{e}"
        );
    });
}

#[test]
fn the_high_watermark_bounds_consumer_reads_at_a_batch_boundary() {
    let d = dir("hw");
    run(async move {
        let p = Partition::new(PartitionLog::open(&d, LogConfig::default(), true).unwrap());
        p.log_for_tests().borrow_mut().set_replicated().unwrap();
        for i in 0..4 {
            let b = batch::build_batch(&[format!("r{i}").as_bytes()], 1000 + i);
            p.append(Bytes::from(b)).await.unwrap();
        }
        assert!(p.set_high_watermark(2));
        assert!(!p.set_high_watermark(1), "never lowered");
        let seen = read_all(&p, 0, false).await;
        let mut rest = &seen[..];
        let mut offsets = Vec::new();
        while let Ok(b) = batch::next_batch(rest) {
            offsets.push(batch::validate(b).unwrap().base_offset);
            rest = &rest[b.len()..];
        }
        assert_eq!(offsets, vec![0, 1], "nothing at or past the high watermark");
        assert!(rest.is_empty());
        // Between the high watermark and the log end: empty, not out of range.
        assert!(p.read(3, 1000).await.unwrap().region.is_none());
        assert!(matches!(
            p.read(5, 1000).await,
            Err(LogError::OffsetOutOfRange { .. })
        ));
        // Checkpointed and restored on reopen, never past the log end.
        p.log_for_tests()
            .borrow()
            .checkpoint_high_watermark()
            .unwrap();
    });
    let mut log = PartitionLog::open(&dir_keep("hw"), LogConfig::default(), true).unwrap();
    log.set_replicated().unwrap();
    assert_eq!(log.high_watermark(), 2);
}

fn dir_keep(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ringlet-repl-{}-{tag}", std::process::id()))
}

#[test]
fn truncation_drops_the_suffix_and_its_epochs() {
    let d = dir("trunc");
    let d2 = d.clone();
    run(async move {
        let p = Partition::new(PartitionLog::open(&d2, LogConfig::default(), true).unwrap());
        p.log_for_tests().borrow_mut().set_replicated().unwrap();
        p.log_for_tests()
            .borrow_mut()
            .begin_leader_epoch(1)
            .unwrap();
        for i in 0..3 {
            p.append(Bytes::from(batch::build_batch(&[b"a"], i)))
                .await
                .unwrap();
        }
        p.log_for_tests()
            .borrow_mut()
            .begin_leader_epoch(2)
            .unwrap();
        for i in 0..3 {
            p.append(Bytes::from(batch::build_batch(&[b"b"], i)))
                .await
                .unwrap();
        }
        p.set_high_watermark(2);
        assert_eq!(p.log_for_tests().borrow().epochs(), &[(1, 0), (2, 3)]);
        p.truncate_to(3).await.unwrap();
        let log = p.log_for_tests().borrow();
        assert_eq!(log.log_end_offset(), 3);
        assert_eq!(log.epochs(), &[(1, 0)], "epoch 2 began at the cut: gone");
        assert_eq!(log.high_watermark(), 2);
    });
    // The cache survives a restart as it was left.
    let log = PartitionLog::open(&d, LogConfig::default(), true).unwrap();
    assert_eq!(log.epochs(), &[(1, 0)]);
    assert_eq!(log.log_end_offset(), 3);
}

#[test]
fn recovery_keeps_a_followers_batches_stamped_with_its_leaders_epochs() {
    // A follower (its own leader-epoch file says 0) holds batches of epoch 7 from its leader; an
    // unclean restart must keep them, not cut them as headers with an impossible epoch. (Found
    // by review: after kill -9 a follower lost committed records it could then have led with.)
    let (dl, df) = (dir("rec-leader"), dir("rec-follower"));
    let df2 = df.clone();
    run(async move {
        let leader = Partition::new(PartitionLog::open(&dl, LogConfig::default(), true).unwrap());
        let follower =
            Partition::new(PartitionLog::open(&df2, LogConfig::default(), true).unwrap());
        leader
            .log_for_tests()
            .borrow_mut()
            .set_replicated()
            .unwrap();
        follower
            .log_for_tests()
            .borrow_mut()
            .set_replicated()
            .unwrap();
        leader
            .log_for_tests()
            .borrow_mut()
            .begin_leader_epoch(7)
            .unwrap();
        for i in 0..4 {
            leader
                .append(Bytes::from(batch::build_batch(&[b"committed"], i)))
                .await
                .unwrap();
        }
        let bytes = read_all(&leader, 0, true).await;
        follower.append_replica(Bytes::from(bytes)).await.unwrap();
        assert_eq!(follower.log_for_tests().borrow().leader_epoch(), 0);
    });
    // Reopen as after a crash (no clean-shutdown marker): every batch is validated.
    let log = PartitionLog::open(&df, LogConfig::default(), false).unwrap();
    assert_eq!(log.log_end_offset(), 4, "nothing cut");
    assert_eq!(log.epochs(), &[(7, 0)]);
}
