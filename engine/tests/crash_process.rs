//! Process-level crash test: a child process appends with `log.flush.interval.messages=1` and
//! prints each offset once its append returned (and so was flushed); the parent kills it with
//! SIGKILL at random moments, recovers the log, and checks that every reported offset is present
//! with a valid CRC and the value the child wrote.

use bytes::Bytes;
use ringlet_engine::runtime::{self, BackendChoice};
use ringlet_engine::{LogConfig, Partition, PartitionLog};
use ringlet_format::batch;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "RINGLET_CRASH_CHILD_DIR";

fn cfg() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        flush_interval_messages: 1,
        ..LogConfig::default()
    }
}

fn value_for(offset: i64) -> Vec<u8> {
    format!(
        "record-{offset:012}-{}",
        "x".repeat((offset % 200) as usize)
    )
    .into_bytes()
}

/// The child: appends forever, one record per batch, printing each acknowledged offset.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // Only meaningful when started by `flushed_appends_survive_sigkill`.
    };
    runtime::block_on(BackendChoice::Auto, async move {
        let log = PartitionLog::open(std::path::Path::new(&dir), cfg(), false).unwrap();
        let p = Partition::new(log);
        loop {
            let next = p.log_for_tests().borrow().appended_offset();
            let v = value_for(next);
            let b = batch::build_batch(&[&v], 1_700_000_000_000);
            let info = p.append(Bytes::from(b)).await.unwrap();
            assert_eq!(info.base_offset, next);
            println!("{}", info.base_offset);
        }
    })
    .unwrap();
}

fn read_all(dir: &std::path::Path) -> Vec<(i64, Vec<u8>)> {
    let log = PartitionLog::open(dir, cfg(), false).unwrap();
    let mut out = Vec::new();
    for (path, size, _) in log.segment_files() {
        let f = std::fs::File::open(&path).unwrap();
        let mut bytes = vec![0u8; size as usize];
        f.read_exact_at(&mut bytes, 0).unwrap();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let b = batch::next_batch(rest).unwrap();
            let h = batch::validate(b).unwrap();
            out.push((h.base_offset, b.to_vec()));
            rest = &rest[b.len()..];
        }
    }
    out
}

#[test]
fn flushed_appends_survive_sigkill() {
    let dir = std::env::temp_dir().join(format!("ringlet-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acknowledged_max = -1i64;
    let cycles = 8;
    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        // Kill after a pseudo-random number of acknowledgements (bounded by time too).
        let target = 50 + (cycle * 7919 % 400) as i64;
        let started = Instant::now();
        let mut seen = 0;
        while let Some(Ok(line)) = lines.next() {
            if let Ok(off) = line.trim().parse::<i64>() {
                acknowledged_max = acknowledged_max.max(off);
                seen += 1;
            }
            if seen >= target || started.elapsed() > Duration::from_secs(20) {
                break;
            }
        }
        child.kill().unwrap();
        let _ = child.wait();
        assert!(seen > 0, "child acknowledged nothing in cycle {cycle}");
        let records = read_all(&dir);
        for (i, (off, b)) in records.iter().enumerate() {
            assert_eq!(*off, i as i64, "offsets dense after recovery");
            let h = batch::validate(b).unwrap();
            assert_eq!(h.record_count, 1);
            let want = value_for(*off);
            assert!(
                b.windows(want.len()).any(|w| w == want.as_slice()),
                "value of {off} intact"
            );
        }
        let end = records.len() as i64;
        assert!(
            end > acknowledged_max,
            "cycle {cycle}: acknowledged offset {acknowledged_max} lost (log ends at {end})"
        );
        eprintln!("cycle {cycle}: {seen} acknowledged, log end {end}, all {end} batches valid");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
