//! Running a sweep: the grid of points, a fresh embedded broker per point where broker settings
//! vary, a warm-up and repeated `ringlet loadgen` measurements per point, latency-budget stepping,
//! and the latency-throughput curve of the recommended point.

use crate::args::SweepArgs;
use anyhow::Context;
use ringlet_loadgen::report::Report;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Client settings a sweep may vary (Kafka's producer names, plus the load's shape).
pub const CLIENT_KEYS: &[&str] = &[
    "batch.size",
    "linger.ms",
    "acks",
    "record.size",
    "partitions",
    "producers",
    "compression.type",
    "max.in.flight.requests.per.connection",
    "keys",
];

/// One swept setting.
#[derive(Clone, Debug, Serialize)]
pub struct Sweep {
    pub key: String,
    pub values: Vec<String>,
    pub broker: bool,
}

/// Everything a sweep needs, from the command line and the TOML file.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub sweeps: Vec<Sweep>,
    pub duration: f64,
    pub warmup: f64,
    pub repetitions: usize,
    pub p99_budget_ms: Option<f64>,
    pub bootstrap_server: Option<String>,
    pub broker_config: Vec<(String, String)>,
    pub base: ringlet_loadgen::Args,
    pub output_dir: PathBuf,
    pub curve: bool,
    pub quiet: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    #[serde(default)]
    sweep: BTreeMap<String, Vec<toml::Value>>,
    duration: Option<f64>,
    warmup: Option<f64>,
    repetitions: Option<usize>,
    p99_budget_ms: Option<f64>,
    bootstrap_server: Option<String>,
    #[serde(default)]
    broker: BTreeMap<String, toml::Value>,
    #[serde(default)]
    loadgen: BTreeMap<String, toml::Value>,
}

fn value_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Applies a client setting to the load generator's arguments.
pub fn apply_client(a: &mut ringlet_loadgen::Args, key: &str, v: &str) -> anyhow::Result<()> {
    let num = |what: &str| -> anyhow::Result<u64> {
        v.parse()
            .with_context(|| format!("{what}={v}: expected a whole number"))
    };
    match key {
        "batch.size" => a.batch_size = num(key)? as usize,
        "linger.ms" => a.linger_ms = num(key)?,
        "acks" => a.acks = v.to_string(),
        "record.size" | "record-size" => a.record_size = v.to_string(),
        "partitions" => a.partitions = num(key)? as i32,
        "producers" => a.producers = num(key)? as usize,
        "compression.type" | "compression" => a.compression = v.to_string(),
        "max.in.flight.requests.per.connection" => a.max_in_flight = num(key)? as usize,
        "keys" => a.keys = v.to_string(),
        _ => anyhow::bail!("{key} is not a client setting"),
    }
    Ok(())
}

impl Plan {
    /// Builds the plan from flags and the optional TOML file; `broker_keys` are the keys
    /// `ringlet serve` knows.
    pub fn new(args: &SweepArgs, broker_keys: &[&str]) -> anyhow::Result<Plan> {
        let file: TomlFile = match &args.config {
            Some(p) => toml::from_str(
                &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            )
            .with_context(|| format!("parsing {}", p.display()))?,
            None => TomlFile::default(),
        };
        let mut raw: Vec<(String, Vec<String>)> = file
            .sweep
            .iter()
            .map(|(k, vs)| (k.clone(), vs.iter().map(value_text).collect()))
            .collect();
        for s in &args.sweeps {
            let (k, vs) = s
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--sweep {s}: expected key=v1,v2,..."))?;
            let values: Vec<String> = vs
                .split(',')
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect();
            raw.retain(|(key, _)| key != k.trim());
            raw.push((k.trim().to_string(), values));
        }
        let bootstrap_server = args.bootstrap_server.clone().or(file.bootstrap_server);
        let mut base = ringlet_loadgen::Args::defaults();
        for (k, v) in &file.loadgen {
            apply_client(&mut base, k, &value_text(v))?;
        }
        if let Some(v) = &args.record_size {
            base.record_size = v.clone();
        }
        if let Some(v) = args.partitions {
            base.partitions = v;
        }
        if let Some(v) = args.producers {
            base.producers = v;
        }
        if let Some(v) = &args.acks {
            base.acks = v.clone();
        }
        let mut sweeps = Vec::new();
        for (key, values) in raw {
            if values.is_empty() {
                anyhow::bail!("sweep of {key} has no values");
            }
            let broker = !CLIENT_KEYS.contains(&key.as_str());
            if broker && !broker_keys.contains(&key.as_str()) {
                anyhow::bail!(
                    "{key} is neither a client setting ({}) nor a broker key (docs/configuration.md)",
                    CLIENT_KEYS.join(", ")
                );
            }
            if broker && bootstrap_server.is_some() {
                anyhow::bail!("{key} is a broker setting: it cannot be swept on an existing broker (--bootstrap-server); drop that flag to start a broker per point");
            }
            if !broker {
                for v in &values {
                    apply_client(&mut base.clone(), &key, v)?;
                }
            }
            sweeps.push(Sweep {
                key,
                values,
                broker,
            });
        }
        if sweeps.is_empty() {
            anyhow::bail!(
                "nothing to sweep: give --sweep key=v1,v2 or a [sweep] table in --config"
            );
        }
        let mut broker_config: Vec<(String, String)> = file
            .broker
            .iter()
            .map(|(k, v)| (k.clone(), value_text(v)))
            .collect();
        for kv in &args.broker_config {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--broker-config {kv}: expected key=value"))?;
            broker_config.push((k.trim().to_string(), v.trim().to_string()));
        }
        for (k, _) in &broker_config {
            if !broker_keys.contains(&k.as_str()) {
                anyhow::bail!("--broker-config {k}: not a broker key");
            }
        }
        let repetitions = args.repetitions.or(file.repetitions).unwrap_or(3);
        if repetitions < 3 {
            anyhow::bail!("--repetitions must be at least 3 (a median and a spread need them)");
        }
        let duration = args.duration.or(file.duration).unwrap_or(10.0);
        if duration.is_nan() || duration <= 0.0 {
            anyhow::bail!("--duration must be positive");
        }
        Ok(Plan {
            sweeps,
            duration,
            warmup: args.warmup.or(file.warmup).unwrap_or(duration.min(2.0)),
            repetitions,
            p99_budget_ms: args.p99_budget_ms.or(file.p99_budget_ms),
            bootstrap_server,
            broker_config,
            base,
            output_dir: args.output_dir.clone(),
            curve: !args.no_curve,
            quiet: args.quiet,
        })
    }

