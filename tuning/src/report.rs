//! The sweep's report: `results.json` and `results.csv` (every repetition, the configuration, the
//! machine), `report.md` and a self-contained `report.html` with SVG charts.

use crate::charts;
use crate::model::{self, UslFit};
use crate::sweep::{self, Outcome, PointResult, Rep, Sweep};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MachineFacts {
    pub cores: usize,
    pub cpu_model: String,
    pub memory_gb: f64,
    pub kernel: String,
    pub hostname: String,
}

impl MachineFacts {
    pub fn here() -> MachineFacts {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(String::new, |(_, v)| v.trim().to_string());
        let memory_gb = read("/proc/meminfo")
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .map_or(0.0, |kb| kb * 1024.0 / 1e9);
        MachineFacts {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            memory_gb,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            hostname: read("/proc/sys/kernel/hostname").trim().to_string(),
        }
    }
}

/// The recommended configuration and how sure the sweep is of it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Recommendation {
    pub point: usize,
    pub settings: Vec<(String, String)>,
    pub score_mb_s: f64,
    pub runner_up: Option<usize>,
    /// How much better than the runner-up, in percent.
    pub margin_pct: Option<f64>,
    /// Whether the best point's slowest repetition beat the runner-up's fastest.
    pub beyond_noise: Option<bool>,
}

/// Everything a sweep produced; written as results.json and read back by `tune plan --from`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Results {
    pub command: Vec<String>,
    pub started_unix_s: u64,
    pub machine: MachineFacts,
    pub sweeps: Vec<(String, Vec<String>, bool)>,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub repetitions: usize,
    pub p99_budget_ms: Option<f64>,
    pub bootstrap_server: Option<String>,
    pub broker_config: Vec<(String, String)>,
    /// The load generator's base settings (every flag), before each point's changes.
    pub loadgen_base: serde_json::Value,
    pub points: Vec<PointResult>,
    pub curve_point: Option<usize>,
    pub curve: Vec<Rep>,
    pub scalability: Option<UslFit>,
    /// (num.io.threads, median MB/s) of the points the fit used.
    pub scalability_data: Vec<(f64, f64)>,
    pub recommended: Option<Recommendation>,
}

/// The fit over `num.io.threads`, on the points that share the recommended point's other settings.
fn scalability(
    sweeps: &[Sweep],
    points: &[PointResult],
    best: Option<&PointResult>,
) -> (Option<UslFit>, Vec<(f64, f64)>) {
    let key = "num.io.threads";
    if !sweeps.iter().any(|s| s.key == key) {
        return (None, Vec::new());
    }
    let Some(best) = best else {
        return (None, Vec::new());
    };
    let same_others = |p: &PointResult| {
        p.settings
            .iter()
            .filter(|(k, _)| k != key)
            .all(|(k, v)| best.setting(k) == Some(v.as_str()))
    };
    // Medians, not every repetition: one slow or fast outlier (a page-cache burst at the start
    // of a run, a noisy neighbour) must not bend the model.
    let data: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| same_others(p))
        .filter_map(|p| Some((p.setting(key)?.parse::<f64>().ok()?, p.summary.median_mb_s)))
        .collect();
    (model::fit(&data), data)
}

fn recommendation(points: &[PointResult]) -> Option<Recommendation> {
    let best = sweep::recommended(points)?;
    let runner = points
        .iter()
        .filter(|p| p.index != best.index && p.score() > 0.0)
        .max_by(|a, b| a.score().total_cmp(&b.score()));
    let spread = |p: &PointResult| match &p.budget {
        Some(b) => b
            .summary
            .as_ref()
            .map_or((0.0, 0.0), |s| (s.min_mb_s, s.max_mb_s)),
        None => (p.summary.min_mb_s, p.summary.max_mb_s),
    };
    Some(Recommendation {
        point: best.index,
        settings: best.settings.clone(),
        score_mb_s: best.score(),
        runner_up: runner.map(|r| r.index),
        margin_pct: runner.map(|r| (best.score() - r.score()) / r.score() * 100.0),
        beyond_noise: runner.map(|r| spread(best).0 > spread(r).1),
    })
}

