//! `ringlet consume`: the console consumer (kafka-console-consumer.sh's flags).

use super::records::{self, Record};
use crate::error_code;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use ringlet_loadgen::client::Conn;
use ringlet_loadgen::group::GroupMember;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct ConsumeArgs {
    #[arg(long, default_value = "localhost:9092")]
    pub bootstrap_server: String,
    #[arg(long)]
    pub topic: String,
    /// Start at the earliest offset (when no committed offset exists, with --group).
    #[arg(long)]
    pub from_beginning: bool,
    /// Start offset: a number, `earliest` or `latest` (needs --partition).
    #[arg(long)]
    pub offset: Option<String>,
    /// Read only this partition.
    #[arg(long)]
    pub partition: Option<i32>,
    /// Join this consumer group; positions are committed on exit.
    #[arg(long)]
    pub group: Option<String>,
    /// Exit after this many records.
    #[arg(long)]
    pub max_messages: Option<u64>,
    /// Exit when no record arrives for this long.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// read_uncommitted (the only level until transactions exist) or read_committed.
    #[arg(long, default_value = "read_uncommitted")]
    pub isolation_level: String,
    /// Formatting: print.key, print.timestamp, print.partition, print.offset, print.headers
    /// (=true), key.separator (default tab).
    #[arg(long = "property")]
    pub properties: Vec<String>,
    /// `text` (default) or `json` (one object per line).
    #[arg(long, default_value = "text")]
    pub output: String,
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn text(b: &Option<Vec<u8>>) -> String {
    b.as_ref().map_or("null".to_string(), |v| {
        String::from_utf8_lossy(v).into_owned()
    })
}

fn format(r: &Record, partition: i32, props: &HashMap<String, String>, json: bool) -> String {
    let on = |k: &str| props.get(k).is_some_and(|v| v == "true");
    if json {
        let headers: BTreeMap<String, String> = r
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), text(v)))
            .collect();
        return serde_json::json!({
            "partition": partition, "offset": r.offset, "timestamp": r.timestamp,
            "key": r.key.as_ref().map(|k| String::from_utf8_lossy(k).into_owned()),
            "value": r.value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()),
            "headers": headers,
        })
        .to_string();
    }
    let sep = props
        .get("key.separator")
        .cloned()
        .unwrap_or_else(|| "\t".into());
    let mut parts = Vec::new();
    if on("print.timestamp") {
        parts.push(format!("CreateTime:{}", r.timestamp));
    }
    if on("print.partition") {
        parts.push(format!("Partition:{partition}"));
    }
    if on("print.offset") {
        parts.push(format!("Offset:{}", r.offset));
    }
    if on("print.headers") {
        let h: Vec<String> = r
            .headers
            .iter()
            .map(|(k, v)| format!("{k}:{}", text(v)))
            .collect();
        parts.push(if h.is_empty() {
            "NO_HEADERS".into()
        } else {
            h.join(",")
        });
    }
    if on("print.key") {
        parts.push(text(&r.key));
    }
    parts.push(text(&r.value));
    parts.join(&sep)
}

