//! A consumer of one topic: every partition, one partition, or the partitions a consumer group
//! assigns. Starts from the group's committed offsets, else from `auto.offset.reset` (earliest or
//! latest), or from an explicit offset; resets on OFFSET_OUT_OF_RANGE as Kafka's consumer does.

use crate::conn::Conn;
use crate::errors::error_name;
use crate::group::{GroupMember, HEARTBEAT_INTERVAL};
use crate::records::{self, Record};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

/// Where to start reading a partition that has no committed offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    Earliest,
    Latest,
    /// This offset (of the one partition read).
    Offset(i64),
}

#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    /// `group.id`: join this group and commit positions to it.
    pub group: Option<String>,
    /// Read only this partition (not with a group).
    pub partition: Option<i32>,
    pub start: StartAt,
    /// `isolation.level`: 0 read_uncommitted, 1 read_committed.
    pub isolation_level: i8,
    /// `fetch.max.wait.ms`.
    pub max_wait_ms: i32,
    /// `max.partition.fetch.bytes`.
    pub max_partition_bytes: i32,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            group: None,
            partition: None,
            start: StartAt::Latest,
            isolation_level: 0,
            max_wait_ms: 200,
            max_partition_bytes: 4 << 20,
        }
    }
}

pub struct Consumer {
    conn: Conn,
    topic: String,
    all: Vec<i32>,
    member: Option<GroupMember>,
    reset_to: i64,
    config: ConsumerConfig,
    /// Next offset to read, per assigned partition.
    positions: BTreeMap<i32, i64>,
}

impl Consumer {
    pub fn connect(bootstrap: &str, topic: &str, config: ConsumerConfig) -> anyhow::Result<Self> {
        let mut conn = Conn::connect(bootstrap)?;
        let all = crate::admin::partitions(&mut conn, topic, false)?;
        if let Some(p) = config.partition {
            if config.group.is_some() {
                anyhow::bail!("a partition and a group cannot be given together");
            }
            if !all.contains(&p) {
                anyhow::bail!("topic {topic} has no partition {p}");
            }
        }
        if matches!(config.start, StartAt::Offset(_)) && config.partition.is_none() {
            anyhow::bail!("a start offset needs a partition");
        }
        let member = match &config.group {
            Some(g) => Some(GroupMember::connect(bootstrap, g, topic)?),
            None => None,
        };
        let reset_to = match config.start {
            StartAt::Earliest => crate::admin::EARLIEST,
            _ => crate::admin::LATEST,
        };
        let mut c = Consumer {
            conn,
            topic: topic.to_string(),
            all,
            member,
            reset_to,
            config,
            positions: BTreeMap::new(),
        };
        c.assign()?;
        Ok(c)
    }

    /// (Re)computes the assignment and the position of each assigned partition.
    fn assign(&mut self) -> anyhow::Result<()> {
        let mine: Vec<i32> = match (&mut self.member, self.config.partition) {
            (Some(m), _) => m.join(&self.all)?,
            (None, Some(p)) => vec![p],
            (None, None) => self.all.clone(),
        };
        let mut positions =
            crate::admin::list_offsets(&mut self.conn, &self.topic, &mine, self.reset_to)?;
        if let StartAt::Offset(off) = self.config.start {
            positions.insert(mine[0], off);
        }
        if let Some(m) = self.member.as_mut() {
            positions.extend(m.committed(&mine)?);
        }
        self.positions = positions;
        Ok(())
    }

    /// The partitions read and the next offset of each.
    pub fn positions(&self) -> &BTreeMap<i32, i64> {
        &self.positions
    }

    /// Heartbeats when due (rejoining when the group rebalances), then fetches once and returns
    /// at most `max_records` records (`max.poll.records`) as `(partition, record)`. Positions move
    /// past the records returned, and only those.
    pub fn poll(&mut self, max_records: usize) -> anyhow::Result<Vec<(i32, Record)>> {
        if let Some(m) = self.member.as_mut() {
            if m.last_heartbeat.elapsed() >= HEARTBEAT_INTERVAL && m.heartbeat()? {
                self.commit()?;
                self.assign()?;
            }
        }
        if self.positions.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(
                self.config.max_wait_ms.max(0) as u64,
            ));
            return Ok(Vec::new());
        }
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(self.config.max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(16 << 20)
            .with_isolation_level(self.config.isolation_level)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(self.topic.clone())))
                .with_partitions(
                    self.positions
                        .iter()
                        .map(|(&p, &off)| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(off)
                                .with_partition_max_bytes(self.config.max_partition_bytes)
                                .with_current_leader_epoch(-1)
                                .with_log_start_offset(-1)
                        })
                        .collect(),
                )]);
        let resp: FetchResponse = self.conn.call(ApiKey::Fetch, 11, &req)?;
        if resp.error_code != 0 {
            anyhow::bail!("fetch from {}: {}", self.topic, error_name(resp.error_code));
        }
        let mut out = Vec::new();
        for pd in resp.responses.iter().flat_map(|t| &t.partitions) {
            let p = pd.partition_index;
            if pd.error_code == 1 {
                // OFFSET_OUT_OF_RANGE: reset as auto.offset.reset says.
                let reset =
                    crate::admin::list_offsets(&mut self.conn, &self.topic, &[p], self.reset_to)?;
                tracing::info!(
                    partition = p,
                    to = reset[&p],
                    "offset out of range; position reset"
                );
                self.positions.insert(p, reset[&p]);
                continue;
            }
            if pd.error_code != 0 {
                anyhow::bail!(
                    "fetch from {}/{p}: {}",
                    self.topic,
                    error_name(pd.error_code)
                );
            }
            let Some(bytes) = &pd.records else { continue };
            let Some(&pos) = self.positions.get(&p) else {
                continue;
            };
            for r in records::parse(bytes)? {
                if out.len() >= max_records {
                    break;
                }
                // A fetch starts at the batch holding `pos`; skip what came before it.
                if r.offset < pos {
                    continue;
                }
                self.positions.insert(p, r.offset + 1);
                out.push((p, r));
            }
        }
        Ok(out)
    }

    /// Commits the current positions to the group (a no-op without one).
    pub fn commit(&mut self) -> anyhow::Result<()> {
        if let Some(m) = self.member.as_mut() {
            let pos: Vec<(i32, i64)> = self.positions.iter().map(|(p, o)| (*p, *o)).collect();
            m.commit(&pos)?;
        }
        Ok(())
    }

    /// Commits and leaves the group.
    pub fn close(mut self) -> anyhow::Result<()> {
        self.commit()?;
        if let Some(m) = self.member.as_mut() {
            m.leave();
        }
        Ok(())
    }
}
