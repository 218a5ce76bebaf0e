//! The workspace's client library against a real `ringlet serve` process: a batching producer
//! (keyed, unkeyed, compressed, acks=all), consumers by partition and by group with commits and
//! max.poll.records, and admin lookups.

use ringlet_client::consumer::{Consumer, ConsumerConfig, StartAt};
use ringlet_client::producer::{Producer, ProducerConfig};
use ringlet_client::{admin, records, Codec, Conn, Record};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Broker {
    child: Child,
    port: u16,
    _dir: std::path::PathBuf,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

fn start() -> Broker {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir =
        std::env::temp_dir().join(format!("ringlet-client-test-{}-{port}", std::process::id()));
    let child = Command::new(env!("CARGO_BIN_EXE_ringlet"))
        .args(["serve", "--override"])
        .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
        .arg("--override")
        .arg(format!("log.dirs={}", dir.display()))
        .args(["--override", "group.initial.rebalance.delay.ms=100"])
        .args(["--override", "num.partitions=3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ringlet serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "broker did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Broker {
        child,
        port,
        _dir: dir,
    }
}

fn rec(key: Option<&str>, value: &str) -> Record {
    Record {
        key: key.map(|k| k.as_bytes().to_vec()),
        value: Some(value.as_bytes().to_vec()),
        headers: vec![("h".into(), Some(b"1".to_vec()))],
        ..Record::default()
    }
}

#[test]
fn producer_consumer_and_group_round_trip() {
    let b = start();
    let addr = format!("127.0.0.1:{}", b.port);
    let config = ProducerConfig {
        codec: Codec::Lz4,
        batch_size: 1000,
        ..ProducerConfig::default()
    };
    // Auto-created with num.partitions=3.
    let mut p: Producer<usize> = Producer::connect(&addr, "client-lib", config).unwrap();
    assert_eq!(p.partitions(), 3);
    let mut failures = Vec::new();
    for i in 0..300 {
        let key = format!("k{}", i % 10);
        let keyed = i % 2 == 0;
        let r = rec(keyed.then_some(key.as_str()), &format!("v{i}"));
        failures.extend(p.send(r, None, i).unwrap());
    }
    failures.extend(p.flush().unwrap());
    assert!(failures.is_empty(), "{failures:?}");
    // A record for a partition that does not exist fails alone, with Kafka's error name.
    let f = p.send(rec(None, "x"), Some(9), 999).unwrap();
    assert_eq!(f.len(), 1);
    assert!(
        f[0].error.starts_with("UNKNOWN_TOPIC_OR_PARTITION"),
        "{}",
        f[0].error
    );

    let mut conn = Conn::connect(&addr).unwrap();
    let ends = admin::list_offsets(&mut conn, "client-lib", &[0, 1, 2], admin::LATEST).unwrap();
    assert_eq!(ends.values().sum::<i64>(), 300);

    // Every record once, keys on the partition Kafka's partitioner picks, headers intact.
    let mut c = Consumer::connect(
        &addr,
        "client-lib",
        ConsumerConfig {
            start: StartAt::Earliest,
            ..ConsumerConfig::default()
        },
    )
    .unwrap();
    let mut seen = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 300 && Instant::now() < deadline {
        for (partition, r) in c.poll(50).unwrap() {
            if let Some(k) = &r.key {
                assert_eq!(partition, records::partition_for_key(k, 3));
            }
            assert_eq!(r.headers, vec![("h".to_string(), Some(b"1".to_vec()))]);
            let v = String::from_utf8(r.value.unwrap()).unwrap();
            assert!(seen.insert(v, partition).is_none(), "duplicate");
        }
    }
    assert_eq!(seen.len(), 300);

    // A group member reads 100, commits, leaves; the next member resumes at the commit.
    let group = ConsumerConfig {
        group: Some("client-lib-group".into()),
        start: StartAt::Earliest,
        ..ConsumerConfig::default()
    };
    let mut g = Consumer::connect(&addr, "client-lib", group.clone()).unwrap();
    let mut first = 0;
    while first < 100 {
        first += g.poll(100 - first).unwrap().len();
    }
    g.close().unwrap();
    let mut g = Consumer::connect(&addr, "client-lib", group).unwrap();
    let mut rest = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while rest < 200 && Instant::now() < deadline {
        rest += g.poll(1000).unwrap().len();
    }
    assert_eq!(rest, 200);
    assert!(g.poll(1000).unwrap().is_empty());
    g.close().unwrap();
}
