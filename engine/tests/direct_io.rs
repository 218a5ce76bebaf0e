//! Direct I/O (`ringlet.log.direct.io`) and the tail cache against buffered mode, on both
//! backends: the same appends leave byte-identical segment files, reads of the tail come from
//! the cache and match the file, a restart continues writing in the middle of a block, cold
//! reads through the read-ahead windows (`ringlet.log.read.ahead.bytes`, small here so batches
//! straddle windows) return what the page-cache path returns, and a truncation never lets the
//! cache or a window serve what was cut.

use bytes::Bytes;
use ringlet_engine::runtime::{self, BackendChoice};
use ringlet_engine::{LogConfig, Partition, PartitionLog, Region};
use ringlet_format::batch;
use std::path::{Path, PathBuf};
use std::rc::Rc;

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ringlet-direct-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Whether the temporary directory's file system takes `O_DIRECT` (tmpfs on older kernels
/// does not; the log then writes through the page cache and the direct assertions are moot).
fn direct_supported() -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let p = dir("probe");
    std::fs::create_dir_all(&p).unwrap();
    let f = p.join("f");
    std::fs::write(&f, b"").unwrap();
    let ok = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&f)
        .is_ok();
    let _ = std::fs::remove_dir_all(&p);
    ok
}

fn config(direct: bool) -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        index_interval_bytes: 1024,
        direct_io: direct,
        read_ahead_bytes: 8192,
        ..LogConfig::default()
    }
}

/// A batch of `n` records whose sizes vary, so batch ends fall anywhere in a block.
fn batch_of(i: usize) -> Bytes {
    let n = 1 + i % 5;
    let values: Vec<Vec<u8>> = (0..n)
        .map(|r| vec![(i * 7 + r) as u8; 17 + (i * 131 + r * 29) % 900])
        .collect();
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    Bytes::from(batch::build_batch(&refs, 1_700_000_000_000 + i as i64))
}

async fn read_all(p: &Rc<Partition>) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut from_cache = 0;
    let mut offset = p.log_start_offset();
    while offset < p.high_watermark() {
        let r = p.read(offset, 10_000).await.unwrap();
        let region = r.region.expect("data below the high watermark");
        if matches!(region, Region::Memory { .. }) {
            from_cache += 1;
        }
        let bytes = region.read_all().await.unwrap();
        assert_eq!(bytes.len(), region.len());
        // Whole batches only (a read may end in a partial one, which is fetched again).
        let mut rest = &bytes[..];
        while let Ok(b) = batch::next_batch(rest) {
            let h = batch::validate(b).unwrap();
            if h.last_offset() >= offset {
                assert!(h.base_offset <= offset);
                out.extend_from_slice(b);
                offset = h.last_offset() + 1;
            }
            rest = &rest[b.len()..];
        }
    }
    (out, from_cache)
}

