//! `ringlet loadgen`: a Kafka-protocol load generator for any Kafka-compatible broker, with
//! open-loop rates, coordinated-omission-corrected HDR latencies, and verification of every record.

pub mod args;
pub mod batch_builder;
pub mod consumer;
pub mod producer;
pub mod report;
pub mod run;
pub mod sink;
pub mod stats;

pub use args::Args;

/// Runs `ringlet loadgen` and prints the report; returns the process exit code.
pub fn main(args: &Args) -> anyhow::Result<i32> {
    let report = run::run(args)?;
    match args.output.as_str() {
        "json" => println!("{}", serde_json::to_string_pretty(&report)?),
        "csv" => print!("{}", report.csv()),
        _ => print!("{}", report.table()),
    }
    if args.output != "table" {
        eprint!("{}", report.table());
    }
    if let Some(path) = &args.output_file {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    let lost = report
        .verification
        .as_ref()
        .is_some_and(|v| v.lost > 0 || v.duplicated > 0);
    Ok(if lost { 3 } else { 0 })
}
