//! KIP-848 group state as `__consumer_offsets` records, in Kafka's formats, so that a consumer
//! group survives a coordinator restart or move with its members, epochs and assignments:
//!
//! | key type | key fields       | value (flexible v0)                                        |
//! |----------|------------------|------------------------------------------------------------|
//! | 3        | group            | ConsumerGroupMetadataValue: group epoch (+ tag 0: layout hash) |
//! | 5        | group, member    | ConsumerGroupMemberMetadataValue: ids, subscription, timeouts, classic metadata (tag 0) |
//! | 6        | group            | ConsumerGroupTargetAssignmentMetadataValue: assignment epoch |
//! | 7        | group, member    | ConsumerGroupTargetAssignmentMemberValue: target partitions by topic id |
//! | 8        | group, member    | ConsumerGroupCurrentMemberAssignmentValue: epochs, state, assigned, pending revocation |
//!
//! Each group remembers which keys it has written and a hash of each value
//! ([`Group::written`]); after a change, [`changes`] gives the records whose value differs
//! (and tombstones for keys no longer produced: members gone, a group back on the classic
//! protocol or deleted), which the caller appends before it answers, as Kafka does.

use super::assignor::Parts;
use super::consumer::{ConsumerGroup, ConsumerMember};
use super::migration::ClassicMeta;
use super::records::Reader;
use super::Group;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

const GROUP_METADATA: i16 = 3;
const MEMBER_METADATA: i16 = 5;
const TARGET_METADATA: i16 = 6;
const TARGET_MEMBER: i16 = 7;
const CURRENT_ASSIGNMENT: i16 = 8;

/// A record to append: key and value (`None`: a tombstone).
pub type Record = (Vec<u8>, Option<Vec<u8>>);

fn key(kind: i16, group: &str, member: Option<&str>) -> Vec<u8> {
    let mut k = kind.to_be_bytes().to_vec();
    for s in std::iter::once(group).chain(member) {
        k.extend_from_slice(&(s.len() as i16).to_be_bytes());
        k.extend_from_slice(s.as_bytes());
    }
    k
}

/// Flexible-version encoding (compact strings and arrays, tagged fields).
#[derive(Default)]
struct Out(Vec<u8>);

impl Out {
    fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn i8(&mut self, v: i8) {
        self.0.push(v as u8);
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.uvarint(b.len() as u64 + 1);
        self.0.extend_from_slice(b);
    }
    fn string(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn nullable(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.uvarint(0),
        }
    }
    fn no_tags(&mut self) {
        self.uvarint(0);
    }
    /// `[]TopicPartitions`: topic id, partitions, no tags; topics without an id are left out.
    fn parts(&mut self, parts: &Parts, ids: &dyn Fn(&str) -> Option<[u8; 16]>) {
        let known: Vec<([u8; 16], Vec<i32>)> = parts
            .iter()
            .filter(|(_, ps)| !ps.is_empty())
            .filter_map(|(t, ps)| Some((ids(t)?, ps.iter().copied().collect())))
            .collect();
        self.uvarint(known.len() as u64 + 1);
        for (id, ps) in known {
            self.0.extend_from_slice(&id);
            self.uvarint(ps.len() as u64 + 1);
            for p in ps {
                self.i32(p);
            }
            self.no_tags();
        }
    }
}

/// `[]TopicPartitions` as [`Out::parts`] writes it; topics no longer known are left out.
fn read_parts(r: &mut Reader<'_>, names: &dyn Fn([u8; 16]) -> Option<String>) -> Option<Parts> {
    let mut out = Parts::new();
    for _ in 0..r.compact_len()? {
        let id: [u8; 16] = r.take(16)?.try_into().ok()?;
        let n = r.compact_len()?;
        let mut ps = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            ps.push(r.i32()?);
        }
        r.tags(|_, _| {})?;
        if let Some(t) = names(id) {
            out.entry(t).or_default().extend(ps);
        }
    }
    Some(out)
}

pub(super) fn layout_hash(layout: &BTreeMap<String, i32>) -> i64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    layout.hash(&mut h);
    h.finish() as i64
}

