//! `ringlet groups`: list, describe (members, assignment, committed offsets, lag), reset offsets
//! and delete consumer groups (kafka-consumer-groups.sh's flags).

use bytes::Buf;
use kafka_protocol::messages::{describe_groups_response, ConsumerProtocolAssignment};
use kafka_protocol::protocol::Decodable;
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
    admin::group_offsets(conn, group)
        .map_err(|e| anyhow::anyhow!("fetching offsets of {group}: {e}"))
}

fn describe(
    conn: &mut Conn,
    group: &str,
) -> anyhow::Result<describe_groups_response::DescribedGroup> {
    admin::describe_group(conn, group).map_err(|e| anyhow::anyhow!("describing {group}: {e}"))
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
        let mut names: Vec<String> = admin::list_groups(&mut conn)?
            .into_iter()
            .map(|(id, _, _)| id)
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
        admin::delete_group(&mut conn, &group)
            .map_err(|e| anyhow::anyhow!("deleting group {group} failed: {e}"))?;
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
                let md = admin::metadata(&mut conn, Some(std::slice::from_ref(t)))?;
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
        let offsets: BTreeMap<(String, i32), i64> =
            plan.into_iter().map(|(t, p, o)| ((t, p), o)).collect();
        admin::commit_group_offsets(&mut conn, &group, &offsets)
            .map_err(|e| anyhow::anyhow!("resetting offsets of {group} failed: {e}"))?;
    } else {
        anyhow::bail!("one of --list, --describe, --delete, --reset-offsets is required");
    }
    Ok(())
}
