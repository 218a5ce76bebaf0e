//! ListOffsets: earliest (-2), latest (-1), the first offset at or after a timestamp, the record
//! with the largest timestamp (-3, v7, KIP-734), earliest-local (-4, v8) and latest-tiered (-5, v9)
//! as Kafka answers them without tiered storage: the log start, and no offset.

use super::{decode, encode, HandlerResult};
use crate::broker::Broker;
use crate::error_code as ec;
use bytes::Bytes;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use std::sync::Arc;

pub async fn handle(
    broker: &Arc<Broker>,
    session: &crate::security::Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: ListOffsetsRequest = decode(body, version, "ListOffsets")?;
    let req_committed = version >= 2 && req.isolation_level == 1;
    let mut topics = Vec::new();
    for t in req.topics {
        let name = t.name.0.to_string();
        let allowed = super::topic_allowed(broker, session, crate::security::code::DESCRIBE, &name);
        let mut parts = Vec::new();
        for p in t.partitions {
            let mut r = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1);
            if !allowed {
                r.error_code = ec::TOPIC_AUTHORIZATION_FAILED;
                parts.push(r);
                continue;
            }
            let topic = name.clone();
            let (index, ts) = (p.partition_index, p.timestamp);
            let current = p.current_leader_epoch;
            let clustered = broker.cluster.is_some();
            // read_committed (v2+): "latest" is the last stable offset.
            let committed = req_committed;
            let res = broker
                .on_partition(&name, index, move |part| async move {
                    if clustered {
                        crate::cluster::replica::check_read(&topic, index, current)?;
                    }
                    match ts {
                        -2 => Ok((part.log_start_offset(), -1)),
                        -1 => {
                            let hw = part.high_watermark();
                            if clustered {
                                crate::cluster::replica::check_latest_offset(&topic, index, hw)?;
                            }
                            if committed {
                                return Ok((part.last_stable_offset(), -1));
                            }
                            Ok((hw, -1))
                        }
                        // Without tiered storage every segment is local.
                        -4 => Ok((part.log_start_offset(), -1)),
                        -5 => Ok((-1, -1)),
                        -3 | 0.. => {
                            let t = if ts == -3 {
                                match part.max_timestamp() {
                                    Some(max) => max,
                                    None => return Ok((-1, -1)),
                                }
                            } else {
                                ts
                            };
                            match part.offset_for_timestamp(t).await {
                                Ok(Some((off, found_ts))) => Ok((off, found_ts)),
                                Ok(None) => Ok((-1, -1)),
                                Err(e) => Err(ec::from_log_error(&e)),
                            }
                        }
                        _ => Err(ec::INVALID_REQUEST),
                    }
                })
                .await;
            match res {
                Ok((offset, timestamp)) => {
                    r.offset = offset;
                    r.timestamp = timestamp;
                }
                Err(code) => r.error_code = code,
            }
            parts.push(r);
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(parts),
        );
    }
    encode(&ListOffsetsResponse::default().with_topics(topics), version).map(Some)
}
