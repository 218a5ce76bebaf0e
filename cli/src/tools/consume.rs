//! `ringlet consume`: the console consumer (kafka-console-consumer.sh's flags).

use ringlet_client::consumer::{Consumer, ConsumerConfig, StartAt};
use ringlet_client::Record;
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
    let props = super::properties(&args.properties)?;
    let json = args.output == "json";
    let start =
        match (args.offset.as_deref(), args.from_beginning) {
            (Some("earliest"), _) | (None, true) => StartAt::Earliest,
            (Some("latest"), _) | (None, false) => StartAt::Latest,
            (Some(o), _) => StartAt::Offset(o.parse().map_err(|_| {
                anyhow::anyhow!("--offset {o}: expected a number, earliest or latest")
            })?),
        };
    let mut consumer = Consumer::connect(
        &args.bootstrap_server,
        &args.topic,
        ConsumerConfig {
            group: args.group.clone(),
            partition: args.partition,
            start,
            isolation_level: i8::from(args.isolation_level == "read_committed"),
            ..ConsumerConfig::default()
        },
    )?;
    let mut count = 0u64;
    let mut last_record = Instant::now();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    while !stop.load(Ordering::Relaxed) {
        let left = args
            .max_messages
            .map_or(usize::MAX, |n| (n - count) as usize);
        if left == 0 {
            break;
        }
        for (partition, r) in consumer.poll(left.min(10_000))? {
            writeln!(out, "{}", format(&r, partition, &props, json))?;
            count += 1;
            last_record = Instant::now();
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
    consumer.close()?;
    Ok(count)
}
