//! Record batches for the console tools: building keyed records with headers (optionally
//! compressed) and reading every field back, compressed batches included.

use crate::codec::Codec;
use bytes::BytesMut;
use ringlet_format::batch::{self, read_varint, write_varint, BatchHeader, HEADER_SIZE};

/// One record as the tools see it.
#[derive(Clone, Debug, Default)]
pub struct Record {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            write_varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
        None => write_varint(out, -1),
    }
}

/// Builds one batch of `records` (offsets from 0) with `timestamp`, compressed with `codec`.
pub fn build(records: &[Record], timestamp: i64, codec: Codec) -> anyhow::Result<Vec<u8>> {
    let mut body_all = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let mut body = vec![0u8];
        write_varint(&mut body, 0);
        write_varint(&mut body, i as i64);
        put_bytes(&mut body, r.key.as_deref());
        put_bytes(&mut body, r.value.as_deref());
        write_varint(&mut body, r.headers.len() as i64);
        for (k, v) in &r.headers {
            put_bytes(&mut body, Some(k.as_bytes()));
            put_bytes(&mut body, v.as_deref());
        }
        write_varint(&mut body_all, body.len() as i64);
        body_all.extend_from_slice(&body);
    }
    let mut b = batch::build_batch(&[], timestamp);
    b.truncate(HEADER_SIZE);
    let mut out = BytesMut::from(&b[..]);
    codec.compress(&body_all, &mut out)?;
    let mut b = out.to_vec();
    let len = (b.len() - batch::LOG_OVERHEAD) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[21..23].copy_from_slice(&codec.attribute().to_be_bytes());
    b[23..27].copy_from_slice(&(records.len() as i32 - 1).to_be_bytes());
    b[57..61].copy_from_slice(&(records.len() as i32).to_be_bytes());
    let crc = batch::compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(b)
}

fn take<'a>(b: &'a [u8], at: &mut usize) -> Option<Option<&'a [u8]>> {
    let (len, n) = read_varint(b.get(*at..)?)?;
    *at += n;
    if len < 0 {
        return Some(None);
    }
    let v = b.get(*at..*at + len as usize)?;
    *at += len as usize;
    Some(Some(v))
}

/// Parses every complete batch in `bytes` (a fetch response's records); a partial batch at the
/// end is ignored, as brokers may send one. Control batches are skipped.
pub fn parse(mut bytes: &[u8]) -> anyhow::Result<Vec<Record>> {
    let mut out = Vec::new();
    while let Ok(b) = batch::next_batch(bytes) {
        bytes = &bytes[b.len()..];
        let h = BatchHeader::parse(b)?;
        if h.is_control() {
            continue;
        }
        let codec = Codec::from_attribute(h.attributes)
            .ok_or_else(|| anyhow::anyhow!("unknown compression codec {}", h.compression()))?;
        let records = codec.decompress(&b[HEADER_SIZE..])?;
        let mut r: &[u8] = &records;
        let log_append = h.attributes & batch::ATTR_LOG_APPEND_TIME != 0;
        for _ in 0..h.record_count {
            let bad = || anyhow::anyhow!("malformed record in batch at offset {}", h.base_offset);
            let (len, n) = read_varint(r).ok_or_else(bad)?;
            let body = r.get(n..n + len.max(0) as usize).ok_or_else(bad)?;
            r = &r[n + body.len()..];
            let mut at = 1;
            let (ts_delta, t) = read_varint(body.get(at..).ok_or_else(bad)?).ok_or_else(bad)?;
            at += t;
            let (off_delta, d) = read_varint(body.get(at..).ok_or_else(bad)?).ok_or_else(bad)?;
            at += d;
            let key = take(body, &mut at).ok_or_else(bad)?.map(<[u8]>::to_vec);
            let value = take(body, &mut at).ok_or_else(bad)?.map(<[u8]>::to_vec);
            let (nh, hn) = read_varint(body.get(at..).ok_or_else(bad)?).ok_or_else(bad)?;
            at += hn;
            let mut headers = Vec::new();
            for _ in 0..nh.max(0) {
                let k = take(body, &mut at).ok_or_else(bad)?.unwrap_or_default();
                let v = take(body, &mut at).ok_or_else(bad)?.map(<[u8]>::to_vec);
                headers.push((String::from_utf8_lossy(k).into_owned(), v));
            }
            out.push(Record {
                offset: h.base_offset + off_delta,
                timestamp: if log_append {
                    h.max_timestamp
                } else {
                    h.base_timestamp + ts_delta
                },
                key,
                value,
                headers,
            });
        }
    }
    Ok(out)
}

/// Kafka's default partitioner for keyed records: murmur2 of the key, positive, modulo.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    let seed: u32 = 0x9747_b28c;
    let m: u32 = 0x5bd1_e995;
    let r = 24;
    let len = key.len() as u32;
    let mut h: u32 = seed ^ len;
    let chunks = key.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(m);
        k ^= k >> r;
        k = k.wrapping_mul(m);
        h = h.wrapping_mul(m);
        h ^= k;
    }
    match tail.len() {
        3 => {
            h ^= u32::from(tail[2]) << 16;
            h ^= u32::from(tail[1]) << 8;
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(m);
        }
        2 => {
            h ^= u32::from(tail[1]) << 8;
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(m);
        }
        1 => {
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(m);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(m);
    h ^= h >> 15;
    ((h & 0x7fff_ffff) % partitions.max(1) as u32) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_every_codec() {
        let recs = vec![
            Record {
                key: Some(b"k".to_vec()),
                value: Some(b"v1".to_vec()),
                headers: vec![("h".into(), Some(b"x".to_vec()))],
                ..Record::default()
            },
            Record {
                key: None,
                value: None,
                ..Record::default()
            },
        ];
        for codec in [
            Codec::None,
            Codec::Gzip,
            Codec::Snappy,
            Codec::Lz4,
            Codec::Zstd,
        ] {
            let b = build(&recs, 1234, codec).unwrap();
            batch::validate(&b).unwrap();
            let back = parse(&b).unwrap();
            assert_eq!(back.len(), 2);
            assert_eq!(back[0].key.as_deref(), Some(&b"k"[..]));
            assert_eq!(back[0].headers[0].1.as_deref(), Some(&b"x"[..]));
            assert_eq!(back[1].value, None);
            assert_eq!(back[1].offset, 1);
            assert_eq!(back[0].timestamp, 1234);
        }
    }

    #[test]
    fn murmur2_matches_kafka() {
        // Values from Kafka's own partitioner tests (Utils.murmur2 & 0x7fffffff).
        assert_eq!(
            partition_for_key(b"21", i32::MAX),
            -973932308i32 & 0x7fff_ffff
        );
        assert_eq!(
            partition_for_key(b"a-little-bit-long-string", i32::MAX),
            -985981536i32 & 0x7fff_ffff
        );
    }
}
