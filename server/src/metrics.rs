//! Prometheus metrics: counted on each shard without atomics, gathered on demand, and served as
//! text over HTTP (`ringlet.metrics.listener`).
//!
//! Requests, errors and request latency are counted per shard in thread-local cells by the
//! connection loop and the response encoders; partitions keep their own traffic counters
//! (`ringlet_engine::partition::PartitionCounters`); the engine keeps reactor counters and
//! write/fdatasync latency. A scrape asks every shard for a snapshot with `call_on` and renders
//! the sum, so the hot path never pays for metrics it is not asked for.

use crate::broker::Broker;
use crate::coordinator;
use crate::error_code;
use kafka_protocol::messages::*;
use ringlet_engine::runtime::{self, io};
use ringlet_engine::stats::{Histogram, ShardStats, BUCKETS_US};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Counters of one API on one shard.
#[derive(Clone, Debug, Default)]
pub struct ApiStats {
    pub requests: u64,
    pub latency: Histogram,
    /// Error code → responses (or response entries) that carried it.
    pub errors: BTreeMap<i16, u64>,
}

/// Highest API key counted (Kafka's keys are below this).
const API_SLOTS: usize = 128;

thread_local! {
    static APIS: RefCell<Vec<ApiStats>> = RefCell::new(vec![ApiStats::default(); API_SLOTS]);
}

/// Counts one request of API `key` that took `elapsed` from arrival to response sent.
pub fn record_request(key: i16, elapsed: Duration) {
    let Ok(i) = usize::try_from(key) else { return };
    if i >= API_SLOTS {
        return;
    }
    APIS.with(|a| {
        let mut a = a.borrow_mut();
        a[i].requests += 1;
        a[i].latency.record(elapsed);
    });
}

/// Counts the error codes of a response (zeros are skipped).
pub fn record_errors<T: ErrorCodes>(resp: &T) {
    APIS.with(|a| {
        let mut a = a.borrow_mut();
        let slot = &mut a[T::API as usize];
        resp.error_codes(&mut |code| {
            if code != 0 {
                *slot.errors.entry(code).or_insert(0) += 1;
            }
        });
    });
}

/// Counts one error code of API `key` (for hand-encoded responses).
pub fn record_error(key: ApiKey, code: i16) {
    if code == 0 {
        return;
    }
    APIS.with(|a| *a.borrow_mut()[key as usize].errors.entry(code).or_insert(0) += 1);
}

/// A response whose error codes metrics count.
pub trait ErrorCodes {
    const API: ApiKey;
    fn error_codes(&self, f: &mut dyn FnMut(i16));
}

/// `impl ErrorCodes` from paths to the error fields: top-level fields, then nested lists.
macro_rules! error_codes {
    ($t:ty, $api:ident $(, top $field:ident)* $(, list $list:ident $(. $inner:ident)? )* ) => {
        impl ErrorCodes for $t {
            const API: ApiKey = ApiKey::$api;
            fn error_codes(&self, f: &mut dyn FnMut(i16)) {
                $( f(self.$field); )*
                $(
                    for _x in &self.$list {
                        error_codes!(@inner _x, f $(, $inner)?);
                    }
                )*
            }
        }
    };
    (@inner $x:ident, $f:ident) => { $f($x.error_code); };
    (@inner $x:ident, $f:ident, $inner:ident) => {
        for y in &$x.$inner {
            $f(y.error_code);
        }
    };
}

pub(crate) use error_codes;

