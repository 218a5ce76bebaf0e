//! Orchestration of one load-generator run: set-up, warm-up, measured phase, drain, report.

use crate::args::{parse_acks, Args, Keys, RecordSize};
use crate::consumer::{self, ConsumerPlan, Seen};
use crate::producer::{self, AckLog, ProducerPlan};
use crate::report::{Machine, Report, Throughput, Verification};
use crate::stats::{Percentiles, Stats};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, CreateTopicsRequest,
    CreateTopicsResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use ringlet_client::conn::{self as client, Conn};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Partition -> leader address, creating the topic when missing.
fn partitions(conn: &mut Conn, args: &Args) -> anyhow::Result<Vec<(i32, String)>> {
    let topic = TopicName(StrBytes::from_string(args.topic.clone()));
    for attempt in 0..50 {
        let md: MetadataResponse = conn.call(
            ApiKey::Metadata,
            client::METADATA_VERSION,
            // No auto-creation: the broker would create the topic with num.partitions, not
            // --partitions.
            &MetadataRequest::default()
                .with_allow_auto_topic_creation(false)
                .with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(topic.clone()))
                ])),
        )?;
        let brokers: HashMap<i32, String> = md
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
            .collect();
        let t = md
            .topics
            .first()
            .ok_or_else(|| anyhow::anyhow!("metadata has no topic entry"))?;
        if t.error_code == 3 && attempt == 0 {
            let resp: CreateTopicsResponse = conn.call(
                ApiKey::CreateTopics,
                client::CREATE_TOPICS_VERSION,
                &CreateTopicsRequest::default()
                    .with_timeout_ms(30_000)
                    .with_topics(vec![CreatableTopic::default()
                        .with_name(topic.clone())
                        .with_num_partitions(args.partitions)
                        .with_replication_factor(-1)]),
            )?;
            if let Some(r) = resp.topics.first() {
                if r.error_code != 0 && r.error_code != 36 {
                    anyhow::bail!(
                        "creating topic {}: {} ({})",
                        args.topic,
                        client::error_name(r.error_code),
                        r.error_code
                    );
                }
            }
            continue;
        }
        if t.error_code == 0
            && !t.partitions.is_empty()
            && t.partitions
                .iter()
                .all(|p| p.error_code == 0 && brokers.contains_key(&p.leader_id.0))
        {
            let mut out: Vec<(i32, String)> = t
                .partitions
                .iter()
                .map(|p| (p.partition_index, brokers[&p.leader_id.0].clone()))
                .collect();
            out.sort();
            return Ok(out);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("topic {} has no leaders after 5 s", args.topic)
}

fn latest_offsets(topic: &str, parts: &[(i32, String)]) -> anyhow::Result<HashMap<i32, i64>> {
    list_offsets(topic, parts, -1)
}

/// Errors a broker gives while a new topic's leadership settles (Kafka answers
/// NOT_LEADER_OR_FOLLOWER for a moment after CreateTopics, until its metadata catches up).
const SETTLING: [i16; 4] = [3, 5, 6, 13];

/// Each partition's offset for `timestamp` (-1 latest, -2 earliest), asked again for up to 10 s
/// while the partitions' leadership settles.
fn list_offsets(
    topic: &str,
    parts: &[(i32, String)],
    timestamp: i64,
) -> anyhow::Result<HashMap<i32, i64>> {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    list_offsets_until(topic, parts, timestamp, until)
}

