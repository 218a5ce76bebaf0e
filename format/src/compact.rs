//! What the log cleaner does to one batch: read its records (decompressed), keep those the
//! caller's rule keeps, and write the batch again as Kafka's cleaner writes it: same base offset,
//! same lastOffsetDelta (so a producer's last sequence survives), same producer fields, leader
//! epoch and codec; records keep their offsets and timestamps.
//!
//! Tombstones (null values) follow KIP-534: the first time a kept tombstone's batch is rewritten,
//! the batch gets the delete-horizon flag (attributes bit 6) and its base timestamp becomes the
//! horizon (`now + delete.retention.ms`; records' timestamp deltas are taken from it); once the
//! horizon has passed, a later cleaning drops the tombstones of that batch.

use crate::batch::{self, read_varint, write_varint, BatchHeader, HEADER_SIZE, LOG_OVERHEAD};
use crate::codec::{self, Codec, Target};
use crate::error::BatchError;

/// Attributes bit 6: the base timestamp is the batch's delete horizon (KIP-534).
pub const ATTR_DELETE_HORIZON: i16 = 0x40;

/// One record of a batch being cleaned.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    attributes: u8,
    offset_delta: i64,
    /// The header count and headers, as written.
    headers: &'a [u8],
}

/// The records section of a batch, decompressed (at most `limit` bytes).
pub fn plain_records(batch: &[u8], limit: usize) -> Result<(BatchHeader, Vec<u8>), BatchError> {
    let h = BatchHeader::parse(batch)?;
    let codec = Codec::from_attributes(h.attributes)?;
    let body = batch
        .get(HEADER_SIZE..h.size())
        .ok_or(BatchError::Truncated {
            have: batch.len(),
            need: h.size(),
        })?;
    let plain = match codec {
        Codec::None => body.to_vec(),
        c => codec::decompress(c, body, limit)?,
    };
    Ok((h, plain))
}

/// The records of a decompressed records section.
pub fn parse_records<'a>(h: &BatchHeader, mut r: &'a [u8]) -> Result<Vec<Record<'a>>, BatchError> {
    let mut out = Vec::with_capacity(h.record_count.max(0) as usize);
    for index in 0..h.record_count {
        let bad = |reason| BatchError::InvalidRecord { index, reason };
        let (len, n) = read_varint(r).ok_or(bad("length"))?;
        let body = usize::try_from(len)
            .ok()
            .and_then(|l| r.get(n..n + l))
            .ok_or(bad("length"))?;
        r = &r[n + body.len()..];
        let attributes = *body.first().ok_or(bad("attributes"))?;
        let mut at = 1;
        let mut varint = |what| -> Result<i64, BatchError> {
            let (v, used) = body.get(at..).and_then(read_varint).ok_or(bad(what))?;
            at += used;
            Ok(v)
        };
        let ts_delta = varint("timestamp")?;
        let offset_delta = varint("offset delta")?;
        let klen = varint("key length")?;
        let key = if klen < 0 {
            None
        } else {
            let k = body.get(at..at + klen as usize).ok_or(bad("key"))?;
            at += k.len();
            Some(k)
        };
        let (vlen, used) = body
            .get(at..)
            .and_then(read_varint)
            .ok_or(bad("value length"))?;
        at += used;
        let value = if vlen < 0 {
            None
        } else {
            let v = body.get(at..at + vlen as usize).ok_or(bad("value"))?;
            at += v.len();
            Some(v)
        };
        out.push(Record {
            offset: h.base_offset + offset_delta,
            timestamp: h.base_timestamp.saturating_add(ts_delta),
            key,
            value,
            attributes,
            offset_delta,
            headers: &body[at..],
        });
    }
    Ok(out)
}

/// Indexes (in the batch) of the records without a key: a compacted topic refuses them.
pub fn keyless_records(batch: &[u8], limit: usize) -> Result<Vec<i32>, BatchError> {
    let (h, plain) = plain_records(batch, limit)?;
    Ok(parse_records(&h, &plain)?
        .iter()
        .enumerate()
        .filter(|(_, r)| r.key.is_none())
        .map(|(i, _)| i as i32)
        .collect())
}

/// What cleaning did to a batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Cleaned {
    /// Every record stays and nothing needs marking: the batch is copied as it is.
    Kept,
    /// The batch written again with the records kept.
    Rewritten(Vec<u8>),
    /// No record stays.
    Empty,
}

