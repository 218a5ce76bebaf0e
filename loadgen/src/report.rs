//! The final report: a table for people, JSON and CSV for machines.

use crate::stats::Percentiles;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Serialize)]
pub struct Throughput {
    pub records: u64,
    pub bytes: u64,
    pub records_per_s: f64,
    pub mb_per_s: f64,
}

impl Throughput {
    pub fn new(records: u64, bytes: u64, secs: f64) -> Throughput {
        let secs = secs.max(1e-9);
        Throughput {
            records,
            bytes,
            records_per_s: records as f64 / secs,
            mb_per_s: bytes as f64 / secs / 1e6,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Verification {
    pub acknowledged: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// Per partition: (acknowledged, lost, duplicated, reordered).
    pub per_partition: BTreeMap<i32, [u64; 4]>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub kernel: String,
    pub hostname: String,
}

impl Machine {
    pub fn here() -> Machine {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: read("/proc/sys/kernel/osrelease"),
            hostname: read("/proc/sys/kernel/hostname"),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub config: crate::args::Args,
    pub machine: Machine,
    /// The broker's advertised API ranges (ApiVersions), as a version fingerprint.
    pub broker_api_versions: BTreeMap<String, (i16, i16)>,
    pub measured_seconds: f64,
    pub produced: Throughput,
    pub consumed: Throughput,
    pub produce_latency_from_intended: Percentiles,
    pub produce_latency_from_send: Percentiles,
    pub end_to_end_latency: Percentiles,
    pub errors: BTreeMap<String, u64>,
    pub verification: Option<Verification>,
}

impl Report {
    pub fn table(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "measured {:.1} s  |  produced {} records, {:.0} records/s, {:.1} MB/s  |  consumed {} records, {:.0} records/s, {:.1} MB/s\n",
            self.measured_seconds,
            self.produced.records,
            self.produced.records_per_s,
            self.produced.mb_per_s,
            self.consumed.records,
            self.consumed.records_per_s,
            self.consumed.mb_per_s
        ));
        s.push_str("latency (ms)                  count      p50      p90      p99    p99.9   p99.99      max\n");
        for (name, p) in [
            (
                "produce ack, from intended",
                &self.produce_latency_from_intended,
            ),
            ("produce ack, from send", &self.produce_latency_from_send),
            ("end to end", &self.end_to_end_latency),
        ] {
            s.push_str(&format!(
                "{name:<28} {:>7} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}\n",
                p.count, p.p50_ms, p.p90_ms, p.p99_ms, p.p999_ms, p.p9999_ms, p.max_ms
            ));
        }
        if self.errors.is_empty() {
            s.push_str("errors: none\n");
        } else {
            s.push_str(&format!("errors: {:?}\n", self.errors));
        }
        if let Some(v) = &self.verification {
            s.push_str(&format!(
                "verify: {} acknowledged, {} lost, {} duplicated, {} reordered\n",
                v.acknowledged, v.lost, v.duplicated, v.reordered
            ));
        }
        s
    }

    /// One header line and one value line with every figure.
    pub fn csv(&self) -> String {
        let mut cols: Vec<(String, String)> = vec![
            (
                "measured_seconds".into(),
                format!("{:.3}", self.measured_seconds),
            ),
            ("produced_records".into(), self.produced.records.to_string()),
            (
                "produced_records_per_s".into(),
                format!("{:.1}", self.produced.records_per_s),
            ),
            (
                "produced_mb_per_s".into(),
                format!("{:.3}", self.produced.mb_per_s),
            ),
            ("consumed_records".into(), self.consumed.records.to_string()),
            (
                "consumed_records_per_s".into(),
                format!("{:.1}", self.consumed.records_per_s),
            ),
            (
                "consumed_mb_per_s".into(),
                format!("{:.3}", self.consumed.mb_per_s),
            ),
        ];
        for (name, p) in [
            ("ack_intended", &self.produce_latency_from_intended),
            ("ack_send", &self.produce_latency_from_send),
            ("e2e", &self.end_to_end_latency),
        ] {
            for (q, v) in [
                ("p50", p.p50_ms),
                ("p90", p.p90_ms),
                ("p99", p.p99_ms),
                ("p999", p.p999_ms),
                ("p9999", p.p9999_ms),
                ("max", p.max_ms),
            ] {
                cols.push((format!("{name}_{q}_ms"), format!("{v:.3}")));
            }
        }
        cols.push((
            "errors".into(),
            self.errors.values().sum::<u64>().to_string(),
        ));
        if let Some(v) = &self.verification {
            cols.push(("lost".into(), v.lost.to_string()));
            cols.push(("duplicated".into(), v.duplicated.to_string()));
        }
        let c = &self.config;
        for (k, v) in [
            ("producers", c.producers.to_string()),
            ("consumers", c.consumers.to_string()),
            ("record_size", c.record_size.clone()),
            ("batch_size", c.batch_size.to_string()),
            ("linger_ms", c.linger_ms.to_string()),
            ("acks", c.acks.clone()),
            ("rate", c.rate.map_or(String::new(), |r| r.to_string())),
            ("partitions", c.partitions.to_string()),
        ] {
            cols.push((k.into(), v));
        }
        let header: Vec<&str> = cols.iter().map(|c| c.0.as_str()).collect();
        let values: Vec<&str> = cols.iter().map(|c| c.1.as_str()).collect();
        format!("{}\n{}\n", header.join(","), values.join(","))
    }
}
