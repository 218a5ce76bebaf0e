//! Producer threads: open-loop record generation at the target rate, batching per partition,
//! pipelined Produce requests, and a reader thread per connection that records latencies.
//!
//! Coordinated omission: with `--rate`, record `k` of a producer is *intended* to be sent at
//! `start + k * interval`, whatever happened to the requests before it. When the broker stalls,
//! the in-flight limit stops the sender, records pile up as due-but-unsent, and each one's
//! latency still counts from its intended time, so a stall shows in the percentiles instead of
//! vanishing (OpenMessaging Benchmark does the same). Latency from the actual send is kept too.

use crate::args::{Keys, RecordSize};
use crate::batch_builder::BatchBuilder;
use crate::stats::{now_us, Stats};
use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use ringlet_client::conn::{self as client, Conn};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a producer needs to know.
pub struct ProducerPlan {
    pub id: u32,
    pub topic: String,
    /// (partition, leader address) of every partition.
    pub partitions: Vec<(i32, String)>,
    pub connections: usize,
    pub record_size: RecordSize,
    pub keys: Keys,
    pub batch_size: usize,
    pub linger: Duration,
    pub acks: i16,
    pub codec: ringlet_client::Codec,
    pub max_in_flight: usize,
    /// Records/s of this producer, or `None` for as fast as possible.
    pub rate: Option<f64>,
    /// Records to send in all (warm-up included), or unbounded.
    pub records: Option<u64>,
}

/// Records acknowledged, for verification: (producer id, partition, first sequence, count).
pub type AckLog = Arc<Mutex<Vec<(u32, i32, u32, u32)>>>;

struct InFlight {
    partition: i32,
    count: u32,
    bytes: u64,
    first_intended: Instant,
    last_intended: Instant,
    sent: Instant,
    first_sequence: u32,
}

struct PartitionBatch {
    builder: BatchBuilder,
    first_intended: Option<Instant>,
    last_intended: Instant,
    first_sequence: u32,
    next_sequence: u32,
    bytes: u64,
    conn: usize,
}