    /// Every combination of swept values, first sweep outermost.
    pub fn points(&self) -> Vec<Vec<(String, String)>> {
        let mut out: Vec<Vec<(String, String)>> = vec![Vec::new()];
        for s in &self.sweeps {
            out = out
                .into_iter()
                .flat_map(|p| {
                    s.values.iter().map(move |v| {
                        let mut q = p.clone();
                        q.push((s.key.clone(), v.clone()));
                        q
                    })
                })
                .collect();
        }
        out
    }

    fn is_broker_key(&self, k: &str) -> bool {
        self.sweeps.iter().any(|s| s.key == k && s.broker)
    }
}

/// One measured run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Rep {
    /// `max` (as fast as it goes), `budget` (at a stepped-down rate), or `curve`.
    pub kind: String,
    pub target_records_s: Option<u64>,
    pub mb_s: f64,
    pub records_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub errors: u64,
}

impl Rep {
    fn of(kind: &str, target: Option<u64>, r: &Report) -> Rep {
        let l = &r.produce_latency_from_intended;
        Rep {
            kind: kind.into(),
            target_records_s: target,
            mb_s: r.produced.mb_per_s,
            records_s: r.produced.records_per_s,
            p50_ms: l.p50_ms,
            p99_ms: l.p99_ms,
            p999_ms: l.p999_ms,
            errors: r.errors.values().sum(),
        }
    }
}

/// Median and spread of repetitions.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    pub median_mb_s: f64,
    pub min_mb_s: f64,
    pub max_mb_s: f64,
    /// (max − min) / median, in percent.
    pub spread_pct: f64,
    pub median_records_s: f64,
    pub median_p50_ms: f64,
    pub median_p99_ms: f64,
    pub median_p999_ms: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

impl Summary {
    pub fn of<'a>(reps: impl Iterator<Item = &'a Rep> + Clone) -> Summary {
        let m = |f: fn(&Rep) -> f64| median(reps.clone().map(f).collect());
        let mb: Vec<f64> = reps.clone().map(|r| r.mb_s).collect();
        let med = m(|r| r.mb_s);
        let (lo, hi) = mb
            .iter()
            .fold((f64::INFINITY, 0f64), |(a, b), &x| (a.min(x), b.max(x)));
        Summary {
            median_mb_s: med,
            min_mb_s: if lo.is_finite() { lo } else { 0.0 },
            max_mb_s: hi,
            spread_pct: if med > 0.0 {
                (hi - lo) / med * 100.0
            } else {
                0.0
            },
            median_records_s: m(|r| r.records_s),
            median_p50_ms: m(|r| r.p50_ms),
            median_p99_ms: m(|r| r.p99_ms),
            median_p999_ms: m(|r| r.p999_ms),
        }
    }
}

