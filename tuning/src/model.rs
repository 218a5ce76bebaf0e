//! The Universal Scalability Law (Gunther): throughput with N workers is
//!
//! ```text
//! X(N) = λ·N / (1 + σ·(N − 1) + κ·N·(N − 1))
//! ```
//!
//! λ is the throughput of one worker, σ the share of work that serialises (contention: Amdahl's
//! law when κ = 0), κ the cost of keeping workers coherent (crosstalk: throughput peaks at
//! N* = √((1 − σ)/κ) and then falls). For Ringlet a worker is a shard (`num.io.threads`).
//!
//! Fitting: for fixed (σ, κ) the best λ is closed-form (X is linear in λ), so the fit searches
//! (σ, κ) only: a grid (κ on a log scale, since real values span 10⁻⁶..10⁻¹), then a local
//! pattern search from the best cell. With two distinct N the data cannot separate σ from κ; the
//! fit then sets κ = 0 (Amdahl) and says so; with one N it reports λ only.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UslFit {
    pub lambda: f64,
    pub sigma: f64,
    pub kappa: f64,
    /// Root-mean-square error of the fit, in the unit of the throughput given.
    pub rmse: f64,
    /// Coefficient of determination (1 − SSE/SST); 1 when every X is equal and fitted exactly.
    pub r_squared: f64,
    /// Measurements used.
    pub points: usize,
    /// Distinct worker counts among them.
    pub levels: usize,
    /// `usl`; with two worker counts `amdahl` (κ = 0) or `coherency` (σ = 0); with one,
    /// `linear` (σ = κ = 0).
    pub kind: String,
    /// Worker count at which the model peaks (None when it never does).
    pub peak_n: Option<f64>,
}

/// X(N) under the model.
pub fn usl(n: f64, lambda: f64, sigma: f64, kappa: f64) -> f64 {
    lambda * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))
}

impl UslFit {
    pub fn predict(&self, n: f64) -> f64 {
        usl(n, self.lambda, self.sigma, self.kappa)
    }
}

/// Best λ and the squared error for fixed σ, κ.
fn solve(points: &[(f64, f64)], sigma: f64, kappa: f64) -> (f64, f64) {
    let g = |n: f64| usl(n, 1.0, sigma, kappa);
    let num: f64 = points.iter().map(|&(n, x)| x * g(n)).sum();
    let den: f64 = points.iter().map(|&(n, _)| g(n) * g(n)).sum();
    let lambda = if den > 0.0 { num / den } else { 0.0 };
    let sse = points
        .iter()
        .map(|&(n, x)| (x - lambda * g(n)).powi(2))
        .sum();
    (lambda, sse)
}

