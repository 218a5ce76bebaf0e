//! Kafka record batch v2 (magic 2): header layout, validation and the rewrites the broker does.
//!
//! ```text
//! offset  size  field
//!      0     8  baseOffset            (rewritten by the broker; not covered by the CRC)
//!      8     4  batchLength           (bytes after this field)
//!     12     4  partitionLeaderEpoch  (not covered by the CRC)
//!     16     1  magic                 (2)
//!     17     4  crc                   (CRC-32C of bytes 21..end)
//!     21     2  attributes            (bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control)
//!     23     4  lastOffsetDelta
//!     27     8  baseTimestamp
//!     35     8  maxTimestamp
//!     43     8  producerId
//!     51     2  producerEpoch
//!     53     4  baseSequence
//!     57     4  recordCount
//!     61     …  records
//! ```

use crate::error::BatchError;

/// Size of the v2 batch header.
pub const HEADER_SIZE: usize = 61;
/// Bytes before `batchLength`'s payload: baseOffset + batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// The bytes of a header needed to know a batch's offsets and size.
pub const OFFSETS_PREFIX: usize = 27;

const _: () = assert!(HEADER_SIZE == 61 && LOG_OVERHEAD == 12);

pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
pub const ATTR_LOG_APPEND_TIME: i16 = 0x08;
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
pub const ATTR_CONTROL: i16 = 0x20;

/// Which timestamp a topic stores (`message.timestamp.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The header fields of a batch that the engine uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Parses the fixed header; `bytes` must hold at least [`HEADER_SIZE`] bytes.
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
        if bytes.len() < HEADER_SIZE {
            return Err(BatchError::Truncated {
                have: bytes.len(),
                need: HEADER_SIZE,
            });
        }
        Ok(BatchHeader {
            base_offset: be_i64(bytes, 0),
            batch_length: be_i32(bytes, 8),
            partition_leader_epoch: be_i32(bytes, 12),
            magic: bytes[16] as i8,
            crc: be_u32(bytes, 17),
            attributes: be_i16(bytes, 21),
            last_offset_delta: be_i32(bytes, 23),
            base_timestamp: be_i64(bytes, 27),
            max_timestamp: be_i64(bytes, 35),
            producer_id: be_i64(bytes, 43),
            producer_epoch: be_i16(bytes, 51),
            base_sequence: be_i32(bytes, 53),
            record_count: be_i32(bytes, 57),
        })
    }

    /// Total size on disk and on the wire.
    pub fn size(&self) -> usize {
        // A negative length (corrupt input) gives a size no real buffer has, never an overflow.
        usize::try_from(self.batch_length)
            .unwrap_or(0)
            .saturating_add(LOG_OVERHEAD)
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    pub fn compression(&self) -> i16 {
        self.attributes & ATTR_COMPRESSION_MASK
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }
}

/// Reads `(base_offset, batch size)` from the first [`OFFSETS_PREFIX`] bytes and also returns the
/// last offset delta; no validation beyond the length field's range.
pub fn peek_offsets(prefix: &[u8]) -> Option<(i64, usize, i32)> {
    if prefix.len() < OFFSETS_PREFIX {
        return None;
    }
    let len = be_i32(prefix, 8);
    if len < (HEADER_SIZE - LOG_OVERHEAD) as i32 {
        return None;
    }
    Some((
        be_i64(prefix, 0),
        len as usize + LOG_OVERHEAD,
        be_i32(prefix, 23),
    ))
}

/// Splits the next batch off `bytes` after checking its length field. Returns the batch's bytes.
pub fn next_batch(bytes: &[u8]) -> Result<&[u8], BatchError> {
    if bytes.len() < LOG_OVERHEAD {
        return Err(BatchError::Truncated {
            have: bytes.len(),
            need: LOG_OVERHEAD,
        });
    }
    let batch_length = be_i32(bytes, 8);
    if batch_length < (HEADER_SIZE - LOG_OVERHEAD) as i32 {
        return Err(BatchError::InvalidLength { batch_length });
    }
    let size = batch_length as usize + LOG_OVERHEAD;
    if bytes.len() < size {
        return Err(BatchError::Truncated {
            have: bytes.len(),
            need: size,
        });
    }
    Ok(&bytes[..size])
}

