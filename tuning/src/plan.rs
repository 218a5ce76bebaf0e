//! `ringlet tune plan`: the cores, brokers, disk and network a workload needs, from measured
//! per-core throughput, with every formula written out so an operator can check it.
//!
//! Units: MB = 10⁶ bytes, GB = 10⁹ bytes; network links in Gbit/s (1 Gbit/s = 125 MB/s).

use serde::Serialize;

/// What the operator asks for and what the hardware offers.
#[derive(Clone, Debug, Serialize)]
pub struct PlanInput {
    pub ingress_mb_s: f64,
    pub egress_mb_s: f64,
    pub retention_hours: f64,
    pub replication_factor: u32,
    /// Spare capacity kept on every resource (0.3 = 30%).
    pub headroom: f64,
    /// Produce throughput one shard (core) sustains, measured.
    pub mb_s_per_core: f64,
    /// Where `mb_s_per_core` came from, for the report.
    pub per_core_source: String,
    pub cores_per_broker: u32,
    pub disk_gb_per_broker: f64,
    pub disk_mb_s_per_broker: f64,
    pub nic_gbit_per_broker: f64,
}

/// One computed quantity with its formula.
#[derive(Clone, Debug, Serialize)]
pub struct Line {
    pub name: &'static str,
    pub formula: String,
    pub value: f64,
    pub unit: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub input: PlanInput,
    pub lines: Vec<Line>,
    pub brokers: u32,
    /// Which resource sets the broker count.
    pub bound_by: &'static str,
}

fn ceil(x: f64) -> f64 {
    // Values a hair above an integer through rounding error do not cost a whole broker.
    (x - 1e-9).ceil().max(0.0)
}

pub fn plan(i: &PlanInput) -> anyhow::Result<Plan> {
    if i.replication_factor == 0 {
        anyhow::bail!("--replication-factor must be at least 1");
    }
    for (name, v) in [
        ("--ingress-mb-s", i.ingress_mb_s),
        ("--egress-mb-s", i.egress_mb_s),
        ("--retention-hours", i.retention_hours),
        ("--headroom", i.headroom),
    ] {
        if !(v >= 0.0 && v.is_finite()) {
            anyhow::bail!("{name} must be a non-negative number");
        }
    }
    for (name, v) in [
        ("per-core throughput", i.mb_s_per_core),
        ("--cores-per-broker", f64::from(i.cores_per_broker)),
        ("--disk-gb-per-broker", i.disk_gb_per_broker),
        ("--disk-mb-s-per-broker", i.disk_mb_s_per_broker),
        ("--nic-gbit-per-broker", i.nic_gbit_per_broker),
    ] {
        if !(v > 0.0 && v.is_finite()) {
            anyhow::bail!("{name} must be positive");
        }
    }
    let r = f64::from(i.replication_factor);
    let h = 1.0 + i.headroom;
    let mut lines = Vec::new();
    let mut push = |name, formula: String, value: f64, unit| {
        lines.push(Line {
            name,
            formula,
            value,
            unit,
        });
        value
    };
    let write = push(
        "disk writes (cluster)",
        format!("ingress × RF = {} × {r}", i.ingress_mb_s),
        i.ingress_mb_s * r,
        "MB/s",
    );
    let storage = push(
        "storage (cluster)",
        format!(
            "ingress × 3600 × retention_hours × RF × (1 + headroom) / 1000 = {} × 3600 × {} × {r} × {h} / 1000",
            i.ingress_mb_s, i.retention_hours
        ),
        i.ingress_mb_s * 3600.0 * i.retention_hours * r * h / 1000.0,
        "GB",
    );
    let net_in = push(
        "network in (cluster)",
        format!(
            "ingress × RF (producers, then followers fetching) = {} × {r}",
            i.ingress_mb_s
        ),
        i.ingress_mb_s * r,
        "MB/s",
    );
    let net_out = push(
        "network out (cluster)",
        format!(
            "egress + ingress × (RF − 1) (consumers, then replication) = {} + {} × {}",
            i.egress_mb_s,
            i.ingress_mb_s,
            r - 1.0
        ),
        i.egress_mb_s + i.ingress_mb_s * (r - 1.0),
        "MB/s",
    );
    let cores = push(
        "cores (cluster)",
        format!(
            "⌈(ingress × RF + egress) / per_core × (1 + headroom)⌉ = ⌈({} × {r} + {}) / {:.1} × {h}⌉",
            i.ingress_mb_s, i.egress_mb_s, i.mb_s_per_core
        ),
        ceil((i.ingress_mb_s * r + i.egress_mb_s) / i.mb_s_per_core * h),
        "cores",
    );
    let b_cores = push(
        "brokers for cores",
        format!(
            "⌈cores / cores_per_broker⌉ = ⌈{cores} / {}⌉",
            i.cores_per_broker
        ),
        ceil(cores / f64::from(i.cores_per_broker)),
        "brokers",
    );
    let b_storage = push(
        "brokers for storage",
        format!(
            "⌈storage / disk_gb_per_broker⌉ = ⌈{storage:.1} / {}⌉",
            i.disk_gb_per_broker
        ),
        ceil(storage / i.disk_gb_per_broker),
        "brokers",
    );
    let b_disk_bw = push(
        "brokers for disk bandwidth",
        format!(
            "⌈disk writes × (1 + headroom) / disk_mb_s_per_broker⌉ = ⌈{write} × {h} / {}⌉",
            i.disk_mb_s_per_broker
        ),
        ceil(write * h / i.disk_mb_s_per_broker),
        "brokers",
    );
    let nic = i.nic_gbit_per_broker * 125.0;
    let b_net = push(
        "brokers for network",
        format!(
            "⌈max(network in, network out) × (1 + headroom) / (nic_gbit × 125)⌉ = ⌈{:.1} × {h} / {nic}⌉",
            net_in.max(net_out)
        ),
        ceil(net_in.max(net_out) * h / nic),
        "brokers",
    );
    let b_rf = push(
        "brokers for replication",
        format!("RF = {r} (each replica on its own broker)"),
        r,
        "brokers",
    );
    let candidates = [
        ("cores", b_cores),
        ("storage", b_storage),
        ("disk bandwidth", b_disk_bw),
        ("network", b_net),
        ("replication factor", b_rf),
    ];
    let (bound_by, brokers) = candidates.iter().copied().fold(
        ("replication factor", 0.0),
        |a, c| if c.1 > a.1 { c } else { a },
    );
    push(
        "brokers",
        "max of the broker counts above".into(),
        brokers,
        "brokers",
    );
    Ok(Plan {
        input: i.clone(),
        lines,
        brokers: brokers as u32,
        bound_by,
    })
}

