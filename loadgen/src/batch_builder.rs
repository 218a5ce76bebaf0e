//! Builds record batch v2 payloads in place: one buffer per batch, no allocation per record.

use bytes::{BufMut, Bytes, BytesMut};
use ringlet_client::Codec;

const HEADER: usize = 61;

/// Bytes at the start of every generated value: send timestamp (µs since the epoch), producer id,
/// per-(producer, partition) sequence. Consumers read them back for end-to-end latency and
/// verification.
pub const VALUE_HEADER: usize = 16;

fn put_varint(b: &mut BytesMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        b.put_u8((z as u8) | 0x80);
        z >>= 7;
    }
    b.put_u8(z as u8);
}

fn varint_len(v: i64) -> usize {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut n = 1;
    while z >= 0x80 {
        z >>= 7;
        n += 1;
    }
    n
}

pub struct BatchBuilder {
    buf: BytesMut,
    codec: Codec,
    compressed: BytesMut,
    count: i32,
    base_timestamp_ms: i64,
}

impl BatchBuilder {
    pub fn new(capacity: usize) -> BatchBuilder {
        BatchBuilder::with_codec(capacity, Codec::None)
    }

    /// A builder whose batches are compressed with `codec` when finished.
    pub fn with_codec(capacity: usize, codec: Codec) -> BatchBuilder {
        BatchBuilder {
            codec,
            compressed: BytesMut::new(),
            buf: BytesMut::with_capacity(capacity + HEADER),
            count: 0,
            base_timestamp_ms: 0,
        }
    }

    pub fn count(&self) -> i32 {
        self.count
    }

    /// Bytes the batch would take now.
    pub fn size(&self) -> usize {
        if self.count == 0 {
            0
        } else {
            self.buf.len()
        }
    }

    /// Size one more record would add.
    pub fn record_size(key: Option<&[u8]>, value_len: usize, offset_delta: i32) -> usize {
        let body = Self::body_size(key, value_len, offset_delta);
        varint_len(body as i64) + body
    }

    /// Bytes of a record after its length varint.
    fn body_size(key: Option<&[u8]>, value_len: usize, offset_delta: i32) -> usize {
        let key_len = key.map_or(0, <[u8]>::len);
        1 + 1
            + varint_len(i64::from(offset_delta))
            + varint_len(key.map_or(-1, |k| k.len() as i64))
            + key_len
            + varint_len(value_len as i64)
            + value_len
            + 1
    }

    /// Appends a record whose value is the 16-byte header then `payload`.
    pub fn push(
        &mut self,
        key: Option<&[u8]>,
        timestamp_us: i64,
        producer_id: u32,
        sequence: u32,
        payload: &[u8],
    ) {
        if self.count == 0 {
            self.buf.clear();
            self.buf.put_bytes(0, HEADER);
            self.base_timestamp_ms = timestamp_us / 1000;
        }
        let value_len = VALUE_HEADER + payload.len();
        let delta = self.count;
        let body = Self::body_size(key, value_len, delta);
        put_varint(&mut self.buf, body as i64);
        self.buf.put_u8(0); // attributes
        put_varint(&mut self.buf, 0); // timestamp delta: all records share the batch timestamp
        put_varint(&mut self.buf, i64::from(delta));
        match key {
            Some(k) => {
                put_varint(&mut self.buf, k.len() as i64);
                self.buf.put_slice(k);
            }
            None => put_varint(&mut self.buf, -1),
        }
        put_varint(&mut self.buf, value_len as i64);
        self.buf.put_i64(timestamp_us);
        self.buf.put_u32(producer_id);
        self.buf.put_u32(sequence);
        self.buf.put_slice(payload);
        put_varint(&mut self.buf, 0); // headers
        self.count += 1;
    }

