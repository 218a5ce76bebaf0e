//! `ringlet tune`: sweeps of broker and client settings measured with `ringlet loadgen`, a
//! scalability model fitted to throughput against `num.io.threads`, and capacity plans.
//!
//! * [`sweep`] runs the grid (a fresh embedded broker per point, or an existing broker for client
//!   settings), with warm-up, repetitions, latency-budget stepping and a latency-throughput curve;
//! * [`report`] writes results.json/csv, report.md and report.html (charts from [`charts`]);
//! * [`model`] fits the Universal Scalability Law; [`plan`] turns a workload into hardware.

pub mod args;
pub mod charts;
pub mod model;
pub mod plan;
pub mod report;
pub mod sweep;

pub use args::TuneArgs;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

struct Bar(ProgressBar);

impl sweep::Progress for Bar {
    fn start(&self, total: u64) {
        self.0.set_length(total);
    }
    fn grow(&self, more: u64) {
        self.0.inc_length(more);
    }
    fn run_done(&self, what: &str) {
        self.0.set_message(what.to_string());
        self.0.inc(1);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// Runs `ringlet tune` (a sweep, or `plan`); `broker_keys` are the keys `ringlet serve` accepts.
pub fn main(args: &TuneArgs, broker_keys: &[&str]) -> anyhow::Result<i32> {
    match &args.command {
        Some(args::TuneCommand::Plan(p)) => return run_plan(p),
        Some(args::TuneCommand::Report { from, output_dir }) => {
            let r = read_results(from)?;
            let dir = match output_dir {
                Some(d) => d.clone(),
                None => from
                    .parent()
                    .map_or_else(|| ".".into(), |p| p.to_path_buf()),
            };
            r.write(&dir)?;
            eprintln!("report.md and report.html written to {}", dir.display());
            return Ok(0);
        }
        None => {}
    }
    let plan = sweep::Plan::new(&args.sweep, broker_keys)?;
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let bar = if plan.quiet {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} runs, ETA {eta} {wide_msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b
    };
    eprintln!(
        "ringlet tune: {} points × ({} s warm-up + {} × {} s), reports in {}",
        plan.points().len(),
        plan.warmup,
        plan.repetitions,
        plan.duration,
        plan.output_dir.display()
    );
    let outcome = sweep::run(&plan, &Bar(bar))?;
    let results = report::Results::new(&plan, outcome, started);
    results.write(&plan.output_dir)?;
    print!("{}", results.markdown());
    Ok(0)
}

fn read_results(path: &std::path::Path) -> anyhow::Result<report::Results> {
    serde_json::from_slice(
        &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("{} is not a ringlet tune results.json", path.display()))
}

fn run_plan(p: &args::PlanArgs) -> anyhow::Result<i32> {
    let machine_cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let cores_per_broker = p.cores_per_broker.unwrap_or(machine_cores);
    let (per_core, source) = match (p.mb_s_per_core, &p.from) {
        (Some(v), _) => (v, "given with --mb-s-per-core".to_string()),
        (None, Some(path)) => per_core_from(&read_results(path)?, cores_per_broker)?,
        (None, None) => anyhow::bail!(
            "give --from results.json (from a `ringlet tune` sweep) or --mb-s-per-core"
        ),
    };
    let input = plan::PlanInput {
        ingress_mb_s: p.ingress_mb_s,
        egress_mb_s: p.egress_mb_s,
        retention_hours: p.retention_hours,
        replication_factor: p.replication_factor,
        headroom: p.headroom,
        mb_s_per_core: per_core,
        per_core_source: source,
        cores_per_broker,
        disk_gb_per_broker: p.disk_gb_per_broker,
        disk_mb_s_per_broker: p.disk_mb_s_per_broker,
        nic_gbit_per_broker: p.nic_gbit_per_broker,
    };
    let planned = plan::plan(&input)?;
    let md = planned.markdown();
    print!("{md}");
    if let Some(dir) = &p.output_dir {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("plan.md"), &md)?;
        std::fs::write(dir.join("plan.json"), serde_json::to_vec_pretty(&planned)?)?;
    }
    Ok(0)
}

/// Per-core produce throughput from a sweep: the scalability model at the broker's core count
/// when a full USL fit exists (three or more thread counts), else the best measured throughput
/// per shard, with scaling beyond the measured shards assumed linear (and said so). A two-level
/// fit is not extrapolated: it cannot tell contention from coherency, and on a machine where the
/// generator shares the cores it would turn competition for CPU into a prediction.
pub fn per_core_from(r: &report::Results, cores: u32) -> anyhow::Result<(f64, String)> {
    if let Some(f) = r.scalability.as_ref().filter(|f| f.kind == "usl") {
        let n = f64::from(cores);
        let measured_max = r.scalability_data.iter().map(|d| d.0).fold(0.0, f64::max);
        let x = f.predict(n);
        let note = if n > measured_max {
            format!(
                "{} fit at {cores} shards ({x:.1} MB/s), extrapolated beyond the {measured_max} measured",
                f.kind
            )
        } else {
            format!("{} fit at {cores} shards ({x:.1} MB/s)", f.kind)
        };
        return Ok((x / n, note));
    }
    let threads_of = |p: &sweep::PointResult| {
        p.settings
            .iter()
            .chain(r.broker_config.iter())
            .find(|(k, _)| k == "num.io.threads")
            .and_then(|(_, v)| v.parse::<f64>().ok())
            .unwrap_or(r.machine.cores as f64)
    };
    let best = r
        .points
        .iter()
        .filter(|p| p.score() > 0.0)
        .map(|p| (p.score() / threads_of(p), p))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .ok_or_else(|| anyhow::anyhow!("the results hold no measured point"))?;
    let (per_core, p) = best;
    Ok((
        per_core,
        format!(
            "best measured per shard: point {} ({:.1} MB/s on {} shards); scaling beyond the measured shards assumed linear (sweep three or more num.io.threads values on the target hardware to model it)",
            p.index,
            p.score(),
            threads_of(p)
        ),
    ))
}