fn group_value(cg: &ConsumerGroup) -> Vec<u8> {
    let mut o = Out::default();
    o.i32(cg.epoch);
    // Tag 0: Kafka's MetadataHash (the subscribed topics' metadata the target was computed
    // with); here a hash of their partition counts.
    o.uvarint(1);
    o.uvarint(0);
    o.uvarint(8);
    o.0.extend_from_slice(&layout_hash(&cg.layout).to_be_bytes());
    o.0
}

fn member_value(m: &ConsumerMember) -> Vec<u8> {
    let mut o = Out::default();
    o.nullable(m.instance_id.as_deref());
    o.nullable(m.rack_id.as_deref());
    o.string(&m.client_id);
    o.string(&m.client_host);
    o.uvarint(m.topics.len() as u64 + 1);
    for t in &m.topics {
        o.string(t);
    }
    o.nullable(m.regex.as_deref());
    o.i32(m.rebalance_timeout.as_millis() as i32);
    o.nullable(m.assignor.as_deref());
    match &m.classic {
        None => o.no_tags(),
        Some(c) => {
            let mut inner = Out::default();
            inner.i32(c.session_timeout.as_millis() as i32);
            inner.uvarint(c.protocols.len() as u64 + 1);
            for (name, meta) in &c.protocols {
                inner.string(name);
                inner.bytes(meta);
                inner.no_tags();
            }
            inner.no_tags();
            o.uvarint(1);
            o.uvarint(0);
            o.uvarint(inner.0.len() as u64);
            o.0.extend_from_slice(&inner.0);
        }
    }
    o.0
}

/// Kafka's MemberState: 0 stable, 1 unrevoked partitions, 2 unreleased partitions.
fn member_state(m: &ConsumerMember, target: Option<&Parts>) -> i8 {
    if !m.revoking.is_empty() {
        1
    } else if target.is_some_and(|t| *t != m.assigned) {
        2
    } else {
        0
    }
}

/// Every record that describes the group's consumer state now.
fn records_of(
    name: &str,
    cg: &ConsumerGroup,
    ids: &dyn Fn(&str) -> Option<[u8; 16]>,
) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut out = BTreeMap::new();
    out.insert(key(GROUP_METADATA, name, None), group_value(cg));
    out.insert(
        key(TARGET_METADATA, name, None),
        cg.assignment_epoch
            .to_be_bytes()
            .into_iter()
            .chain([0])
            .collect(),
    );
    for (id, m) in &cg.members {
        out.insert(key(MEMBER_METADATA, name, Some(id)), member_value(m));
        let target = cg.target.get(id);
        let mut t = Out::default();
        t.parts(target.unwrap_or(&Parts::new()), ids);
        t.no_tags();
        out.insert(key(TARGET_MEMBER, name, Some(id)), t.0);
        let mut c = Out::default();
        c.i32(m.epoch);
        c.i32(m.previous_epoch);
        c.i8(member_state(m, target));
        c.parts(&m.assigned, ids);
        c.parts(&m.revoking, ids);
        c.no_tags();
        out.insert(key(CURRENT_ASSIGNMENT, name, Some(id)), c.0);
    }
    out
}

