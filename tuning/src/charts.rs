//! SVG charts for the report, drawn with `plotters` into strings (no files, no fonts needed).

use crate::model::UslFit;
use crate::sweep::{PointResult, Rep, Sweep};
use plotters::prelude::*;

const SIZE: (u32, u32) = (720, 400);

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// (x, median, min, max) of one point.
type Whisker = (f64, f64, f64, f64);

/// A named line of a chart and how to read its value from a repetition.
type RepLine = (&'static str, fn(&Rep) -> f64);

fn color(i: usize) -> RGBColor {
    let c = Palette99::pick(i).to_rgba();
    RGBColor(c.0, c.1, c.2)
}

/// Draws the legend at `pos` and writes the chart out: the same last steps for every chart.
fn finish<'a, CT: plotters::coord::CoordTranslate>(
    root: &DrawingArea<SVGBackend<'a>, plotters::coord::Shift>,
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    pos: SeriesLabelPosition,
) -> Res<()> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(pos)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Median throughput (with min..max whiskers) against the values of one swept setting; one line
/// per combination of the other swept settings.
pub fn throughput_vs(sweep: &Sweep, sweeps: &[Sweep], points: &[PointResult]) -> String {
    let mut svg = String::new();
    if let Err(e) = draw_throughput_vs(&mut svg, sweep, sweeps, points) {
        return format!("<p>chart failed: {e}</p>");
    }
    svg
}

fn draw_throughput_vs(
    svg: &mut String,
    sweep: &Sweep,
    sweeps: &[Sweep],
    points: &[PointResult],
) -> Res<()> {
    let others: Vec<&Sweep> = sweeps.iter().filter(|s| s.key != sweep.key).collect();
    let mut series: Vec<(String, Vec<Whisker>)> = Vec::new();
    for p in points {
        let name = others
            .iter()
            .map(|s| format!("{}={}", s.key, p.setting(&s.key).unwrap_or("?")))
            .collect::<Vec<_>>()
            .join(" ");
        let x = sweep
            .values
            .iter()
            .position(|v| Some(v.as_str()) == p.setting(&sweep.key))
            .unwrap_or(0) as f64;
        let s = &p.summary;
        let pt = (x, s.median_mb_s, s.min_mb_s, s.max_mb_s);
        match series.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.push(pt),
            None => series.push((name, vec![pt])),
        }
    }
    let ymax = points
        .iter()
        .map(|p| p.summary.max_mb_s)
        .fold(0.0, f64::max)
        * 1.15
        + 1.0;
    let n = sweep.values.len();
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Throughput vs {}", sweep.key), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..ymax)?;
    let values = sweep.values.clone();
    chart
        .configure_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                values.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc(sweep.key.as_str())
        .y_desc("produce MB/s (median, min..max)")
        .draw()?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let c = color(i);
        let mut pts = pts.clone();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let label = if name.is_empty() {
            "median".to_string()
        } else {
            name.clone()
        };
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (p.0, p.1)),
                c.stroke_width(2),
            ))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
        chart.draw_series(pts.iter().map(|p| Circle::new((p.0, p.1), 4, c.filled())))?;
        chart.draw_series(
            pts.iter()
                .map(|p| PathElement::new(vec![(p.0, p.2), (p.0, p.3)], c.stroke_width(1))),
        )?;
    }
    finish(&root, &mut chart, SeriesLabelPosition::LowerRight)
}

/// Latency percentiles against achieved throughput: the latency-throughput curve.
pub fn latency_curve(reps: &[Rep]) -> String {
    let mut svg = String::new();
    if let Err(e) = draw_latency_curve(&mut svg, reps) {
        return format!("<p>chart failed: {e}</p>");
    }
    svg
}

fn draw_latency_curve(svg: &mut String, reps: &[Rep]) -> Res<()> {
    let mut reps: Vec<&Rep> = reps.iter().collect();
    reps.sort_by(|a, b| a.mb_s.total_cmp(&b.mb_s));
    let xmax = reps.iter().map(|r| r.mb_s).fold(0.0, f64::max) * 1.1 + 1.0;
    let ymax = reps.iter().map(|r| r.p999_ms).fold(0.01, f64::max).max(0.1) * 2.0;
    let ymin = reps
        .iter()
        .map(|r| r.p50_ms)
        .fold(f64::INFINITY, f64::min)
        .clamp(0.001, ymax / 10.0)
        / 2.0;
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Produce latency vs throughput (coordinated-omission corrected)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..xmax, (ymin..ymax).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("achieved produce MB/s")
        .y_desc("latency ms (log)")
        .draw()?;
    let lines: [RepLine; 3] = [
        ("p50", |r| r.p50_ms),
        ("p99", |r| r.p99_ms),
        ("p99.9", |r| r.p999_ms),
    ];
    for (i, (name, f)) in lines.iter().enumerate() {
        let c = color(i);
        let pts: Vec<(f64, f64)> = reps.iter().map(|r| (r.mb_s, f(r).max(ymin))).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
        chart.draw_series(pts.iter().map(|p| Circle::new(*p, 3, c.filled())))?;
    }
    finish(&root, &mut chart, SeriesLabelPosition::UpperLeft)
}

/// Measured throughput against shards, with the fitted scalability curve.
pub fn scalability(fit: &UslFit, data: &[(f64, f64)]) -> String {
    let mut svg = String::new();
    if let Err(e) = draw_scalability(&mut svg, fit, data) {
        return format!("<p>chart failed: {e}</p>");
    }
    svg
}

fn draw_scalability(svg: &mut String, fit: &UslFit, data: &[(f64, f64)]) -> Res<()> {
    let nmax_data = data.iter().map(|d| d.0).fold(1.0, f64::max);
    let nmax = (nmax_data * 4.0).max(8.0);
    let curve: Vec<(f64, f64)> = (0..=200)
        .map(|i| {
            let n = 1.0 + (nmax - 1.0) * i as f64 / 200.0;
            (n, fit.predict(n))
        })
        .collect();
    let ymax = curve
        .iter()
        .map(|c| c.1)
        .chain(data.iter().map(|d| d.1))
        .fold(0.0, f64::max)
        * 1.15
        + 1.0;
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Scalability: {} fit (λ={:.1}, σ={:.3}, κ={:.4})",
                fit.kind, fit.lambda, fit.sigma, fit.kappa
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.5f64..nmax + 0.5, 0f64..ymax)?;
    chart
        .configure_mesh()
        .x_desc("num.io.threads (shards)")
        .y_desc("produce MB/s")
        .draw()?;
    let c0 = color(0);
    chart
        .draw_series(LineSeries::new(curve, c0.stroke_width(2)))?
        .label("model")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c0.stroke_width(2)));
    let c1 = color(1);
    chart
        .draw_series(data.iter().map(|d| Circle::new(*d, 4, c1.filled())))?
        .label("measured (median of the repetitions)")
        .legend(move |(x, y)| Circle::new((x + 8, y), 4, c1.filled()));
    finish(&root, &mut chart, SeriesLabelPosition::LowerRight)
}
