//! A batching producer for one topic: records wait in a per-partition batch until it reaches
//! `batch.size` bytes or `linger.ms` passes, then go out as one record batch in one Produce
//! request. Keyed records go where Kafka's default partitioner puts them (murmur2 of the key);
//! records without a key stick to one partition until its batch is full, as Kafka's sticky
//! partitioner does.

use crate::codec::Codec;
use crate::conn::Conn;
use crate::errors::error_name;
use crate::records::{self, Record};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Producer settings, with Kafka's names.
#[derive(Clone, Debug)]
pub struct ProducerConfig {
    /// `acks`: 0, 1 or -1 (all).
    pub acks: i16,
    /// `compression.type`.
    pub codec: Codec,
    /// `batch.size`: bytes of records that close a batch.
    pub batch_size: usize,
    /// `linger.ms`: the longest a record waits for its batch to fill.
    pub linger: Duration,
    /// `request.timeout.ms`, sent as the Produce timeout.
    pub timeout_ms: i32,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: -1,
            codec: Codec::None,
            batch_size: 16384,
            linger: Duration::from_millis(5),
            timeout_ms: 30_000,
        }
    }
}

/// Parses `acks` as Kafka spells it: `0`, `1`, `all` or `-1`.
pub fn parse_acks(s: &str) -> anyhow::Result<i16> {
    match s {
        "0" => Ok(0),
        "1" => Ok(1),
        "all" | "-1" => Ok(-1),
        a => anyhow::bail!("acks {a}: expected 0, 1 or all"),
    }
}

/// A record the broker refused, with the caller's tag for it.
#[derive(Debug)]
pub struct Failure<T> {
    pub tag: T,
    /// Kafka's error name and the broker's message.
    pub error: String,
}

struct Pending<T> {
    records: Vec<(T, Record)>,
    bytes: usize,
    since: Instant,
}

pub struct Producer<T> {
    conn: Conn,
    topic: String,
    partitions: i32,
    config: ProducerConfig,
    batches: BTreeMap<i32, Pending<T>>,
    sticky: i32,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl<T> Producer<T> {
    /// Connects and learns the topic's partitions (creating the topic where the broker
    /// auto-creates topics).
    pub fn connect(bootstrap: &str, topic: &str, config: ProducerConfig) -> anyhow::Result<Self> {
        let mut conn = Conn::connect(bootstrap)?;
        let partitions = crate::admin::partitions(&mut conn, topic, true)?.len() as i32;
        Ok(Producer {
            conn,
            topic: topic.to_string(),
            partitions,
            config,
            batches: BTreeMap::new(),
            sticky: 0,
        })
    }

    pub fn partitions(&self) -> i32 {
        self.partitions
    }

    /// Queues a record (to `partition`, or by key, or sticky) and sends its batch when full.
    /// Returns the records refused by any request this call made.
    pub fn send(
        &mut self,
        record: Record,
        partition: Option<i32>,
        tag: T,
    ) -> anyhow::Result<Vec<Failure<T>>> {
        let p = match (partition, &record.key) {
            (Some(p), _) => p,
            (None, Some(k)) => records::partition_for_key(k, self.partitions),
            (None, None) => self.sticky,
        };
        if !(0..self.partitions).contains(&p) {
            return Ok(vec![Failure {
                tag,
                error: format!(
                    "UNKNOWN_TOPIC_OR_PARTITION: {} has {} partitions",
                    self.topic, self.partitions
                ),
            }]);
        }
        let size = record.key.as_ref().map_or(0, Vec::len)
            + record.value.as_ref().map_or(0, Vec::len)
            + record
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
                .sum::<usize>()
            + 16;
        let e = self.batches.entry(p).or_insert_with(|| Pending {
            records: Vec::new(),
            bytes: 0,
            since: Instant::now(),
        });
        if e.records.is_empty() {
            e.since = Instant::now();
        }
        e.records.push((tag, record));
        e.bytes += size;
        if e.bytes >= self.config.batch_size {
            if partition.is_none() {
                self.sticky = (self.sticky + 1) % self.partitions;
            }
            return self.send_batch(p);
        }
        Ok(Vec::new())
    }

    /// Sends every batch that has waited `linger.ms`.
    pub fn poll(&mut self) -> anyhow::Result<Vec<Failure<T>>> {
        let linger = self.config.linger;
        self.send_where(|p| p.since.elapsed() >= linger)
    }

    /// Sends every waiting batch.
    pub fn flush(&mut self) -> anyhow::Result<Vec<Failure<T>>> {
        self.send_where(|_| true)
    }

    fn send_where(&mut self, due: impl Fn(&Pending<T>) -> bool) -> anyhow::Result<Vec<Failure<T>>> {
        let ready: Vec<i32> = self
            .batches
            .iter()
            .filter(|(_, b)| !b.records.is_empty() && due(b))
            .map(|(p, _)| *p)
            .collect();
        let mut failed = Vec::new();
        for p in ready {
            failed.extend(self.send_batch(p)?);
        }
        Ok(failed)
    }

    /// Sends partition `p`'s batch in one Produce request and waits for the answer (acks≠0).
    fn send_batch(&mut self, p: i32) -> anyhow::Result<Vec<Failure<T>>> {
        let Some(b) = self.batches.get_mut(&p) else {
            return Ok(Vec::new());
        };
        let taken = std::mem::take(&mut b.records);
        b.bytes = 0;
        let (tags, recs): (Vec<T>, Vec<Record>) = taken.into_iter().unzip();
        let bytes = records::build(&recs, now_ms(), self.config.codec)?;
        let req = ProduceRequest::default()
            .with_acks(self.config.acks)
            .with_timeout_ms(self.config.timeout_ms)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(self.topic.clone())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(p)
                    .with_records(Some(bytes.into()))])]);
        if self.config.acks == 0 {
            self.conn.send(ApiKey::Produce, 7, &req)?;
            return Ok(Vec::new());
        }
        let resp: ProduceResponse = self.conn.call(ApiKey::Produce, 7, &req)?;
        let part = resp
            .responses
            .first()
            .and_then(|t| t.partition_responses.first());
        let code = part.map_or(-1, |p| p.error_code);
        if code == 0 {
            return Ok(Vec::new());
        }
        let error = format!(
            "{} ({code}){}",
            error_name(code),
            part.and_then(|p| p.error_message.as_ref())
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        );
        Ok(tags
            .into_iter()
            .map(|tag| Failure {
                tag,
                error: error.clone(),
            })
            .collect())
    }
}
