//! `ringlet produce`: the console producer (kafka-console-producer.sh's flags). One record per
//! input line; failures are reported per record and make the exit code non-zero.

use super::records::{self, Record};
use crate::error_code;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use ringlet_loadgen::client::Conn;
use ringlet_loadgen::codec::Codec;
use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct ProduceArgs {
    #[arg(long, default_value = "localhost:9092")]
    pub bootstrap_server: String,
    #[arg(long)]
    pub topic: String,
    /// parse.key=true, key.separator=:, parse.headers=true, headers.delimiter=\t,
    /// headers.separator=",", headers.key.separator=":".
    #[arg(long = "property")]
    pub properties: Vec<String>,
    /// 0, 1 or all (-1).
    #[arg(long, default_value = "all")]
    pub acks: String,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    pub compression_codec: String,
    #[arg(long, default_value_t = 16384)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// Read records from this file instead of stdin.
    #[arg(long)]
    pub file: Option<std::path::PathBuf>,
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn parse_line(line: &str, props: &HashMap<String, String>) -> anyhow::Result<Record> {
    let on = |k: &str| props.get(k).is_some_and(|v| v == "true");
    let mut rest = line;
    let mut headers = Vec::new();
    if on("parse.headers") {
        let delim = props.get("headers.delimiter").map_or("\t", String::as_str);
        let (h, r) = rest
            .split_once(delim)
            .ok_or_else(|| anyhow::anyhow!("no headers delimiter in {line:?}"))?;
        rest = r;
        let sep = props.get("headers.separator").map_or(",", String::as_str);
        let ksep = props
            .get("headers.key.separator")
            .map_or(":", String::as_str);
        for kv in h.split(sep).filter(|x| !x.is_empty()) {
            let (k, v) = kv.split_once(ksep).unwrap_or((kv, ""));
            headers.push((k.to_string(), Some(v.as_bytes().to_vec())));
        }
    }
    let (key, value) = if on("parse.key") {
        let sep = props.get("key.separator").map_or("\t", String::as_str);
        let (k, v) = rest
            .split_once(sep)
            .ok_or_else(|| anyhow::anyhow!("no key separator {sep:?} in {line:?}"))?;
        (Some(k.as_bytes().to_vec()), v)
    } else {
        (None, rest)
    };
    Ok(Record {
        key,
        value: Some(value.as_bytes().to_vec()),
        headers,
        ..Record::default()
    })
}

/// Sends one partition's batch; returns (line numbers, error) of records that failed.
fn send(
    conn: &mut Conn,
    topic: &str,
    partition: i32,
    batch: &mut Vec<(usize, Record)>,
    acks: i16,
    codec: Codec,
) -> anyhow::Result<Vec<(usize, String)>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let recs: Vec<Record> = batch.iter().map(|(_, r)| r.clone()).collect();
    let bytes = records::build(&recs, ringlet_engine::config::now_ms(), codec)?;
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(bytes.into()))])]);
    let lines: Vec<usize> = batch.drain(..).map(|(n, _)| n).collect();
    if acks == 0 {
        conn.send(ApiKey::Produce, 7, &req)?;
        return Ok(Vec::new());
    }
    let resp: ProduceResponse = conn.call(ApiKey::Produce, 7, &req)?;
    let p = resp
        .responses
        .first()
        .and_then(|t| t.partition_responses.first());
    let code = p.map_or(error_code::UNKNOWN_SERVER_ERROR, |p| p.error_code);
    if code == 0 {
        return Ok(Vec::new());
    }
    let msg = format!(
        "{} ({code}){}",
        error_code::name(code),
        p.and_then(|p| p.error_message.as_ref())
            .map(|m| format!(": {m}"))
            .unwrap_or_default()
    );
    Ok(lines.into_iter().map(|n| (n, msg.clone())).collect())
}

/// A partition's records waiting to be sent: (line number, record), bytes, first arrival.
type Pending = (Vec<(usize, Record)>, usize, Instant);

/// Returns (records sent, records failed).
pub fn run(args: &ProduceArgs) -> anyhow::Result<(u64, u64)> {
    let props: HashMap<String, String> = args
        .properties
        .iter()
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let acks = match args.acks.as_str() {
        "0" => 0,
        "1" => 1,
        "all" | "-1" => -1,
        a => anyhow::bail!("--acks {a}: expected 0, 1 or all"),
    };
    let codec = Codec::parse(&args.compression_codec).map_err(anyhow::Error::msg)?;
    let mut conn = Conn::connect(&args.bootstrap_server)?;
    let md: MetadataResponse = conn.call(
        ApiKey::Metadata,
        8,
        &MetadataRequest::default()
            .with_allow_auto_topic_creation(true)
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(TopicName(s(&args.topic))))
            ])),
    )?;
    let partitions = md.topics.first().map_or(0, |t| t.partitions.len() as i32);
    if partitions == 0 {
        anyhow::bail!(
            "topic {} does not exist (and was not auto-created)",
            args.topic
        );
    }
    // Lines arrive on a thread so that linger.ms can flush partial batches of interactive input.
    let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<String>>(1024);
    let file = args.file.clone();
    std::thread::spawn(move || {
        let input: Box<dyn BufRead> = match file {
            Some(f) => match std::fs::File::open(&f) {
                Ok(f) => Box::new(std::io::BufReader::new(f)),
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            },
            None => Box::new(std::io::BufReader::new(std::io::stdin())),
        };
        for line in input.lines() {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut batches: BTreeMap<i32, Pending> = BTreeMap::new();
    let (mut sent, mut failed, mut n, mut sticky) = (0u64, 0u64, 0usize, 0i32);
    let linger = Duration::from_millis(args.linger_ms);
    let report = |fails: Vec<(usize, String)>| {
        for (line, e) in &fails {
            eprintln!("record on line {line} failed: {e}");
        }
        fails.len() as u64
    };
    loop {
        let next = rx.recv_timeout(linger);
        let done = matches!(next, Err(std::sync::mpsc::RecvTimeoutError::Disconnected));
        if let Ok(line) = next {
            let line = line?;
            n += 1;
            let rec = match parse_line(&line, &props) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("record on line {n} not sent: {e}");
                    failed += 1;
                    continue;
                }
            };
            let size =
                rec.key.as_ref().map_or(0, Vec::len) + rec.value.as_ref().map_or(0, Vec::len) + 32;
            let p = match &rec.key {
                Some(k) => records::partition_for_key(k, partitions),
                None => sticky,
            };
            let e = batches
                .entry(p)
                .or_insert_with(|| (Vec::new(), 0, Instant::now()));
            if e.0.is_empty() {
                e.2 = Instant::now();
            }
            e.0.push((n, rec));
            e.1 += size;
            sent += 1;
            if e.1 >= args.batch_size {
                failed += report(send(&mut conn, &args.topic, p, &mut e.0, acks, codec)?);
                e.1 = 0;
                sticky = (sticky + 1) % partitions;
            }
        }
        for (&p, e) in batches.iter_mut() {
            if !e.0.is_empty() && (done || e.2.elapsed() >= linger) {
                failed += report(send(&mut conn, &args.topic, p, &mut e.0, acks, codec)?);
                e.1 = 0;
            }
        }
        if done {
            break;
        }
    }
    Ok((sent - failed.min(sent), failed))
}
