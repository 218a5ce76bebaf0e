//! `ringlet groups`: list, describe (members, assignment, committed offsets, lag), reset offsets
//! and delete consumer groups (kafka-consumer-groups.sh's flags).

use crate::error_code;
use bytes::Buf;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use ringlet_client::{admin, Conn};
use std::collections::BTreeMap;

#[derive(clap::Args, Debug)]
pub struct GroupsArgs {
    #[arg(long, default_value = "localhost:9092")]
    pub bootstrap_server: String,
    #[arg(long)]
    pub list: bool,
    #[arg(long)]
    pub describe: bool,
    #[arg(long)]
    pub delete: bool,
    #[arg(long)]
    pub reset_offsets: bool,
    #[arg(long)]
    pub group: Option<String>,
    /// Topic whose offsets --reset-offsets changes (all committed topics when absent).
    #[arg(long)]
    pub topic: Option<String>,
    #[arg(long)]
    pub to_earliest: bool,
    #[arg(long)]
    pub to_latest: bool,
    #[arg(long)]
    pub to_offset: Option<i64>,
    /// Milliseconds since the epoch, or YYYY-MM-DDTHH:MM:SS (UTC).
    #[arg(long)]
    pub to_datetime: Option<String>,
    /// Apply the reset (without it, --reset-offsets only prints the plan).
    #[arg(long)]
    pub execute: bool,
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn parse_datetime(v: &str) -> anyhow::Result<i64> {
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    // YYYY-MM-DDTHH:MM:SS in UTC, by the days-from-civil algorithm.
    let bad =
        || anyhow::anyhow!("--to-datetime {v}: expected epoch milliseconds or YYYY-MM-DDTHH:MM:SS");
    let (date, time) = v.trim_end_matches('Z').split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let t: Vec<i64> = time
        .split(':')
        .map(|x| {
            x.split('.')
                .next()
                .unwrap_or("0")
                .parse()
                .map_err(|_| bad())
        })
        .collect::<Result<_, _>>()?;
    if d.len() != 3 || t.len() != 3 {
        return Err(bad());
    }
    let (y, m, day) = (if d[1] <= 2 { d[0] - 1 } else { d[0] }, d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 24 + t[0]) * 60 + t[1]) * 60_000 + t[2] * 1000)
}

fn committed(conn: &mut Conn, group: &str) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let resp: OffsetFetchResponse = conn.call(
        ApiKey::OffsetFetch,
        5,
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(None),
    )?;
    if resp.error_code != 0 {
        anyhow::bail!(
            "fetching offsets of {group}: {}",
            error_code::name(resp.error_code)
        );
    }
    Ok(resp
        .topics
        .into_iter()
        .flat_map(|t| {
            let name = t.name.0.to_string();
            t.partitions
                .into_iter()
                .map(move |p| ((name.clone(), p.partition_index), p.committed_offset))
        })
        .filter(|(_, o)| *o >= 0)
        .collect())
}

fn describe(
    conn: &mut Conn,
    group: &str,
) -> anyhow::Result<describe_groups_response::DescribedGroup> {
    let resp: DescribeGroupsResponse = conn.call(
        ApiKey::DescribeGroups,
        3,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]),
    )?;
    let g = resp
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no description for {group}"))?;
    if g.error_code != 0 {
        anyhow::bail!("describing {group}: {}", error_code::name(g.error_code));
    }
    Ok(g)
}

/// (topic, partition) -> member id, from each member's consumer-protocol assignment.
fn assignments(
    g: &describe_groups_response::DescribedGroup,
) -> BTreeMap<(String, i32), (String, String, String)> {
    let mut out = BTreeMap::new();
    for m in &g.members {
        let mut a = m.member_assignment.clone();
        if a.remaining() < 2 {
            continue;
        }
        let v = a.get_i16();
        if let Ok(asg) = ConsumerProtocolAssignment::decode(&mut a, v.clamp(0, 3)) {
            for tp in asg.assigned_partitions {
                for p in tp.partitions {
                    out.insert(
                        (tp.topic.0.to_string(), p),
                        (
                            m.member_id.to_string(),
                            m.client_host.to_string(),
                            m.client_id.to_string(),
                        ),
                    );
                }
            }
        }
    }
    out
}