fn segment_bytes(d: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log" || e == "index"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// Appends 300 batches (a restart in the middle), reading everything back after each phase;
/// returns the files after a clean close and what the reads saw.
fn scenario(backend: BackendChoice, direct: bool, tag: &str) -> (Vec<(String, Vec<u8>)>, Vec<u8>) {
    scenario_with(backend, config(direct), tag)
}

fn scenario_with(
    backend: BackendChoice,
    first: LogConfig,
    tag: &str,
) -> (Vec<(String, Vec<u8>)>, Vec<u8>) {
    let direct = first.direct_io;
    let config = move |_: bool| first.clone();
    let d = dir(tag);
    let d2 = d.clone();
    let seen = runtime::block_on(backend, async move {
        let p = Partition::new(PartitionLog::open(&d2, config(direct), true).unwrap());
        for i in 0..150 {
            p.append(batch_of(i)).await.unwrap();
        }
        let writes_direct = p.log_for_tests().borrow().writes_direct();
        assert_eq!(writes_direct, direct && direct_supported());
        if writes_direct {
            // While the segment is active its file ends with the padding of the last direct
            // write: a whole number of blocks.
            let active = p.log_for_tests().borrow().active().log_path.clone();
            assert_eq!(std::fs::metadata(&active).unwrap().len() % 4096, 0);
        }
        let (first, cached) = read_all(&p).await;
        if writes_direct {
            assert!(cached > 0, "tail reads come from the cache");
        } else {
            assert_eq!(cached, 0, "buffered mode keeps no cache");
        }
        p.log_for_tests().borrow_mut().close().unwrap();
        drop(p);
        // Reopened: the first direct write rereads the partial block the file ends in.
        let p = Partition::new(PartitionLog::open(&d2, config(direct), true).unwrap());
        for i in 150..300 {
            p.append(batch_of(i)).await.unwrap();
        }
        let (all, _) = read_all(&p).await;
        assert_eq!(&all[..first.len()], &first[..]);
        p.log_for_tests().borrow_mut().close().unwrap();
        drop(p);
        // A cold open (no cache) reads the same bytes from the files: in direct mode through
        // the read-ahead windows, else (or with read-ahead off) through the page cache.
        let p = Partition::new(PartitionLog::open(&d2, config(direct), true).unwrap());
        let (cold, in_memory) = read_all(&p).await;
        if direct && direct_supported() {
            assert!(
                in_memory > 0,
                "cold reads go through the read-ahead windows"
            );
        } else {
            assert_eq!(in_memory, 0);
        }
        assert_eq!(cold, all);
        p.log_for_tests().borrow_mut().close().unwrap();
        drop(p);
        let page_cache = LogConfig {
            read_ahead_bytes: 0,
            ..config(direct)
        };
        let p = Partition::new(PartitionLog::open(&d2, page_cache, true).unwrap());
        let (cold, in_memory) = read_all(&p).await;
        assert_eq!(in_memory, 0);
        assert_eq!(cold, all);
        all
    })
    .unwrap();
    let files = segment_bytes(&d);
    std::fs::remove_dir_all(&d).unwrap();
    (files, seen)
}

#[test]
fn direct_and_buffered_logs_are_byte_identical_on_both_backends() {
    let (buffered_files, buffered) = scenario(BackendChoice::Auto, false, "buffered");
    assert!(buffered_files.len() > 4, "the scenario rolls segments");
    for (backend, tag) in [
        (BackendChoice::Auto, "direct-auto"),
        (BackendChoice::Portable(None), "direct-portable"),
    ] {
        let (files, seen) = scenario(backend, true, tag);
        assert_eq!(seen, buffered, "{tag}: reads differ");
        // Timestamps and offsets are the same, so every file is the same byte for byte.
        assert_eq!(files.len(), buffered_files.len(), "{tag}");
        for ((n1, b1), (n2, b2)) in files.iter().zip(&buffered_files) {
            assert_eq!(n1, n2, "{tag}");
            assert!(
                b1 == b2,
                "{tag}: {n1} differs ({} vs {} bytes)",
                b1.len(),
                b2.len()
            );
        }
    }
}

/// Whether the temporary directory's file system reserves space with `FALLOC_FL_KEEP_SIZE`.
fn keep_size_supported() -> bool {
    let p = dir("probe-falloc");
    std::fs::create_dir_all(&p).unwrap();
    let f = std::fs::File::create(p.join("f")).unwrap();
    let ok = runtime::fs::preallocate(&f, 1 << 20).is_ok();
    let _ = std::fs::remove_dir_all(&p);
    ok
}

/// Bytes the file system holds for a file (its blocks), not its size.
fn allocated(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).unwrap().blocks() * 512
}