/// Computes the CRC-32C a batch should carry.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[21..])
}

/// Checks one complete batch (as returned by [`next_batch`]): magic, CRC, record count, and for
/// uncompressed batches the record framing, with offset deltas 0, 1, 2, ... as producers write
/// them. Used on produce.
pub fn validate(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    validate_with(batch, true)
}

/// As [`validate`], for batches already in a log (recovery, a follower's copy of its leader's
/// log): a compacted batch keeps its base offset and lastOffsetDelta but may have lost records,
/// so offset deltas only have to increase within the batch, and a batch may be empty (the
/// cleaner keeps a producer's last batch as a bare header, as Kafka's does).
pub fn validate_stored(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    validate_with(batch, false)
}

fn validate_with(batch: &[u8], strict: bool) -> Result<BatchHeader, BatchError> {
    let h = BatchHeader::parse(batch)?;
    if h.size() != batch.len() {
        return Err(BatchError::InvalidLength {
            batch_length: h.batch_length,
        });
    }
    if h.magic != 2 {
        return Err(BatchError::UnsupportedMagic { magic: h.magic });
    }
    let computed = compute_crc(batch);
    if computed != h.crc {
        return Err(BatchError::CrcMismatch {
            stored: h.crc,
            computed,
        });
    }
    if h.record_count < 0 || h.last_offset_delta < 0 {
        return Err(BatchError::CountMismatch {
            count: h.record_count,
            last_offset_delta: h.last_offset_delta,
        });
    }
    let codec = h.compression();
    if codec > 4 {
        return Err(BatchError::UnknownCompression { codec });
    }
    let count_ok = if strict {
        h.record_count == h.last_offset_delta + 1 || codec != 0
    } else {
        h.record_count <= h.last_offset_delta + 1
    };
    if !count_ok {
        return Err(BatchError::CountMismatch {
            count: h.record_count,
            last_offset_delta: h.last_offset_delta,
        });
    }
    if codec == 0 {
        // Uncompressed: the records must be framed exactly.
        let rule = if strict {
            Deltas::Sequential
        } else {
            Deltas::Increasing(h.last_offset_delta)
        };
        check_records(&batch[HEADER_SIZE..], h.record_count, rule)?;
    } else if (strict && h.record_count == 0) || h.record_count > h.last_offset_delta + 1 {
        // Compressed records are stored as they came; the header must still be consistent.
        return Err(BatchError::CountMismatch {
            count: h.record_count,
            last_offset_delta: h.last_offset_delta,
        });
    }
    if h.max_timestamp < -1 || h.base_timestamp < -1 {
        return Err(BatchError::InvalidTimestamp {
            timestamp: h.max_timestamp.min(h.base_timestamp),
        });
    }
    Ok(h)
}

/// Reads a zig-zag varint; returns the value and bytes consumed.
pub fn read_varint(b: &[u8]) -> Option<(i64, usize)> {
    let mut raw: u64 = 0;
    for (i, byte) in b.iter().enumerate().take(10) {
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let v = ((raw >> 1) as i64) ^ -((raw & 1) as i64);
            return Some((v, i + 1));
        }
    }
    None
}

/// What offset deltas a batch's records may carry.
#[derive(Clone, Copy)]
enum Deltas {
    /// 0, 1, 2, ...: as a producer writes them.
    Sequential,
    /// Increasing, none past the batch's lastOffsetDelta: a compacted batch.
    Increasing(i32),
}