/// Cleans one batch: `keep` decides each record (a tombstone past its batch's delete horizon
/// is dropped whatever it says). `now` and `delete_retention_ms` set the horizon of a batch whose
/// tombstones are kept for the first time. Control batches are the caller's to handle.
pub fn clean_batch(
    batch: &[u8],
    limit: usize,
    now: i64,
    delete_retention_ms: i64,
    mut keep: impl FnMut(&Record<'_>) -> bool,
) -> Result<Cleaned, BatchError> {
    let (h, plain) = plain_records(batch, limit)?;
    let records = parse_records(&h, &plain)?;
    let horizon = (h.attributes & ATTR_DELETE_HORIZON != 0).then_some(h.base_timestamp);
    let kept: Vec<&Record<'_>> = records
        .iter()
        .filter(|r| keep(r) && !(r.value.is_none() && horizon.is_some_and(|t| now > t)))
        .collect();
    if kept.is_empty() {
        return Ok(Cleaned::Empty);
    }
    let tombstones = kept.iter().any(|r| r.value.is_none());
    let new_horizon =
        (tombstones && horizon.is_none()).then(|| now.saturating_add(delete_retention_ms));
    if kept.len() == records.len() && new_horizon.is_none() {
        return Ok(Cleaned::Kept);
    }
    let mut attributes = h.attributes;
    let base_timestamp = match (horizon, new_horizon) {
        (Some(t), _) | (None, Some(t)) => {
            attributes |= ATTR_DELETE_HORIZON;
            t
        }
        (None, None) => h.base_timestamp,
    };
    let mut section = Vec::with_capacity(plain.len());
    let mut body = Vec::new();
    for r in &kept {
        body.clear();
        body.push(r.attributes);
        write_varint(&mut body, r.timestamp.saturating_sub(base_timestamp));
        write_varint(&mut body, r.offset_delta);
        for field in [r.key, r.value] {
            match field {
                Some(b) => {
                    write_varint(&mut body, b.len() as i64);
                    body.extend_from_slice(b);
                }
                None => write_varint(&mut body, -1),
            }
        }
        body.extend_from_slice(r.headers);
        write_varint(&mut section, body.len() as i64);
        section.extend_from_slice(&body);
    }
    let codec = Codec::from_attributes(h.attributes)?;
    let section = match codec {
        Codec::None => section,
        c => codec::compress(Target::new(c), &section),
    };
    let max_timestamp = if h.attributes & batch::ATTR_LOG_APPEND_TIME != 0 {
        h.max_timestamp
    } else {
        kept.iter()
            .map(|r| r.timestamp)
            .max()
            .unwrap_or(h.max_timestamp)
    };
    let mut out = Vec::with_capacity(HEADER_SIZE + section.len());
    out.extend_from_slice(&batch[..HEADER_SIZE]);
    out.extend_from_slice(&section);
    let length = (out.len() - LOG_OVERHEAD) as i32;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    out[27..35].copy_from_slice(&base_timestamp.to_be_bytes());
    out[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
    out[57..61].copy_from_slice(&(kept.len() as i32).to_be_bytes());
    let crc = batch::compute_crc(&out);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(Cleaned::Rewritten(out))
}

/// A batch emptied by cleaning that must stay as a bare header (a producer's last batch, so its
/// sequence survives): no records, uncompressed, same offsets and producer fields.
pub fn empty_batch(batch: &[u8]) -> Vec<u8> {
    let mut out = batch[..HEADER_SIZE].to_vec();
    let length = (HEADER_SIZE - LOG_OVERHEAD) as i32;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    let attributes = i16::from_be_bytes([out[21], out[22]]) & !batch::ATTR_COMPRESSION_MASK;
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    out[57..61].copy_from_slice(&0i32.to_be_bytes());
    let crc = batch::compute_crc(&out);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{build_keyed_batch, validate, validate_stored, walk_records};

    type Seen = (i64, Option<Vec<u8>>, Option<Vec<u8>>, i64);

    fn keys(batch: &[u8]) -> Vec<Seen> {
        let mut out = Vec::new();
        walk_records(batch, |r| {
            out.push((
                r.offset,
                r.key.map(<[u8]>::to_vec),
                r.value.map(<[u8]>::to_vec),
                r.timestamp,
            ));
            true
        })
        .unwrap();
        out
    }

    fn sample() -> Vec<u8> {
        let mut b = build_keyed_batch(
            &[
                (Some(b"a"), Some(b"1")),
                (Some(b"b"), Some(b"2")),
                (Some(b"a"), None),
                (Some(b"c"), Some(b"3")),
            ],
            1_000,
        );
        b[0..8].copy_from_slice(&100i64.to_be_bytes());
        b
    }

    #[test]
    fn dropped_records_keep_offsets_and_the_batch_keeps_its_last_offset() {
        let b = sample();
        let Cleaned::Rewritten(out) =
            clean_batch(&b, 1 << 20, 5_000, 10_000, |r| r.key != Some(b"b")).unwrap()
        else {
            panic!("rewritten")
        };
        let h = validate_stored(&out).unwrap();
        assert!(
            validate(&out).is_err(),
            "a compacted batch is not a producer's"
        );
        assert_eq!(
            (h.base_offset, h.last_offset(), h.record_count),
            (100, 103, 3)
        );
        assert_eq!(h.attributes & ATTR_DELETE_HORIZON, ATTR_DELETE_HORIZON);
        assert_eq!(
            h.base_timestamp, 15_000,
            "the horizon: now + delete.retention.ms"
        );
        let recs = keys(&out);
        assert_eq!(
            recs.iter().map(|r| r.0).collect::<Vec<_>>(),
            [100, 102, 103]
        );
        assert!(
            recs.iter().all(|r| r.3 == 1_000),
            "timestamps survive the new base"
        );
        assert_eq!(recs[1].2, None);
        // Past the horizon the tombstone goes; before it, nothing changes.
        assert_eq!(
            clean_batch(&out, 1 << 20, 15_000, 10_000, |_| true).unwrap(),
            Cleaned::Kept
        );
        let Cleaned::Rewritten(later) =
            clean_batch(&out, 1 << 20, 15_001, 10_000, |_| true).unwrap()
        else {
            panic!("rewritten")
        };
        assert_eq!(
            keys(&later).iter().map(|r| r.0).collect::<Vec<_>>(),
            [100, 103]
        );
    }

    #[test]
    fn all_kept_without_tombstones_is_kept_and_none_kept_is_empty() {
        let b = build_keyed_batch(&[(Some(b"x"), Some(b"1"))], 7);
        assert_eq!(
            clean_batch(&b, 1 << 20, 0, 0, |_| true).unwrap(),
            Cleaned::Kept
        );
        assert_eq!(
            clean_batch(&b, 1 << 20, 0, 0, |_| false).unwrap(),
            Cleaned::Empty
        );
        let e = empty_batch(&sample());
        let h = validate_stored(&e).unwrap();
        assert_eq!(
            (h.base_offset, h.last_offset(), h.record_count),
            (100, 103, 0)
        );
    }

    #[test]
    fn a_timestamp_lookup_opens_a_compressed_batch() {
        let mut plain =
            build_keyed_batch(&[(Some(b"a"), Some(b"1")), (Some(b"b"), Some(b"2"))], 1_000);
        plain[0..8].copy_from_slice(&50i64.to_be_bytes());
        // Record 1 one second later: its timestamp delta is 1000.
        let rewritten = clean_batch(&plain, 1 << 20, 0, 0, |_| true).unwrap();
        assert_eq!(rewritten, Cleaned::Kept);
        let mut recs =
            parse_records(&BatchHeader::parse(&plain).unwrap(), &plain[HEADER_SIZE..]).unwrap();
        recs[1].timestamp = 2_000;
        let mut section = Vec::new();
        for r in &recs {
            let mut body = vec![r.attributes];
            write_varint(&mut body, r.timestamp - 1_000);
            write_varint(&mut body, r.offset_delta);
            for f in [r.key, r.value] {
                let f = f.unwrap();
                write_varint(&mut body, f.len() as i64);
                body.extend_from_slice(f);
            }
            body.extend_from_slice(r.headers);
            write_varint(&mut section, body.len() as i64);
            section.extend_from_slice(&body);
        }
        let mut b = plain[..HEADER_SIZE].to_vec();
        b.extend_from_slice(&section);
        b[35..43].copy_from_slice(&2_000i64.to_be_bytes());
        let len = (b.len() - LOG_OVERHEAD) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        let crc = batch::compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        let z = codec::recompress(&b, Target::new(Codec::Zstd), 1 << 20)
            .unwrap()
            .unwrap();
        assert_eq!(batch::first_at_or_after(&z, 1_500).unwrap(), (51, 2_000));
        assert_eq!(batch::first_at_or_after(&z, 0).unwrap(), (50, 1_000));
    }

    #[test]
    fn compressed_batches_are_cleaned_in_their_codec() {
        let plain = sample();
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let b = codec::recompress(&plain, Target::new(codec), 1 << 20)
                .unwrap()
                .unwrap();
            let Cleaned::Rewritten(out) =
                clean_batch(&b, 1 << 20, 0, 0, |r| r.key == Some(b"c")).unwrap()
            else {
                panic!("rewritten")
            };
            let h = validate_stored(&out).unwrap();
            assert_eq!(Codec::from_attributes(h.attributes).unwrap(), codec);
            let (h, section) = plain_records(&out, 1 << 20).unwrap();
            let recs = parse_records(&h, &section).unwrap();
            assert_eq!(recs.len(), 1);
            assert_eq!((recs[0].offset, recs[0].value), (103, Some(&b"3"[..])));
        }
    }
}
