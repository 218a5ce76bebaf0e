//! Committed offsets as `__consumer_offsets` records in Kafka's formats, so Kafka's own tools
//! (`kafka-dump-log --offsets-decoder`, the console consumer's offsets formatter) read Ringlet's
//! offsets log: the key is OffsetCommitKey (key version 1: group, topic, partition), the value
//! OffsetCommitValue version 3 (offset, leader epoch, metadata, commit timestamp). Values of
//! versions 0-4 are read, as Kafka reads them.
//!
//! Builds before December 2026 wrote their own layout (a one-byte type 1 and u16 lengths, a
//! value without a version); such records are still read, so an existing log keeps its offsets.
//! A newer commit of the same partition has a different key, so both stay in the compacted log
//! and the newer wins by replay order; deleting offsets writes a tombstone for both keys, so an
//! old record cannot come back once the cleaner has dropped the new tombstone.

use super::Committed;

/// Kafka's key version of an offset commit (0 and 1 are both offset commits).
const OFFSET_COMMIT_KEY: i16 = 1;
/// The value version Ringlet writes (Kafka's for a commit without an expire timestamp).
const VALUE_VERSION: i16 = 3;

/// The first byte of a key in Ringlet's old layout.
const LEGACY_KEY: u8 = 1;

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    out.extend_from_slice(&(b.len() as i16).to_be_bytes());
    out.extend_from_slice(b);
}

pub(super) fn offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut k = Vec::with_capacity(10 + group.len() + topic.len());
    k.extend_from_slice(&OFFSET_COMMIT_KEY.to_be_bytes());
    put_str(&mut k, group);
    put_str(&mut k, topic);
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

/// The old layout's key, for tombstones only.
pub(super) fn legacy_offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut k = vec![LEGACY_KEY];
    for s in [group, topic] {
        k.extend_from_slice(&(s.len() as u16).to_be_bytes());
        k.extend_from_slice(s.as_bytes());
    }
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

pub(super) fn offset_value(c: &Committed) -> Vec<u8> {
    let mut v = Vec::with_capacity(24 + c.metadata.len());
    v.extend_from_slice(&VALUE_VERSION.to_be_bytes());
    v.extend_from_slice(&c.offset.to_be_bytes());
    v.extend_from_slice(&c.leader_epoch.to_be_bytes());
    put_str(&mut v, &c.metadata);
    v.extend_from_slice(&c.commit_ms.to_be_bytes());
    v
}

