//! Share state across brokers: a partition leader reads and writes a share partition's state at
//! the group's coordinator on another broker with ReadShareGroupState / WriteShareGroupState
//! (Kafka's inter-broker APIs, ClusterAction). Ringlet's write carries the whole state of the
//! share partition (replacing it), `StateEpoch` carries its write sequence, and a start offset
//! of -1 forgets it.

use super::share_state::{Op, Snapshot};
use crate::broker::Broker;
use crate::cluster::peer::PeerConn;
use crate::error_code as ec;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Runs `op` at broker `leader`, the coordinator of `group`.
pub async fn call(
    broker: &Arc<Broker>,
    leader: i32,
    group: &str,
    topic: &str,
    partition: i32,
    op: Op,
) -> Result<Option<Snapshot>, i16> {
    let cluster = broker
        .cluster
        .as_ref()
        .ok_or(ec::COORDINATOR_NOT_AVAILABLE)?;
    let timeout = Duration::from_millis(cluster.config.replica_socket_timeout_ms.max(1000));
    let (addr, host) = cluster
        .peer_endpoint(leader)
        .ok_or(ec::COORDINATOR_NOT_AVAILABLE)?;
    let topic_id = Uuid::from_bytes(
        broker
            .topic_id(topic)
            .ok_or(ec::UNKNOWN_TOPIC_OR_PARTITION)?,
    );
    let client_id = format!("ringlet-share-state-{}", broker.config.broker_id);
    let unavailable = |e: std::io::Error| {
        tracing::debug!(leader, error = %e, "share state request failed");
        ec::COORDINATOR_NOT_AVAILABLE
    };
    let mut conn = PeerConn::connect(addr, &host, &cluster.peer_security, timeout, &client_id)
        .await
        .map_err(unavailable)?;
    let group_id = StrBytes::from_string(group.to_string());
    match op {
        Op::Read => {
            use read_share_group_state_request::*;
            let req = ReadShareGroupStateRequest::default()
                .with_group_id(group_id)
                .with_topics(vec![ReadStateData::default()
                    .with_topic_id(topic_id)
                    .with_partitions(vec![PartitionData::default()
                        .with_partition(partition)
                        .with_leader_epoch(-1)])]);
            let resp: ReadShareGroupStateResponse = conn
                .call(ApiKey::ReadShareGroupState, 0, &req, timeout)
                .await
                .map_err(unavailable)?;
            let p = resp
                .results
                .into_iter()
                .flat_map(|r| r.partitions)
                .find(|p| p.partition == partition)
                .ok_or(ec::COORDINATOR_NOT_AVAILABLE)?;
            if p.error_code != ec::NONE {
                return Err(p.error_code);
            }
            Ok((p.start_offset >= 0).then(|| Snapshot {
                seq: p.state_epoch,
                start: p.start_offset,
                runs: p
                    .state_batches
                    .iter()
                    .map(|b| {
                        (
                            b.first_offset,
                            b.last_offset,
                            b.delivery_state,
                            b.delivery_count,
                        )
                    })
                    .collect(),
            }))
        }
        Op::Write(snap) => {
            use write_share_group_state_request::*;
            let (seq, start, runs) = match snap {
                Some(s) => (s.seq, s.start, s.runs),
                None => (0, -1, Vec::new()),
            };
            let req = WriteShareGroupStateRequest::default()
                .with_group_id(group_id)
                .with_topics(vec![WriteStateData::default()
                    .with_topic_id(topic_id)
                    .with_partitions(vec![PartitionData::default()
                        .with_partition(partition)
                        .with_state_epoch(seq)
                        .with_leader_epoch(-1)
                        .with_start_offset(start)
                        .with_state_batches(
                            runs.iter()
                                .map(|&(f, l, st, c)| {
                                    StateBatch::default()
                                        .with_first_offset(f)
                                        .with_last_offset(l)
                                        .with_delivery_state(st)
                                        .with_delivery_count(c)
                                })
                                .collect(),
                        )])]);
            let resp: WriteShareGroupStateResponse = conn
                .call(ApiKey::WriteShareGroupState, 0, &req, timeout)
                .await
                .map_err(unavailable)?;
            match resp.results.iter().flat_map(|r| &r.partitions).next() {
                Some(p) if p.error_code != ec::NONE => Err(p.error_code),
                Some(_) => Ok(None),
                None => Err(ec::COORDINATOR_NOT_AVAILABLE),
            }
        }
    }
}
