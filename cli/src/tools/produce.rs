//! `ringlet produce`: the console producer (kafka-console-producer.sh's flags). One record per
//! input line; failures are reported per record and make the exit code non-zero.

use ringlet_client::producer::{self, Failure, Producer, ProducerConfig};
use ringlet_client::{Codec, Record};
use std::collections::HashMap;
use std::io::BufRead;
use std::time::Duration;

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

pub fn run(args: &ProduceArgs) -> anyhow::Result<(u64, u64)> {
    let props = super::properties(&args.properties)?;
    let config = ProducerConfig {
        acks: producer::parse_acks(&args.acks)?,
        codec: Codec::parse(&args.compression_codec).map_err(anyhow::Error::msg)?,
        batch_size: args.batch_size,
        linger: Duration::from_millis(args.linger_ms),
        ..ProducerConfig::default()
    };
    let linger = config.linger;
    let mut producer: Producer<usize> =
        Producer::connect(&args.bootstrap_server, &args.topic, config)?;
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
    let (mut read, mut failed, mut n) = (0u64, 0u64, 0usize);
    let report = |fails: Vec<Failure<usize>>| {
        for f in &fails {
            eprintln!("record on line {} failed: {}", f.tag, f.error);
        }
        fails.len() as u64
    };
    loop {
        match rx.recv_timeout(linger) {
            Ok(line) => {
                let line = line?;
                n += 1;
                read += 1;
                match parse_line(&line, &props) {
                    Ok(rec) => failed += report(producer.send(rec, None, n)?),
                    Err(e) => {
                        eprintln!("record on line {n} not sent: {e}");
                        failed += 1;
                    }
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        failed += report(producer.poll()?);
    }
    failed += report(producer.flush()?);
    Ok((read - failed.min(read), failed))
}