error_codes!(ApiVersionsResponse, ApiVersions, top error_code);
error_codes!(ProduceResponse, Produce, list responses.partition_responses);
error_codes!(MetadataResponse, Metadata, list topics);
error_codes!(ListOffsetsResponse, ListOffsets, list topics.partitions);
error_codes!(OffsetForLeaderEpochResponse, OffsetForLeaderEpoch, list topics.partitions);
error_codes!(CreateTopicsResponse, CreateTopics, list topics);
error_codes!(ElectLeadersResponse, ElectLeaders, top error_code, list replica_election_results.partition_result);
error_codes!(DeleteTopicsResponse, DeleteTopics, list responses);
error_codes!(InitProducerIdResponse, InitProducerId, top error_code);
error_codes!(AddPartitionsToTxnResponse, AddPartitionsToTxn, top error_code);
error_codes!(AddOffsetsToTxnResponse, AddOffsetsToTxn, top error_code);
error_codes!(EndTxnResponse, EndTxn, top error_code);
error_codes!(TxnOffsetCommitResponse, TxnOffsetCommit, list topics.partitions);
error_codes!(DescribeTransactionsResponse, DescribeTransactions, list transaction_states);
error_codes!(ListTransactionsResponse, ListTransactions, top error_code);
error_codes!(DescribeProducersResponse, DescribeProducers, list topics.partitions);
error_codes!(DescribeConfigsResponse, DescribeConfigs, list results);
error_codes!(AlterConfigsResponse, AlterConfigs, list responses);
error_codes!(IncrementalAlterConfigsResponse, IncrementalAlterConfigs, list responses);
error_codes!(CreatePartitionsResponse, CreatePartitions, list results);
error_codes!(DescribeClusterResponse, DescribeCluster, top error_code);
error_codes!(DescribeTopicPartitionsResponse, DescribeTopicPartitions, list topics);
error_codes!(ListConfigResourcesResponse, ListConfigResources, top error_code);
error_codes!(DeleteRecordsResponse, DeleteRecords, list topics.partitions);
error_codes!(DescribeLogDirsResponse, DescribeLogDirs, top error_code, list results);
error_codes!(FindCoordinatorResponse, FindCoordinator, top error_code, list coordinators);
error_codes!(JoinGroupResponse, JoinGroup, top error_code);
error_codes!(SyncGroupResponse, SyncGroup, top error_code);
error_codes!(HeartbeatResponse, Heartbeat, top error_code);
error_codes!(LeaveGroupResponse, LeaveGroup, top error_code, list members);
error_codes!(OffsetCommitResponse, OffsetCommit, list topics.partitions);
error_codes!(OffsetFetchResponse, OffsetFetch, top error_code, list topics.partitions, list groups);
error_codes!(ListGroupsResponse, ListGroups, top error_code);
error_codes!(DescribeGroupsResponse, DescribeGroups, list groups);
error_codes!(ConsumerGroupHeartbeatResponse, ConsumerGroupHeartbeat, top error_code);
error_codes!(ConsumerGroupDescribeResponse, ConsumerGroupDescribe, list groups);
error_codes!(DeleteGroupsResponse, DeleteGroups, list results);
error_codes!(OffsetDeleteResponse, OffsetDelete, top error_code, list topics.partitions);
error_codes!(SaslHandshakeResponse, SaslHandshake, top error_code);
error_codes!(SaslAuthenticateResponse, SaslAuthenticate, top error_code);
error_codes!(CreateAclsResponse, CreateAcls, list results);
error_codes!(DescribeAclsResponse, DescribeAcls, top error_code);
error_codes!(DeleteAclsResponse, DeleteAcls, list filter_results);
error_codes!(DescribeUserScramCredentialsResponse, DescribeUserScramCredentials, top error_code, list results);
error_codes!(AlterUserScramCredentialsResponse, AlterUserScramCredentials, list results);

/// One partition as a scrape sees it.
struct PartitionReport {
    topic: String,
    partition: i32,
    log_start: i64,
    log_end: i64,
    high_watermark: i64,
    size_bytes: u64,
    segments: usize,
    bytes_in: u64,
    records_in: u64,
    append_errors: u64,
    bytes_out: u64,
    reads: u64,
    /// Compacted logs: the share of their non-active bytes not compacted yet.
    dirty_ratio: Option<f64>,
    /// High watermark minus last stable offset (read_committed consumers wait on this).
    lso_lag: i64,
    open_txns: usize,
}

/// Everything one shard contributes to a scrape.
struct ShardReport {
    shard: usize,
    engine: ShardStats,
    cleaner: ringlet_engine::cleaner::CleanerStats,
    apis: Vec<ApiStats>,
    partitions: Vec<PartitionReport>,
    groups: Vec<coordinator::GroupMetrics>,
    txn: crate::txn::TxnMetrics,
}