/// Fits the model to `(N, X)` measurements (repetitions welcome). None without data.
pub fn fit(points: &[(f64, f64)]) -> Option<UslFit> {
    let points: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(n, x)| *n >= 1.0 && x.is_finite())
        .collect();
    if points.is_empty() {
        return None;
    }
    let mut levels: Vec<f64> = points.iter().map(|p| p.0).collect();
    levels.sort_by(f64::total_cmp);
    levels.dedup();
    let (kind, sigma, kappa) = match levels.len() {
        1 => ("linear", 0.0, 0.0),
        2 => {
            // One shape parameter is identifiable: σ (Amdahl) when throughput grows, κ alone when
            // it falls (σ alone can never make it fall).
            let (s, _) = search(&points, Shape::SigmaOnly);
            let (_, k) = search(&points, Shape::KappaOnly);
            if solve(&points, 0.0, k).1 < solve(&points, s, 0.0).1 {
                ("coherency", 0.0, k)
            } else {
                ("amdahl", s, 0.0)
            }
        }
        _ => {
            let (s, k) = search(&points, Shape::Both);
            ("usl", s, k)
        }
    };
    let (lambda, sse) = solve(&points, sigma, kappa);
    let mean = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
    let sst: f64 = points.iter().map(|p| (p.1 - mean).powi(2)).sum();
    let peak_n = (kappa > 0.0).then(|| ((1.0 - sigma).max(0.0) / kappa).sqrt());
    Some(UslFit {
        lambda,
        sigma,
        kappa,
        rmse: (sse / points.len() as f64).sqrt(),
        r_squared: if sst > 0.0 { 1.0 - sse / sst } else { 1.0 },
        points: points.len(),
        levels: levels.len(),
        kind: kind.to_string(),
        peak_n,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    SigmaOnly,
    KappaOnly,
    Both,
}

/// Minimises the squared error over σ ∈ [0, 1] and κ ∈ [0, 1] (or one of them, the other 0).
fn search(points: &[(f64, f64)], shape: Shape) -> (f64, f64) {
    let with_kappa = shape != Shape::SigmaOnly;
    let with_sigma = shape != Shape::KappaOnly;
    let sigmas: Vec<f64> = if with_sigma {
        (0..=200).map(|i| i as f64 / 200.0).collect()
    } else {
        vec![0.0]
    };
    let kappas: Vec<f64> = if with_kappa {
        std::iter::once(0.0)
            .chain((0..=120).map(|i| 10f64.powf(-6.0 + 6.0 * i as f64 / 120.0)))
            .collect()
    } else {
        vec![0.0]
    };
    let mut best = (0.0, 0.0, f64::INFINITY);
    for &s in &sigmas {
        for &k in &kappas {
            let (_, e) = solve(points, s, k);
            if e < best.2 {
                best = (s, k, e);
            }
        }
    }
    // Pattern search around the best cell, halving the steps when nothing improves.
    let (mut s, mut k, mut e) = best;
    let mut ds = 0.005;
    let mut dk = if k > 0.0 { k * 0.1 } else { 1e-6 };
    for _ in 0..400 {
        let mut moved = false;
        let mut moves = Vec::new();
        if with_sigma {
            moves.extend([(ds, 0.0), (-ds, 0.0)]);
        }
        if with_kappa {
            moves.extend([(0.0, dk), (0.0, -dk)]);
        }
        for (a, b) in moves {
            let (s2, k2) = ((s + a).clamp(0.0, 1.0), (k + b).clamp(0.0, 1.0));
            let (_, e2) = solve(points, s2, k2);
            if e2 < e {
                (s, k, e) = (s2, k2, e2);
                moved = true;
            }
        }
        if !moved {
            ds /= 2.0;
            dk /= 2.0;
            if ds < 1e-9 && dk < 1e-12 {
                break;
            }
        }
    }
    (s, k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synthetic(lambda: f64, sigma: f64, kappa: f64, noise: f64) -> Vec<(f64, f64)> {
        // Deterministic ±noise pattern, three repetitions per level.
        let mut out = Vec::new();
        for n in [1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0] {
            for (i, f) in [1.0, 1.0 + noise, 1.0 - noise].iter().enumerate() {
                let _ = i;
                out.push((n, usl(n, lambda, sigma, kappa) * f));
            }
        }
        out
    }

    #[test]
    fn recovers_known_coefficients() {
        let f = fit(&synthetic(1000.0, 0.05, 0.002, 0.0)).unwrap();
        assert_eq!(f.kind, "usl");
        assert!((f.lambda - 1000.0).abs() < 1.0, "{f:?}");
        assert!((f.sigma - 0.05).abs() < 0.001, "{f:?}");
        assert!((f.kappa - 0.002).abs() < 0.0001, "{f:?}");
        assert!(f.r_squared > 0.9999);
        let peak = f.peak_n.unwrap();
        assert!((peak - (0.95f64 / 0.002).sqrt()).abs() < 0.5, "{peak}");
    }

    #[test]
    fn recovers_within_tolerance_under_noise() {
        let f = fit(&synthetic(250.0, 0.12, 0.0005, 0.02)).unwrap();
        assert!((f.lambda - 250.0).abs() / 250.0 < 0.05, "{f:?}");
        assert!((f.sigma - 0.12).abs() < 0.03, "{f:?}");
        assert!((f.kappa - 0.0005).abs() < 0.0003, "{f:?}");
    }

    #[test]
    fn pure_amdahl_and_linear_cases() {
        let f = fit(&synthetic(100.0, 0.3, 0.0, 0.0)).unwrap();
        assert!((f.sigma - 0.3).abs() < 0.001 && f.kappa < 1e-6, "{f:?}");
        // Two levels: κ is not identifiable; Amdahl through both points.
        let two = [(1.0, 100.0), (1.0, 100.0), (2.0, 160.0), (2.0, 160.0)];
        let f = fit(&two).unwrap();
        assert_eq!(f.kind, "amdahl");
        assert!((f.lambda - 100.0).abs() < 0.01, "{f:?}");
        assert!((f.sigma - 0.25).abs() < 0.001, "{f:?}"); // 200/(1+σ) = 160
                                                          // Two levels with throughput falling: only κ can explain it.
        let down = [(1.0, 300.0), (2.0, 200.0)];
        let f = fit(&down).unwrap();
        assert_eq!(f.kind, "coherency");
        assert!(
            (f.predict(1.0) - 300.0).abs() < 0.01 && (f.predict(2.0) - 200.0).abs() < 0.01,
            "{f:?}"
        );
        let one = fit(&[(2.0, 300.0), (2.0, 310.0)]).unwrap();
        assert_eq!(one.kind, "linear");
        assert!((one.lambda - 152.5).abs() < 0.01);
        assert!(fit(&[]).is_none());
    }
}