fn check_records(mut records: &[u8], count: i32, rule: Deltas) -> Result<(), BatchError> {
    let mut previous = -1i64;
    for index in 0..count {
        let (len, n) = read_varint(records).ok_or(BatchError::InvalidRecord {
            index,
            reason: "bad length varint",
        })?;
        if len < 0 || (len as usize) > records.len() - n {
            return Err(BatchError::InvalidRecord {
                index,
                reason: "length runs past the batch",
            });
        }
        let body = &records[n..n + len as usize];
        // attributes (1 byte), timestampDelta (varlong), offsetDelta (varint)
        let mut at = 1usize;
        let (_, t) = body
            .get(at..)
            .and_then(read_varint)
            .ok_or(BatchError::InvalidRecord {
                index,
                reason: "bad timestamp delta",
            })?;
        at += t;
        let (offset_delta, _) =
            body.get(at..)
                .and_then(read_varint)
                .ok_or(BatchError::InvalidRecord {
                    index,
                    reason: "bad offset delta",
                })?;
        let in_order = match rule {
            Deltas::Sequential => offset_delta == i64::from(index),
            Deltas::Increasing(last) => offset_delta > previous && offset_delta <= i64::from(last),
        };
        if !in_order {
            return Err(BatchError::InvalidRecord {
                index,
                reason: "offset delta out of sequence",
            });
        }
        previous = offset_delta;
        records = &records[n + len as usize..];
    }
    if !records.is_empty() {
        return Err(BatchError::InvalidRecord {
            index: count,
            reason: "bytes after the last record",
        });
    }
    Ok(())
}

/// Sets `maxTimestamp` to `now_ms` and the LogAppendTime attribute, then recomputes the CRC.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    assert!(batch.len() >= HEADER_SIZE);
    let attrs = be_i16(batch, 21) | ATTR_LOG_APPEND_TIME;
    batch[21..23].copy_from_slice(&attrs.to_be_bytes());
    batch[35..43].copy_from_slice(&now_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Test helper and client helper: builds an uncompressed batch holding `values` as records
/// (no keys, no headers) with base offset 0.
pub fn build_batch(values: &[&[u8]], base_timestamp: i64) -> Vec<u8> {
    build_batch_with(values, base_timestamp, -1, -1, -1)
}

/// Builds an uncompressed batch with producer id/epoch and base sequence.
pub fn build_batch_with(
    values: &[&[u8]],
    base_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Vec<u8> {
    let mut records = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let mut body = vec![0u8]; // attributes
        write_varint(&mut body, 0); // timestamp delta
        write_varint(&mut body, i as i64); // offset delta
        write_varint(&mut body, -1); // key: null
        write_varint(&mut body, v.len() as i64);
        body.extend_from_slice(v);
        write_varint(&mut body, 0); // headers
        write_varint(&mut records, body.len() as i64);
        records.extend_from_slice(&body);
    }
    let mut b = Vec::with_capacity(HEADER_SIZE + records.len());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((HEADER_SIZE - LOG_OVERHEAD + records.len()) as i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes()); // crc placeholder
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(values.len() as i32 - 1).to_be_bytes());
    b.extend_from_slice(&base_timestamp.to_be_bytes());
    b.extend_from_slice(&base_timestamp.to_be_bytes());
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&producer_epoch.to_be_bytes());
    b.extend_from_slice(&base_sequence.to_be_bytes());
    b.extend_from_slice(&(values.len() as i32).to_be_bytes());
    b.extend_from_slice(&records);
    let crc = compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// A record as (key, value); `None` is null.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Builds an uncompressed batch of keyed records; a `None` value is a tombstone.