fn collect_local() -> ShardReport {
    let partitions = ringlet_engine::log_manager::all()
        .into_iter()
        .map(|(tp, p)| {
            let o = p.offsets();
            let (size_bytes, segments) = p.storage();
            let c = &p.counters;
            PartitionReport {
                topic: tp.topic.to_string(),
                partition: tp.partition,
                log_start: o.log_start,
                log_end: o.log_end,
                high_watermark: o.high_watermark,
                size_bytes,
                segments,
                bytes_in: c.bytes_in.get(),
                records_in: c.records_in.get(),
                append_errors: c.append_errors.get(),
                bytes_out: c.bytes_out.get(),
                reads: c.reads.get(),
                dirty_ratio: p
                    .cleaner_status()
                    .map(|(_, dirty, clean)| dirty as f64 / (dirty + clean).max(1) as f64),
                lso_lag: o.high_watermark - p.last_stable_offset(),
                open_txns: p.open_transactions(),
            }
        })
        .collect();
    ShardReport {
        shard: runtime::shard_id(),
        engine: runtime::shard_stats(),
        cleaner: ringlet_engine::cleaner::stats(),
        apis: APIS.with(|a| a.borrow().clone()),
        partitions,
        groups: coordinator::metrics_local(),
        txn: crate::txn::metrics_local(),
    }
}

/// Escapes a label value for the text exposition format.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn line(&mut self, name: &str, labels: &str, v: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {v}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {v}");
        }
    }

    fn histogram(&mut self, name: &str, labels: &str, h: &Histogram) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cum = 0;
        for (i, b) in BUCKETS_US.iter().enumerate() {
            cum += h.counts[i];
            let le = *b as f64 / 1e6;
            let _ = writeln!(self.0, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cum}");
        }
        let _ = writeln!(
            self.0,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            h.count
        );
        self.line(&format!("{name}_sum"), labels, h.sum_us as f64 / 1e6);
        self.line(&format!("{name}_count"), labels, h.count);
    }
}

fn api_name(i: usize) -> Option<String> {
    ApiKey::try_from(i as i16).ok().map(|k| format!("{k:?}"))
}

/// Renders every shard's report in Prometheus's text format.
fn render_reports(broker: &Broker, reports: &[ShardReport]) -> String {
    let mut o = Out(String::with_capacity(64 * 1024));
    o.head("ringlet_connections", "gauge", "Client connections open.");
    o.line(
        "ringlet_connections",
        "",
        broker.connections.load(Ordering::Relaxed),
    );
    o.head(
        "ringlet_requests_in_flight",
        "gauge",
        "Requests being processed (bounded by queued.max.requests).",
    );
    o.line(
        "ringlet_requests_in_flight",
        "",
        broker.requests_in_flight.load(Ordering::Relaxed),
    );
    if let Some(cluster) = &broker.cluster {
        render_cluster(&mut o, broker, cluster);
    }
    render_apis(&mut o, reports);
    render_shards(&mut o, reports);
    let mut parts: Vec<&PartitionReport> = reports.iter().flat_map(|r| &r.partitions).collect();
    parts.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    render_partitions(&mut o, &parts);
    render_cleaner(&mut o, reports, &parts);
    render_transactions(&mut o, reports, &parts);
    render_groups(&mut o, reports, &parts);
    o.0 + &broker.quotas.prometheus()
}

/// The cluster gauges: session, leadership, under-replicated partitions, controller.
fn render_cluster(o: &mut Out, broker: &Broker, cluster: &crate::cluster::Cluster) {
    let view = cluster.view();
    let me = broker.config.broker_id;
    let (mut leading, mut under, mut under_min) = (0u64, 0u64, 0u64);
    for t in view.topics.values() {
        let min_isr = t
            .configs
            .get("min.insync.replicas")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(cluster.config.min_insync_replicas as usize);
        for (r, s) in t.replicas.iter().zip(&t.states) {
            let Some(s) = s else { continue };
            if s.leader != me {
                continue;
            }
            leading += 1;
            if s.isr.len() < r.len() {
                under += 1;
            }
            if s.isr.len() < min_isr {
                under_min += 1;
            }
        }
    }
    let controller = view.controller == me && !cluster.is_fenced();
    let (_, offline) = view.health();
    o.head(
        "ringlet_zookeeper_session",
        "gauge",
        "1 while this broker is registered in ZooKeeper (0: fenced, leads nothing).",
    );
    o.line(
        "ringlet_zookeeper_session",
        "",
        u64::from(!cluster.is_fenced()),
    );
    o.head(
        "ringlet_leader_count",
        "gauge",
        "Partitions this broker leads (Kafka's LeaderCount).",
    );
    o.line("ringlet_leader_count", "", leading);
    o.head("ringlet_under_replicated_partitions", "gauge", "Partitions led here whose ISR is smaller than their replica set (Kafka's UnderReplicatedPartitions).");
    o.line("ringlet_under_replicated_partitions", "", under);
    o.head("ringlet_under_min_isr_partitions", "gauge", "Partitions led here whose ISR is below min.insync.replicas: acks=all produce fails (Kafka's UnderMinIsrPartitionCount).");
    o.line("ringlet_under_min_isr_partitions", "", under_min);
    o.head(
        "ringlet_active_controller_count",
        "gauge",
        "1 on the controller (Kafka's ActiveControllerCount).",
    );
    o.line("ringlet_active_controller_count", "", u64::from(controller));
    o.head("ringlet_offline_partitions_count", "gauge", "Partitions with no live leader, reported by the controller only (Kafka's OfflinePartitionsCount).");
    o.line(
        "ringlet_offline_partitions_count",
        "",
        if controller { offline as u64 } else { 0 },
    );
    o.head(
        "ringlet_controller_epoch",
        "gauge",
        "The controller epoch this broker last saw.",
    );
    o.line(
        "ringlet_controller_epoch",
        "",
        view.controller_epoch.max(0) as u64,
    );
}