/// The highest rate found within the latency budget.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BudgetResult {
    pub budget_p99_ms: f64,
    /// Offered rate (records/s) of the repetitions, or None when no step met the budget.
    pub rate_records_s: Option<u64>,
    pub summary: Option<Summary>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PointResult {
    pub index: usize,
    pub settings: Vec<(String, String)>,
    pub reps: Vec<Rep>,
    /// Of the `max` repetitions.
    pub summary: Summary,
    pub budget: Option<BudgetResult>,
}

impl PointResult {
    /// The figure points are ranked by: within-budget throughput when a budget is set.
    pub fn score(&self) -> f64 {
        match &self.budget {
            Some(b) => b.summary.as_ref().map_or(0.0, |s| s.median_mb_s),
            None => self.summary.median_mb_s,
        }
    }

    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A `ringlet serve` started for one point, on its own port and data directory.
struct EmbeddedBroker {
    child: Child,
    dir: PathBuf,
    addr: String,
}

impl EmbeddedBroker {
    fn start(overrides: &[(String, String)], log: &Path) -> anyhow::Result<EmbeddedBroker> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir = std::env::temp_dir().join(format!("ringlet-tune-{}-{port}", std::process::id()));
        let exe = std::env::current_exe().context("locating the ringlet binary")?;
        let mut cmd = Command::new(exe);
        cmd.arg("serve")
            .arg("--override")
            .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
            .arg("--override")
            .arg(format!("log.dirs={}", dir.display()));
        for (k, v) in overrides {
            cmd.arg("--override").arg(format!("{k}={v}"));
        }
        let logf = std::fs::File::create(log)?;
        let child = cmd
            .stdout(Stdio::from(logf.try_clone()?))
            .stderr(Stdio::from(logf))
            .env("RINGLET_LOG", "warn")
            .spawn()
            .context("starting ringlet serve")?;
        let mut b = EmbeddedBroker {
            child,
            dir,
            addr: format!("127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = b.child.try_wait()? {
                anyhow::bail!(
                    "ringlet serve exited with {status} (log: {}): {}",
                    log.display(),
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            if std::net::TcpStream::connect(&b.addr).is_ok() {
                return Ok(b);
            }
            if Instant::now() > deadline {
                b.stop();
                anyhow::bail!("ringlet serve did not listen within 60 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs the load generator once.
fn measure(
    args: &ringlet_loadgen::Args,
    seconds: f64,
    rate: Option<u64>,
) -> anyhow::Result<Report> {
    let mut a = args.clone();
    a.duration = Some(seconds);
    a.records = None;
    // Connection set-up and the first batches are excluded from every repetition.
    a.warmup = (seconds / 5.0).min(1.0);
    a.rate = rate;
    a.quiet = true;
    ringlet_loadgen::run::run(&a)
}

/// What the sweep observer sees.
pub trait Progress {
    fn start(&self, total_runs: u64);
    fn grow(&self, more_runs: u64);
    fn run_done(&self, what: &str);
    fn finish(&self);
}

pub struct Outcome {
    pub points: Vec<PointResult>,
    pub curve: Vec<Rep>,
    pub curve_point: Option<usize>,
}

/// Runs every point of the sweep.
pub fn run(plan: &Plan, progress: &dyn Progress) -> anyhow::Result<Outcome> {
    std::fs::create_dir_all(plan.output_dir.join("brokers"))?;
    let points = plan.points();
    let per_point = 1 + plan.repetitions as u64;
    let curve_runs = if plan.curve {
        CURVE.len() as u64 + 1
    } else {
        0
    };
    progress.start(points.len() as u64 * per_point + curve_runs);
    let mut results = Vec::new();
    for (i, settings) in points.iter().enumerate() {
        let label = settings
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        results.push(run_point(plan, i, settings, &label, progress)?);
    }
    let mut curve = Vec::new();
    let mut curve_point = None;
    if plan.curve {
        if let Some(best) = recommended(&results) {
            curve_point = Some(best.index);
            curve = run_curve(plan, best, progress)?;
        }
    }
    progress.finish();
    Ok(Outcome {
        points: results,
        curve,
        curve_point,
    })
}

/// Shares of the maximum rate the latency-throughput curve is measured at.
pub const CURVE: [f64; 5] = [0.1, 0.25, 0.5, 0.75, 0.9];

/// Steps for the latency budget, as shares of the maximum rate.
const BUDGET_STEPS: [f64; 9] = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1];

/// Starts (or targets) the broker for a point and returns the load generator's arguments.
fn setup(
    plan: &Plan,
    index: usize,
    settings: &[(String, String)],
    tag: &str,
) -> anyhow::Result<(Option<EmbeddedBroker>, ringlet_loadgen::Args)> {
    let mut args = plan.base.clone();
    let mut overrides = plan.broker_config.clone();
    for (k, v) in settings {
        if plan.is_broker_key(k) {
            overrides.push((k.clone(), v.clone()));
        } else {
            apply_client(&mut args, k, v)?;
        }
    }
    let broker = match &plan.bootstrap_server {
        Some(b) => {
            args.bootstrap_server = b.clone();
            // A topic per point, so partition counts and leftovers never mix.
            args.topic = format!("ringlet-tune-{}-{index}-{tag}", std::process::id());
            None
        }
        None => {
            let log = plan
                .output_dir
                .join("brokers")
                .join(format!("point-{index}-{tag}.log"));
            let b = EmbeddedBroker::start(&overrides, &log)?;
            args.bootstrap_server = b.addr.clone();
            args.topic = "ringlet-tune".into();
            Some(b)
        }
    };
    Ok((broker, args))
}

fn run_point(
    plan: &Plan,
    index: usize,
    settings: &[(String, String)],
    label: &str,
    progress: &dyn Progress,
) -> anyhow::Result<PointResult> {
    let (broker, args) = setup(plan, index, settings, "sweep")?;
    measure(&args, plan.warmup, None).with_context(|| format!("warm-up of {label}"))?;
    progress.run_done(&format!("{label}: warm-up"));
    let mut reps = Vec::new();
    for r in 0..plan.repetitions {
        let report = measure(&args, plan.duration, None)
            .with_context(|| format!("{label}, repetition {}", r + 1))?;
        reps.push(Rep::of("max", None, &report));
        progress.run_done(&format!("{label}: repetition {}", r + 1));
    }
    let summary = Summary::of(reps.iter());
    let budget = match plan.p99_budget_ms {
        Some(budget) => Some(find_budget_rate(
            plan, &args, label, budget, &summary, &mut reps, progress,
        )?),
        None => None,
    };
    drop(broker);
    Ok(PointResult {
        index,
        settings: settings.to_vec(),
        reps,
        summary,
        budget,
    })
}

fn find_budget_rate(
    plan: &Plan,
    args: &ringlet_loadgen::Args,
    label: &str,
    budget: f64,
    max: &Summary,
    reps: &mut Vec<Rep>,
    progress: &dyn Progress,
) -> anyhow::Result<BudgetResult> {
    let mut found = None;
    for share in BUDGET_STEPS {
        let rate = (max.median_records_s * share).max(1.0) as u64;
        progress.grow(1);
        let r = budget_run(plan, args, label, rate, progress)?;
        let ok = r.p99_ms <= budget;
        reps.push(r);
        if ok {
            found = Some(rate);
            break;
        }
    }
    let Some(rate) = found else {
        return Ok(BudgetResult {
            budget_p99_ms: budget,
            rate_records_s: None,
            summary: None,
        });
    };
    progress.grow(plan.repetitions as u64 - 1);
    for _ in 1..plan.repetitions {
        reps.push(budget_run(plan, args, label, rate, progress)?);
    }
    let at_rate: Vec<&Rep> = reps
        .iter()
        .filter(|r| r.kind == "budget" && r.target_records_s == Some(rate))
        .collect();
    Ok(BudgetResult {
        budget_p99_ms: budget,
        rate_records_s: Some(rate),
        summary: Some(Summary::of(at_rate.into_iter())),
    })
}

/// One measured run at an offered `rate` for the latency budget.
fn budget_run(
    plan: &Plan,
    args: &ringlet_loadgen::Args,
    label: &str,
    rate: u64,
    progress: &dyn Progress,
) -> anyhow::Result<Rep> {
    let r = Rep::of(
        "budget",
        Some(rate),
        &measure(args, plan.duration, Some(rate))?,
    );
    progress.run_done(&format!(
        "{label}: {rate} records/s, p99 {:.2} ms",
        r.p99_ms
    ));
    Ok(r)
}

fn run_curve(plan: &Plan, best: &PointResult, progress: &dyn Progress) -> anyhow::Result<Vec<Rep>> {
    let (broker, args) = setup(plan, best.index, &best.settings, "curve")?;
    measure(&args, plan.warmup, None)?;
    progress.run_done("latency-throughput curve: warm-up");
    let mut out = Vec::new();
    for share in CURVE {
        let rate = (best.summary.median_records_s * share).max(1.0) as u64;
        let r = Rep::of(
            "curve",
            Some(rate),
            &measure(&args, plan.duration, Some(rate))?,
        );
        progress.run_done(&format!(
            "curve at {:.0}%: {:.1} MB/s, p99 {:.2} ms",
            share * 100.0,
            r.mb_s,
            r.p99_ms
        ));
        out.push(r);
    }
    drop(broker);
    Ok(out)
}

/// The point with the best score.
pub fn recommended(points: &[PointResult]) -> Option<&PointResult> {
    points
        .iter()
        .filter(|p| p.score() > 0.0)
        .max_by(|a, b| a.score().total_cmp(&b.score()))
}
