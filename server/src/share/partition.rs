//! One share partition (KIP-932): a share group's view of one topic partition. Offsets below the
//! share-partition start offset (SPSO) are done; offsets in `[start, end)` are in flight, each
//! with a state and a delivery count; offsets from `end` (the SPEO) on were never handed out.
//!
//! Records move Available -> Acquired (by one member, with a lock deadline, the delivery count
//! bumped) -> Acknowledged (accept), Archived (reject, gap, or released past the delivery-count
//! limit) or back to Available (release, lock expiry). The start advances past every leading
//! Acknowledged or Archived record, so the in-flight window stays bounded by
//! `group.share.partition.max.record.locks` (new records are only acquired inside it).
//!
//! Pure state: no I/O, no clock of its own (callers pass `now`); the shard that owns the topic
//! partition holds it (`share::mod`).

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

/// Kafka's acknowledge types (ShareFetch / ShareAcknowledge `AcknowledgeTypes`).
pub const GAP: i8 = 0;
pub const ACCEPT: i8 = 1;
pub const RELEASE: i8 = 2;
pub const REJECT: i8 = 3;
/// KIP-1222 (ShareFetch / ShareAcknowledge v2): the member keeps the records, with a new lock.
pub const RENEW: i8 = 4;

/// Kafka's record states in durable share state.
const STATE_AVAILABLE: i8 = 0;
const STATE_ACKNOWLEDGED: i8 = 2;
const STATE_ARCHIVED: i8 = 4;

#[derive(Clone, Debug, PartialEq)]
enum State {
    Available,
    Acquired { member: Rc<str>, deadline: Instant },
    Acknowledged,
    Archived,
}

#[derive(Clone, Debug)]
struct Record {
    state: State,
    delivery_count: i16,
}

/// A run of acquired offsets as ShareFetch's `AcquiredRecords` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acquired {
    pub first: i64,
    pub last: i64,
    pub delivery_count: i16,
}

/// The limits a share partition works under (the group's settings).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub delivery_count_limit: i16,
    pub max_record_locks: i64,
}

#[derive(Debug)]
pub struct SharePartition {
    start: i64,
    end: i64,
    records: VecDeque<Record>,
}

/// Why an acknowledgement was refused: INVALID_RECORD_STATE in Kafka's terms.
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidRecordState(pub String);

impl SharePartition {
    /// A share partition starting at `start` (from `share.auto.offset.reset`).
    pub fn new(start: i64) -> SharePartition {
        SharePartition {
            start,
            end: start,
            records: VecDeque::new(),
        }
    }

    /// The share-partition start offset (SPSO).
    pub fn start(&self) -> i64 {
        self.start
    }

    /// The share-partition end offset (SPEO): the next offset never handed out.
    pub fn end(&self) -> i64 {
        self.end
    }

    fn at(&mut self, offset: i64) -> Option<&mut Record> {
        let i = usize::try_from(offset - self.start).ok()?;
        self.records.get_mut(i)
    }

    /// The log's start moved past offsets (retention, DeleteRecords): they are gone for the group.
    pub fn truncate_before(&mut self, log_start: i64) {
        while self.start < log_start && self.start < self.end {
            self.records.pop_front();
            self.start += 1;
        }
        if self.start < log_start {
            self.start = log_start;
            self.end = log_start;
        }
    }

    /// Locks past their deadline release their records (archived past the delivery limit).
    pub fn expire_locks(&mut self, now: Instant, limits: Limits) -> usize {
        let mut n = 0;
        for r in self.records.iter_mut() {
            if matches!(&r.state, State::Acquired { deadline, .. } if *deadline <= now) {
                r.state = released(r.delivery_count, limits);
                n += 1;
            }
        }
        self.advance();
        n
    }

