//! Command line of `ringlet tune` and `ringlet tune plan`.

use serde::Serialize;
use std::path::PathBuf;

#[derive(clap::Args, Clone, Debug, Serialize)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TuneArgs {
    #[command(subcommand)]
    pub command: Option<TuneCommand>,
    #[command(flatten)]
    pub sweep: SweepArgs,
}

#[derive(clap::Subcommand, Clone, Debug, Serialize)]
pub enum TuneCommand {
    /// Size a cluster: cores, brokers, disk and network for a workload.
    Plan(PlanArgs),
    /// Render report.md and report.html again from a sweep's results.json.
    Report {
        /// The sweep's results.json.
        #[arg(long)]
        from: PathBuf,
        /// Where the files go (default: beside results.json).
        #[arg(long)]
        output_dir: Option<PathBuf>,
    },
}

#[derive(clap::Args, Clone, Debug, Serialize)]
pub struct SweepArgs {
    /// A setting and its values, `key=v1,v2,...`; repeat for a grid. Broker keys (e.g.
    /// num.io.threads, log.flush.interval.messages, log.segment.bytes) start a fresh broker per
    /// point; client keys are batch.size, linger.ms, acks, record.size, partitions, producers,
    /// compression.type, max.in.flight.requests.per.connection, keys.
    #[arg(long = "sweep")]
    pub sweeps: Vec<String>,
    /// A TOML file with `[sweep]` (key = [values]) and optional settings (duration, warmup,
    /// repetitions, p99_budget_ms, `[loadgen]` base client settings); flags given too win.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Seconds per measured repetition.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Seconds of warm-up run before a point's repetitions (discarded).
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Measured repetitions per point (at least 3).
    #[arg(long)]
    pub repetitions: Option<usize>,
    /// Report, for every point, the highest throughput whose p99 produce latency stays within
    /// this budget (found by stepping the offered rate down from the maximum).
    #[arg(long)]
    pub p99_budget_ms: Option<f64>,
    /// Target an existing broker (client settings only) instead of starting one per point.
    #[arg(long)]
    pub bootstrap_server: Option<String>,
    /// Where results.{csv,json}, report.md and report.html go.
    #[arg(long, default_value = "tune-report")]
    pub output_dir: PathBuf,
    /// Base load: record size in bytes.
    #[arg(long)]
    pub record_size: Option<String>,
    /// Base load: partitions of the test topic.
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Base load: producer threads.
    #[arg(long)]
    pub producers: Option<usize>,
    /// Base load: acks (0, 1, all).
    #[arg(long)]
    pub acks: Option<String>,
    /// Broker settings applied to every point (key=value), e.g. log.dirs on a given disk.
    #[arg(long = "broker-config")]
    pub broker_config: Vec<String>,
    /// Skip the latency-throughput curve of the recommended point.
    #[arg(long)]
    pub no_curve: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(clap::Args, Clone, Debug, Serialize)]
pub struct PlanArgs {
    #[arg(long)]
    pub ingress_mb_s: f64,
    #[arg(long, default_value_t = 0.0)]
    pub egress_mb_s: f64,
    #[arg(long)]
    pub retention_hours: f64,
    #[arg(long, default_value_t = 1)]
    pub replication_factor: u32,
    /// A sweep's results.json: per-core throughput comes from its scalability fit or best point.
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// Per-core produce throughput in MB/s, when there is no --from (or to override it).
    #[arg(long)]
    pub mb_s_per_core: Option<f64>,
    /// Spare capacity kept on every resource.
    #[arg(long, default_value_t = 0.3)]
    pub headroom: f64,
    /// Cores per broker (default: this machine's).
    #[arg(long)]
    pub cores_per_broker: Option<u32>,
    #[arg(long, default_value_t = 4000.0)]
    pub disk_gb_per_broker: f64,
    /// Sustained disk write bandwidth per broker (measure it with dd or fio).
    #[arg(long, default_value_t = 500.0)]
    pub disk_mb_s_per_broker: f64,
    #[arg(long, default_value_t = 10.0)]
    pub nic_gbit_per_broker: f64,
    /// Also write plan.md and plan.json here.
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
}