fn list_offsets_until(
    topic: &str,
    parts: &[(i32, String)],
    timestamp: i64,
    settle_until: std::time::Instant,
) -> anyhow::Result<HashMap<i32, i64>> {
    let mut by_leader: HashMap<&str, Vec<i32>> = HashMap::new();
    for (p, l) in parts {
        by_leader.entry(l).or_default().push(*p);
    }
    let mut out = HashMap::new();
    for (leader, ps) in by_leader {
        let mut c = Conn::connect(leader)?;
        let resp: ListOffsetsResponse = c.call(
            ApiKey::ListOffsets,
            client::LIST_OFFSETS_VERSION,
            &ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(
                        ps.iter()
                            .map(|&p| {
                                ListOffsetsPartition::default()
                                    .with_partition_index(p)
                                    .with_timestamp(timestamp)
                            })
                            .collect(),
                    )]),
        )?;
        let settling = resp
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .any(|p| SETTLING.contains(&p.error_code));
        if settling && std::time::Instant::now() < settle_until {
            std::thread::sleep(Duration::from_millis(100));
            return list_offsets_until(topic, parts, timestamp, settle_until);
        }
        for t in resp.topics {
            for p in t.partitions {
                if p.error_code != 0 {
                    anyhow::bail!(
                        "ListOffsets partition {}: {}",
                        p.partition_index,
                        client::error_name(p.error_code)
                    );
                }
                out.insert(p.partition_index, p.offset);
            }
        }
    }
    Ok(out)
}

/// Runs the workload described by `args` and returns the report.
pub fn run(args: &Args) -> anyhow::Result<Report> {
    let record_size = RecordSize::parse(&args.record_size).map_err(anyhow::Error::msg)?;
    let keys = Keys::parse(&args.keys).map_err(anyhow::Error::msg)?;
    let acks = parse_acks(&args.acks).map_err(anyhow::Error::msg)?;
    let codec = ringlet_client::Codec::parse(&args.compression).map_err(anyhow::Error::msg)?;
    let consume_only = args.producers == 0;
    if consume_only && args.consumers == 0 {
        anyhow::bail!("--producers 0 needs --consumers (a consume-only run)");
    }
    if args.verify && acks == 0 {
        anyhow::bail!("--verify needs acknowledgements (--acks 1 or all)");
    }
    let mut conn = Conn::connect(&args.bootstrap_server)?;
    let versions: ApiVersionsResponse =
        conn.call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())?;
    let broker_api_versions: BTreeMap<String, (i16, i16)> = versions
        .api_keys
        .iter()
        .filter_map(|k| {
            ApiKey::try_from(k.api_key)
                .ok()
                .map(|a| (format!("{a:?}"), (k.min_version, k.max_version)))
        })
        .collect();
    let parts = partitions(&mut conn, args)?;
    let stats = Arc::new(Stats::new());
    let stop_producers = Arc::new(AtomicBool::new(false));
    let stop_consumers = Arc::new(AtomicBool::new(false));
    let targets = Arc::new(Mutex::new(HashMap::new()));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let acked: AckLog = Arc::new(Mutex::new(Vec::new()));

    // Consumers first, from the current end, so they see every record produced; a consume-only
    // run reads from the start to the end there is now.
    let start_offsets = if consume_only {
        *targets.lock().expect("targets lock") = latest_offsets(&args.topic, &parts)?;
        stop_consumers.store(true, Ordering::Release);
        stats.start_measuring();
        list_offsets(&args.topic, &parts, -2)?
    } else {
        latest_offsets(&args.topic, &parts)?
    };
    let consume_start = Instant::now();
    let mut consumers = Vec::new();
    for c in 0..args.consumers {
        let mine: Vec<(i32, String, i64)> = parts
            .iter()
            .enumerate()
            .filter(|(i, _)| args.group.is_some() || i % args.consumers == c)
            .map(|(_, (p, l))| (*p, l.clone(), start_offsets[p]))
            .collect();
        if mine.is_empty() {
            continue;
        }
        let plan = ConsumerPlan {
            topic: args.topic.clone(),
            group: args
                .group
                .clone()
                .map(|g| (args.bootstrap_server.clone(), g)),
            partitions: mine,
            verify: args.verify,
            count_all: consume_only,
        };
        let (stats, stop, targets, seen) = (
            stats.clone(),
            stop_consumers.clone(),
            targets.clone(),
            seen.clone(),
        );
        // After the producers stop, consumers get 15 s to catch up; a consume-only run reads
        // to the end (or for --duration seconds).
        let drain = if consume_only {
            Duration::from_secs_f64(args.duration.unwrap_or(3600.0))
        } else {
            Duration::from_secs(15)
        };
        consumers.push(std::thread::spawn(move || {
            consumer::run(plan, stats, stop, targets, seen, drain)
        }));
    }
    let per_producer_rate = args.rate.map(|r| r as f64 / args.producers as f64);
    let mut producers = Vec::new();
    for id in 0..args.producers {
        let plan = ProducerPlan {
            id: id as u32,
            topic: args.topic.clone(),
            partitions: parts.clone(),
            connections: args.connections_per_producer.max(1),
            record_size,
            keys,
            batch_size: args.batch_size.max(64),
            linger: Duration::from_millis(args.linger_ms),
            acks,
            codec,
            max_in_flight: args.max_in_flight.max(1),
            rate: per_producer_rate,
            records: None,
        };
        let (stats, stop, acked) = (stats.clone(), stop_producers.clone(), acked.clone());
        producers.push(std::thread::spawn(move || {
            producer::run(plan, stats, stop, acked)
        }));
    }

    if consume_only {
        return consume_only_report(args, &stats, consumers, consume_start, broker_api_versions);
    }
    let measure_start = warm_up_and_measure(args, &stats);
    stop_producers.store(true, Ordering::Release);
    for p in producers {
        match p.join() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => anyhow::bail!("producer failed: {e}"),
            Err(_) => anyhow::bail!("a producer thread panicked"),
        }
    }
    let produce_secs = measure_start.elapsed().as_secs_f64();
    *targets.lock().expect("targets lock") = latest_offsets(&args.topic, &parts)?;
    stop_consumers.store(true, Ordering::Release);
    join_consumers(consumers)?;
    let consume_secs = measure_start.elapsed().as_secs_f64();
    stats.measuring.store(false, Ordering::Release);

    let verification = args.verify.then(|| {
        verify(
            &acked.lock().expect("ack log"),
            &seen.lock().expect("seen lock"),
        )
    });
    Ok(report(
        args,
        &stats,
        broker_api_versions,
        produce_secs,
        consume_secs,
        verification,
    ))
}

