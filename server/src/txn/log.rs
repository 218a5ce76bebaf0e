//! The transaction log: each transactional id's state as a record of `__transaction_state`, in
//! Kafka's layouts (the key `[version: int16 = 0][transactional_id: string]`, the value
//! TransactionLogValue version 0: producer id, epoch, timeout, state, partitions, last update
//! and start timestamps), appended (and replicated) through the engine and replayed into
//! coordinator state when a shard takes a partition over. A tombstone removes an expired id.

use super::{State, TxnMeta};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use ringlet_format::batch;
use std::collections::{BTreeSet, HashMap};

pub(super) fn key(txn_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + txn_id.len());
    k.extend_from_slice(&0i16.to_be_bytes());
    k.extend_from_slice(&(txn_id.len() as i16).to_be_bytes());
    k.extend_from_slice(txn_id.as_bytes());
    k
}

fn parse_key(mut k: &[u8]) -> Option<String> {
    if k.len() < 4 || k.get_i16() != 0 {
        return None;
    }
    let n = usize::try_from(k.get_i16()).ok()?;
    std::str::from_utf8(k.get(..n)?).ok().map(str::to_string)
}

pub(super) fn value(m: &TxnMeta) -> Vec<u8> {
    let mut v = BytesMut::with_capacity(64);
    v.put_i16(0);
    v.put_i64(m.producer_id);
    v.put_i16(m.epoch);
    v.put_i32(m.timeout_ms);
    v.put_i8(m.state.code());
    // Partitions grouped by topic, as Kafka writes them.
    let mut by_topic: Vec<(&str, Vec<i32>)> = Vec::new();
    for (t, p) in &m.partitions {
        match by_topic.last_mut() {
            Some((name, ps)) if name == t => ps.push(*p),
            _ => by_topic.push((t, vec![*p])),
        }
    }
    v.put_i32(by_topic.len() as i32);
    for (t, ps) in by_topic {
        v.put_i16(t.len() as i16);
        v.put_slice(t.as_bytes());
        v.put_i32(ps.len() as i32);
        for p in ps {
            v.put_i32(p);
        }
    }
    v.put_i64(m.last_update_ms);
    v.put_i64(m.start_ms);
    v.to_vec()
}

fn parse_value(mut v: &[u8]) -> Option<TxnMeta> {
    fn need(v: &[u8], n: usize) -> Option<()> {
        (v.remaining() >= n).then_some(())
    }
    need(v, 2 + 8 + 2 + 4 + 1 + 4)?;
    if v.get_i16() > 1 {
        return None;
    }
    let producer_id = v.get_i64();
    let epoch = v.get_i16();
    let timeout_ms = v.get_i32();
    let state = State::from_code(v.get_i8())?;
    let topics = v.get_i32();
    let mut partitions = BTreeSet::new();
    for _ in 0..topics.max(0) {
        need(v, 2)?;
        let n = usize::try_from(v.get_i16()).ok()?;
        need(v, n + 4)?;
        let t = std::str::from_utf8(&v[..n]).ok()?.to_string();
        v.advance(n);
        let ps = v.get_i32();
        need(v, 4 * usize::try_from(ps).ok()?)?;
        for _ in 0..ps {
            partitions.insert((t.clone(), v.get_i32()));
        }
    }
    need(v, 16)?;
    let last_update_ms = v.get_i64();
    let start_ms = v.get_i64();
    Some(TxnMeta {
        producer_id,
        epoch,
        timeout_ms,
        state,
        partitions,
        last_update_ms,
        start_ms,
        next_producer_id: -1,
        busy: false,
    })
}

/// A batch holding one id's record (`None`: a tombstone).
pub(super) fn record(txn_id: &str, meta: Option<&TxnMeta>) -> Bytes {
    let k = key(txn_id);
    let v = meta.map(value);
    let recs: [batch::KeyValue<'_>; 1] = [(Some(k.as_slice()), v.as_deref())];
    Bytes::from(batch::build_keyed_batch(
        &recs,
        ringlet_engine::config::now_ms(),
    ))
}

/// Replays one `__transaction_state` partition into `into`; returns the records read.
pub(super) async fn load_partition(
    part: &std::rc::Rc<ringlet_engine::Partition>,
    into: &mut HashMap<String, TxnMeta>,
) -> usize {
    let mut loaded = 0;
    let mut offset = part.log_start_offset();
    loop {
        let r = match part.read_upto(offset, 4 << 20, true).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "reading the transaction log failed");
                break;
            }
        };
        let Some(region) = r.region else { break };
        let Ok(bytes) = region.read_all().await else {
            break;
        };
        let mut rest = &bytes[..];
        let mut progressed = false;
        while let Ok(b) = batch::next_batch(rest) {
            let res = batch::for_each_record(b, |_, k, v| {
                let Some(id) = k.and_then(parse_key) else {
                    return;
                };
                match v.and_then(parse_value) {
                    Some(m) => into.insert(id, m),
                    None => into.remove(&id),
                };
                loaded += 1;
            });
            if let Err(e) = res {
                tracing::warn!(error = %e, "skipping an unreadable batch in the transaction log");
            }
            let h = batch::BatchHeader::parse(b).expect("validated batch");
            offset = h.last_offset() + 1;
            progressed = true;
            rest = &rest[b.len()..];
        }
        if !progressed {
            break;
        }
    }
    loaded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        let m = TxnMeta {
            producer_id: 42,
            epoch: 3,
            timeout_ms: 60_000,
            state: State::Ongoing,
            partitions: [
                ("a".to_string(), 0),
                ("a".to_string(), 2),
                ("b".to_string(), 1),
            ]
            .into_iter()
            .collect(),
            last_update_ms: 10,
            start_ms: 5,
            next_producer_id: -1,
            busy: false,
        };
        let back = parse_value(&value(&m)).expect("parses");
        assert_eq!(
            (back.producer_id, back.epoch, back.timeout_ms, back.state),
            (42, 3, 60_000, State::Ongoing)
        );
        assert_eq!(back.partitions, m.partitions);
        assert_eq!((back.last_update_ms, back.start_ms), (10, 5));
        assert_eq!(parse_key(&key("tx-1")).as_deref(), Some("tx-1"));
    }
}
