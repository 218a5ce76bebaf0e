//! Hand-framed Fetch responses (v4..=18), so records go out as they lie in the segment files:
//! spliced, or read once and sent, but never copied into an encoded message. Checked against the
//! `kafka-protocol` encoder byte for byte in the tests below.

use crate::response::Part;
use bytes::{BufMut, BytesMut};

/// One partition's answer.
pub struct PartitionOut {
    pub partition_index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// A read_committed fetch's aborted transactions: (producer id, first offset).
    pub aborted: Vec<(i64, i64)>,
    pub records: Option<Part>,
}

pub struct TopicOut {
    pub topic: String,
    /// Written instead of the name from v13 on.
    pub topic_id: [u8; 16],
    pub partitions: Vec<PartitionOut>,
}

fn put_uvarint(b: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

fn put_array_len(b: &mut BytesMut, n: usize, flexible: bool) {
    if flexible {
        put_uvarint(b, n as u64 + 1);
    } else {
        b.put_i32(n as i32);
    }
}

fn put_string(b: &mut BytesMut, s: &str, flexible: bool) {
    if flexible {
        put_uvarint(b, s.len() as u64 + 1);
    } else {
        b.put_i16(s.len() as i16);
    }
    b.put_slice(s.as_bytes());
}

/// Encodes the body of a Fetch response into parts: encoded fields as `Bytes`, records as the
/// parts the caller provided.
pub fn encode(
    version: i16,
    error_code: i16,
    session_id: i32,
    throttle_time_ms: i32,
    topics: Vec<TopicOut>,
) -> Vec<Part> {
    assert!(
        (4..=18).contains(&version),
        "hand-framed fetch covers v4..=18"
    );
    let flexible = version >= 12;
    crate::metrics::record_error(kafka_protocol::messages::ApiKey::Fetch, error_code);
    let mut parts = Vec::new();
    let mut b = BytesMut::with_capacity(256);
    b.put_i32(throttle_time_ms);
    if version >= 7 {
        b.put_i16(error_code);
        b.put_i32(session_id);
    }
    put_array_len(&mut b, topics.len(), flexible);
    for t in topics {
        if version >= 13 {
            b.put_slice(&t.topic_id);
        } else {
            put_string(&mut b, &t.topic, flexible);
        }
        put_array_len(&mut b, t.partitions.len(), flexible);
        for p in t.partitions {
            crate::metrics::record_error(kafka_protocol::messages::ApiKey::Fetch, p.error_code);
            b.put_i32(p.partition_index);
            b.put_i16(p.error_code);
            b.put_i64(p.high_watermark);
            b.put_i64(p.last_stable_offset);
            if version >= 5 {
                b.put_i64(p.log_start_offset);
            }
            put_array_len(&mut b, p.aborted.len(), flexible);
            for &(producer_id, first_offset) in &p.aborted {
                b.put_i64(producer_id);
                b.put_i64(first_offset);
                if flexible {
                    put_uvarint(&mut b, 0); // tagged fields
                }
            }
            if version >= 11 {
                b.put_i32(-1); // preferred_read_replica
            }
            let len = p.records.as_ref().map_or(0, Part::len);
            if flexible {
                put_uvarint(&mut b, len as u64 + 1);
            } else {
                b.put_i32(len as i32);
            }
            if let Some(r) = p.records.filter(|r| !r.is_empty()) {
                parts.push(Part::Bytes(b.split().freeze()));
                parts.push(r);
            }
            if flexible {
                put_uvarint(&mut b, 0); // partition tagged fields
            }
        }
        if flexible {
            put_uvarint(&mut b, 0); // topic tagged fields
        }
    }
    if flexible {
        put_uvarint(&mut b, 0); // response tagged fields
    }
    parts.push(Part::Bytes(b.freeze()));
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{fetch_response, FetchResponse, ProducerId, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    /// Joins in-memory parts (tests and small responses).
    fn concat(parts: &[Part]) -> Option<Bytes> {
        let mut out = BytesMut::new();
        for p in parts {
            match p {
                Part::Bytes(b) => out.put_slice(b),
                Part::Many(v) => v.iter().for_each(|b| out.put_slice(b)),
                Part::File { .. } => return None,
            }
        }
        Some(out.freeze())
    }

    #[test]
    fn matches_the_kafka_protocol_encoder() {
        let recs = Bytes::from_static(b"0123456789abcdef-records");
        let id = *uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677).as_bytes();
        for version in 4..=18 {
            let ours = encode(
                version,
                0,
                0,
                0,
                vec![
                    TopicOut {
                        topic: "t1".into(),
                        topic_id: id,
                        partitions: vec![
                            PartitionOut {
                                partition_index: 0,
                                error_code: 0,
                                high_watermark: 10,
                                last_stable_offset: 10,
                                aborted: vec![(7, 3)],
                                log_start_offset: 2,
                                records: Some(Part::Bytes(recs.clone())),
                            },
                            PartitionOut {
                                partition_index: 1,
                                error_code: 1,
                                high_watermark: 5,
                                last_stable_offset: 5,
                                aborted: vec![],
                                log_start_offset: 0,
                                records: None,
                            },
                        ],
                    },
                    TopicOut {
                        topic: "other".into(),
                        topic_id: [7; 16],
                        partitions: vec![],
                    },
                ],
            );
            let ours = concat(&ours).unwrap();
            let theirs = FetchResponse::default().with_responses(vec![
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_static_str("t1")))
                    .with_topic_id(uuid::Uuid::from_bytes(id))
                    .with_partitions(vec![
                        PartitionData::default()
                            .with_partition_index(0)
                            .with_high_watermark(10)
                            .with_last_stable_offset(10)
                            .with_log_start_offset(2)
                            .with_aborted_transactions(Some(vec![
                                fetch_response::AbortedTransaction::default()
                                    .with_producer_id(ProducerId(7))
                                    .with_first_offset(3),
                            ]))
                            .with_records(Some(recs.clone())),
                        PartitionData::default()
                            .with_partition_index(1)
                            .with_error_code(1)
                            .with_high_watermark(5)
                            .with_last_stable_offset(5)
                            .with_log_start_offset(0)
                            .with_aborted_transactions(Some(vec![]))
                            .with_records(Some(Bytes::new())),
                    ]),
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_static_str("other")))
                    .with_topic_id(uuid::Uuid::from_bytes([7; 16])),
            ]);
            let mut buf = BytesMut::new();
            theirs.encode(&mut buf, version).unwrap();
            assert_eq!(ours, buf.freeze(), "fetch v{version}");
        }
    }
}