/// Waits out the warm-up, starts measuring, and shows progress each second until the run's
/// duration or record count is reached. Returns when measuring began.
fn warm_up_and_measure(args: &Args, stats: &Stats) -> Instant {
    std::thread::sleep(Duration::from_secs_f64(args.warmup.max(0.0)));
    stats.start_measuring();
    let measure_start = Instant::now();
    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else if let Some(d) = args.duration {
        indicatif::ProgressBar::new((d * 10.0) as u64)
    } else if let Some(n) = args.records {
        indicatif::ProgressBar::new(n)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("[{bar:30}] {percent:>3}% eta {eta} {msg}")
            .expect("valid template"),
    );
    let mut last = (0u64, 0u64, Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let elapsed = measure_start.elapsed().as_secs_f64();
        let produced = stats.produced_records.load(Ordering::Relaxed);
        let done = args.duration.is_some_and(|d| elapsed >= d)
            || args.records.is_some_and(|n| produced >= n)
            || (args.duration.is_none() && args.records.is_none() && elapsed >= 10.0);
        if args.duration.is_some() {
            bar.set_position((elapsed * 10.0) as u64);
        } else if args.records.is_some() {
            bar.set_position(produced);
        }
        if last.2.elapsed() >= Duration::from_secs(1) || done {
            let consumed = stats.consumed_records.load(Ordering::Relaxed);
            let dt = last.2.elapsed().as_secs_f64();
            let p99 = stats
                .ack_intended
                .lock()
                .expect("histogram lock")
                .value_at_quantile(0.99) as f64
                / 1000.0;
            let line = format!(
                "{elapsed:6.1}s  produced {:>9.0} rec/s  consumed {:>9.0} rec/s  in-flight {:>3}  ack p99 so far {p99:.3} ms  errors {}",
                (produced - last.0) as f64 / dt,
                (consumed - last.1) as f64 / dt,
                stats.in_flight.load(Ordering::Relaxed),
                stats.errors.lock().expect("errors lock").values().sum::<u64>()
            );
            if !args.quiet {
                if bar.is_hidden() {
                    eprintln!("{line}");
                } else {
                    bar.println(line);
                }
            }
            last = (produced, consumed, Instant::now());
        }
        if done {
            break;
        }
    }
    bar.finish_and_clear();
    measure_start
}