impl Results {
    pub fn new(plan: &sweep::Plan, outcome: Outcome, started_unix_s: u64) -> Results {
        let recommended = recommendation(&outcome.points);
        let best = recommended
            .as_ref()
            .and_then(|r| outcome.points.iter().find(|p| p.index == r.point));
        let (fit, data) = scalability(&plan.sweeps, &outcome.points, best);
        Results {
            command: std::env::args().collect(),
            started_unix_s,
            machine: MachineFacts::here(),
            sweeps: plan
                .sweeps
                .iter()
                .map(|s| (s.key.clone(), s.values.clone(), s.broker))
                .collect(),
            duration_s: plan.duration,
            warmup_s: plan.warmup,
            repetitions: plan.repetitions,
            p99_budget_ms: plan.p99_budget_ms,
            bootstrap_server: plan.bootstrap_server.clone(),
            broker_config: plan.broker_config.clone(),
            loadgen_base: serde_json::to_value(&plan.base).unwrap_or_default(),
            points: outcome.points,
            curve_point: outcome.curve_point,
            curve: outcome.curve,
            scalability: fit,
            scalability_data: data,
            recommended,
        }
    }

    fn sweep_defs(&self) -> Vec<Sweep> {
        self.sweeps
            .iter()
            .map(|(k, v, b)| Sweep {
                key: k.clone(),
                values: v.clone(),
                broker: *b,
            })
            .collect()
    }

    pub fn csv(&self) -> String {
        let keys: Vec<&str> = self.sweeps.iter().map(|s| s.0.as_str()).collect();
        let mut s = String::from("point,");
        for k in &keys {
            let _ = write!(s, "{k},");
        }
        s.push_str("rep,kind,target_records_s,mb_s,records_s,p50_ms,p99_ms,p999_ms,errors\n");
        let mut row = |point: &str, settings: &[(String, String)], i: usize, r: &Rep| {
            let _ = write!(s, "{point},");
            for k in &keys {
                let v = settings
                    .iter()
                    .find(|(kk, _)| kk == k)
                    .map_or("", |(_, v)| v.as_str());
                let _ = write!(s, "{v},");
            }
            let _ = writeln!(
                s,
                "{i},{},{},{:.3},{:.1},{:.3},{:.3},{:.3},{}",
                r.kind,
                r.target_records_s.map_or(String::new(), |t| t.to_string()),
                r.mb_s,
                r.records_s,
                r.p50_ms,
                r.p99_ms,
                r.p999_ms,
                r.errors
            );
        };
        for p in &self.points {
            for (i, r) in p.reps.iter().enumerate() {
                row(&p.index.to_string(), &p.settings, i + 1, r);
            }
        }
        if let Some(cp) = self.curve_point {
            if let Some(p) = self.points.iter().find(|p| p.index == cp) {
                for (i, r) in self.curve.iter().enumerate() {
                    row(&cp.to_string(), &p.settings, i + 1, r);
                }
            }
        }
        s
    }

    fn points_table(&self) -> String {
        let mut s = String::from("| point | settings | median MB/s | min..max | spread | records/s | p50 ms | p99 ms | p99.9 ms |");
        if self.p99_budget_ms.is_some() {
            s.push_str(" within budget: rate | MB/s | p99 ms |");
        }
        s.push('\n');
        s.push_str("|---|---|---|---|---|---|---|---|---|");
        if self.p99_budget_ms.is_some() {
            s.push_str("---|---|---|");
        }
        s.push('\n');
        for p in &self.points {
            let m = &p.summary;
            let settings = p
                .settings
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            let _ = write!(
                s,
                "| {} | {settings} | {:.1} | {:.1}..{:.1} | {:.1}% | {:.0} | {:.2} | {:.2} | {:.2} |",
                p.index,
                m.median_mb_s,
                m.min_mb_s,
                m.max_mb_s,
                m.spread_pct,
                m.median_records_s,
                m.median_p50_ms,
                m.median_p99_ms,
                m.median_p999_ms
            );
            if let Some(b) = &p.budget {
                match (&b.rate_records_s, &b.summary) {
                    (Some(rate), Some(bs)) => {
                        let _ = write!(
                            s,
                            " {rate} | {:.1} | {:.2} |",
                            bs.median_mb_s, bs.median_p99_ms
                        );
                    }
                    _ => s.push_str(" not met | | |"),
                }
            }
            s.push('\n');
        }
        s
    }

