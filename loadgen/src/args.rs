//! Command-line settings of `ringlet loadgen`, with Kafka's client setting names where they exist.

use serde::Serialize;

#[derive(clap::Args, Clone, Debug, Serialize)]
pub struct Args {
    /// Broker to bootstrap from (host:port).
    #[arg(long, default_value = "localhost:9092")]
    pub bootstrap_server: String,
    /// Topic to write and read; created with --partitions if missing.
    #[arg(long, default_value = "ringlet-loadgen")]
    pub topic: String,
    #[arg(long, default_value_t = 2)]
    pub partitions: i32,
    /// Producer threads, each with its own connection(s). 0 with --consumers: a consume-only
    /// run that reads what the topic holds, from its log start offsets to the end offsets taken
    /// at start-up, as fast as it can (the fetch path from segment files), or for --duration.
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Connections per producer (partitions are spread over them).
    #[arg(long, default_value_t = 1)]
    pub connections_per_producer: usize,
    /// Consumer threads, each with its own connection: assigned partitions round-robin, or
    /// members of --group.
    #[arg(long, default_value_t = 0)]
    pub consumers: usize,
    /// Consumers join this consumer group (classic protocol) instead of being assigned partitions.
    #[arg(long)]
    pub group: Option<String>,
    /// Record value size in bytes: `1024`, or `uniform:100..2000`.
    #[arg(long, default_value = "1024")]
    pub record_size: String,
    /// Keys: `none`, `random`, or a number of distinct keys.
    #[arg(long, default_value = "none")]
    pub keys: String,
    /// Largest batch per partition, in bytes (`batch.size`).
    #[arg(long, default_value_t = 65536)]
    pub batch_size: usize,
    /// How long a partial batch may wait for more records (`linger.ms`).
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// 0, 1 or all (`acks`).
    #[arg(long, default_value = "1")]
    pub acks: String,
    /// none, gzip, snappy, lz4 or zstd (`compression.type`).
    #[arg(long, default_value = "none")]
    pub compression: String,
    /// Produce requests outstanding per connection (`max.in.flight.requests.per.connection`).
    #[arg(long, default_value_t = 5)]
    pub max_in_flight: usize,
    /// Target records/s across all producers (open loop); absent: as fast as possible.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Seconds to measure (after the warm-up).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Records to produce in the measured phase (instead of --duration).
    #[arg(long)]
    pub records: Option<u64>,
    /// Seconds of warm-up excluded from results.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Embed producer id and sequence; consumers report lost, duplicated and reordered records.
    #[arg(long)]
    pub verify: bool,
    /// Final report format on stdout besides the table: `table`, `json` or `csv`.
    #[arg(long, default_value = "table")]
    pub output: String,
    /// Write the JSON report to this file too.
    #[arg(long)]
    pub output_file: Option<std::path::PathBuf>,
    /// No progress lines or bar (for scripts).
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub enum RecordSize {
    Fixed(usize),
    Uniform(usize, usize),
}

impl RecordSize {
    pub fn parse(s: &str) -> Result<RecordSize, String> {
        if let Some(r) = s.strip_prefix("uniform:") {
            let (a, b) = r
                .split_once("..")
                .ok_or_else(|| format!("--record-size {s}: expected uniform:MIN..MAX"))?;
            let (a, b) = (
                a.parse().map_err(|_| format!("bad min in {s}"))?,
                b.parse().map_err(|_| format!("bad max in {s}"))?,
            );
            if a > b {
                return Err(format!("--record-size {s}: min above max"));
            }
            return Ok(RecordSize::Uniform(a, b));
        }
        s.parse()
            .map(RecordSize::Fixed)
            .map_err(|_| format!("--record-size {s}: expected a number or uniform:MIN..MAX"))
    }

    pub fn max(&self) -> usize {
        match *self {
            RecordSize::Fixed(n) => n,
            RecordSize::Uniform(_, b) => b,
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize)]
pub enum Keys {
    None,
    Random,
    Distinct(u64),
}

impl Keys {
    pub fn parse(s: &str) -> Result<Keys, String> {
        match s {
            "none" => Ok(Keys::None),
            "random" => Ok(Keys::Random),
            n => n
                .parse()
                .map(Keys::Distinct)
                .map_err(|_| format!("--keys {s}: expected none, random or a number")),
        }
    }
}

pub fn parse_acks(s: &str) -> Result<i16, String> {
    ringlet_client::producer::parse_acks(s).map_err(|e| format!("--{e}"))
}

#[derive(clap::Parser)]
struct Defaults {
    #[command(flatten)]
    args: Args,
}

impl Args {
    /// The settings `ringlet loadgen` runs with when given no flags.
    pub fn defaults() -> Args {
        <Defaults as clap::Parser>::parse_from(["loadgen"]).args
    }
}