/// Requests by API, summed over shards.
fn render_apis(o: &mut Out, reports: &[ShardReport]) {
    let mut apis = vec![ApiStats::default(); API_SLOTS];
    for r in reports {
        for (sum, a) in apis.iter_mut().zip(&r.apis) {
            sum.requests += a.requests;
            sum.latency.merge(&a.latency);
            for (code, n) in &a.errors {
                *sum.errors.entry(*code).or_insert(0) += n;
            }
        }
    }
    let named: Vec<(String, &ApiStats)> = apis
        .iter()
        .enumerate()
        .filter(|(_, a)| a.requests > 0 || !a.errors.is_empty())
        .filter_map(|(i, a)| Some((api_name(i)?, a)))
        .collect();
    o.head(
        "ringlet_requests_total",
        "counter",
        "Requests handled, by Kafka API.",
    );
    for (name, a) in &named {
        o.line(
            "ringlet_requests_total",
            &format!("api=\"{name}\""),
            a.requests,
        );
    }
    o.head(
        "ringlet_request_errors_total",
        "counter",
        "Error codes returned, by API and Kafka error name (one per response entry that carried it).",
    );
    for (name, a) in &named {
        for (code, n) in &a.errors {
            let labels = format!("api=\"{name}\",error=\"{}\"", error_code::name(*code));
            o.line("ringlet_request_errors_total", &labels, n);
        }
    }
    o.head(
        "ringlet_request_duration_seconds",
        "histogram",
        "Time from a request's arrival to its response being sent, by API (fetches include their long-poll wait).",
    );
    for (name, a) in &named {
        o.histogram(
            "ringlet_request_duration_seconds",
            &format!("api=\"{name}\""),
            &a.latency,
        );
    }
}

/// One series per shard: queues, reactor, I/O.
fn render_shards(o: &mut Out, reports: &[ShardReport]) {
    type ShardGauge = (
        &'static str,
        &'static str,
        &'static str,
        fn(&ShardStats) -> f64,
    );
    #[rustfmt::skip]
    let gauges: [ShardGauge; 8] = [
        ("ringlet_shard_busy_seconds_total", "counter", "Time the shard thread spent running tasks or in non-blocking I/O calls.", |s| (s.uptime_seconds - s.idle_seconds).max(0.0)),
        ("ringlet_shard_idle_seconds_total", "counter", "Time the shard thread waited for I/O with nothing to run.", |s| s.idle_seconds),
        ("ringlet_shard_run_queue_depth", "gauge", "Tasks ready to run on the shard.", |s| s.run_queue_depth as f64),
        ("ringlet_shard_inbox_depth", "gauge", "Messages from other shards waiting (bounded at 4096).", |s| s.inbox_depth as f64),
        ("ringlet_io_ops_submitted_total", "counter", "I/O ops started on the shard's reactor (io_uring SQEs, or portable syscalls).", |s| s.ops_submitted as f64),
        ("ringlet_io_ops_completed_total", "counter", "I/O ops whose completion was reaped.", |s| s.ops_completed as f64),
        ("ringlet_io_ops_in_flight", "gauge", "I/O ops submitted and not yet completed.", |s| s.ops_in_flight as f64),
        ("ringlet_io_reactor_turns_total", "counter", "Reactor turns (io_uring_enter or poll calls).", |s| s.reactor_turns as f64),
    ];
    for (name, kind, help, f) in gauges {
        o.head(name, kind, help);
        for r in reports {
            o.line(name, &format!("shard=\"{}\"", r.shard), f(&r.engine));
        }
    }
    o.head(
        "ringlet_log_write_duration_seconds",
        "histogram",
        "Positioned log writes (one per group commit), submission to completion.",
    );
    for r in reports {
        o.histogram(
            "ringlet_log_write_duration_seconds",
            &format!("shard=\"{}\"", r.shard),
            &r.engine.log_write,
        );
    }
    o.head(
        "ringlet_log_flush_duration_seconds",
        "histogram",
        "fdatasync of log segments, submission to completion.",
    );
    for r in reports {
        o.histogram(
            "ringlet_log_flush_duration_seconds",
            &format!("shard=\"{}\"", r.shard),
            &r.engine.log_flush,
        );
    }
}