    /// The earliest lock deadline among acquired records, for a waiting fetch.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.records
            .iter()
            .filter_map(|r| match &r.state {
                State::Acquired { deadline, .. } => Some(*deadline),
                _ => None,
            })
            .min()
    }

    /// Where a fetch should read the log from: the first Available record in flight, else the
    /// end if the log has records past it (`high_watermark`) and the in-flight window has room;
    /// `None` when there is nothing to hand out.
    pub fn next_fetch_offset(&self, high_watermark: i64, limits: Limits) -> Option<i64> {
        let avail = self
            .records
            .iter()
            .position(|r| r.state == State::Available)
            .map(|i| self.start + i as i64);
        avail.or_else(|| {
            (self.end < high_watermark && self.end - self.start < limits.max_record_locks)
                .then_some(self.end)
        })
    }

    /// Acquires for `member` the Available offsets in `[from, upto)` (offsets the caller read
    /// from the log, never past the high watermark), at most `max_records` of them; new offsets
    /// past the end join the in-flight window while it has room. Returns the runs acquired.
    pub fn acquire(
        &mut self,
        member: &Rc<str>,
        from: i64,
        upto: i64,
        max_records: usize,
        deadline: Instant,
        limits: Limits,
    ) -> Vec<Acquired> {
        let mut out: Vec<Acquired> = Vec::new();
        let mut taken = 0usize;
        let mut offset = from.max(self.start);
        while offset < upto && taken < max_records {
            if offset == self.end {
                if self.end - self.start >= limits.max_record_locks {
                    break;
                }
                self.records.push_back(Record {
                    state: State::Available,
                    delivery_count: 0,
                });
                self.end += 1;
            }
            let r = self.at(offset).expect("offset in flight");
            if r.state == State::Available {
                r.delivery_count = r.delivery_count.saturating_add(1);
                r.state = State::Acquired {
                    member: member.clone(),
                    deadline,
                };
                let count = r.delivery_count;
                match out.last_mut() {
                    Some(a) if a.last + 1 == offset && a.delivery_count == count => a.last = offset,
                    _ => out.push(Acquired {
                        first: offset,
                        last: offset,
                        delivery_count: count,
                    }),
                }
                taken += 1;
            }
            offset += 1;
        }
        out
    }

    /// Applies one acknowledgement batch of `member`: `types` holds one type for the whole
    /// range, or one per offset. Every offset must be acquired by `member` (else nothing
    /// changes and the batch is refused with INVALID_RECORD_STATE). RENEW keeps a record
    /// acquired with its lock moved to `renew_to` (`None`: RENEW is not allowed, v1 requests).
    pub fn acknowledge(
        &mut self,
        member: &str,
        (first, last): (i64, i64),
        types: &[i8],
        limits: Limits,
        renew_to: Option<Instant>,
    ) -> Result<(), InvalidRecordState> {
        let n = last - first + 1;
        if n <= 0 || (types.len() != 1 && types.len() as i64 != n) {
            return Err(InvalidRecordState(format!(
                "acknowledgement of {first}..={last} with {} types",
                types.len()
            )));
        }
        if let Some(t) = types
            .iter()
            .find(|t| !((GAP..=REJECT).contains(*t) || (**t == RENEW && renew_to.is_some())))
        {
            return Err(InvalidRecordState(format!(
                "acknowledge type {t} is unknown (RENEW needs ShareFetch or ShareAcknowledge v2)"
            )));
        }
        for offset in first..=last {
            let owned = self.at(offset).is_some_and(
                |r| matches!(&r.state, State::Acquired { member: m, .. } if &**m == member),
            );
            if !owned {
                return Err(InvalidRecordState(format!(
                    "offset {offset} is not acquired by member {member}"
                )));
            }
        }
        for (i, offset) in (first..=last).enumerate() {
            let t = if types.len() == 1 { types[0] } else { types[i] };
            let r = self.at(offset).expect("checked");
            r.state = match (t, &r.state, renew_to) {
                (ACCEPT, ..) => State::Acknowledged,
                (RELEASE, ..) => released(r.delivery_count, limits),
                (RENEW, State::Acquired { member, .. }, Some(deadline)) => State::Acquired {
                    member: member.clone(),
                    deadline,
                },
                _ => State::Archived,
            };
        }
        self.advance();
        Ok(())
    }

    /// Releases every record `member` holds (it left the group or closed its share session).
    pub fn release_member(&mut self, member: &str, limits: Limits) -> usize {
        let mut n = 0;
        for r in self.records.iter_mut() {
            if matches!(&r.state, State::Acquired { member: m, .. } if &**m == member) {
                r.state = released(r.delivery_count, limits);
                n += 1;
            }
        }
        self.advance();
        n
    }

    /// Records in flight, by state: (available, acquired, acknowledged or archived).
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for r in &self.records {
            match r.state {
                State::Available => c.0 += 1,
                State::Acquired { .. } => c.1 += 1,
                _ => c.2 += 1,
            }
        }
        c
    }

    /// The durable form: runs of (first, last, Kafka record state, delivery count) over the
    /// in-flight window. An acquired record is stored as available (its lock dies with the
    /// leader), so after a restart or a leader change it is delivered again.
    pub fn runs(&self) -> Vec<(i64, i64, i8, i16)> {
        let mut out: Vec<(i64, i64, i8, i16)> = Vec::new();
        for (i, r) in self.records.iter().enumerate() {
            let offset = self.start + i as i64;
            let state = match r.state {
                State::Available | State::Acquired { .. } => STATE_AVAILABLE,
                State::Acknowledged => STATE_ACKNOWLEDGED,
                State::Archived => STATE_ARCHIVED,
            };
            match out.last_mut() {
                Some(run) if run.2 == state && run.3 == r.delivery_count => run.1 = offset,
                _ => out.push((offset, offset, state, r.delivery_count)),
            }
        }
        out
    }

    /// A share partition from its durable form (see [`SharePartition::runs`]).
    pub fn from_runs(start: i64, runs: &[(i64, i64, i8, i16)]) -> SharePartition {
        let mut sp = SharePartition::new(start);
        for &(first, last, state, count) in runs {
            for offset in first.max(sp.end)..=last {
                while sp.end < offset {
                    // A gap in the runs: never handed out, so available.
                    sp.records.push_back(Record {
                        state: State::Available,
                        delivery_count: 0,
                    });
                    sp.end += 1;
                }
                sp.records.push_back(Record {
                    state: match state {
                        STATE_ACKNOWLEDGED => State::Acknowledged,
                        STATE_ARCHIVED => State::Archived,
                        _ => State::Available,
                    },
                    delivery_count: count,
                });
                sp.end += 1;
            }
        }
        sp.advance();
        sp
    }

    fn advance(&mut self) {
        while self
            .records
            .front()
            .is_some_and(|r| matches!(r.state, State::Acknowledged | State::Archived))
        {
            self.records.pop_front();
            self.start += 1;
        }
    }
}

