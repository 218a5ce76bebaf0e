//! `ringlet topics`: create, list, describe, alter and delete topics, with the flags of
//! `kafka-topics.sh`. Broker errors are printed with their Kafka name and message, and the exit
//! code is non-zero.

use kafka_protocol::messages::BrokerId;
use ringlet_client::{admin, Conn};
use ringlet_server::error_code;

#[derive(clap::Args, Debug)]
pub struct TopicsArgs {
    #[arg(long, default_value = "localhost:9092")]
    pub bootstrap_server: String,
    #[arg(long)]
    pub create: bool,
    #[arg(long)]
    pub list: bool,
    #[arg(long)]
    pub describe: bool,
    #[arg(long)]
    pub delete: bool,
    #[arg(long)]
    pub alter: bool,
    #[arg(long)]
    pub topic: Option<String>,
    /// With --describe: only partitions whose ISR is smaller than their replica set.
    #[arg(long)]
    pub under_replicated_partitions: bool,
    /// With --describe: only partitions without a live leader.
    #[arg(long)]
    pub unavailable_partitions: bool,
    #[arg(long)]
    pub partitions: Option<i32>,
    #[arg(long)]
    pub replication_factor: Option<i16>,
    /// key=value, repeatable.
    #[arg(long = "config")]
    pub configs: Vec<String>,
    /// Do not fail when creating a topic that exists (`--if-not-exists`).
    #[arg(long)]
    pub if_not_exists: bool,
}

/// "{what} failed: NAME (code): message", as the tools print broker refusals.
fn failed(e: anyhow::Error, what: &str) -> anyhow::Error {
    anyhow::anyhow!("{what} failed: {e}")
}

/// Whether `e` is the broker refusing with `code`.
fn refused_with(e: &anyhow::Error, code: i16) -> bool {
    e.downcast_ref::<admin::BrokerError>()
        .is_some_and(|b| b.code == code)
}

fn configs(args: &TopicsArgs) -> anyhow::Result<Vec<(String, String)>> {
    args.configs
        .iter()
        .map(|c| {
            c.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow::anyhow!("--config {c}: expected key=value"))
        })
        .collect()
}

pub fn run(args: &TopicsArgs) -> anyhow::Result<()> {
    let mut conn = Conn::connect(&args.bootstrap_server)?;
    let actions = [
        args.create,
        args.list,
        args.describe,
        args.delete,
        args.alter,
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if actions != 1 {
        anyhow::bail!("exactly one of --create, --list, --describe, --delete, --alter is required");
    }
    let need_topic = || {
        args.topic
            .clone()
            .ok_or_else(|| anyhow::anyhow!("--topic is required"))
    };
    if args.list {
        let md = admin::metadata(&mut conn, None)?;
        let mut names: Vec<String> = md
            .topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect();
        names.sort();
        for n in names {
            println!("{n}");
        }
    } else if args.create {
        let topic = need_topic()?;
        match admin::create_topic(
            &mut conn,
            &topic,
            args.partitions.unwrap_or(-1),
            args.replication_factor.unwrap_or(-1),
            &configs(args)?,
        ) {
            Ok(()) => println!("Created topic {topic}."),
            Err(e) if args.if_not_exists && refused_with(&e, error_code::TOPIC_ALREADY_EXISTS) => {}
            Err(e) => return Err(failed(e, &format!("creating topic {topic}"))),
        }
    } else if args.delete {
        let topic = need_topic()?;
        admin::delete_topic(&mut conn, &topic)
            .map_err(|e| failed(e, &format!("deleting topic {topic}")))?;
        println!("Deleted topic {topic}.");
    } else if args.alter {
        let topic = need_topic()?;
        if let Some(n) = args.partitions {
            admin::create_partitions(&mut conn, &topic, n)
                .map_err(|e| failed(e, &format!("adding partitions to {topic}")))?;
            println!("Topic {topic} now has {n} partitions.");
        }
        let cfgs = configs(args)?;
        if !cfgs.is_empty() {
            admin::alter_topic_configs(&mut conn, &topic, &cfgs)
                .map_err(|e| failed(e, &format!("altering configs of {topic}")))?;
            println!("Altered configs of {topic}.");
        }
        if args.partitions.is_none() && cfgs.is_empty() {
            anyhow::bail!("--alter needs --partitions or --config");
        }
    } else {
        let md = admin::metadata(&mut conn, args.topic.clone().map(|t| vec![t]).as_deref())?;
        let mut topics = md.topics;
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        for t in topics {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            if t.error_code != 0 {
                return Err(failed(
                    admin::BrokerError {
                        code: t.error_code,
                        message: None,
                    }
                    .into(),
                    &format!("describing topic {name}"),
                ));
            }
            let overrides: Vec<String> = admin::topic_config_overrides(&mut conn, &name)
                .map_err(|e| failed(e, &format!("describing configs of {name}")))?
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let rf = t.partitions.first().map_or(0, |p| p.replica_nodes.len());
            println!("Topic: {name}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {rf}\tConfigs: {}", t.topic_id, t.partitions.len(), overrides.join(","));
            let mut parts = t.partitions;
            parts.sort_by_key(|p| p.partition_index);
            for p in parts {
                if args.under_replicated_partitions && p.isr_nodes.len() >= p.replica_nodes.len() {
                    continue;
                }
                if args.unavailable_partitions && p.leader_id.0 >= 0 {
                    continue;
                }
                let ids = |v: &[BrokerId]| {
                    v.iter()
                        .map(|b| b.0.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                };
                println!(
                    "\tTopic: {name}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}",
                    p.partition_index,
                    p.leader_id.0,
                    ids(&p.replica_nodes),
                    ids(&p.isr_nodes)
                );
            }
        }
    }
    Ok(())
}