#[test]
fn preallocated_segments_are_kafkas_bytes_and_give_back_the_reservation() {
    let (plain_files, plain) = scenario(BackendChoice::Auto, false, "plain");
    for direct in [false, true] {
        let tag = if direct {
            "prealloc-direct"
        } else {
            "prealloc-buffered"
        };
        let c = LogConfig {
            preallocate: true,
            ..config(direct)
        };
        let (files, seen) = scenario_with(BackendChoice::Auto, c, tag);
        assert_eq!(seen, plain, "{tag}: reads differ");
        assert!(files == plain_files, "{tag}: files differ");
    }
    if !keep_size_supported() {
        return;
    }
    // The active segment holds segment.bytes of disk while it is written; a rolled or closed
    // one holds only its batches' blocks.
    for direct in [false, true] {
        let d = dir(if direct {
            "reserve-direct"
        } else {
            "reserve-buffered"
        });
        let d2 = d.clone();
        let segment_bytes = 1 << 20;
        runtime::block_on(BackendChoice::Auto, async move {
            let c = LogConfig {
                preallocate: true,
                segment_bytes,
                ..config(direct)
            };
            let p = Partition::new(PartitionLog::open(&d2, c, true).unwrap());
            p.append(batch_of(0)).await.unwrap();
            let active = p.log_for_tests().borrow().active().log_path.clone();
            assert!(
                allocated(&active) >= segment_bytes,
                "the active segment is reserved"
            );
            let mut i = 1;
            while p.log_for_tests().borrow().active().log_path == active {
                p.append(batch_of(i)).await.unwrap();
                i += 1;
            }
            let rolled = std::fs::metadata(&active).unwrap().len();
            assert!(rolled < segment_bytes);
            assert!(
                allocated(&active) <= rolled.next_multiple_of(4096),
                "a rolled segment gives back the reservation past its end"
            );
            let last = p.log_for_tests().borrow().active().log_path.clone();
            assert!(allocated(&last) >= segment_bytes);
            p.log_for_tests().borrow_mut().close().unwrap();
            let closed = std::fs::metadata(&last).unwrap().len();
            assert!(allocated(&last) <= closed.next_multiple_of(4096));
        })
        .unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }
}

#[test]
fn truncation_drops_the_cached_tail() {
    truncation_drops_what_was_read(64 << 20, "truncate");
}

#[test]
fn truncation_drops_the_read_ahead_window() {
    // No tail cache: every read goes through the read-ahead windows.
    truncation_drops_what_was_read(0, "truncate-window");
}

fn truncation_drops_what_was_read(tail_cache_bytes: u64, tag: &str) {
    let d = dir(tag);
    let d2 = d.clone();
    runtime::block_on(BackendChoice::Auto, async move {
        let cfg = LogConfig {
            tail_cache_bytes,
            ..config(true)
        };
        let p = Partition::new(PartitionLog::open(&d2, cfg, true).unwrap());
        for i in 0..20 {
            p.append(batch_of(i)).await.unwrap();
        }
        let cut = 10;
        let base = {
            let r = p.read(0, 1 << 20).await.unwrap();
            let bytes = r.region.unwrap().read_all().await.unwrap();
            let mut rest = &bytes[..];
            let mut at = None;
            while let Ok(b) = batch::next_batch(rest) {
                let h = batch::validate(b).unwrap();
                if h.base_offset >= cut && at.is_none() {
                    at = Some(h.base_offset);
                }
                rest = &rest[b.len()..];
            }
            at.unwrap()
        };
        // The window (without a tail cache) now holds the bytes about to be cut.
        let before = p.read(base, 1).await.unwrap().region.unwrap();
        assert_eq!(matches!(before, Region::Memory { .. }), direct_supported());
        p.truncate_to(base).await.unwrap();
        assert_eq!(p.log_end_offset(), base);
        // Different batches at the same offsets: what is read is the new ones.
        let mut expect = Vec::new();
        for i in 100..110 {
            let b = batch_of(i);
            let info = p.append(b.clone()).await.unwrap();
            let mut b = b.to_vec();
            b[0..8].copy_from_slice(&info.base_offset.to_be_bytes());
            expect.push((info.base_offset, b));
        }
        for (offset, want) in expect {
            let r = p.read(offset, 1).await.unwrap();
            let got = r.region.unwrap().read_all().await.unwrap();
            let b = batch::next_batch(&got).unwrap();
            // Bytes past the leader epoch (which the broker stamps) are the producer's.
            assert_eq!(&b[16..], &want[16..], "offset {offset}");
        }
    })
    .unwrap();
    std::fs::remove_dir_all(&d).unwrap();
}
