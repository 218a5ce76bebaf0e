//! The fuzz targets of `fuzz/` on stable: seeded mutations of the captured corpus (requests),
//! of generated batches and of a real crashed segment, for `RINGLET_FUZZ_SECONDS` (default 8)
//! per target. Coverage-guided runs use `cargo fuzz` (fuzz/README.md); this one runs in every CI.

use ringlet_server::fuzzing::{batch_target, recovery_target, RequestTarget};
use std::time::{Duration, Instant};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Values that break length and count fields.
const INTERESTING: [i32; 9] = [-1, 0, 1, 0x7f, 0x80, 0xffff, 0x7fff_ffff, i32::MIN, 1 << 20];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = [0u8, 0xff, 0x7f, 0x80][rng.below(4)];
            }
            2 if v.len() >= 4 => {
                let i = rng.below(v.len() - 3);
                let x = INTERESTING[rng.below(INTERESTING.len())];
                v[i..i + 4].copy_from_slice(&x.to_be_bytes());
            }
            3 if v.len() >= 2 => {
                let i = rng.below(v.len() - 1);
                let x = INTERESTING[rng.below(INTERESTING.len())] as i16;
                v[i..i + 2].copy_from_slice(&x.to_be_bytes());
            }
            4 => {
                let n = rng.below(v.len() + 1);
                v.truncate(n);
            }
            _ => {
                let i = rng.below(v.len() + 1);
                let n = 1 + rng.below(16);
                let fill: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(i..i, fill);
            }
        }
    }
    v
}

fn budget() -> Duration {
    let s = std::env::var("RINGLET_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8.0);
    Duration::from_secs_f64(s)
}

fn corpus() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/request");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("fuzz/corpus/request")
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(out.len() >= 30, "the request corpus is missing");
    out.into_iter().map(|(_, b)| b).collect()
}

fn tmp(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ringlet-fuzz-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn requests_from_real_clients_mutated() {
    let corpus = corpus();
    let dir = tmp("request");
    let mut target = RequestTarget::new(&dir);
    // The corpus itself first: every captured request is served.
    target.run(corpus.clone());
    let mut rng = Rng(0x5eed_0001);
    let deadline = Instant::now() + budget();
    let mut n = 0u64;
    while Instant::now() < deadline {
        // A fresh broker now and then: mutated CreateTopics requests add topics (and files).
        if n > 0 && n.is_multiple_of(64 * 50) {
            let _ = std::fs::remove_dir_all(&dir);
            target = RequestTarget::new(&dir);
        }
        let frames: Vec<Vec<u8>> = (0..64)
            .map(|_| {
                let i = rng.below(corpus.len());
                mutate(&mut rng, &corpus[i])
            })
            .collect();
        target.run(frames);
        n += 64;
    }
    eprintln!("request target: {n} mutated frames");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn batches_mutated() {
    use ringlet_format::batch;
    let seeds: Vec<Vec<u8>> = vec![
        batch::build_batch(&[b"a", b"bb", b"ccc"], 1_700_000_000_000),
        batch::build_batch_with(&[&b"x"[..]; 20], 1_700_000_000_000, 42, 1, 7),
        ringlet_client::records::build(
            &[ringlet_client::Record {
                key: Some(b"k".to_vec()),
                value: Some(vec![7; 300]),
                headers: vec![("h".into(), Some(b"v".to_vec()))],
                ..Default::default()
            }],
            1_700_000_000_000,
            ringlet_client::Codec::Lz4,
        )
        .unwrap(),
    ];
    for s in &seeds {
        batch::validate(s).expect("seed batches are valid");
    }
    let mut rng = Rng(0x5eed_0002);
    let deadline = Instant::now() + budget();
    let mut n = 0u64;
    while Instant::now() < deadline {
        for _ in 0..1000 {
            let i = rng.below(seeds.len());
            let m = mutate(&mut rng, &seeds[i]);
            batch_target(&m);
        }
        n += 1000;
    }
    eprintln!("batch target: {n} mutated batches");
}

#[test]
fn crashed_segments_mutated() {
    use bytes::Bytes;
    use ringlet_engine::runtime::{self, BackendChoice};
    use ringlet_engine::{LogConfig, Partition, PartitionLog};
    use ringlet_format::batch;
    // A real segment and index, written by the engine.
    let src = tmp("recovery-src");
    let src2 = src.clone();
    runtime::block_on(BackendChoice::Portable(None), async move {
        let cfg = LogConfig {
            index_interval_bytes: 128,
            ..LogConfig::default()
        };
        let p = Partition::new(PartitionLog::open(&src2, cfg, true).unwrap());
        for i in 0..40u8 {
            let b = batch::build_batch(&[&[i; 60][..], &[i; 20][..]], 1_700_000_000_000);
            p.append(Bytes::from(b)).await.unwrap();
        }
        p.log_for_tests().borrow_mut().close().unwrap();
    })
    .unwrap();
    let log = std::fs::read(src.join("00000000000000000000.log")).unwrap();
    let index = std::fs::read(src.join("00000000000000000000.index")).unwrap_or_default();
    let dir = tmp("recovery");
    recovery_target(&dir, &log, &index);
    let mut rng = Rng(0x5eed_0003);
    let deadline = Instant::now() + budget();
    let mut n = 0u64;
    while Instant::now() < deadline {
        let l = mutate(&mut rng, &log);
        let i = if rng.below(4) == 0 {
            mutate(&mut rng, &index)
        } else {
            index.clone()
        };
        recovery_target(&dir, &l, &i);
        n += 1;
    }
    eprintln!("recovery target: {n} mutated segments");
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(src);
}
