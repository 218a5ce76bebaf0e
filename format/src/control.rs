//! Transaction control batches (KIP-98): the commit and abort markers a transaction coordinator
//! writes to every partition of a transaction, in Kafka's layout. A control batch carries the
//! producer's id and epoch, the transactional and control attribute bits, no sequence, and one
//! record whose key is `[version: int16 = 0][type: int16]` (0 abort, 1 commit) and whose value is
//! `[version: int16 = 0][coordinator epoch: int32]`.

use crate::batch::{
    self, build_keyed_batch, compute_crc, BatchHeader, ATTR_CONTROL, ATTR_TRANSACTIONAL,
};

/// The control record types Kafka defines that Ringlet writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    Abort,
    Commit,
}

impl Marker {
    fn code(self) -> i16 {
        match self {
            Marker::Abort => 0,
            Marker::Commit => 1,
        }
    }
}

/// A commit or abort marker for `producer_id`/`epoch`, base offset 0 (the log assigns it).
pub fn marker_batch(
    producer_id: i64,
    epoch: i16,
    marker: Marker,
    coordinator_epoch: i32,
    timestamp: i64,
) -> Vec<u8> {
    let key = [0i16.to_be_bytes(), marker.code().to_be_bytes()].concat();
    let mut value = 0i16.to_be_bytes().to_vec();
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let mut b = build_keyed_batch(&[(Some(&key), Some(&value))], timestamp);
    set_producer(
        &mut b,
        producer_id,
        epoch,
        -1,
        ATTR_TRANSACTIONAL | ATTR_CONTROL,
    );
    b
}

/// Stamps a built batch with a producer id, epoch and base sequence and sets `attributes` bits
/// (the transactional offset commits a group coordinator writes), then recomputes the CRC.
pub fn set_producer(b: &mut [u8], producer_id: i64, epoch: i16, base_sequence: i32, attrs: i16) {
    let old = i16::from_be_bytes([b[21], b[22]]);
    b[21..23].copy_from_slice(&(old | attrs).to_be_bytes());
    b[43..51].copy_from_slice(&producer_id.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    b[53..57].copy_from_slice(&base_sequence.to_be_bytes());
    let crc = compute_crc(b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// The marker a control batch carries; `None` for a batch that is not a control batch or whose
/// control record is of a type Ringlet does not know (Kafka skips those too).
pub fn marker_of(h: &BatchHeader, b: &[u8]) -> Option<Marker> {
    if !h.is_control() {
        return None;
    }
    let mut found = None;
    let _ = batch::walk_records(b, |r| {
        if let Some(k) = r.key.filter(|k| k.len() >= 4) {
            found = match i16::from_be_bytes([k[2], k[3]]) {
                0 => Some(Marker::Abort),
                1 => Some(Marker::Commit),
                _ => None,
            };
        }
        false
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_validate() {
        for m in [Marker::Abort, Marker::Commit] {
            let b = marker_batch(7, 3, m, 11, 1000);
            let h = batch::validate(&b).expect("valid");
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (7, 3, -1)
            );
            assert_eq!(marker_of(&h, &b), Some(m));
        }
        let plain = batch::build_batch(&[b"x"], 0);
        let h = batch::validate(&plain).expect("valid");
        assert_eq!(marker_of(&h, &plain), None);
    }
}