pub fn build_keyed_batch(records: &[KeyValue<'_>], timestamp: i64) -> Vec<u8> {
    let mut body_all = Vec::new();
    for (i, (k, v)) in records.iter().enumerate() {
        let mut body = vec![0u8];
        write_varint(&mut body, 0);
        write_varint(&mut body, i as i64);
        match k {
            Some(k) => {
                write_varint(&mut body, k.len() as i64);
                body.extend_from_slice(k);
            }
            None => write_varint(&mut body, -1),
        }
        match v {
            Some(v) => {
                write_varint(&mut body, v.len() as i64);
                body.extend_from_slice(v);
            }
            None => write_varint(&mut body, -1),
        }
        write_varint(&mut body, 0);
        write_varint(&mut body_all, body.len() as i64);
        body_all.extend_from_slice(&body);
    }
    let mut b = build_batch(&[], timestamp);
    b.truncate(HEADER_SIZE);
    b.extend_from_slice(&body_all);
    let len = (b.len() - LOG_OVERHEAD) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[23..27].copy_from_slice(&(records.len() as i32 - 1).to_be_bytes());
    b[57..61].copy_from_slice(&(records.len() as i32).to_be_bytes());
    let crc = compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Calls `f(offset, key, value)` for every record of an uncompressed batch; stops at the first
/// malformed record (the batch came from disk and was validated, so that means a bug, not input).
pub fn for_each_record(
    batch: &[u8],
    mut f: impl FnMut(i64, Option<&[u8]>, Option<&[u8]>),
) -> Result<(), BatchError> {
    walk_records(batch, |r| {
        f(r.offset, r.key, r.value);
        true
    })
}

/// One record of an uncompressed batch, borrowed from it.
#[derive(Clone, Copy, Debug)]
pub struct RecordView<'a> {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// The first record at or after `timestamp` in a batch whose max timestamp is at or after it, as
/// Kafka's `LogSegment.findOffsetByTimestamp` answers: `(offset, timestamp)` of that record. A
/// LogAppendTime batch stamps every record with its max timestamp, so its base offset answers;
/// a compressed batch is decompressed (at most 100 MiB) to look.
pub fn first_at_or_after(batch: &[u8], timestamp: i64) -> Result<(i64, i64), BatchError> {
    let h = BatchHeader::parse(batch)?;
    if h.attributes & ATTR_LOG_APPEND_TIME != 0 {
        return Ok((h.base_offset, h.max_timestamp));
    }
    if h.compression() != 0 {
        let (h, plain) = crate::compact::plain_records(batch, 100 << 20)?;
        let found = crate::compact::parse_records(&h, &plain)?
            .iter()
            .find(|r| r.timestamp >= timestamp)
            .map(|r| (r.offset, r.timestamp));
        return Ok(found.unwrap_or((h.base_offset, h.max_timestamp)));
    }
    let mut found = None;
    walk_records(batch, |r| {
        if r.timestamp >= timestamp {
            found = Some((r.offset, r.timestamp));
            return false;
        }
        true
    })?;
    Ok(found.unwrap_or((h.base_offset, h.max_timestamp)))
}

/// KIP-937's check of a CreateTime batch against the broker's clock `now`: a record whose
/// timestamp is more than `before_max_ms` behind or `after_max_ms` ahead of `now` is refused
/// (no timestamp, -1, is not checked). Appends `(index in the batch, Kafka's message)` for each
/// such record. The header's first and max timestamps decide the common case without opening
/// the batch (a producer writes non-negative timestamp deltas, so they bound every record); a
/// compressed batch is not opened (Ringlet stores batches as produced) and is reported by the
/// header's out-of-range timestamp, as its record 0.
pub fn timestamp_errors(
    batch: &[u8],
    h: &BatchHeader,
    now: i64,
    before_max_ms: i64,
    after_max_ms: i64,
    out: &mut Vec<(i32, String)>,
) -> Result<(), BatchError> {
    let bad = |t: i64| {
        let diff = t.saturating_sub(now);
        t != -1 && (diff > after_max_ms || diff < before_max_ms.saturating_neg())
    };
    if !bad(h.base_timestamp) && !bad(h.max_timestamp) {
        return Ok(());
    }
    // Kafka's words; its bounds are computed in Java's wrapping arithmetic.
    let message = |t: i64, offset: i64| {
        format!(
            "Timestamp {t} of message with offset {offset} is out of range. The timestamp should be within [{}, {}]",
            now.wrapping_sub(before_max_ms),
            now.wrapping_add(after_max_ms)
        )
    };
    if h.compression() != 0 {
        let t = if bad(h.base_timestamp) {
            h.base_timestamp
        } else {
            h.max_timestamp
        };
        out.push((0, message(t, h.base_offset)));
        return Ok(());
    }
    let mut index = 0;
    walk_records(batch, |r| {
        if bad(r.timestamp) {
            out.push((index, message(r.timestamp, r.offset)));
        }
        index += 1;
        true
    })
}

/// Walks the records of an uncompressed batch while `f` returns true.
pub fn walk_records<'a>(
    batch: &'a [u8],
    mut f: impl FnMut(RecordView<'a>) -> bool,
) -> Result<(), BatchError> {
    let h = BatchHeader::parse(batch)?;
    if h.compression() != 0 {
        return Err(BatchError::UnknownCompression {
            codec: h.compression(),
        });
    }
    let mut r = &batch[HEADER_SIZE..];
    for index in 0..h.record_count {
        let bad = |reason| BatchError::InvalidRecord { index, reason };
        let (len, n) = read_varint(r).ok_or(bad("length"))?;
        let body = usize::try_from(len)
            .ok()
            .and_then(|l| r.get(n..n + l))
            .ok_or(bad("length"))?;
        r = &r[n + body.len()..];
        let mut at = 1;
        let (ts_delta, t) = body
            .get(at..)
            .and_then(read_varint)
            .ok_or(bad("timestamp"))?;
        at += t;
        let (delta, d) = body
            .get(at..)
            .and_then(read_varint)
            .ok_or(bad("offset delta"))?;
        at += d;
        let (klen, k) = body
            .get(at..)
            .and_then(read_varint)
            .ok_or(bad("key length"))?;
        at += k;
        let key = if klen < 0 {
            None
        } else {
            let key = body.get(at..at + klen as usize).ok_or(bad("key"))?;
            at += klen as usize;
            Some(key)
        };
        let (vlen, v) = body
            .get(at..)
            .and_then(read_varint)
            .ok_or(bad("value length"))?;
        at += v;
        let value = if vlen < 0 {
            None
        } else {
            Some(body.get(at..at + vlen as usize).ok_or(bad("value"))?)
        };
        let view = RecordView {
            offset: h.base_offset + delta,
            timestamp: h.base_timestamp.saturating_add(ts_delta),
            key,
            value,
        };
        if !f(view) {
            break;
        }
    }
    Ok(())
}

/// Appends a zig-zag varint.
pub fn write_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let byte = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        build_batch(&[b"a", b"bc", b"def"], 1_700_000_000_000)
    }

    /// A batch of one-byte records whose timestamps are base + deltas (each delta under 64, so
    /// its zig-zag varint is the one byte `build_batch` wrote for 0).
    fn with_deltas(base: i64, deltas: &[i64]) -> Vec<u8> {
        let values: Vec<&[u8]> = deltas.iter().map(|_| &b"x"[..]).collect();
        let mut b = build_batch(&values, base);
        let mut pos = HEADER_SIZE;
        for &d in deltas {
            let (len, n) = read_varint(&b[pos..]).unwrap();
            b[pos + n + 1] = (d << 1) as u8; // after the attributes byte
            pos += n + len as usize;
        }
        let max = base + deltas.iter().max().unwrap();
        b[35..43].copy_from_slice(&max.to_be_bytes());
        let crc = compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn time_lookup_finds_the_first_record_at_or_after_the_timestamp() {
        let b = with_deltas(1000, &[0, 10, 10, 30]);
        validate(&b).unwrap();
        assert_eq!(first_at_or_after(&b, 0).unwrap(), (0, 1000));
        assert_eq!(first_at_or_after(&b, 1000).unwrap(), (0, 1000));
        assert_eq!(first_at_or_after(&b, 1001).unwrap(), (1, 1010));
        assert_eq!(first_at_or_after(&b, 1010).unwrap(), (1, 1010));
        assert_eq!(first_at_or_after(&b, 1011).unwrap(), (3, 1030));
        assert_eq!(first_at_or_after(&b, 1030).unwrap(), (3, 1030));
        // LogAppendTime stamps every record with the batch's max timestamp.
        let mut appended = b.clone();
        set_log_append_time(&mut appended, 5000);
        assert_eq!(first_at_or_after(&appended, 1011).unwrap(), (0, 5000));
    }

    #[test]
    fn valid_batch_passes() {
        let b = sample();
        let h = validate(next_batch(&b).unwrap()).unwrap();
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.size(), b.len());
    }

    #[test]
    fn truncated_batch_is_refused() {
        let b = sample();
        assert!(matches!(
            next_batch(&b[..b.len() - 1]),
            Err(BatchError::Truncated { .. })
        ));
        assert!(matches!(
            next_batch(&b[..5]),
            Err(BatchError::Truncated { .. })
        ));
    }

    #[test]
    fn short_length_field_is_refused() {
        let mut b = sample();
        b[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert_eq!(
            next_batch(&b),
            Err(BatchError::InvalidLength { batch_length: 10 })
        );
    }

    #[test]
    fn bad_magic_is_refused() {
        let mut b = sample();
        b[16] = 1;
        assert_eq!(validate(&b), Err(BatchError::UnsupportedMagic { magic: 1 }));
    }

    #[test]
    fn bad_crc_is_refused() {
        let mut b = sample();
        let last = b.len() - 1;
        b[last] ^= 0xff;
        assert!(matches!(validate(&b), Err(BatchError::CrcMismatch { .. })));
    }

    #[test]
    fn count_mismatch_is_refused() {
        let mut b = sample();
        b[57..61].copy_from_slice(&2i32.to_be_bytes());
        let crc = compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate(&b),
            Err(BatchError::CountMismatch { .. })
        ));
    }

    #[test]
    fn bad_record_framing_is_refused() {
        let mut b = sample();
        // Corrupt the first record's offset delta (after length varint, attributes, ts delta).
        b[HEADER_SIZE + 3] = 8; // zig-zag 4
        let crc = compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate(&b),
            Err(BatchError::InvalidRecord { .. })
        ));
    }

    #[test]
    fn bad_timestamp_is_refused() {
        let mut b = sample();
        b[35..43].copy_from_slice(&(-5i64).to_be_bytes());
        let crc = compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate(&b),
            Err(BatchError::InvalidTimestamp { .. })
        ));
    }

    #[test]
    fn unknown_codec_is_refused() {
        let mut b = sample();
        b[21..23].copy_from_slice(&7i16.to_be_bytes());
        let crc = compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate(&b),
            Err(BatchError::UnknownCompression { codec: 7 })
        ));
    }

    #[test]
    fn log_append_time_rewrites_and_keeps_crc_valid() {
        let mut b = sample();
        set_log_append_time(&mut b, 42);
        let h = validate(&b).unwrap();
        assert_eq!(h.max_timestamp, 42);
        assert_ne!(h.attributes & ATTR_LOG_APPEND_TIME, 0);
    }

    #[test]
    fn base_offset_is_outside_the_crc() {
        let mut b = sample();
        b[0..8].copy_from_slice(&1234i64.to_be_bytes());
        assert_eq!(validate(&b).unwrap().base_offset, 1234);
    }

    #[test]
    fn keyed_batches_round_trip_with_tombstones() {
        let b = build_keyed_batch(&[(Some(b"k1"), Some(b"v1")), (Some(b"k2"), None)], 7);
        validate(&b).unwrap();
        let mut seen = Vec::new();
        for_each_record(&b, |o, k, v| {
            seen.push((o, k.map(<[u8]>::to_vec), v.map(<[u8]>::to_vec)))
        })
        .unwrap();
        assert_eq!(
            seen,
            vec![
                (0, Some(b"k1".to_vec()), Some(b"v1".to_vec())),
                (1, Some(b"k2".to_vec()), None)
            ]
        );
    }

    #[test]
    fn varints_round_trip() {
        for v in [0i64, 1, -1, 63, -64, 64, 300, -300, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            assert_eq!(read_varint(&out), Some((v, out.len())));
        }
    }
}