struct Connection {
    conn: Conn,
    tx: Option<crossbeam_channel::Sender<InFlight>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// Runs one producer until `stop` is set or its record count is reached; returns records sent.
pub fn run(
    plan: ProducerPlan,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    acked: AckLog,
) -> Result<u64, client::ClientError> {
    // Payload and keys are generated ahead of time; records borrow slices of them.
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(plan.id).wrapping_mul(0xA24B_AED4_963E_E407);
    let mut next_rand = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let payload: Vec<u8> = (0..plan.record_size.max() + 64)
        .map(|_| next_rand() as u8)
        .collect();
    let key_table: Vec<[u8; 16]> = match plan.keys {
        Keys::Distinct(n) => (0..n.min(1 << 20))
            .map(|i| {
                format!("key-{i:012}").as_bytes()[..16]
                    .try_into()
                    .expect("16 bytes")
            })
            .collect(),
        _ => Vec::new(),
    };
    let topic = TopicName(StrBytes::from_string(plan.topic.clone()));

    let (mut conns, mut batches) = open_connections(&plan, &stats, &acked)?;
    let partition_ids: Vec<i32> = plan.partitions.iter().map(|p| p.0).collect();
    let interval = plan
        .rate
        .map(|r| Duration::from_secs_f64(1.0 / r.max(1e-9)));
    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut sticky = (plan.id as usize) % partition_ids.len();

    'outer: loop {
        let now = Instant::now();
        let done = stop.load(Ordering::Relaxed) || plan.records.is_some_and(|n| sent >= n);
        if done {
            break;
        }
        // Records due by now: all of them up to `now` in open loop, one more otherwise.
        let due = match interval {
            Some(iv) => (now.duration_since(start).as_nanos() / iv.as_nanos().max(1)) as u64 + 1,
            None => sent + 1,
        };
        let due = plan.records.map_or(due, |n| due.min(n));
        while sent < due {
            let intended = match interval {
                Some(iv) => {
                    start + Duration::from_nanos((iv.as_nanos() as u64).saturating_mul(sent))
                }
                None => Instant::now(),
            };
            let size = match plan.record_size {
                RecordSize::Fixed(n) => n,
                RecordSize::Uniform(a, b) => a + (next_rand() as usize) % (b - a + 1),
            };
            let (key, partition): (Option<&[u8]>, i32) = match plan.keys {
                Keys::None => (None, partition_ids[sticky]),
                Keys::Random => {
                    let r = next_rand();
                    (
                        None,
                        partition_ids[(r % partition_ids.len() as u64) as usize],
                    )
                }
                Keys::Distinct(_) => {
                    let k = &key_table[(next_rand() % key_table.len() as u64) as usize];
                    let p = (crc32c::crc32c(k) as usize) % partition_ids.len();
                    (Some(&k[..]), partition_ids[p])
                }
            };
            let b = batches
                .get_mut(&partition)
                .expect("every partition has a batch");
            // The value is `size` bytes in all: the 16-byte stamp, then payload.
            let size = size.max(crate::batch_builder::VALUE_HEADER);
            let record_len = BatchBuilder::record_size(key, size, b.builder.count());
            if b.builder.count() > 0 && b.builder.size() + record_len > plan.batch_size {
                send_batch(&plan, &topic, b, partition, &mut conns, &stats)?;
                if matches!(plan.keys, Keys::None) {
                    // Sticky partitioner: move on once a batch is full, as Kafka's producer does.
                    sticky = (sticky + 1) % partition_ids.len();
                }
            }
            let b = batches
                .get_mut(&partition)
                .expect("every partition has a batch");
            if b.first_intended.is_none() {
                b.first_intended = Some(intended);
            }
            b.last_intended = intended;
            let offset = (sent as usize * 31) % 64;
            b.builder.push(
                key,
                now_us(),
                plan.id,
                b.next_sequence,
                &payload[offset..offset + size - crate::batch_builder::VALUE_HEADER],
            );

            b.next_sequence = b.next_sequence.wrapping_add(1);
            b.bytes += size as u64;
            sent += 1;
            if stop.load(Ordering::Relaxed) {
                break 'outer;
            }
        }
        // Linger: send partial batches whose oldest record has waited long enough.
        let now = Instant::now();
        let mut next_linger = None::<Instant>;
        for (&partition, b) in batches.iter_mut() {
            if let Some(first) = b.first_intended {
                if now.duration_since(first) >= plan.linger {
                    send_batch(&plan, &topic, b, partition, &mut conns, &stats)?;
                } else {
                    let t = first + plan.linger;
                    next_linger = Some(next_linger.map_or(t, |x: Instant| x.min(t)));
                }
            }
        }
        if let Some(iv) = interval {
            let next_due =
                start + Duration::from_nanos((iv.as_nanos() as u64).saturating_mul(sent));
            let wake = next_linger.map_or(next_due, |l| l.min(next_due));
            let now = Instant::now();
            if wake > now {
                std::thread::sleep(wake - now);
            }
        }
    }
    // Flush what is left, then let the readers drain.
    for (&partition, b) in batches.iter_mut() {
        if b.first_intended.is_some() {
            send_batch(&plan, &topic, b, partition, &mut conns, &stats)?;
        }
    }
    for c in &mut conns {
        c.tx.take();
        if let Some(r) = c.reader.take() {
            let _ = r.join();
        }
    }
    Ok(sent)
}

/// Opens `plan.connections` connections per distinct leader (each with its ack reader thread
/// when acks are on) and a batch per partition, spread over its leader's connections.
fn open_connections(
    plan: &ProducerPlan,
    stats: &Arc<Stats>,
    acked: &AckLog,
) -> Result<(Vec<Connection>, HashMap<i32, PartitionBatch>), client::ClientError> {
    let mut conns: Vec<Connection> = Vec::new();
    let mut by_leader: HashMap<String, Vec<usize>> = HashMap::new();
    let mut batches: HashMap<i32, PartitionBatch> = HashMap::new();
    for (i, (partition, leader)) in plan.partitions.iter().enumerate() {
        let slots = by_leader.entry(leader.clone()).or_default();
        if slots.len() < plan.connections {
            let conn = Conn::connect(leader)?;
            let reader_conn = conn.try_clone()?;
            let (tx, rx) = crossbeam_channel::bounded::<InFlight>(plan.max_in_flight.max(1));
            let reader = if plan.acks != 0 {
                let stats = stats.clone();
                let acked = acked.clone();
                let id = plan.id;
                Some(std::thread::spawn(move || {
                    read_acks(reader_conn, rx, stats, acked, id)
                }))
            } else {
                None
            };
            conns.push(Connection {
                conn,
                tx: Some(tx),
                reader,
            });
            slots.push(conns.len() - 1);
        }
        let conn = slots[i % slots.len()];
        batches.insert(
            *partition,
            PartitionBatch {
                builder: BatchBuilder::with_codec(
                    plan.batch_size + plan.record_size.max() + 64,
                    plan.codec,
                ),
                first_intended: None,
                last_intended: Instant::now(),
                first_sequence: 0,
                next_sequence: 0,
                bytes: 0,
                conn,
            },
        );
    }
    Ok((conns, batches))
}