fn digest(v: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

/// The records to append for what changed in `group` since the last call (or since it was
/// loaded), remembered as written. Members first, then the group's epochs, as Kafka orders them.
pub(super) fn changes(
    name: &str,
    group: &mut Group,
    ids: &dyn Fn(&str) -> Option<[u8; 16]>,
) -> Vec<Record> {
    let now = match &group.consumer {
        Some(cg) => records_of(name, cg, ids),
        None => BTreeMap::new(),
    };
    let mut out: Vec<Record> = Vec::new();
    let gone: Vec<Vec<u8>> = group
        .written
        .keys()
        .filter(|k| !now.contains_key(*k))
        .cloned()
        .collect();
    for k in gone {
        group.written.remove(&k);
        out.push((k, None));
    }
    for (k, v) in now {
        let d = digest(&v);
        if group.written.get(&k) != Some(&d) {
            group.written.insert(k.clone(), d);
            out.push((k, Some(v)));
        }
    }
    // Member records (types 5, 7, 8) before the group's (3, 6), as Kafka writes them.
    out.sort_by_key(|(k, _)| !matches!(k.get(..2), Some([0, 5 | 7 | 8])));
    out
}

/// Replays one record of the offsets log if it is a consumer group's; whether it was.
pub(super) fn replay(
    k: &[u8],
    v: Option<&[u8]>,
    names: &dyn Fn([u8; 16]) -> Option<String>,
) -> bool {
    let mut r = Reader::new(k);
    let Some(kind) = r.i16() else {
        return false;
    };
    if !matches!(kind, 3..=8) || kind == 4 {
        return matches!(kind, 4);
    }
    let Some(group) = r.string() else {
        return false;
    };
    let member = if matches!(kind, 5 | 7 | 8) {
        match r.string() {
            Some(m) => Some(m),
            None => return false,
        }
    } else {
        None
    };
    super::GROUPS.with(|g| {
        let mut g = g.borrow_mut();
        let grp = g.entry(group).or_insert_with(Group::new);
        match v {
            Some(v) => {
                grp.written.insert(k.to_vec(), digest(v));
                let cg = grp.consumer.get_or_insert_with(ConsumerGroup::default);
                if apply(cg, kind, member, v, names).is_none() {
                    tracing::warn!(kind, "unreadable consumer group record");
                }
            }
            None => {
                grp.written.remove(k);
                if let Some(cg) = &mut grp.consumer {
                    match (kind, member) {
                        (3, _) => grp.consumer = None,
                        (5, Some(m)) => {
                            cg.members.remove(&m);
                        }
                        (7, Some(m)) => {
                            cg.target.remove(&m);
                        }
                        _ => {}
                    }
                }
            }
        }
    });
    true
}

fn apply(
    cg: &mut ConsumerGroup,
    kind: i16,
    member: Option<String>,
    v: &[u8],
    names: &dyn Fn([u8; 16]) -> Option<String>,
) -> Option<()> {
    let mut r = Reader::new(v);
    let now = std::time::Instant::now();
    // A member loaded now has a whole session to heartbeat the new coordinator.
    fn member_of(
        cg: &mut ConsumerGroup,
        id: String,
        now: std::time::Instant,
    ) -> &mut ConsumerMember {
        cg.members.entry(id).or_insert_with(|| {
            ConsumerMember::new(
                std::time::Duration::from_secs(60),
                (None, String::new(), String::new()),
                now,
            )
        })
    }
    match kind {
        3 => {
            cg.epoch = r.i32()?;
            r.tags(|tag, b| {
                if tag == 0 && b.len() == 8 {
                    cg.layout_hash = Some(i64::from_be_bytes(b.try_into().expect("8 bytes")));
                }
            })?;
        }
        6 => cg.assignment_epoch = r.i32()?,
        5 => {
            let m = member_of(cg, member?, now);
            m.instance_id = r.compact_nullable()?;
            m.rack_id = r.compact_nullable()?;
            m.client_id = r.compact_nullable()?.unwrap_or_default();
            m.client_host = r.compact_nullable()?.unwrap_or_default();
            let n = r.compact_len()?;
            m.topics = (0..n)
                .map(|_| r.compact_nullable().map(Option::unwrap_or_default))
                .collect::<Option<_>>()?;
            m.regex = r.compact_nullable()?;
            m.rebalance_timeout = std::time::Duration::from_millis(r.i32()?.max(0) as u64);
            m.assignor = r.compact_nullable()?;
            let mut classic = None;
            r.tags(|tag, b| {
                if tag == 0 {
                    classic = read_classic(b);
                }
            })?;
            m.classic = classic;
        }
        7 => {
            let parts = read_parts(&mut r, names)?;
            cg.target.insert(member?, parts);
        }
        8 => {
            let m = member_of(cg, member?, now);
            m.epoch = r.i32()?;
            m.previous_epoch = r.i32()?;
            let _state = r.i8()?;
            m.assigned = read_parts(&mut r, names)?;
            m.revoking = read_parts(&mut r, names)?;
            if !m.revoking.is_empty() {
                // Its revocation deadline starts again with the new coordinator.
                m.revoke_deadline = Some(now + m.rebalance_timeout);
            }
        }
        _ => {}
    }
    Some(())
}

fn read_classic(b: &[u8]) -> Option<ClassicMeta> {
    let mut r = Reader::new(b);
    let session = r.i32()?;
    let n = r.compact_len()?;
    let mut protocols = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let name = r.compact_nullable()?.unwrap_or_default();
        let meta = bytes::Bytes::copy_from_slice(r.compact_bytes()?.unwrap_or_default());
        r.tags(|_, _| {})?;
        protocols.push((name, meta));
    }
    Some(ClassicMeta {
        session_timeout: std::time::Duration::from_millis(session.max(0) as u64),
        protocols,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn tid(t: &str) -> Option<[u8; 16]> {
        let mut id = [0u8; 16];
        id[..t.len().min(16)].copy_from_slice(&t.as_bytes()[..t.len().min(16)]);
        Some(id)
    }

    fn tname(id: [u8; 16]) -> Option<String> {
        Some(
            String::from_utf8_lossy(&id)
                .trim_end_matches('\0')
                .to_string(),
        )
    }

    #[test]
    fn a_group_written_and_replayed_comes_back_the_same() {
        let mut cg = ConsumerGroup {
            epoch: 7,
            assignment_epoch: 7,
            ..ConsumerGroup::default()
        };
        let mut m = ConsumerMember::new(
            Duration::from_secs(30),
            (Some("i1".into()), "client".into(), "/127.0.0.1".into()),
            Instant::now(),
        );
        m.epoch = 7;
        m.previous_epoch = 6;
        m.topics = vec!["a".into(), "b".into()];
        m.rack_id = Some("r1".into());
        m.assigned.entry("a".into()).or_default().extend([0, 1]);
        m.revoking.entry("b".into()).or_default().insert(2);
        m.classic = Some(ClassicMeta {
            session_timeout: Duration::from_secs(6),
            protocols: vec![("range".into(), bytes::Bytes::from_static(b"\0\x01xyz"))],
        });
        cg.target.insert("m1".into(), m.assigned.clone());
        cg.members.insert("m1".into(), m);
        let mut group = Group::new();
        group.consumer = Some(cg);
        let recs = changes("g", &mut group, &tid);
        assert_eq!(recs.len(), 5);
        // Nothing changed: nothing to write.
        assert!(changes("g", &mut group, &tid).is_empty());
        // Kafka's key layout: type 5, group, member.
        let k5 = key(MEMBER_METADATA, "g", Some("m1"));
        assert_eq!(k5, [0, 5, 0, 1, b'g', 0, 2, b'm', b'1']);
        super::super::GROUPS.with(|g| g.borrow_mut().remove("g"));
        for (k, v) in &recs {
            assert!(replay(k, v.as_deref(), &tname));
        }
        super::super::GROUPS.with(|g| {
            let g = g.borrow();
            let back = g["g"].consumer.as_ref().unwrap();
            assert_eq!((back.epoch, back.assignment_epoch), (7, 7));
            let m = &back.members["m1"];
            assert_eq!((m.epoch, m.previous_epoch), (7, 6));
            assert_eq!(m.instance_id.as_deref(), Some("i1"));
            assert_eq!(m.rack_id.as_deref(), Some("r1"));
            assert_eq!(m.topics, ["a", "b"]);
            assert_eq!(m.assigned["a"], [0, 1].into());
            assert_eq!(m.revoking["b"], [2].into());
            assert_eq!(m.classic.as_ref().unwrap().protocols[0].0, "range");
            assert_eq!(back.target["m1"]["a"], [0, 1].into());
            assert_eq!(g["g"].written.len(), 5);
        });
        // The member leaves and the group goes back to classic: tombstones for every key.
        group.consumer = None;
        let tombs = changes("g", &mut group, &tid);
        assert_eq!(tombs.len(), 5);
        assert!(tombs.iter().all(|(_, v)| v.is_none()));
        super::super::GROUPS.with(|g| g.borrow_mut().remove("g"));
    }

    #[test]
    fn offset_commits_and_other_records_are_not_taken() {
        assert!(!replay(
            &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 0],
            None,
            &tname
        ));
        assert!(!replay(&[0x53, 0], None, &tname));
        assert!(!replay(&[0, 2, 0, 1, b'g'], None, &tname));
    }
}
