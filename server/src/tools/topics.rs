//! `ringlet topics`: create, list, describe, alter and delete topics, with the flags of
//! `kafka-topics.sh`. Broker errors are printed with their Kafka name and message, and the exit
//! code is non-zero.

use crate::error_code;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use ringlet_client::Conn;

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

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn fail(code: i16, message: Option<&StrBytes>, what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{what} failed: {} ({code}){}",
        error_code::name(code),
        message.map(|m| format!(": {m}")).unwrap_or_default()
    )
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

fn metadata(conn: &mut Conn, topics: Option<Vec<String>>) -> anyhow::Result<MetadataResponse> {
    let req = MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(s(t)))))
                .collect()
        }));
    Ok(conn.call(ApiKey::Metadata, 12, &req)?)
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
        let md = metadata(&mut conn, None)?;
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
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(s(&topic)))
                .with_num_partitions(args.partitions.unwrap_or(-1))
                .with_replication_factor(args.replication_factor.unwrap_or(-1))
                .with_configs(
                    configs(args)?
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(s(k))
                                .with_value(Some(s(v)))
                        })
                        .collect(),
                )]);
        let resp: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, 5, &req)?;
        for r in resp.topics {
            if r.error_code == error_code::TOPIC_ALREADY_EXISTS && args.if_not_exists {
                continue;
            }
            if r.error_code != 0 {
                return Err(fail(
                    r.error_code,
                    r.error_message.as_ref(),
                    &format!("creating topic {topic}"),
                ));
            }
            println!("Created topic {topic}.");
        }
    } else if args.delete {
        let topic = need_topic()?;
        let resp: DeleteTopicsResponse = conn.call(
            ApiKey::DeleteTopics,
            4,
            &DeleteTopicsRequest::default()
                .with_timeout_ms(30_000)
                .with_topic_names(vec![TopicName(s(&topic))]),
        )?;
        for r in resp.responses {
            if r.error_code != 0 {
                return Err(fail(
                    r.error_code,
                    r.error_message.as_ref(),
                    &format!("deleting topic {topic}"),
                ));
            }
        }
        println!("Deleted topic {topic}.");
    } else if args.alter {
        let topic = need_topic()?;
        if let Some(n) = args.partitions {
            let req = CreatePartitionsRequest::default()
                .with_timeout_ms(30_000)
                .with_topics(vec![
                    create_partitions_request::CreatePartitionsTopic::default()
                        .with_name(TopicName(s(&topic)))
                        .with_count(n)
                        .with_assignments(None),
                ]);
            let resp: CreatePartitionsResponse = conn.call(ApiKey::CreatePartitions, 1, &req)?;
            for r in resp.results {
                if r.error_code != 0 {
                    return Err(fail(
                        r.error_code,
                        r.error_message.as_ref(),
                        &format!("adding partitions to {topic}"),
                    ));
                }
            }
            println!("Topic {topic} now has {n} partitions.");
        }
        let cfgs = configs(args)?;
        if !cfgs.is_empty() {
            let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s(&topic))
                    .with_configs(
                        cfgs.iter()
                            .map(|(k, v)| {
                                incremental_alter_configs_request::AlterableConfig::default()
                                    .with_name(s(k))
                                    .with_config_operation(0)
                                    .with_value(Some(s(v)))
                            })
                            .collect(),
                    ),
            ]);
            let resp: IncrementalAlterConfigsResponse =
                conn.call(ApiKey::IncrementalAlterConfigs, 0, &req)?;
            for r in resp.responses {
                if r.error_code != 0 {
                    return Err(fail(
                        r.error_code,
                        r.error_message.as_ref(),
                        &format!("altering configs of {topic}"),
                    ));
                }
            }
            println!("Altered configs of {topic}.");
        }
        if args.partitions.is_none() && cfgs.is_empty() {
            anyhow::bail!("--alter needs --partitions or --config");
        }
    } else {
        let md = metadata(&mut conn, args.topic.clone().map(|t| vec![t]))?;
        let mut topics = md.topics;
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        for t in topics {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            if t.error_code != 0 {
                return Err(fail(
                    t.error_code,
                    None,
                    &format!("describing topic {name}"),
                ));
            }
            let req = DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s(&name))
                    .with_configuration_keys(None),
            ]);
            let cfg: DescribeConfigsResponse = conn.call(ApiKey::DescribeConfigs, 1, &req)?;
            let overrides: Vec<String> = cfg
                .results
                .iter()
                .flat_map(|r| r.configs.iter())
                .filter(|c| c.config_source == 1)
                .map(|c| {
                    format!(
                        "{}={}",
                        c.name,
                        c.value.as_ref().map(|v| v.as_str()).unwrap_or("")
                    )
                })
                .collect();
            let rf = t.partitions.first().map_or(0, |p| p.replica_nodes.len());
            println!("Topic: {name}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {rf}\tConfigs: {}", t.topic_id, t.partitions.len(), overrides.join(","));
            let mut parts = t.partitions;
            parts.sort_by_key(|p| p.partition_index);
            for p in parts {
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