/// A released record goes back to Available, unless it was delivered `delivery_count_limit`
/// times already: then it is archived (never delivered again).
fn released(delivery_count: i16, limits: Limits) -> State {
    if delivery_count >= limits.delivery_count_limit {
        State::Archived
    } else {
        State::Available
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const L: Limits = Limits {
        delivery_count_limit: 3,
        max_record_locks: 10,
    };

    fn m(s: &str) -> Rc<str> {
        Rc::from(s)
    }

    #[test]
    fn acquired_records_go_to_one_member_and_accept_moves_the_start() {
        let now = Instant::now();
        let mut sp = SharePartition::new(5);
        assert_eq!(sp.next_fetch_offset(5, L), None);
        assert_eq!(sp.next_fetch_offset(9, L), Some(5));
        let a = sp.acquire(&m("a"), 5, 9, 2, now + Duration::from_secs(1), L);
        assert_eq!(
            a,
            vec![Acquired {
                first: 5,
                last: 6,
                delivery_count: 1
            }]
        );
        // The second member gets what the first did not take.
        let b = sp.acquire(&m("b"), 5, 9, 10, now + Duration::from_secs(1), L);
        assert_eq!(
            b,
            vec![Acquired {
                first: 7,
                last: 8,
                delivery_count: 1
            }]
        );
        assert_eq!(sp.next_fetch_offset(9, L), None);
        // b cannot acknowledge a's records; a can.
        assert!(sp.acknowledge("b", (5, 6), &[ACCEPT], L, None).is_err());
        sp.acknowledge("a", (5, 6), &[ACCEPT], L, None).unwrap();
        assert_eq!(sp.start(), 7);
        // Acknowledging twice is refused.
        assert!(sp.acknowledge("a", (5, 6), &[ACCEPT], L, None).is_err());
        sp.acknowledge("b", (7, 8), &[ACCEPT, REJECT], L, None)
            .unwrap();
        assert_eq!((sp.start(), sp.end()), (9, 9));
    }

    #[test]
    fn released_and_expired_records_are_delivered_again_until_the_limit() {
        let now = Instant::now();
        let later = now + Duration::from_secs(1);
        let mut sp = SharePartition::new(0);
        sp.acquire(&m("a"), 0, 2, 10, later, L);
        sp.acknowledge("a", (0, 1), &[RELEASE, ACCEPT], L, None)
            .unwrap();
        assert_eq!(sp.start(), 0);
        assert_eq!(sp.next_fetch_offset(2, L), Some(0));
        let again = sp.acquire(&m("b"), 0, 2, 10, later, L);
        assert_eq!(
            again,
            vec![Acquired {
                first: 0,
                last: 0,
                delivery_count: 2
            }]
        );
        // The lock expires: available again (third delivery), then archived at the limit.
        assert_eq!(sp.expire_locks(later, L), 1);
        let third = sp.acquire(&m("c"), 0, 2, 10, later + Duration::from_secs(1), L);
        assert_eq!(third[0].delivery_count, 3);
        sp.release_member("c", L);
        assert_eq!((sp.start(), sp.counts()), (2, (0, 0, 0)));
    }

    #[test]
    fn the_in_flight_window_is_bounded_by_the_record_locks() {
        let now = Instant::now();
        let mut sp = SharePartition::new(0);
        let a = sp.acquire(&m("a"), 0, 100, 100, now, L);
        assert_eq!(a[0].last, 9);
        assert_eq!(sp.next_fetch_offset(100, L), None);
        sp.acknowledge("a", (0, 4), &[ACCEPT], L, None).unwrap();
        assert_eq!(sp.next_fetch_offset(100, L), Some(10));
        let b = sp.acquire(&m("a"), 10, 100, 100, now, L);
        assert_eq!((b[0].first, b[0].last), (10, 14));
    }

    #[test]
    fn the_durable_form_restores_what_was_acknowledged_and_frees_what_was_acquired() {
        let now = Instant::now();
        let mut sp = SharePartition::new(10);
        sp.acquire(&m("a"), 10, 16, 10, now, L);
        sp.acknowledge("a", (11, 11), &[ACCEPT], L, None).unwrap();
        sp.acknowledge("a", (13, 13), &[REJECT], L, None).unwrap();
        let runs = sp.runs();
        let back = SharePartition::from_runs(sp.start(), &runs);
        assert_eq!((back.start(), back.end()), (10, 16));
        assert_eq!(back.counts(), (4, 0, 2));
        // Offset 10 was acquired: it comes back available, its count kept.
        let mut back = back;
        let again = back.acquire(&m("b"), 10, 16, 1, now, L);
        assert_eq!(
            again,
            vec![Acquired {
                first: 10,
                last: 10,
                delivery_count: 2
            }]
        );
    }

    #[test]
    fn log_truncation_moves_the_start() {
        let now = Instant::now();
        let mut sp = SharePartition::new(0);
        sp.acquire(&m("a"), 0, 3, 10, now, L);
        sp.truncate_before(2);
        assert_eq!((sp.start(), sp.end()), (2, 3));
        sp.truncate_before(7);
        assert_eq!((sp.start(), sp.end()), (7, 7));
        assert!(sp.acknowledge("a", (2, 2), &[9], L, None).is_err());
    }

    #[test]
    fn renew_moves_the_lock_and_keeps_the_records_acquired() {
        let now = Instant::now();
        let later = now + std::time::Duration::from_secs(60);
        let mut sp = SharePartition::new(0);
        sp.acquire(&m("a"), 0, 3, 10, now, L);
        // Without v2, RENEW is an unknown type; another member may not renew.
        assert!(sp.acknowledge("a", (0, 2), &[RENEW], L, None).is_err());
        assert!(sp
            .acknowledge("b", (0, 2), &[RENEW], L, Some(later))
            .is_err());
        sp.acknowledge("a", (0, 1), &[RENEW], L, Some(later))
            .unwrap();
        // The lock of 0-1 moved; 2's expired at `now`.
        assert_eq!(sp.expire_locks(now, L), 1);
        assert_eq!(sp.next_deadline(), Some(later));
        sp.acknowledge("a", (0, 1), &[ACCEPT], L, None).unwrap();
        assert_eq!(sp.start(), 2);
    }
}