    /// Finishes the header (lengths, counts, CRC-32C) and hands the batch out.
    pub fn finish(&mut self) -> Bytes {
        assert!(self.count > 0, "an empty batch is never sent");
        if self.codec != Codec::None {
            // Compressed: the header stays, the records section is replaced by its compressed form.
            self.compressed.clear();
            self.compressed.put_slice(&self.buf[..HEADER]);
            self.codec
                .compress(&self.buf[HEADER..], &mut self.compressed)
                .expect("compressing into memory does not fail");
            std::mem::swap(&mut self.buf, &mut self.compressed);
        }
        let len = self.buf.len();
        let b = &mut self.buf[..];
        b[0..8].copy_from_slice(&0i64.to_be_bytes());
        b[8..12].copy_from_slice(&((len - 12) as i32).to_be_bytes());
        b[12..16].copy_from_slice(&(-1i32).to_be_bytes());
        b[16] = 2;
        b[21..23].copy_from_slice(&self.codec.attribute().to_be_bytes());
        b[23..27].copy_from_slice(&(self.count - 1).to_be_bytes());
        b[27..35].copy_from_slice(&self.base_timestamp_ms.to_be_bytes());
        b[35..43].copy_from_slice(&self.base_timestamp_ms.to_be_bytes());
        b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
        b[51..53].copy_from_slice(&(-1i16).to_be_bytes());
        b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
        b[57..61].copy_from_slice(&self.count.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        self.count = 0;
        let cap = self.buf.capacity();
        let out = self.buf.split().freeze();
        self.buf.reserve(cap.max(HEADER));
        out
    }
}

/// Reads a zig-zag varint.
pub fn read_varint(b: &[u8]) -> Option<(i64, usize)> {
    let mut raw: u64 = 0;
    for (i, byte) in b.iter().enumerate().take(10) {
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((((raw >> 1) as i64) ^ -((raw & 1) as i64), i + 1));
        }
    }
    None
}

/// One record's generated header, as read back by a consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordStamp {
    pub offset: i64,
    pub timestamp_us: i64,
    pub producer_id: u32,
    pub sequence: u32,
    pub value_len: usize,
}

/// The complete record batches at the start of `records` (a partial batch at the end, as
/// brokers send, is left out; so is everything after a malformed length).
fn batches(mut records: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if records.len() < HEADER {
            return None;
        }
        let len = i32::from_be_bytes(records[8..12].try_into().expect("4 bytes")) as usize + 12;
        if len > records.len() || len < HEADER {
            return None;
        }
        let (batch, rest) = records.split_at(len);
        records = rest;
        Some(batch)
    })
}

/// The offset after the last complete batch in `records`, from batch headers alone (no record
/// is parsed): what a consumer fetches next.
pub fn next_offset(records: &[u8]) -> Option<i64> {
    batches(records).last().map(|b| {
        let base = i64::from_be_bytes(b[0..8].try_into().expect("8 bytes"));
        let last_delta = i32::from_be_bytes(b[23..27].try_into().expect("4 bytes"));
        base + i64::from(last_delta) + 1
    })
}