type ConsumerThread = std::thread::JoinHandle<Result<(), client::ClientError>>;

fn join_consumers(consumers: Vec<ConsumerThread>) -> anyhow::Result<()> {
    for c in consumers {
        match c.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => anyhow::bail!("consumer failed: {e}"),
            Err(_) => anyhow::bail!("a consumer thread panicked"),
        }
    }
    Ok(())
}

/// The report of a run from its counters and histograms.
fn report(
    args: &Args,
    stats: &Stats,
    broker_api_versions: BTreeMap<String, (i16, i16)>,
    produce_secs: f64,
    consume_secs: f64,
    verification: Option<Verification>,
) -> Report {
    Report {
        config: args.clone(),
        machine: Machine::here(),
        broker_api_versions,
        measured_seconds: produce_secs,
        produced: Throughput::new(
            stats.produced_records.load(Ordering::Relaxed),
            stats.produced_bytes.load(Ordering::Relaxed),
            produce_secs,
        ),
        consumed: Throughput::new(
            stats.consumed_records.load(Ordering::Relaxed),
            stats.consumed_bytes.load(Ordering::Relaxed),
            consume_secs,
        ),
        produce_latency_from_intended: Percentiles::of(
            &stats.ack_intended.lock().expect("histogram lock"),
        ),
        produce_latency_from_send: Percentiles::of(
            &stats.ack_actual.lock().expect("histogram lock"),
        ),
        end_to_end_latency: Percentiles::of(&stats.end_to_end.lock().expect("histogram lock")),
        errors: stats.errors.lock().expect("errors lock").clone(),
        verification,
    }
}

/// Waits for the consumers of a consume-only run and reports what they read (nothing was
/// produced: the produce figures and histograms are empty).
fn consume_only_report(
    args: &Args,
    stats: &Stats,
    consumers: Vec<ConsumerThread>,
    start: Instant,
    broker_api_versions: BTreeMap<String, (i16, i16)>,
) -> anyhow::Result<Report> {
    join_consumers(consumers)?;
    let secs = start.elapsed().as_secs_f64();
    stats.measuring.store(false, Ordering::Release);
    Ok(report(args, stats, broker_api_versions, secs, secs, None))
}

/// Compares what producers had acknowledged with what consumers saw.
pub fn verify(acked: &[(u32, i32, u32, u32)], seen: &Seen) -> Verification {
    let mut v = Verification::default();
    for &(producer, partition, first, count) in acked {
        let entry = v.per_partition.entry(partition).or_default();
        let counts = seen.counts.get(&(partition, producer));
        for seq in first..first.wrapping_add(count) {
            let c = counts
                .and_then(|c| c.get(seq as usize))
                .copied()
                .unwrap_or(0);
            v.acknowledged += 1;
            entry[0] += 1;
            if c == 0 {
                v.lost += 1;
                entry[1] += 1;
            } else if c > 1 {
                v.duplicated += u64::from(c - 1);
                entry[2] += u64::from(c - 1);
            }
        }
    }
    for (&(partition, _), &n) in &seen.reordered {
        v.reordered += n;
        v.per_partition.entry(partition).or_default()[3] += n;
    }
    v
}
