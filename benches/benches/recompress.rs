//! Broker-side recompression (a topic's `compression.type`, issue 21 item 5) beside its no-copy
//! baseline measured in the same run: the batch is validated and kept when the producer's codec is
//! the topic's (or the topic says `producer`), and re-framed in the topic's codec otherwise.
//!
//! Run: `cargo bench -p ringlet-benches --bench recompress`. Figures go to docs/benchmarks.md.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringlet_format::batch;
use ringlet_format::codec::{recompress, Codec, Target};

const LIMIT: usize = 100 << 20;

/// A producer-sized batch (64 KiB of records) of JSON-like events, compressible as real ones are.
fn events() -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..256)
        .map(|i| {
            format!(
                r#"{{"id":{i},"user":"user-{}","event":"{}","page":"/catalog/item/{}","ts":{},"pad":"{}"}}"#,
                i * 7919 % 1000,
                ["click", "view", "purchase", "scroll"][i % 4],
                i * 31 % 500,
                1_700_000_000_000u64 + i as u64 * 13,
                "abcdefgh".repeat(16 + i % 8)
            )
            .into_bytes()
        })
        .collect();
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    batch::build_batch(&refs, 1_700_000_000_000)
}

fn recompression(c: &mut Criterion) {
    let plain = events();
    let records = (plain.len() - batch::HEADER_SIZE) as u64;
    let mut g = c.benchmark_group("recompress");
    g.throughput(Throughput::Bytes(records));
    let codecs = [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ];
    for from in codecs {
        let input = recompress(&plain, Target::new(from), LIMIT)
            .expect("compress")
            .unwrap_or_else(|| plain.clone());
        // Baselines: what every produce costs (the log's validation: CRC, header, and for an
        // uncompressed batch the record framing), and the kept path (codec already the topic's).
        g.bench_with_input(
            BenchmarkId::new(format!("{}-validate", from.name()), from.name()),
            &input,
            |b, input| b.iter(|| batch::validate(input).unwrap()),
        );
        g.bench_with_input(
            BenchmarkId::new(format!("{}-kept", from.name()), from.name()),
            &input,
            |b, input| {
                b.iter(|| {
                    assert!(recompress(input, Target::new(from), LIMIT)
                        .unwrap()
                        .is_none())
                })
            },
        );
        for to in codecs.into_iter().filter(|&to| to != from) {
            g.bench_with_input(
                BenchmarkId::new(format!("{}-to", from.name()), to.name()),
                &input,
                |b, input| b.iter(|| recompress(input, Target::new(to), LIMIT).unwrap().unwrap()),
            );
        }
    }
    g.finish();
}

criterion_group!(benches, recompression);
criterion_main!(benches);