pub fn run(args: &GroupsArgs) -> anyhow::Result<()> {
    let mut conn = Conn::connect(&args.bootstrap_server)?;
    let need_group = || {
        args.group
            .clone()
            .ok_or_else(|| anyhow::anyhow!("--group is required"))
    };
    if args.list {
        let resp: ListGroupsResponse =
            conn.call(ApiKey::ListGroups, 3, &ListGroupsRequest::default())?;
        let mut names: Vec<String> = resp
            .groups
            .iter()
            .map(|g| g.group_id.0.to_string())
            .collect();
        names.sort();
        for n in names {
            println!("{n}");
        }
    } else if args.describe {
        let group = need_group()?;
        let g = describe(&mut conn, &group)?;
        let offsets = committed(&mut conn, &group)?;
        let owners = assignments(&g);
        let mut keys: Vec<(String, i32)> = offsets
            .keys()
            .cloned()
            .chain(owners.keys().cloned())
            .collect();
        keys.sort();
        keys.dedup();
        println!(
            "Consumer group '{group}' is {} with {} member(s).",
            g.group_state,
            g.members.len()
        );
        println!(
            "{:<12} {:<24} {:>9} {:>14} {:>14} {:>8}  {:<40} {:<16} CLIENT-ID",
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
        );
        let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (t, p) in &keys {
            by_topic.entry(t.clone()).or_default().push(*p);
        }
        for (topic, parts) in by_topic {
            let ends = admin::list_offsets(&mut conn, &topic, &parts, -1)?;
            for p in parts {
                let cur = offsets.get(&(topic.clone(), p)).copied();
                let end = ends.get(&p).copied().unwrap_or(-1);
                let lag = cur.map_or("-".to_string(), |c| (end - c).max(0).to_string());
                let (id, host, client) = owners.get(&(topic.clone(), p)).cloned().unwrap_or((
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ));
                println!(
                    "{:<12} {:<24} {:>9} {:>14} {:>14} {:>8}  {:<40} {:<16} {}",
                    group,
                    topic,
                    p,
                    cur.map_or("-".to_string(), |c| c.to_string()),
                    end,
                    lag,
                    id,
                    host,
                    client
                );
            }
        }
    } else if args.delete {
        let group = need_group()?;
        let resp: DeleteGroupsResponse = conn.call(
            ApiKey::DeleteGroups,
            1,
            &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(&group))]),
        )?;
        for r in resp.results {
            if r.error_code != 0 {
                anyhow::bail!(
                    "deleting group {group} failed: {} ({})",
                    error_code::name(r.error_code),
                    r.error_code
                );
            }
        }
        println!("Deleted consumer group '{group}'.");
    } else if args.reset_offsets {
        let group = need_group()?;
        let g = describe(&mut conn, &group)?;
        if !g.members.is_empty() {
            anyhow::bail!("consumer group '{group}' has {} active member(s): stop them before resetting offsets (as Kafka requires)", g.members.len());
        }
        let current = committed(&mut conn, &group)?;
        let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (t, p) in current.keys() {
            if args.topic.as_ref().is_none_or(|x| x == t) {
                by_topic.entry(t.clone()).or_default().push(*p);
            }
        }
        if let Some(t) = &args.topic {
            {
                // --topic resets every partition of the topic, committed before or not.
                let md: MetadataResponse = conn.call(
                    ApiKey::Metadata,
                    8,
                    &MetadataRequest::default()
                        .with_allow_auto_topic_creation(false)
                        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                        )
                        .with_name(Some(TopicName(s(t))))])),
                )?;
                let parts: Vec<i32> = md
                    .topics
                    .iter()
                    .flat_map(|x| x.partitions.iter().map(|p| p.partition_index))
                    .collect();
                by_topic.insert(t.clone(), parts);
            }
        }
        let mut plan = Vec::new();
        for (topic, parts) in &by_topic {
            let target: BTreeMap<i32, i64> = if args.to_earliest {
                admin::list_offsets(&mut conn, topic, parts, -2)?
            } else if args.to_latest {
                admin::list_offsets(&mut conn, topic, parts, -1)?
            } else if let Some(o) = args.to_offset {
                parts.iter().map(|p| (*p, o)).collect()
            } else if let Some(dt) = &args.to_datetime {
                let ts = parse_datetime(dt)?;
                let at = admin::list_offsets(&mut conn, topic, parts, ts)?;
                let ends = admin::list_offsets(&mut conn, topic, parts, -1)?;
                at.into_iter()
                    .map(|(p, o)| (p, if o < 0 { ends[&p] } else { o }))
                    .collect()
            } else {
                anyhow::bail!("--reset-offsets needs --to-earliest, --to-latest, --to-offset or --to-datetime");
            };
            for (p, o) in target {
                plan.push((topic.clone(), p, o));
            }
        }
        println!(
            "{:<12} {:<24} {:>9} {:>14}",
            "GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"
        );
        for (t, p, o) in &plan {
            println!("{group:<12} {t:<24} {p:>9} {o:>14}");
        }
        if !args.execute {
            println!("(dry run: add --execute to apply)");
            return Ok(());
        }
        let mut topics: BTreeMap<String, Vec<offset_commit_request::OffsetCommitRequestPartition>> =
            BTreeMap::new();
        for (t, p, o) in plan {
            topics.entry(t).or_default().push(
                offset_commit_request::OffsetCommitRequestPartition::default()
                    .with_partition_index(p)
                    .with_committed_offset(o)
                    .with_committed_leader_epoch(-1),
            );
        }
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        offset_commit_request::OffsetCommitRequestTopic::default()
                            .with_name(TopicName(s(&t)))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let resp: OffsetCommitResponse = conn.call(ApiKey::OffsetCommit, 7, &req)?;
        for t in resp.topics {
            for p in t.partitions {
                if p.error_code != 0 {
                    anyhow::bail!(
                        "resetting {}/{} failed: {}",
                        t.name.0,
                        p.partition_index,
                        error_code::name(p.error_code)
                    );
                }
            }
        }
    } else {
        anyhow::bail!("one of --list, --describe, --delete, --reset-offsets is required");
    }
    Ok(())
}