/// Walks the batches in a fetch response's records and calls `f` for every generated record.
/// Compressed batches are skipped (the generator sends uncompressed) and counted in the result.
/// A partial batch at the end (as brokers send) is ignored.
pub fn for_each_record(records: &[u8], mut f: impl FnMut(RecordStamp)) -> usize {
    let mut skipped = 0;
    for batch in batches(records) {
        let base = i64::from_be_bytes(batch[0..8].try_into().expect("8 bytes"));
        let attrs = i16::from_be_bytes([batch[21], batch[22]]);
        let codec = Codec::from_attribute(attrs);
        if attrs & 0x20 != 0 || codec.is_none() {
            skipped += 1;
            continue;
        }
        let count = i32::from_be_bytes(batch[57..61].try_into().expect("4 bytes"));
        let decompressed;
        let mut r = match codec {
            Some(Codec::None) | None => &batch[HEADER..],
            Some(c) => match c.decompress(&batch[HEADER..]) {
                Ok(d) => {
                    decompressed = d;
                    &decompressed[..]
                }
                Err(_) => {
                    skipped += 1;
                    continue;
                }
            },
        };
        for _ in 0..count {
            // Bytes from a broker are checked before they are indexed: a malformed record ends
            // the batch instead of panicking.
            let Some((body_len, n)) = read_varint(r) else {
                break;
            };
            let Some(body) = usize::try_from(body_len).ok().and_then(|l| r.get(n..n + l)) else {
                break;
            };
            r = &r[n + body.len()..];
            let mut at = 1;
            let Some((_, t)) = body.get(at..).and_then(read_varint) else {
                break;
            };
            at += t;
            let Some((delta, d)) = body.get(at..).and_then(read_varint) else {
                break;
            };
            at += d;
            let Some((key_len, k)) = body.get(at..).and_then(read_varint) else {
                break;
            };
            at += k + key_len.max(0) as usize;
            let Some((value_len, v)) = body.get(at..).and_then(read_varint) else {
                break;
            };
            at += v;
            if value_len >= VALUE_HEADER as i64 {
                let Some(value) = body.get(at..at + VALUE_HEADER) else {
                    break;
                };
                f(RecordStamp {
                    offset: base + delta,
                    timestamp_us: i64::from_be_bytes(value[0..8].try_into().expect("8 bytes")),
                    producer_id: u32::from_be_bytes(value[8..12].try_into().expect("4 bytes")),
                    sequence: u32::from_be_bytes(value[12..16].try_into().expect("4 bytes")),
                    value_len: value_len as usize,
                });
            }
        }
    }
    skipped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_offset_follows_the_last_complete_batch() {
        let mut b = BatchBuilder::new(4096);
        for i in 0..10u32 {
            b.push(None, 1, 9, i, &[1u8; 50]);
        }
        let mut first = b.finish().to_vec();
        // As a broker stores it: the second batch starts at offset 10.
        let mut second = first.clone();
        second[0..8].copy_from_slice(&10i64.to_be_bytes());
        assert_eq!(next_offset(&first), Some(10));
        first.extend_from_slice(&second);
        assert_eq!(next_offset(&first), Some(20));
        // A partial batch at the end does not count; nothing complete: no offset.
        first.extend_from_slice(&second[..40]);
        assert_eq!(next_offset(&first), Some(20));
        assert_eq!(next_offset(&second[..HEADER + 5]), None);
    }

    #[test]
    fn built_batches_parse_back() {
        let mut b = BatchBuilder::new(4096);
        let payload = [7u8; 100];
        for i in 0..10u32 {
            let key = [i as u8; 3];
            let predicted =
                BatchBuilder::record_size(Some(&key), VALUE_HEADER + payload.len(), i as i32);
            let before = if i == 0 { HEADER } else { b.size() };
            b.push(Some(&key), 1_000_000 + i64::from(i), 9, i, &payload);
            assert_eq!(b.size() - before, predicted);
        }
        let batch = b.finish();
        let crc = u32::from_be_bytes(batch[17..21].try_into().unwrap());
        assert_eq!(crc, crc32c::crc32c(&batch[21..]));
        let mut seen = Vec::new();
        assert_eq!(for_each_record(&batch, |s| seen.push(s)), 0);
        assert_eq!(seen.len(), 10);
        assert_eq!(
            seen[3],
            RecordStamp {
                offset: 3,
                timestamp_us: 1_000_003,
                producer_id: 9,
                sequence: 3,
                value_len: 116
            }
        );
        // Every codec round-trips through the parser.
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let mut c = BatchBuilder::with_codec(4096, codec);
            for i in 0..20u32 {
                c.push(None, 42, 1, i, &payload);
            }
            let batch = c.finish();
            assert!(
                batch.len() < HEADER + 20 * 100,
                "{codec:?} compressed repetitive values"
            );
            let mut n = 0;
            assert_eq!(
                for_each_record(&batch, |s| {
                    assert_eq!(s.sequence, n);
                    n += 1;
                }),
                0
            );
            assert_eq!(n, 20, "{codec:?}");
        }
        // The builder is reusable after finish.
        b.push(None, 5, 1, 0, &payload);
        assert_eq!(
            b.finish().len(),
            HEADER + BatchBuilder::record_size(None, VALUE_HEADER + 100, 0)
        );
    }
}
