//! A broker that stalls for one second must show up in the percentiles measured from intended
//! send times, while latency from the actual send hides it (coordinated omission).

use ringlet_loadgen::args::Args;
use ringlet_loadgen::sink::{self, SinkConfig};
use std::time::Duration;

fn args(port: u16) -> Args {
    Args {
        bootstrap_server: format!("127.0.0.1:{port}"),
        topic: "co".into(),
        partitions: 1,
        producers: 1,
        connections_per_producer: 1,
        consumers: 0,
        group: None,
        record_size: "100".into(),
        keys: "none".into(),
        batch_size: 16384,
        linger_ms: 1,
        acks: "1".into(),
        compression: "none".into(),
        max_in_flight: 1,
        rate: Some(2000),
        duration: Some(3.0),
        records: None,
        warmup: 0.5,
        verify: false,
        output: "json".into(),
        output_file: None,
        quiet: true,
    }
}

#[test]
fn a_one_second_stall_shows_in_intended_latency() {
    let sink = sink::start(
        0,
        SinkConfig {
            partitions: 1,
            stall: Some((Duration::from_millis(1500), Duration::from_millis(1000))),
        },
    )
    .unwrap();
    let report = ringlet_loadgen::run::run(&args(sink.port)).unwrap();
    let intended = &report.produce_latency_from_intended;
    let sent = &report.produce_latency_from_send;
    eprintln!("from intended: {intended:?}\nfrom send: {sent:?}");
    // About a third of the measured records were due during the stall.
    assert!(
        intended.p90_ms > 300.0,
        "CO-corrected p90 {} ms should reflect the 1 s stall",
        intended.p90_ms
    );
    assert!(
        intended.max_ms > 900.0,
        "CO-corrected max {} ms",
        intended.max_ms
    );
    assert!(
        sent.p90_ms < 100.0,
        "latency from send hides the stall (p90 {} ms)",
        sent.p90_ms
    );
    // Open loop: the rate is held across the stall (records are sent late, not skipped).
    assert!(
        report.produced.records_per_s > 1500.0,
        "rate {} should stay near 2000/s",
        report.produced.records_per_s
    );
}

#[test]
fn without_a_stall_both_latencies_are_low() {
    let sink = sink::start(
        0,
        SinkConfig {
            partitions: 1,
            stall: None,
        },
    )
    .unwrap();
    let mut a = args(sink.port);
    a.duration = Some(1.5);
    let report = ringlet_loadgen::run::run(&a).unwrap();
    assert!(
        report.produce_latency_from_intended.p99_ms < 100.0,
        "{:?}",
        report.produce_latency_from_intended
    );
    assert!(report.produced.records > 2000);
}