/// Sends a partition's batch (if it has records) on its connection; with acks, hands its
/// bookkeeping to the connection's ack reader first (blocking while `max_in_flight` are out).
fn send_batch(
    plan: &ProducerPlan,
    topic: &TopicName,
    b: &mut PartitionBatch,
    partition: i32,
    conns: &mut [Connection],
    stats: &Stats,
) -> Result<(), client::ClientError> {
    let count = b.builder.count() as u32;
    if count == 0 {
        return Ok(());
    }
    let records: Bytes = b.builder.finish();
    let req = ProduceRequest::default()
        .with_acks(plan.acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic.clone())
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])]);
    let c = &mut conns[b.conn];
    let info = InFlight {
        partition,
        count,
        bytes: b.bytes,
        first_intended: b
            .first_intended
            .take()
            .expect("a batch with records has a first record"),
        last_intended: b.last_intended,
        sent: Instant::now(),
        first_sequence: b.first_sequence,
    };
    b.first_sequence = b.next_sequence;
    b.bytes = 0;
    if let Some(tx) = &c.tx {
        if plan.acks != 0 {
            stats.in_flight.fetch_add(1, Ordering::Relaxed);
            // Blocks while max_in_flight requests are outstanding on this connection.
            if tx.send(info).is_err() {
                return Err(client::ClientError::Protocol("ack reader stopped".into()));
            }
        } else if stats.measuring() {
            stats
                .produced_records
                .fetch_add(u64::from(info.count), Ordering::Relaxed);
            stats
                .produced_bytes
                .fetch_add(info.bytes, Ordering::Relaxed);
        }
    }
    c.conn
        .send(ApiKey::Produce, client::PRODUCE_VERSION, &req)?;
    Ok(())
}

fn read_acks(
    mut conn: Conn,
    rx: crossbeam_channel::Receiver<InFlight>,
    stats: Arc<Stats>,
    acked: AckLog,
    producer_id: u32,
) {
    while let Ok(info) = rx.recv() {
        let resp = conn.recv::<ProduceResponse>(ApiKey::Produce, client::PRODUCE_VERSION);
        let now = Instant::now();
        stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        let code = match &resp {
            Ok((_, r)) => r
                .responses
                .first()
                .and_then(|t| t.partition_responses.first())
                .map_or(-1, |p| p.error_code),
            Err(e) => {
                tracing::warn!(error = %e, "produce connection failed");
                stats.error("CONNECTION_ERROR", u64::from(info.count));
                return;
            }
        };
        if !stats.measuring() {
            continue;
        }
        if code != 0 {
            stats.error(client::error_name(code), u64::from(info.count));
            continue;
        }
        stats
            .produced_records
            .fetch_add(u64::from(info.count), Ordering::Relaxed);
        stats
            .produced_bytes
            .fetch_add(info.bytes, Ordering::Relaxed);
        {
            let mut h = stats.ack_intended.lock().expect("histogram lock");
            let span = info
                .last_intended
                .saturating_duration_since(info.first_intended);
            let n = info.count.max(1);
            for i in 0..n {
                // Records of a batch are spread evenly between its first and last intended time.
                let intended = info.first_intended
                    + span.mul_f64(if n > 1 {
                        f64::from(i) / f64::from(n - 1)
                    } else {
                        0.0
                    });
                let us = now.saturating_duration_since(intended).as_micros() as u64;
                let _ = h.record(us.max(1));
            }
        }
        {
            let us = now.saturating_duration_since(info.sent).as_micros() as u64;
            let _ = stats
                .ack_actual
                .lock()
                .expect("histogram lock")
                .record_n(us.max(1), u64::from(info.count));
        }
        acked.lock().expect("ack log").push((
            producer_id,
            info.partition,
            info.first_sequence,
            info.count,
        ));
    }
}