/// One series per partition.
fn render_partitions(o: &mut Out, parts: &[&PartitionReport]) {
    type PartGauge = (
        &'static str,
        &'static str,
        &'static str,
        fn(&PartitionReport) -> f64,
    );
    let pg: [PartGauge; 10] = [
        ("ringlet_partition_bytes_in_total", "counter", "Bytes of record batches appended.", |p| p.bytes_in as f64),
        ("ringlet_partition_records_in_total", "counter", "Records appended.", |p| p.records_in as f64),
        ("ringlet_partition_append_errors_total", "counter", "Appends refused or failed.", |p| p.append_errors as f64),
        ("ringlet_partition_bytes_out_total", "counter", "Bytes of log handed to fetches (zero-copy: records are not parsed, so records out are not counted; see consumer group lag).", |p| p.bytes_out as f64),
        ("ringlet_partition_fetch_reads_total", "counter", "Fetch reads that returned data.", |p| p.reads as f64),
        ("ringlet_partition_log_start_offset", "gauge", "First offset still in the log.", |p| p.log_start as f64),
        ("ringlet_partition_log_end_offset", "gauge", "Offset the next record will get.", |p| p.log_end as f64),
        ("ringlet_partition_high_watermark", "gauge", "Offset up to which consumers may read.", |p| p.high_watermark as f64),
        ("ringlet_partition_size_bytes", "gauge", "Bytes of log on disk.", |p| p.size_bytes as f64),
        ("ringlet_partition_segments", "gauge", "Segment files.", |p| p.segments as f64),
    ];
    for (name, kind, help, f) in pg {
        o.head(name, kind, help);
        for p in parts {
            let labels = format!(
                "topic=\"{}\",partition=\"{}\"",
                label(&p.topic),
                p.partition
            );
            o.line(name, &labels, f(p));
        }
    }
}

/// The log cleaner: per shard what it did, per compacted partition its dirty ratio.
fn render_cleaner(o: &mut Out, reports: &[ShardReport], parts: &[&PartitionReport]) {
    type CleanerGauge = (
        &'static str,
        &'static str,
        fn(&ringlet_engine::cleaner::CleanerStats) -> f64,
    );
    #[rustfmt::skip]
    let counters: [CleanerGauge; 8] = [
        ("ringlet_cleaner_runs_total", "Cleanings installed.", |s| s.runs as f64),
        ("ringlet_cleaner_aborted_total", "Cleanings dropped because the log changed meanwhile.", |s| s.aborted as f64),
        ("ringlet_cleaner_failures_total", "Cleanings that failed with an error.", |s| s.failures as f64),
        ("ringlet_cleaner_bytes_read_total", "Segment bytes the cleaner read.", |s| s.bytes_read as f64),
        ("ringlet_cleaner_bytes_written_total", "Cleaned segment bytes written.", |s| s.bytes_written as f64),
        ("ringlet_cleaner_records_removed_total", "Records compaction removed.", |s| s.records_removed as f64),
        ("ringlet_cleaner_seconds_total", "Time spent cleaning.", |s| s.time_ms as f64 / 1000.0),
        ("ringlet_cleaner_last_run_seconds", "Duration of the shard's last cleaning.", |s| s.last_run_ms as f64 / 1000.0),
    ];
    for (name, help, f) in counters {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        o.head(name, kind, help);
        for r in reports {
            o.line(name, &format!("shard=\"{}\"", r.shard), f(&r.cleaner));
        }
    }
    let name = "ringlet_partition_cleaner_dirty_ratio";
    o.head(name, "gauge", "Compacted partitions: share of non-active bytes not compacted yet (the cleaner runs at min.cleanable.dirty.ratio).");
    for p in parts {
        if let Some(r) = p.dirty_ratio {
            let labels = format!(
                "topic=\"{}\",partition=\"{}\"",
                label(&p.topic),
                p.partition
            );
            o.line(name, &labels, r);
        }
    }
}

