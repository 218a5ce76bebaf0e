//! `ringlet delete-records`: move partitions' log start up (DeleteRecords), with the flags and
//! the JSON file of `kafka-delete-records.sh`, or `--topic/--partition/--offset` for one
//! partition. Each partition's request goes to its leader; the output is Kafka's.

use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::{ApiKey, DeleteRecordsRequest, DeleteRecordsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use ringlet_client::{admin, Conn};
use std::collections::BTreeMap;

#[derive(clap::Args, Debug)]
pub struct DeleteRecordsArgs {
    #[arg(long, default_value = "localhost:9092")]
    pub bootstrap_server: String,
    /// Kafka's file: `{"partitions": [{"topic": "t", "partition": 0, "offset": 4}], "version": 1}`
    /// (offset -1: the high watermark).
    #[arg(long)]
    pub offset_json_file: Option<std::path::PathBuf>,
    #[arg(long)]
    pub topic: Option<String>,
    #[arg(long)]
    pub partition: Option<i32>,
    #[arg(long)]
    pub offset: Option<i64>,
}

#[derive(serde::Deserialize)]
struct Spec {
    partitions: Vec<SpecPartition>,
}

#[derive(serde::Deserialize)]
struct SpecPartition {
    topic: String,
    partition: i32,
    offset: i64,
}

/// `(topic, partition, offset)` wanted, from the file or the flags.
fn wanted(args: &DeleteRecordsArgs) -> anyhow::Result<Vec<(String, i32, i64)>> {
    if let Some(f) = &args.offset_json_file {
        let text =
            std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        let spec: Spec = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: not an offset JSON file: {e}", f.display()))?;
        return Ok(spec
            .partitions
            .into_iter()
            .map(|p| (p.topic, p.partition, p.offset))
            .collect());
    }
    match (&args.topic, args.partition, args.offset) {
        (Some(t), Some(p), Some(o)) => Ok(vec![(t.clone(), p, o)]),
        _ => anyhow::bail!("--offset-json-file, or --topic, --partition and --offset, is required"),
    }
}

/// Runs the tool; prints one line per partition and fails if any partition was refused.
pub fn run(args: &DeleteRecordsArgs) -> anyhow::Result<()> {
    let wanted = wanted(args)?;
    let mut conn = Conn::connect(&args.bootstrap_server)?;
    let topics: Vec<String> = wanted.iter().map(|w| w.0.clone()).collect();
    let md = admin::metadata(&mut conn, Some(&topics))?;
    let brokers: BTreeMap<i32, String> = md
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
        .collect();
    // Leader -> topic -> partitions and offsets.
    let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<(i32, i64)>>> = BTreeMap::new();
    for (topic, partition, offset) in &wanted {
        let leader = md
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
            .and_then(|t| {
                t.partitions
                    .iter()
                    .find(|p| p.partition_index == *partition)
            })
            .map(|p| p.leader_id.0)
            .filter(|&l| l >= 0)
            .ok_or_else(|| {
                anyhow::anyhow!("partition {topic}-{partition} has no leader (or does not exist)")
            })?;
        by_leader
            .entry(leader)
            .or_default()
            .entry(topic.clone())
            .or_default()
            .push((*partition, *offset));
    }
    println!("Executing records delete operation");
    println!("Records delete operation completed:");
    let mut failed = 0;
    for (leader, topics) in by_leader {
        let addr = brokers
            .get(&leader)
            .ok_or_else(|| anyhow::anyhow!("leader {leader} is not in the metadata"))?;
        let mut c = Conn::connect(addr)?;
        let req = DeleteRecordsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        DeleteRecordsTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t)))
                            .with_partitions(
                                ps.into_iter()
                                    .map(|(p, o)| {
                                        DeleteRecordsPartition::default()
                                            .with_partition_index(p)
                                            .with_offset(o)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let resp: DeleteRecordsResponse = c.call(ApiKey::DeleteRecords, 2, &req)?;
        for t in resp.topics {
            for p in t.partitions {
                let tp = format!("{}-{}", t.name.0, p.partition_index);
                if p.error_code == 0 {
                    println!("partition: {tp}\tlow_watermark: {}", p.low_watermark);
                } else {
                    failed += 1;
                    println!(
                        "partition: {tp}\terror: {} ({})",
                        ringlet_client::error_name(p.error_code),
                        p.error_code
                    );
                }
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} partition(s) refused");
    }
    Ok(())
}
