//! Group membership for load-generator consumers (`--group`): the classic consumer protocol with
//! a round-robin assignor, heartbeats, and offsets committed on every rebalance so that no
//! partition is read twice when it moves between members.

use crate::conn::{ClientError, Conn};
use crate::errors::error_name;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const PROTOCOL: &str = "roundrobin";
const SESSION_TIMEOUT_MS: i32 = 10_000;
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(1000);

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn versioned<T: Encodable>(version: i16, msg: &T) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(version);
    msg.encode(&mut b, version)
        .expect("consumer protocol message encodes");
    b.freeze()
}

pub struct GroupMember {
    conn: Conn,
    group: String,
    topic: String,
    member_id: String,
    generation: i32,
    pub last_heartbeat: Instant,
}

impl GroupMember {
    /// Finds the group's coordinator and connects to it.
    pub fn connect(bootstrap: &str, group: &str, topic: &str) -> Result<GroupMember, ClientError> {
        let mut conn = Conn::connect(bootstrap)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let coordinator = loop {
            let r: FindCoordinatorResponse = conn.call(
                ApiKey::FindCoordinator,
                2,
                &FindCoordinatorRequest::default().with_key(s(group)),
            )?;
            if r.error_code == 0 {
                break format!("{}:{}", r.host, r.port);
            }
            if Instant::now() > deadline {
                return Err(ClientError::Broker {
                    code: r.error_code,
                    name: error_name(r.error_code),
                    context: format!("FindCoordinator for group {group}"),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        Ok(GroupMember {
            conn: Conn::connect(&coordinator)?,
            group: group.into(),
            topic: topic.into(),
            member_id: String::new(),
            generation: -1,
            last_heartbeat: Instant::now(),
        })
    }

    /// Joins (or rejoins) the group and returns this member's partitions.
    pub fn join(&mut self, all_partitions: &[i32]) -> Result<Vec<i32>, ClientError> {
        let subscription = versioned(
            0,
            &ConsumerProtocolSubscription::default().with_topics(vec![s(&self.topic)]),
        );
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let req = JoinGroupRequest::default()
                .with_group_id(GroupId(s(&self.group)))
                .with_session_timeout_ms(SESSION_TIMEOUT_MS)
                .with_rebalance_timeout_ms(SESSION_TIMEOUT_MS)
                .with_member_id(s(&self.member_id))
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
                )
                .with_name(s(PROTOCOL))
                .with_metadata(subscription.clone())]);
            let r: JoinGroupResponse = self.conn.call(ApiKey::JoinGroup, 5, &req)?;
            match r.error_code {
                0 => {}
                79 => {
                    // MEMBER_ID_REQUIRED: join again with the id the coordinator gave us.
                    self.member_id = r.member_id.to_string();
                    continue;
                }
                25 => {
                    self.member_id.clear();
                    continue;
                }
                code if Instant::now() < deadline && code == 27 => continue,
                code => {
                    return Err(ClientError::Broker {
                        code,
                        name: error_name(code),
                        context: "JoinGroup".into(),
                    })
                }
            }
            self.member_id = r.member_id.to_string();
            self.generation = r.generation_id;
            let assignments = if r.leader == r.member_id {
                // Round robin over the members, sorted by id.
                let mut members: Vec<String> =
                    r.members.iter().map(|m| m.member_id.to_string()).collect();
                members.sort();
                let mut per: HashMap<String, Vec<i32>> = HashMap::new();
                for (i, p) in all_partitions.iter().enumerate() {
                    per.entry(members[i % members.len()].clone())
                        .or_default()
                        .push(*p);
                }
                members
                    .iter()
                    .map(|m| {
                        let a =
                            ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
                                consumer_protocol_assignment::TopicPartition::default()
                                    .with_topic(TopicName(s(&self.topic)))
                                    .with_partitions(per.remove(m).unwrap_or_default()),
                            ]);
                        sync_group_request::SyncGroupRequestAssignment::default()
                            .with_member_id(s(m))
                            .with_assignment(versioned(0, &a))
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let req = SyncGroupRequest::default()
                .with_group_id(GroupId(s(&self.group)))
                .with_generation_id(self.generation)
                .with_member_id(s(&self.member_id))
                .with_assignments(assignments);
            let r: SyncGroupResponse = self.conn.call(ApiKey::SyncGroup, 3, &req)?;
            if r.error_code == 27 || r.error_code == 22 {
                continue; // a new rebalance started: join again
            }
            if r.error_code != 0 {
                return Err(ClientError::Broker {
                    code: r.error_code,
                    name: error_name(r.error_code),
                    context: "SyncGroup".into(),
                });
            }
            self.last_heartbeat = Instant::now();
            let mut a = r.assignment;
            if a.remaining() < 2 {
                return Ok(Vec::new());
            }
            let version = a.get_i16();
            let assignment = ConsumerProtocolAssignment::decode(&mut a, version.clamp(0, 3))
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            return Ok(assignment
                .assigned_partitions
                .into_iter()
                .flat_map(|t| t.partitions)
                .collect());
        }
    }

    /// Sends a heartbeat; true when the group is rebalancing and this member must rejoin.
    pub fn heartbeat(&mut self) -> Result<bool, ClientError> {
        self.last_heartbeat = Instant::now();
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(s(&self.group)))
            .with_generation_id(self.generation)
            .with_member_id(s(&self.member_id));
        let r: HeartbeatResponse = self.conn.call(ApiKey::Heartbeat, 3, &req)?;
        Ok(r.error_code != 0)
    }

    /// Commits positions (next offsets to read).
    pub fn commit(&mut self, positions: &[(i32, i64)]) -> Result<(), ClientError> {
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(&self.group)))
            .with_generation_id_or_member_epoch(self.generation)
            .with_member_id(s(&self.member_id))
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(&self.topic)))
                    .with_partitions(
                        positions
                            .iter()
                            .map(|&(p, o)| {
                                offset_commit_request::OffsetCommitRequestPartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(o)
                                    .with_committed_leader_epoch(-1)
                            })
                            .collect(),
                    ),
            ]);
        let resp: OffsetCommitResponse = self.conn.call(ApiKey::OffsetCommit, 7, &req)?;
        // A refused commit is not fatal to a benchmark, but it is never silent: the next owner of
        // the partition re-reads from the last good commit, and --verify counts the duplicates.
        for p in resp
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .filter(|p| p.error_code != 0)
        {
            tracing::warn!(group = %self.group, partition = p.partition_index, error = error_name(p.error_code), "offset commit refused");
        }
        Ok(())
    }

    /// Committed positions of `partitions` (`None` where nothing was committed).
    pub fn committed(&mut self, partitions: &[i32]) -> Result<HashMap<i32, i64>, ClientError> {
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(s(&self.group)))
            .with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(TopicName(s(&self.topic)))
                    .with_partition_indexes(partitions.to_vec()),
            ]));
        let r: OffsetFetchResponse = self.conn.call(ApiKey::OffsetFetch, 5, &req)?;
        Ok(r.topics
            .into_iter()
            .flat_map(|t| t.partitions)
            .filter(|p| p.committed_offset >= 0)
            .map(|p| (p.partition_index, p.committed_offset))
            .collect())
    }

    pub fn leave(&mut self) {
        let req = LeaveGroupRequest::default()
            .with_group_id(GroupId(s(&self.group)))
            .with_member_id(s(&self.member_id));
        let _: Result<LeaveGroupResponse, _> = self.conn.call(ApiKey::LeaveGroup, 2, &req);
    }
}