pub fn run(args: &ConsumeArgs, stop: Arc<AtomicBool>) -> anyhow::Result<u64> {
    if args.isolation_level != "read_uncommitted" && args.isolation_level != "read_committed" {
        anyhow::bail!(
            "--isolation-level {}: expected read_uncommitted or read_committed",
            args.isolation_level
        );
    }
    let props: HashMap<String, String> = args
        .properties
        .iter()
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let json = args.output == "json";
    let mut conn = Conn::connect(&args.bootstrap_server)?;
    let md: MetadataResponse = conn.call(
        ApiKey::Metadata,
        8,
        &MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(TopicName(s(&args.topic))))
            ])),
    )?;
    let t = md
        .topics
        .first()
        .ok_or_else(|| anyhow::anyhow!("no metadata for {}", args.topic))?;
    if t.error_code != 0 {
        anyhow::bail!("topic {}: {}", args.topic, error_code::name(t.error_code));
    }
    let all: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
    let mut member = match &args.group {
        Some(g) => Some(GroupMember::connect(
            &args.bootstrap_server,
            g,
            &args.topic,
        )?),
        None => None,
    };
    let mine: Vec<i32> = match (&mut member, args.partition) {
        (Some(m), _) => m.join(&all)?,
        (None, Some(p)) => vec![p],
        (None, None) => all.clone(),
    };
    let start_ts = match (args.offset.as_deref(), args.from_beginning) {
        (Some("earliest"), _) | (None, true) => -2,
        _ => -1,
    };
    let mut positions = super::list_offsets(&mut conn, &args.topic, &mine, start_ts)?;
    if let Some(off) = args.offset.as_deref().and_then(|o| o.parse::<i64>().ok()) {
        if args.partition.is_none() {
            anyhow::bail!("--offset N needs --partition");
        }
        positions.insert(mine[0], off);
    }
    if let Some(m) = member.as_mut() {
        for (p, off) in m.committed(&mine)? {
            positions.insert(p, off);
        }
    }
    let mut count = 0u64;
    let mut last_record = Instant::now();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    'outer: while !stop.load(Ordering::Relaxed) {
        if let Some(m) = member.as_mut() {
            if m.last_heartbeat.elapsed() >= ringlet_loadgen::group::HEARTBEAT_INTERVAL
                && m.heartbeat()?
            {
                let pos: Vec<(i32, i64)> = positions.iter().map(|(p, o)| (*p, *o)).collect();
                m.commit(&pos)?;
                let assigned = m.join(&all)?;
                let committed = m.committed(&assigned)?;
                let fallback = super::list_offsets(&mut conn, &args.topic, &assigned, start_ts)?;
                positions = assigned
                    .iter()
                    .map(|p| (*p, committed.get(p).copied().unwrap_or(fallback[p])))
                    .collect();
            }
        }
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(200)
            .with_min_bytes(1)
            .with_max_bytes(16 << 20)
            .with_isolation_level(i8::from(args.isolation_level == "read_committed"))
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(s(&args.topic)))
                .with_partitions(
                    positions
                        .iter()
                        .map(|(&p, &off)| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(off)
                                .with_partition_max_bytes(4 << 20)
                                .with_current_leader_epoch(-1)
                                .with_log_start_offset(-1)
                        })
                        .collect(),
                )]);
        let resp: FetchResponse = conn.call(ApiKey::Fetch, 11, &req)?;
        for t in &resp.responses {
            for pd in &t.partitions {
                if pd.error_code == error_code::OFFSET_OUT_OF_RANGE {
                    let reset = super::list_offsets(
                        &mut conn,
                        &args.topic,
                        &[pd.partition_index],
                        start_ts,
                    )?;
                    positions.insert(pd.partition_index, reset[&pd.partition_index]);
                    continue;
                }
                if pd.error_code != 0 {
                    anyhow::bail!(
                        "fetch from partition {}: {}",
                        pd.partition_index,
                        error_code::name(pd.error_code)
                    );
                }
                let Some(bytes) = &pd.records else { continue };
                let pos = positions.get(&pd.partition_index).copied().unwrap_or(0);
                for r in records::parse(bytes)? {
                    if r.offset < pos {
                        continue;
                    }
                    writeln!(out, "{}", format(&r, pd.partition_index, &props, json))?;
                    positions.insert(pd.partition_index, r.offset + 1);
                    count += 1;
                    last_record = Instant::now();
                    if args.max_messages.is_some_and(|n| count >= n) {
                        break 'outer;
                    }
                }
            }
        }
        out.flush()?;
        if args
            .timeout_ms
            .is_some_and(|t| last_record.elapsed() >= Duration::from_millis(t))
        {
            break;
        }
    }
    out.flush()?;
    if let Some(m) = member.as_mut() {
        let pos: Vec<(i32, i64)> = positions.iter().map(|(p, o)| (*p, *o)).collect();
        m.commit(&pos)?;
        m.leave();
    }
    Ok(count)
}