/// A reader over a record's bytes (Kafka's non-flexible and flexible encodings).
pub(super) struct Reader<'a> {
    pub(super) b: &'a [u8],
    pub(super) at: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(b: &'a [u8]) -> Reader<'a> {
        Reader { b, at: 0 }
    }
    pub(super) fn i8(&mut self) -> Option<i8> {
        Some(self.take(1)?[0] as i8)
    }
    /// COMPACT_(NULLABLE_)BYTES: `None` inside for null.
    pub(super) fn compact_bytes(&mut self) -> Option<Option<&'a [u8]>> {
        match self.uvarint()? {
            0 => Some(None),
            n => Some(Some(self.take(usize::try_from(n - 1).ok()?)?)),
        }
    }
    pub(super) fn compact_nullable(&mut self) -> Option<Option<String>> {
        Some(
            self.compact_bytes()?
                .map(|b| String::from_utf8_lossy(b).into_owned()),
        )
    }
    /// A compact array's length.
    pub(super) fn compact_len(&mut self) -> Option<usize> {
        usize::try_from(self.uvarint()?.checked_sub(1)?).ok()
    }
    /// Tagged fields: `f(tag, bytes)` for each.
    pub(super) fn tags(&mut self, mut f: impl FnMut(u64, &'a [u8])) -> Option<()> {
        for _ in 0..self.uvarint()? {
            let tag = self.uvarint()?;
            let n = usize::try_from(self.uvarint()?).ok()?;
            f(tag, self.take(n)?);
        }
        Some(())
    }
    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    pub(super) fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    pub(super) fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    pub(super) fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    pub(super) fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    pub(super) fn uvarint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..63).step_by(7) {
            let byte = *self.take(1)?.first()?;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    pub(super) fn utf8(&mut self, n: usize) -> Option<String> {
        Some(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    /// A string with an i16 length (Kafka's non-flexible STRING).
    pub(super) fn string(&mut self) -> Option<String> {
        let n = usize::try_from(self.i16()?).ok()?;
        self.utf8(n)
    }
    /// A COMPACT_STRING (length + 1 as an unsigned varint).
    pub(super) fn compact_string(&mut self) -> Option<String> {
        let n = usize::try_from(self.uvarint()?.checked_sub(1)?).ok()?;
        self.utf8(n)
    }
    /// A string with a u16 length (Ringlet's old layout).
    pub(super) fn legacy_string(&mut self) -> Option<String> {
        let n = usize::from(self.u16()?);
        self.utf8(n)
    }
}

/// An offset commit's key: (group, topic, partition, written in the old layout).
pub(super) fn parse_key(k: &[u8]) -> Option<(String, String, i32, bool)> {
    let mut r = Reader { b: k, at: 0 };
    if k.first() == Some(&LEGACY_KEY) {
        r.at = 1;
        let group = r.legacy_string()?;
        let topic = r.legacy_string()?;
        return Some((group, topic, r.i32()?, true));
    }
    if !matches!(r.i16()?, 0 | 1) {
        return None;
    }
    let group = r.string()?;
    let topic = r.string()?;
    Some((group, topic, r.i32()?, false))
}

/// An offset commit's value (`legacy`: the key was in the old layout).
pub(super) fn parse_value(v: &[u8], legacy: bool) -> Option<Committed> {
    let mut r = Reader { b: v, at: 0 };
    if legacy {
        let offset = r.i64()?;
        let leader_epoch = r.i32()?;
        let commit_ms = r.i64()?;
        let n = u32::from_be_bytes(r.take(4)?.try_into().ok()?) as usize;
        let metadata = r.utf8(n)?;
        return Some(Committed {
            offset,
            leader_epoch,
            metadata,
            commit_ms,
        });
    }
    let version = r.i16()?;
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = if version >= 4 {
        r.compact_string()?
    } else {
        r.string()?
    };
    let commit_ms = r.i64()?;
    Some(Committed {
        offset,
        leader_epoch,
        metadata,
        commit_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed() -> Committed {
        Committed {
            offset: 42,
            leader_epoch: 7,
            metadata: "m".into(),
            commit_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn keys_and_values_are_kafkas_bytes() {
        // OffsetCommitKey v1: version, group "g", topic "t", partition 3.
        assert_eq!(
            offset_key("g", "t", 3),
            [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3]
        );
        let v = offset_value(&committed());
        let mut want = vec![0, 3];
        want.extend_from_slice(&42i64.to_be_bytes());
        want.extend_from_slice(&7i32.to_be_bytes());
        want.extend_from_slice(&[0, 1, b'm']);
        want.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        assert_eq!(v, want);
        assert_eq!(
            parse_key(&offset_key("g", "t", 3)),
            Some(("g".into(), "t".into(), 3, false))
        );
        let c = parse_value(&v, false).unwrap();
        assert_eq!(
            (c.offset, c.leader_epoch, c.metadata.as_str()),
            (42, 7, "m")
        );
    }

    #[test]
    fn older_and_flexible_kafka_values_are_read() {
        // v1: offset, metadata, commit timestamp, expire timestamp.
        let mut v1 = vec![0, 1];
        v1.extend_from_slice(&5i64.to_be_bytes());
        v1.extend_from_slice(&[0, 0]);
        v1.extend_from_slice(&9i64.to_be_bytes());
        v1.extend_from_slice(&(-1i64).to_be_bytes());
        let c = parse_value(&v1, false).unwrap();
        assert_eq!((c.offset, c.leader_epoch, c.commit_ms), (5, -1, 9));
        // v4 (flexible): compact metadata, tagged fields.
        let mut v4 = vec![0, 4];
        v4.extend_from_slice(&6i64.to_be_bytes());
        v4.extend_from_slice(&2i32.to_be_bytes());
        v4.extend_from_slice(&[3, b'a', b'b']);
        v4.extend_from_slice(&11i64.to_be_bytes());
        v4.push(0);
        let c = parse_value(&v4, false).unwrap();
        assert_eq!(
            (c.offset, c.leader_epoch, c.metadata.as_str(), c.commit_ms),
            (6, 2, "ab", 11)
        );
    }

    #[test]
    fn the_old_layout_is_still_read() {
        let k = legacy_offset_key("g", "t", 3);
        assert_eq!(parse_key(&k), Some(("g".into(), "t".into(), 3, true)));
        let mut v = Vec::new();
        v.extend_from_slice(&42i64.to_be_bytes());
        v.extend_from_slice(&7i32.to_be_bytes());
        v.extend_from_slice(&1i64.to_be_bytes());
        v.extend_from_slice(&1u32.to_be_bytes());
        v.push(b'm');
        let c = parse_value(&v, true).unwrap();
        assert_eq!(
            (c.offset, c.leader_epoch, c.metadata.as_str()),
            (42, 7, "m")
        );
        // Other record types of the partition are not offset commits.
        assert!(parse_key(&[0, 2, 0, 1, b'g']).is_none());
        assert!(parse_key(&[0x53, 0, 1]).is_none());
    }
}