/// Transactions: what the coordinators did, and per partition how far the last stable offset
/// trails the high watermark.
fn render_transactions(o: &mut Out, reports: &[ShardReport], parts: &[&PartitionReport]) {
    type TxnGauge = (
        &'static str,
        &'static str,
        fn(&crate::txn::TxnMetrics) -> u64,
    );
    #[rustfmt::skip]
    let shard: [TxnGauge; 4] = [
        ("ringlet_transactions_committed_total", "Transactions committed (markers written).", |m| m.committed),
        ("ringlet_transactions_aborted_total", "Transactions aborted (by the producer, a new instance, or a timeout).", |m| m.aborted),
        ("ringlet_transactions_timed_out_total", "Transactions the coordinator aborted at transaction.timeout.ms.", |m| m.timed_out),
        ("ringlet_transactions_ongoing", "Transactions open on this shard's coordinators.", |m| m.ongoing),
    ];
    for (name, help, f) in shard {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        o.head(name, kind, help);
        for r in reports {
            o.line(name, &format!("shard=\"{}\"", r.shard), f(&r.txn));
        }
    }
    type PartGauge = (&'static str, &'static str, fn(&PartitionReport) -> i64);
    #[rustfmt::skip]
    let per_part: [PartGauge; 2] = [
        ("ringlet_partition_last_stable_offset_lag", "High watermark minus last stable offset: what read_committed consumers cannot read yet.", |p| p.lso_lag),
        ("ringlet_partition_open_transactions", "Transactions with records in this partition and no marker yet.", |p| p.open_txns as i64),
    ];
    for (name, help, f) in per_part {
        o.head(name, "gauge", help);
        for p in parts.iter().filter(|p| p.open_txns > 0 || p.lso_lag > 0) {
            let labels = format!(
                "topic=\"{}\",partition=\"{}\"",
                label(&p.topic),
                p.partition
            );
            o.line(name, &labels, f(p));
        }
    }
}

/// Consumer groups: members, state, and lag against the high watermark (as
/// kafka-consumer-groups.sh shows it).
fn render_groups(o: &mut Out, reports: &[ShardReport], parts: &[&PartitionReport]) {
    // Consumer groups: lag against the high watermark, as kafka-consumer-groups.sh shows it.
    let hw: BTreeMap<(&str, i32), i64> = parts
        .iter()
        .map(|p| ((p.topic.as_str(), p.partition), p.high_watermark))
        .collect();
    let mut groups: Vec<&coordinator::GroupMetrics> =
        reports.iter().flat_map(|r| &r.groups).collect();
    groups.sort_by(|a, b| a.group.cmp(&b.group));
    o.head(
        "ringlet_group_members",
        "gauge",
        "Members of a consumer group.",
    );
    for g in &groups {
        o.line(
            "ringlet_group_members",
            &format!("group=\"{}\"", label(&g.group)),
            g.members,
        );
    }
    o.head(
        "ringlet_group_state",
        "gauge",
        "1 for the group's current state.",
    );
    for g in &groups {
        o.line(
            "ringlet_group_state",
            &format!("group=\"{}\",state=\"{}\"", label(&g.group), g.state),
            1,
        );
    }
    o.head(
        "ringlet_group_committed_offset",
        "gauge",
        "Committed offset of a group on a partition.",
    );
    o.head(
        "ringlet_group_lag",
        "gauge",
        "High watermark minus committed offset (records the group has yet to consume).",
    );
    let mut lag_lines = String::new();
    for g in &groups {
        for ((topic, partition), offset) in &g.offsets {
            let labels = format!(
                "group=\"{}\",topic=\"{}\",partition=\"{partition}\"",
                label(&g.group),
                label(topic)
            );
            o.line("ringlet_group_committed_offset", &labels, offset);
            if let Some(h) = hw.get(&(topic.as_str(), *partition)) {
                let _ = writeln!(
                    lag_lines,
                    "ringlet_group_lag{{{labels}}} {}",
                    (h - offset).max(0)
                );
            }
        }
    }
    o.0.push_str(&lag_lines);
}