    fn recommendation_text(&self) -> String {
        let Some(r) = &self.recommended else {
            return "No point produced any throughput; nothing to recommend.\n".into();
        };
        let settings = r
            .settings
            .iter()
            .map(|(k, v)| format!("`{k}={v}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let what = if self.p99_budget_ms.is_some() {
            "highest median throughput within the p99 budget"
        } else {
            "highest median throughput"
        };
        let mut s = format!(
            "**Recommended: {settings}** (point {}): {what}, {:.1} MB/s.",
            r.point, r.score_mb_s
        );
        if let (Some(ru), Some(m), Some(noise)) = (r.runner_up, r.margin_pct, r.beyond_noise) {
            let _ = write!(
                s,
                " Margin over the runner-up (point {ru}): {m:.1}%, {}.",
                if noise {
                    "beyond the repetitions' spread (its slowest run beat the runner-up's fastest)"
                } else {
                    "within the repetitions' spread: treat the two as equal and prefer the cheaper settings"
                }
            );
        }
        s.push('\n');
        s
    }

    fn model_text(&self) -> String {
        let Some(f) = &self.scalability else {
            return "No scalability model: sweep `num.io.threads` to fit one.\n".into();
        };
        let mut s = format!(
            "Universal Scalability Law, X(N) = λN / (1 + σ(N−1) + κN(N−1)), fitted to the median throughput of {} points at {} thread counts \
             (the points sharing the recommended point's other settings):\n\n\
             | coefficient | value | meaning |\n|---|---|---|\n\
             | λ | {:.2} MB/s | throughput of one shard |\n\
             | σ | {:.4} | contention (serialised share) |\n\
             | κ | {:.6} | coherency (crosstalk) cost |\n\
             | RMSE | {:.2} MB/s | fit error; R² = {:.4} |\n",
            f.points, f.levels, f.lambda, f.sigma, f.kappa, f.rmse, f.r_squared
        );
        match f.kind.as_str() {
            "amdahl" => s.push_str("\nWith two thread counts σ and κ cannot be told apart; throughput grew, so κ is set to 0 (Amdahl's law), which is optimistic at high N. Sweep three or more counts on a machine with more cores to fit both.\n"),
            "coherency" => s.push_str("\nWith two thread counts σ and κ cannot be told apart; throughput fell with more shards, which only κ explains, so σ is set to 0. On a machine where the load generator shares the broker's cores this mostly measures the generator and the broker competing for CPU, not the broker's own scalability.\n"),
            "linear" => s.push_str("\nOne thread count: only λ is known; scaling is assumed linear, which is optimistic.\n"),
            _ => {}
        }
        if let Some(peak) = f.peak_n {
            let _ = writeln!(
                s,
                "\nThe model peaks at N* = √((1−σ)/κ) = {peak:.1} shards ({:.1} MB/s).",
                f.predict(peak)
            );
        }
        if f.kind == "usl" {
            let _ = writeln!(
                s,
                "\nPredicted: {}.",
                [1.0, 2.0, 4.0, 8.0, 16.0]
                    .iter()
                    .map(|n| format!("{n} → {:.1} MB/s", f.predict(*n)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        } else {
            s.push_str("\nNot extrapolated beyond the measured thread counts: `ringlet tune plan --from` uses the best measured throughput per shard instead.\n");
        }
        s
    }

    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut s = String::from("# Ringlet tuning report\n\n");
        let _ = writeln!(s, "Command: `{}`\n", self.command.join(" "));
        let _ = writeln!(
            s,
            "Machine: {} cores ({}), {:.1} GB, Linux {}, host {}. The broker and the load generator share these cores unless `--bootstrap-server` pointed elsewhere.\n",
            m.cores, m.cpu_model, m.memory_gb, m.kernel, m.hostname
        );
        let _ = writeln!(
            s,
            "Each point: {} s warm-up (discarded), then {} repetitions of {} s with `ringlet loadgen` (produce latency corrected for coordinated omission).{}\n",
            self.warmup_s,
            self.repetitions,
            self.duration_s,
            self.p99_budget_ms.map_or(String::new(), |b| format!(
                " Latency budget: p99 ≤ {b} ms, found by stepping the offered rate down from the maximum by 10% of it at a time."
            ))
        );
        s.push_str("## Recommendation\n\n");
        s.push_str(&self.recommendation_text());
        s.push_str("\n## Points\n\n");
        s.push_str(&self.points_table());
        if !self.curve.is_empty() {
            s.push_str("\n## Latency-throughput curve of the recommended point\n\n| offered records/s | MB/s | p50 ms | p99 ms | p99.9 ms |\n|---|---|---|---|---|\n");
            for r in &self.curve {
                let _ = writeln!(
                    s,
                    "| {} | {:.1} | {:.3} | {:.3} | {:.3} |",
                    r.target_records_s.unwrap_or(0),
                    r.mb_s,
                    r.p50_ms,
                    r.p99_ms,
                    r.p999_ms
                );
            }
        }
        s.push_str("\n## Scalability model\n\n");
        s.push_str(&self.model_text());
        s.push_str("\n## Files\n\n`results.json` (everything, read by `ringlet tune plan --from`), `results.csv` (one row per repetition), `report.html` (this report with charts), `chart-*.svg` (the charts alone), `brokers/` (each embedded broker's log).\n");
        s
    }

    /// Every chart as (file name, SVG).
    pub fn charts(&self) -> Vec<(String, String)> {
        let sweeps = self.sweep_defs();
        let mut out = Vec::new();
        for sw in &sweeps {
            out.push((
                format!("chart-throughput-vs-{}.svg", sw.key),
                charts::throughput_vs(sw, &sweeps, &self.points),
            ));
        }
        if let Some(cp) = self.curve_point {
            let mut reps = self.curve.clone();
            if let Some(p) = self.points.iter().find(|p| p.index == cp) {
                reps.extend(p.reps.iter().filter(|r| r.kind == "max").cloned());
            }
            out.push((
                "chart-latency-vs-throughput.svg".into(),
                charts::latency_curve(&reps),
            ));
        }
        if let Some(f) = &self.scalability {
            out.push((
                "chart-scalability.svg".into(),
                charts::scalability(f, &self.scalability_data),
            ));
        }
        out
    }

    pub fn html(&self) -> String {
        let mut charts_html = String::new();
        for (_, svg) in self.charts() {
            let _ = writeln!(charts_html, "<figure>{svg}</figure>");
        }
        format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Ringlet tuning report</title>\n\
             <style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}}\
             table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}\
             figure{{margin:1em 0}}pre{{white-space:pre-wrap;background:#f6f6f6;padding:1em}}</style></head><body>\n\
             <h1>Ringlet tuning report</h1>\n<h2>Charts</h2>\n{charts_html}\n<h2>Report</h2>\n<pre>{}</pre>\n</body></html>\n",
            escape(&self.markdown())
        )
    }

    /// Writes every report file into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("results.json"), serde_json::to_vec_pretty(self)?)?;
        std::fs::write(dir.join("results.csv"), self.csv())?;
        std::fs::write(dir.join("report.md"), self.markdown())?;
        std::fs::write(dir.join("report.html"), self.html())?;
        for (name, svg) in self.charts() {
            std::fs::write(dir.join(name), svg)?;
        }
        Ok(())
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