impl Plan {
    pub fn markdown(&self) -> String {
        let i = &self.input;
        let mut s = String::new();
        s.push_str("## Capacity plan\n\n");
        s.push_str(&format!(
            "Workload: {} MB/s in, {} MB/s out, {} h retention, replication factor {}.\n\n",
            i.ingress_mb_s, i.egress_mb_s, i.retention_hours, i.replication_factor
        ));
        s.push_str(&format!(
            "Assumed: headroom {:.0}% on every resource; {:.1} MB/s of produce per core ({}); \
             {} cores, {} GB of disk, {} MB/s of disk writes and a {} Gbit/s NIC per broker. \
             Fetches are costed like produce per byte, which errs safe (zero-copy fetch is cheaper).\n\n",
            i.headroom * 100.0,
            i.mb_s_per_core,
            i.per_core_source,
            i.cores_per_broker,
            i.disk_gb_per_broker,
            i.disk_mb_s_per_broker,
            i.nic_gbit_per_broker
        ));
        s.push_str("| quantity | formula | value |\n|---|---|---|\n");
        for l in &self.lines {
            s.push_str(&format!(
                "| {} | {} | {} {} |\n",
                l.name,
                l.formula,
                fmt_num(l.value),
                l.unit
            ));
        }
        s.push_str(&format!(
            "\n**{} brokers**, bound by {}.\n",
            self.brokers, self.bound_by
        ));
        s
    }
}

pub fn fmt_num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> PlanInput {
        PlanInput {
            ingress_mb_s: 100.0,
            egress_mb_s: 200.0,
            retention_hours: 24.0,
            replication_factor: 3,
            headroom: 0.3,
            mb_s_per_core: 100.0,
            per_core_source: "test".into(),
            cores_per_broker: 8,
            disk_gb_per_broker: 4000.0,
            disk_mb_s_per_broker: 500.0,
            nic_gbit_per_broker: 10.0,
        }
    }

    fn value(p: &Plan, name: &str) -> f64 {
        p.lines.iter().find(|l| l.name == name).unwrap().value
    }

    #[test]
    fn storage_bound_example() {
        // 100 MB/s × 86 400 s × 3 replicas × 1.3 = 33 696 GB → 9 brokers of 4 TB.
        let p = plan(&input()).unwrap();
        assert!((value(&p, "storage (cluster)") - 33_696.0).abs() < 1e-6);
        assert_eq!(value(&p, "disk writes (cluster)"), 300.0);
        assert_eq!(value(&p, "network in (cluster)"), 300.0);
        assert_eq!(value(&p, "network out (cluster)"), 400.0);
        // (300 + 200) / 100 × 1.3 = 6.5 → 7 cores → 1 broker.
        assert_eq!(value(&p, "cores (cluster)"), 7.0);
        assert_eq!(value(&p, "brokers for cores"), 1.0);
        assert_eq!(value(&p, "brokers for storage"), 9.0);
        assert_eq!(value(&p, "brokers for disk bandwidth"), 1.0);
        assert_eq!(value(&p, "brokers for network"), 1.0);
        assert_eq!((p.brokers, p.bound_by), (9, "storage"));
    }

    #[test]
    fn cpu_and_network_bound_examples() {
        // 1 GB/s in, short retention, slow cores: (1000×3 + 1000) / 50 × 1.3 = 104 cores → 13.
        let mut i = input();
        i.ingress_mb_s = 1000.0;
        i.egress_mb_s = 1000.0;
        i.retention_hours = 1.0;
        i.mb_s_per_core = 50.0;
        let p = plan(&i).unwrap();
        assert_eq!(value(&p, "cores (cluster)"), 104.0);
        assert_eq!((p.brokers, p.bound_by), (13, "cores"));
        // Fast cores, 1 Gbit NICs: out = 1000 + 2000 = 3000 MB/s × 1.3 / 125 = 31.2 → 32.
        i.mb_s_per_core = 10_000.0;
        i.nic_gbit_per_broker = 1.0;
        i.disk_mb_s_per_broker = 10_000.0;
        let p = plan(&i).unwrap();
        assert_eq!((p.brokers, p.bound_by), (32, "network"));
        // A tiny workload still needs one broker per replica.
        let mut i = input();
        i.ingress_mb_s = 0.1;
        i.egress_mb_s = 0.1;
        let p = plan(&i).unwrap();
        assert_eq!((p.brokers, p.bound_by), (3, "replication factor"));
        assert!(p
            .markdown()
            .contains("**3 brokers**, bound by replication factor"));
    }

    #[test]
    fn nonsense_is_refused() {
        let mut i = input();
        i.replication_factor = 0;
        assert!(plan(&i).is_err());
        let mut i = input();
        i.mb_s_per_core = 0.0;
        assert!(plan(&i).is_err());
    }
}