/// Gathers a snapshot from every shard and renders it. Runs on a shard.
pub async fn render(broker: &Arc<Broker>) -> String {
    let mut reports = Vec::new();
    for shard in 0..runtime::shard_count() {
        match runtime::call_on(shard, || async { collect_local() }).await {
            Ok(r) => reports.push(r),
            Err(_) => tracing::warn!(shard, "shard did not answer a metrics scrape"),
        }
    }
    render_reports(broker, &reports)
}

/// Longest HTTP request head read from a scraper.
const MAX_HEAD: usize = 8192;
/// Scrapes served at once; more wait in the listen backlog.
const MAX_SCRAPES: usize = 8;

/// Serves `GET /metrics` on `listener` until the shard stops.
pub async fn serve(broker: Arc<Broker>, listener: socket2::Socket) {
    let active = std::rc::Rc::new(std::cell::Cell::new(0usize));
    loop {
        while active.get() >= MAX_SCRAPES {
            io::sleep(Duration::from_millis(5)).await;
        }
        let sock = match io::accept(listener.as_raw_fd()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed");
                io::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        active.set(active.get() + 1);
        let broker = broker.clone();
        let active = active.clone();
        runtime::spawn(async move {
            let read = Box::pin(read_head(&sock));
            let timeout = Box::pin(io::sleep(Duration::from_secs(10)));
            if let futures_util::future::Either::Left((Some(head), _)) =
                futures_util::future::select(read, timeout).await
            {
                respond(&broker, &sock, &head).await;
            }
            active.set(active.get() - 1);
        })
        .detach();
    }
}

async fn read_head(sock: &OwnedFd) -> Option<String> {
    let mut buf: Vec<u8> = Vec::with_capacity(MAX_HEAD);
    loop {
        let (res, b) = io::recv(sock.as_raw_fd(), buf).await;
        buf = b;
        match res {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            return Some(String::from_utf8_lossy(&buf).into_owned());
        }
        if buf.len() >= MAX_HEAD {
            return None;
        }
    }
}

async fn respond(broker: &Arc<Broker>, sock: &OwnedFd, head: &str) {
    let mut words = head.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (status, body, kind) = match (method, path.split('?').next().unwrap_or("")) {
        ("GET", "/metrics") => (
            "200 OK",
            render(broker).await,
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        ("GET", "/") => (
            "200 OK",
            "Ringlet broker. Metrics: /metrics\n".to_string(),
            "text/plain; charset=utf-8",
        ),
        ("GET", _) => (
            "404 Not Found",
            "not found; try /metrics\n".to_string(),
            "text/plain; charset=utf-8",
        ),
        _ => (
            "405 Method Not Allowed",
            "only GET\n".to_string(),
            "text/plain; charset=utf-8",
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if let Err(e) = io::write_all(sock.as_raw_fd(), vec![bytes::Bytes::from(response)], None).await
    {
        tracing::debug!(error = %e, "metrics response write failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn produce_errors_are_counted_per_partition() {
        use kafka_protocol::messages::produce_response::*;
        let resp = ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
            .with_partition_responses(vec![
                PartitionProduceResponse::default().with_error_code(0),
                PartitionProduceResponse::default().with_error_code(3),
                PartitionProduceResponse::default().with_error_code(3),
            ])]);
        let mut seen = Vec::new();
        resp.error_codes(&mut |c| seen.push(c));
        assert_eq!(seen, vec![0, 3, 3]);
    }

    #[test]
    fn histogram_renders_cumulative_buckets() {
        let mut h = Histogram::default();
        h.record(Duration::from_micros(10));
        h.record(Duration::from_micros(300));
        let mut o = Out(String::new());
        o.histogram("x", "api=\"Produce\"", &h);
        assert!(o
            .0
            .contains("x_bucket{api=\"Produce\",le=\"0.000025\"} 1\n"));
        assert!(o.0.contains("x_bucket{api=\"Produce\",le=\"0.0005\"} 2\n"));
        assert!(o.0.contains("x_bucket{api=\"Produce\",le=\"+Inf\"} 2\n"));
        assert!(o.0.contains("x_count{api=\"Produce\"} 2\n"));
        assert_eq!(label("a\"b\\c"), "a\\\"b\\\\c");
    }
}
