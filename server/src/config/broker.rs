//! The broker's settings other than listeners: identity, I/O, network limits, log defaults,
//! groups and the cluster.

use super::listeners::{listener_specs, parse_endpoints, Listener, ListenerSpec};
use super::{invalid, parse_bool, parse_num, ConfigError};
use ringlet_engine::cleaner::CleanerConfig;
use ringlet_engine::runtime::BackendChoice;
use ringlet_engine::LogConfig;
use ringlet_format::batch::TimestampType;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Multi-broker settings (used only with `zookeeper.connect`).
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub zookeeper_connect: Option<String>,
    pub zookeeper_session_timeout_ms: u64,
    pub zookeeper_connection_timeout_ms: Option<u64>,
    pub broker_rack: Option<String>,
    pub min_insync_replicas: i32,
    pub replica_lag_time_max_ms: u64,
    pub replica_socket_timeout_ms: u64,
    pub replica_fetch_wait_max_ms: u64,
    pub replica_fetch_min_bytes: i32,
    pub replica_fetch_max_bytes: i32,
    pub replica_fetch_backoff_ms: u64,
    pub replica_high_watermark_checkpoint_interval_ms: u64,
    pub controlled_shutdown_enable: bool,
    pub controlled_shutdown_max_retries: u32,
    pub controlled_shutdown_retry_backoff_ms: u64,
    pub inter_broker_listener_name: Option<String>,
    pub offsets_topic_replication_factor: i16,
    /// `auto.leader.rebalance.enable`: the controller moves leadership back to preferred
    /// replicas when a broker's share of them led elsewhere passes
    /// `leader.imbalance.per.broker.percentage`, every `leader.imbalance.check.interval.seconds`.
    pub auto_leader_rebalance_enable: bool,
    pub leader_imbalance_per_broker_percentage: u32,
    pub leader_imbalance_check_interval_seconds: u64,
    /// Replication throttles (KIP-73, bytes/s; `Long.MAX_VALUE`: none), usually set dynamically
    /// by `kafka-reassign-partitions --throttle`.
    pub leader_replication_throttled_rate: u64,
    pub follower_replication_throttled_rate: u64,
    /// `unclean.leader.election.enable`: a partition whose in-sync replicas are all gone is led
    /// by a live out-of-sync replica (losing what only the ISR had) rather than staying offline.
    /// A topic's own config, then the dynamic broker configs, override it.
    pub unclean_leader_election_enable: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            zookeeper_connect: None,
            zookeeper_session_timeout_ms: 18_000,
            zookeeper_connection_timeout_ms: None,
            broker_rack: None,
            min_insync_replicas: 1,
            replica_lag_time_max_ms: 30_000,
            replica_socket_timeout_ms: 30_000,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_min_bytes: 1,
            replica_fetch_max_bytes: 1_048_576,
            replica_fetch_backoff_ms: 1000,
            replica_high_watermark_checkpoint_interval_ms: 5000,
            controlled_shutdown_enable: true,
            controlled_shutdown_max_retries: 3,
            controlled_shutdown_retry_backoff_ms: 5000,
            inter_broker_listener_name: None,
            offsets_topic_replication_factor: 3,
            auto_leader_rebalance_enable: true,
            leader_imbalance_per_broker_percentage: 10,
            leader_imbalance_check_interval_seconds: 300,
            leader_replication_throttled_rate: i64::MAX as u64,
            follower_replication_throttled_rate: i64::MAX as u64,
            unclean_leader_election_enable: false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct BrokerConfig {
    pub broker_id: i32,
    pub listener: Listener,
    pub advertised: Listener,
    /// Every listener (the first is `listener`/`advertised`).
    pub listeners: Vec<ListenerSpec>,
    pub connections_max_reauth_ms: u64,
    pub connection_failed_authentication_delay_ms: u64,
    pub authorizer_enabled: bool,
    pub super_users: Vec<String>,
    pub allow_everyone_if_no_acl_found: bool,
    pub log_dirs: Vec<PathBuf>,
    pub num_io_threads: usize,
    pub backend: BackendChoice,
    pub inline_file_writes: bool,
    pub fetch_zero_copy: bool,
    pub fetch_send_zc: bool,
    /// Where to serve Prometheus metrics (`ringlet.metrics.listener`), if anywhere.
    pub metrics_listener: Option<Listener>,
    pub socket_send_buffer_bytes: i32,
    pub socket_receive_buffer_bytes: i32,
    pub socket_request_max_bytes: usize,
    pub queued_max_requests: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Client quotas are measured over `quota_window_num` windows of this many seconds.
    pub quota_window_num: usize,
    pub quota_window_size_seconds: u64,
    pub max_connections_per_ip_overrides: BTreeMap<std::net::IpAddr, usize>,
    pub connections_max_idle_ms: u64,
    pub fetch_max_bytes: usize,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    pub delete_topic_enable: bool,
    pub log_retention_check_interval_ms: u64,
    pub log_flush_scheduler_interval_ms: u64,
    pub offsets_topic_num_partitions: i32,
    pub offsets_retention_minutes: i64,
    pub group_initial_rebalance_delay_ms: u64,
    pub offset_metadata_max_bytes: usize,
    pub group_min_session_timeout_ms: i32,
    pub group_max_session_timeout_ms: i32,
    /// `max.request.partition.size.limit`: most partitions one DescribeTopicPartitions answer holds.
    pub max_request_partition_size_limit: i32,
    /// `compression.type`: the default of every topic's (`producer` keeps batches as produced).
    pub compression_type: String,
    /// `compression.gzip.level`, `compression.lz4.level`, `compression.zstd.level`.
    pub compression_gzip_level: i32,
    pub compression_lz4_level: i32,
    pub compression_zstd_level: i32,
    pub log: LogConfig,
    /// `log.cleaner.*`: the log cleaner of compacted topics.
    pub cleaner: CleanerConfig,
    pub cluster: ClusterConfig,
    /// `transaction.*`: the transaction coordinator.
    pub transactions: super::TransactionConfig,
    /// KIP-848 consumer groups (`group.consumer.*`).
    pub consumer_groups: super::ConsumerGroupConfig,
    /// KIP-932 share groups (`group.share.*`, `share.version`).
    pub share_groups: super::ShareGroupConfig,
    /// The properties as given (file, then overrides), for DescribeConfigs on the broker.
    pub properties: BTreeMap<String, String>,
}

/// Parses `ringlet.io.fault.injection`: comma-separated `name=value` pairs.
fn parse_faults(
    key: &str,
    value: &str,
) -> Result<ringlet_engine::runtime::FaultConfig, ConfigError> {
    let mut f = ringlet_engine::runtime::FaultConfig::default();
    let allowed =
        "write.error.ppm=N, fsync.error.ppm=N, metadata.error.ppm=N, errno=EIO|ENOSPC, torn.writes=true|false, seed=N";
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| invalid(key, value, allowed))?;
        match k.trim() {
            "write.error.ppm" => f.write_error_ppm = parse_num(key, v.trim(), 0, 1_000_000)?,
            "fsync.error.ppm" => f.fsync_error_ppm = parse_num(key, v.trim(), 0, 1_000_000)?,
            "metadata.error.ppm" => f.metadata_error_ppm = parse_num(key, v.trim(), 0, 1_000_000)?,
            "seed" => f.seed = parse_num(key, v.trim(), 0, u64::MAX)?,
            "torn.writes" => f.torn_writes = parse_bool(key, v.trim())?,
            "errno" => {
                f.errno = match v.trim() {
                    "EIO" => libc::EIO,
                    "ENOSPC" => libc::ENOSPC,
                    _ => return Err(invalid(key, value, allowed)),
                }
            }
            _ => return Err(invalid(key, value, allowed)),
        }
    }
    Ok(f)
}

impl BrokerConfig {
    /// Builds the configuration from properties; returns it and the unknown keys seen.
    pub fn from_properties(
        props: &BTreeMap<String, String>,
    ) -> Result<(BrokerConfig, Vec<String>), ConfigError> {
        let mut c = BrokerConfig::defaults(props);
        let mut unknown = Vec::new();
        let mut endpoints = None;
        for (k, v) in props {
            let (k, v) = (k.as_str(), v.as_str());
            match k {
                "broker.id" => c.broker_id = parse_num(k, v, -1, i32::MAX)?,
                "listeners" => endpoints = Some(parse_endpoints(k, v)?),
                _ => {
                    let known = apply_security(&mut c, k, v)?
                        || apply_server(&mut c, k, v)?
                        || apply_log(&mut c, k, v)?
                        || apply_cleaner(&mut c, k, v)?
                        || apply_groups(&mut c, k, v)?
                        || super::transactions::apply(&mut c.transactions, k, v)?
                        || super::consumer_groups::apply(&mut c.consumer_groups, k, v)?
                        || super::share_groups::apply(&mut c.share_groups, k, v)?
                        || apply_cluster(&mut c, k, v)?;
                    if !known {
                        unknown.push(k.to_string());
                    }
                }
            }
        }
        c.apply_derived(props, endpoints)?;
        Ok((c, unknown))
    }

    /// Kafka's defaults.
    fn defaults(props: &BTreeMap<String, String>) -> BrokerConfig {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        BrokerConfig {
            broker_id: 0,
            listener: Listener {
                host: String::new(),
                port: 9092,
            },
            advertised: Listener {
                host: String::new(),
                port: 9092,
            },
            listeners: Vec::new(),
            connections_max_reauth_ms: 0,
            connection_failed_authentication_delay_ms: 100,
            authorizer_enabled: false,
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: false,
            log_dirs: vec![PathBuf::from("./ringlet-data")],
            num_io_threads: cores,
            backend: BackendChoice::Auto,
            inline_file_writes: true,
            fetch_zero_copy: true,
            fetch_send_zc: false,
            metrics_listener: None,

            socket_send_buffer_bytes: 102_400,
            socket_receive_buffer_bytes: -1,
            socket_request_max_bytes: 104_857_600,
            queued_max_requests: 500,
            max_connections: i32::MAX as usize,
            max_connections_per_ip: i32::MAX as usize,
            quota_window_num: 11,
            quota_window_size_seconds: 1,
            max_connections_per_ip_overrides: BTreeMap::new(),
            connections_max_idle_ms: 600_000,
            fetch_max_bytes: 57_671_680,
            num_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics_enable: true,
            delete_topic_enable: true,
            log_retention_check_interval_ms: 300_000,
            log_flush_scheduler_interval_ms: 1000,
            offsets_topic_num_partitions: 50,
            offsets_retention_minutes: 10080,
            group_initial_rebalance_delay_ms: 3000,
            offset_metadata_max_bytes: 4096,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            max_request_partition_size_limit: 2000,
            compression_type: "producer".into(),
            compression_gzip_level: -1,
            compression_lz4_level: 9,
            compression_zstd_level: 3,
            log: LogConfig::default(),
            cleaner: CleanerConfig::default(),
            cluster: ClusterConfig::default(),
            transactions: Default::default(),
            consumer_groups: Default::default(),
            share_groups: Default::default(),
            properties: props.clone(),
        }
    }

    /// What depends on several keys: listeners, log directories, and the durations Kafka takes
    /// in several units (ms over minutes over hours).
    fn apply_derived(
        &mut self,
        props: &BTreeMap<String, String>,
        endpoints: Option<Vec<(String, Listener)>>,
    ) -> Result<(), ConfigError> {
        let c = self;
        super::consumer_groups::validate(&c.consumer_groups)?;
        super::share_groups::validate(&c.share_groups)?;
        let get = |k: &str| props.get(k).map(String::as_str);
        let endpoints = match endpoints {
            Some(e) => e,
            None => {
                let port = match get("port") {
                    Some(p) => parse_num("port", p, 0, u16::MAX)?,
                    None => 9092,
                };
                vec![(
                    "PLAINTEXT".to_string(),
                    Listener {
                        host: String::new(),
                        port,
                    },
                )]
            }
        };
        c.listeners = listener_specs(props, endpoints)?;
        if let Some(d) = get("log.dirs").or_else(|| get("log.dir")) {
            let dirs: Vec<PathBuf> = d
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect();
            if dirs.is_empty() {
                return Err(invalid(
                    "log.dirs",
                    d,
                    "one or more comma-separated directories",
                ));
            }
            c.log_dirs = dirs;
        }
        if let Some(v) = get("log.roll.ms") {
            c.log.segment_ms = parse_num("log.roll.ms", v, 1, i64::MAX)?;
        } else if let Some(v) = get("log.roll.hours") {
            c.log.segment_ms = parse_num("log.roll.hours", v, 1, i64::MAX / 3_600_000)? * 3_600_000;
        }
        if let Some(v) = get("log.retention.ms") {
            c.log.retention_ms = parse_num("log.retention.ms", v, -1, i64::MAX)?;
        } else if let Some(v) = get("log.retention.minutes") {
            c.log.retention_ms = parse_num("log.retention.minutes", v, -1, i64::MAX / 60_000)?
                .max(-1)
                * if v.trim() == "-1" { 1 } else { 60_000 };
        } else if let Some(v) = get("log.retention.hours") {
            c.log.retention_ms = parse_num("log.retention.hours", v, -1, i64::MAX / 3_600_000)?
                * if v.trim() == "-1" { 1 } else { 3_600_000 };
        }
        c.listener = c.listeners[0].listener.clone();
        c.advertised = c.listeners[0].advertised.clone();
        Ok(())
    }
}

/// Authentication and authorization keys (listener security is read by `listeners`). Returns whether `k` is one of them.
fn apply_security(c: &mut BrokerConfig, k: &str, v: &str) -> Result<bool, ConfigError> {
    match k {
        "port" | "advertised.listeners" | "listener.security.protocol.map" => {}
        "ssl.keystore.type"
        | "ssl.keystore.location"
        | "ssl.keystore.certificate.chain"
        | "ssl.keystore.key"
        | "ssl.key.password"
        | "ssl.truststore.type"
        | "ssl.truststore.location"
        | "ssl.truststore.certificates"
        | "ssl.client.auth"
        | "ssl.enabled.protocols"
        | "ssl.principal.mapping.rules"
        | "sasl.enabled.mechanisms"
        | "sasl.jaas.config"
        | "ssl.endpoint.identification.algorithm"
        | "sasl.mechanism.inter.broker.protocol" => {}
        "security.inter.broker.protocol" => {
            if super::SecurityProtocol::parse(v.trim()).is_none() {
                return Err(invalid(k, v, "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"));
            }
        }
        _ if k.starts_with("listener.name.") => {}
        "connections.max.reauth.ms" => {
            c.connections_max_reauth_ms = parse_num(k, v, 0, i64::MAX as u64)?
        }
        "connection.failed.authentication.delay.ms" => {
            c.connection_failed_authentication_delay_ms = parse_num(k, v, 0, 60_000)?
        }
        "authorizer.class.name" => c.authorizer_enabled = !v.trim().is_empty(),
        "super.users" => {
            c.super_users = v
                .split(';')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(String::from)
                .collect();
            if let Some(bad) = c.super_users.iter().find(|u| !u.contains(':')) {
                return Err(invalid(
                    k,
                    bad,
                    "principals as Type:name separated by ';', e.g. User:admin;User:ops",
                ));
            }
        }
        "allow.everyone.if.no.acl.found" => c.allow_everyone_if_no_acl_found = parse_bool(k, v)?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// I/O, metrics, sockets, connection limits and fetch sizes. Returns whether `k` is one of them.
fn apply_server(c: &mut BrokerConfig, k: &str, v: &str) -> Result<bool, ConfigError> {
    match k {
        "log.dirs" | "log.dir" => {}
        "num.io.threads" => c.num_io_threads = parse_num(k, v, 1, 1024)?,
        "ringlet.io.backend" => {
            c.backend = match v {
                "auto" => BackendChoice::Auto,
                "uring" => BackendChoice::Uring,
                "portable" => BackendChoice::Portable(None),
                _ => return Err(invalid(k, v, "auto, uring or portable")),
            }
        }
        "ringlet.io.inline.file.writes" => c.inline_file_writes = parse_bool(k, v)?,
        "ringlet.io.fault.injection" if !v.is_empty() => {
            c.backend = BackendChoice::Portable(Some(parse_faults(k, v)?));
        }
        "ringlet.io.fault.injection" => {}
        "ringlet.fetch.zero.copy" => c.fetch_zero_copy = parse_bool(k, v)?,
        "ringlet.fetch.send.zc" => c.fetch_send_zc = parse_bool(k, v)?,
        "ringlet.metrics.listener" => {
            c.metrics_listener = if v.is_empty() {
                None
            } else {
                let (host, port) = v
                    .rsplit_once(':')
                    .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
                    .ok_or_else(|| invalid(k, v, "host:port, or empty for off"))?;
                Some(Listener {
                    host: host.to_string(),
                    port,
                })
            }
        }
        "message.max.bytes" => c.log.max_message_bytes = parse_num(k, v, 0, i32::MAX as usize)?,
        "socket.send.buffer.bytes" => c.socket_send_buffer_bytes = parse_num(k, v, -1, i32::MAX)?,
        "socket.receive.buffer.bytes" => {
            c.socket_receive_buffer_bytes = parse_num(k, v, -1, i32::MAX)?
        }
        "socket.request.max.bytes" => {
            c.socket_request_max_bytes = parse_num(k, v, 1, i32::MAX as usize)?
        }
        "queued.max.requests" => c.queued_max_requests = parse_num(k, v, 1, i32::MAX as usize)?,
        "max.connections" => c.max_connections = parse_num(k, v, 0, i32::MAX as usize)?,
        "max.connections.per.ip" => {
            c.max_connections_per_ip = parse_num(k, v, 0, i32::MAX as usize)?
        }
        "quota.window.num" => c.quota_window_num = parse_num(k, v, 2, 1000)?,
        "quota.window.size.seconds" => c.quota_window_size_seconds = parse_num(k, v, 1, 3600)?,
        "max.connections.per.ip.overrides" => {
            c.max_connections_per_ip_overrides.clear();
            for entry in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let parsed = entry
                    .rsplit_once(':')
                    .and_then(|(ip, n)| Some((ip.trim().parse().ok()?, n.trim().parse().ok()?)));
                let (ip, n) = parsed.ok_or_else(|| invalid(k, v, "IP:count,IP:count"))?;
                c.max_connections_per_ip_overrides.insert(ip, n);
            }
        }
        "connections.max.idle.ms" => {
            c.connections_max_idle_ms = parse_num(k, v, 1, i64::MAX as u64)?
        }
        "fetch.max.bytes" => c.fetch_max_bytes = parse_num(k, v, 1024, i32::MAX as usize)?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// Topic defaults and the log's defaults. Returns whether `k` is one of them.
fn apply_log(c: &mut BrokerConfig, k: &str, v: &str) -> Result<bool, ConfigError> {
    match k {
        "num.partitions" => c.num_partitions = parse_num(k, v, 1, 100_000)?,
        "default.replication.factor" => {
            c.default_replication_factor = parse_num(k, v, 1, i16::MAX)?;
        }
        "auto.create.topics.enable" => c.auto_create_topics_enable = parse_bool(k, v)?,
        "delete.topic.enable" => c.delete_topic_enable = parse_bool(k, v)?,
        "log.segment.bytes" => c.log.segment_bytes = parse_num(k, v, 14, i32::MAX as u64)?,
        "log.roll.ms" | "log.roll.hours" => {}
        "log.index.interval.bytes" => {
            c.log.index_interval_bytes = parse_num(k, v, 0, i32::MAX as usize)?
        }
        "log.index.size.max.bytes" => {
            c.log.segment_index_bytes = parse_num(k, v, 8, i32::MAX as usize)?
        }
        "log.retention.ms" | "log.retention.minutes" | "log.retention.hours" => {}
        "log.retention.bytes" => c.log.retention_bytes = parse_num(k, v, -1, i64::MAX)?,
        "log.retention.check.interval.ms" => {
            c.log_retention_check_interval_ms = parse_num(k, v, 1, u64::MAX)?
        }
        "log.flush.interval.messages" => {
            c.log.flush_interval_messages = parse_num(k, v, 1, u64::MAX)?
        }
        "log.flush.interval.ms" => c.log.flush_interval_ms = parse_num(k, v, 0, i64::MAX)?,
        "log.flush.scheduler.interval.ms" => {
            c.log_flush_scheduler_interval_ms = parse_num(k, v, 1, u64::MAX)?
        }
        "ringlet.log.writeback.bytes" => c.log.writeback_bytes = parse_num(k, v, 0, u64::MAX)?,
        "ringlet.log.direct.io" => c.log.direct_io = parse_bool(k, v)?,
        "log.preallocate" => c.log.preallocate = parse_bool(k, v)?,
        "ringlet.log.read.ahead.bytes" => c.log.read_ahead_bytes = parse_num(k, v, 0, 1 << 30)?,
        "ringlet.log.tail.cache.bytes" => {
            c.log.tail_cache_bytes = parse_num(k, v, 0, u64::MAX / 2)?
        }
        "log.message.timestamp.before.max.ms" => {
            c.log.timestamp_before_max_ms = parse_num(k, v, 0, i64::MAX)?
        }
        "log.message.timestamp.after.max.ms" => {
            c.log.timestamp_after_max_ms = parse_num(k, v, 0, i64::MAX)?
        }
        "log.message.timestamp.type" => {
            c.log.timestamp_type = match v {
                "CreateTime" => TimestampType::CreateTime,
                "LogAppendTime" => TimestampType::LogAppendTime,
                _ => return Err(invalid(k, v, "CreateTime or LogAppendTime")),
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// `log.cleanup.policy` and the log cleaner's keys. Returns whether `k` is one of them.
fn apply_cleaner(c: &mut BrokerConfig, k: &str, v: &str) -> Result<bool, ConfigError> {
    let double = |min: f64, max: f64| -> Result<f64, ConfigError> {
        v.trim()
            .parse::<f64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| invalid(k, v, &format!("a number from {min} to {max}")))
    };
    match k {
        "log.cleanup.policy" => {
            (c.log.delete, c.log.compact) = super::topic::cleanup_policy(v)
                .map_err(|_| invalid(k, v, "delete, compact or both"))?
        }
        "log.cleaner.enable" => c.cleaner.enable = parse_bool(k, v)?,
        "log.cleaner.threads" => c.cleaner.threads = parse_num(k, v, 0, 1024)?,
        "log.cleaner.dedupe.buffer.size" => {
            c.cleaner.dedupe_buffer_size = parse_num(k, v, 1 << 20, u64::MAX)?
        }
        "log.cleaner.io.buffer.size" => c.cleaner.io_buffer_size = parse_num(k, v, 512, 1 << 30)?,
        "log.cleaner.io.max.bytes.per.second" => {
            c.cleaner.io_max_bytes_per_second = double(1.0, f64::MAX)?
        }
        "log.cleaner.backoff.ms" => {
            c.cleaner.backoff = std::time::Duration::from_millis(parse_num(k, v, 0, u64::MAX)?)
        }
        "log.cleaner.min.cleanable.ratio" => c.log.min_cleanable_dirty_ratio = double(0.0, 1.0)?,
        "log.cleaner.delete.retention.ms" => {
            c.log.delete_retention_ms = parse_num(k, v, 0, i64::MAX)?
        }
        "log.cleaner.min.compaction.lag.ms" => {
            c.log.min_compaction_lag_ms = parse_num(k, v, 0, i64::MAX)?
        }
        "log.cleaner.max.compaction.lag.ms" => {
            c.log.max_compaction_lag_ms = parse_num(k, v, 1, i64::MAX)?
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// The group coordinator's keys. Returns whether `k` is one of them.
fn apply_groups(c: &mut BrokerConfig, k: &str, v: &str) -> Result<bool, ConfigError> {
    match k {
        "offsets.topic.num.partitions" => {
            c.offsets_topic_num_partitions = parse_num(k, v, 1, 10_000)?
        }
        "offsets.retention.minutes" => {
            c.offsets_retention_minutes = parse_num(k, v, 1, i64::MAX / 60_000)?
        }
        "group.initial.rebalance.delay.ms" => {
            c.group_initial_rebalance_delay_ms = parse_num(k, v, 0, 3_600_000)?
        }
        "offset.metadata.max.bytes" => {
            c.offset_metadata_max_bytes = parse_num(k, v, 0, i32::MAX as usize)?
        }
        "group.min.session.timeout.ms" => {
            c.group_min_session_timeout_ms = parse_num(k, v, 1, i32::MAX)?
        }
        "group.max.session.timeout.ms" => {
            c.group_max_session_timeout_ms = parse_num(k, v, 1, i32::MAX)?
        }
        "compression.type" => {
            if crate::config::topic::compression_codec(v).is_err() {
                return Err(invalid(
                    k,
                    v,
                    "uncompressed, zstd, lz4, snappy, gzip or producer",
                ));
            }
            c.compression_type = v.to_string()
        }
        "compression.gzip.level" | "compression.lz4.level" | "compression.zstd.level" => {
            let n = crate::config::topic::compression_level(k, v)
                .map_err(|_| invalid(k, v, "a level in Kafka's range for the codec"))?;
            match k {
                "compression.gzip.level" => c.compression_gzip_level = n,
                "compression.lz4.level" => c.compression_lz4_level = n,
                _ => c.compression_zstd_level = n,
            }
        }
        "max.request.partition.size.limit" => {
            c.max_request_partition_size_limit = parse_num(k, v, 1, i32::MAX)?
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Multi-broker keys (ZooKeeper, replication, controlled shutdown). Returns whether `k` is one of them.
fn apply_cluster(c: &mut BrokerConfig, k: &str, v: &str) -> Result<bool, ConfigError> {
    match k {
        "zookeeper.connect" => {
            let v = v.trim();
            if !v.is_empty() {
                c.cluster.zookeeper_connect = Some(v.to_string());
            }
        }
        "zookeeper.session.timeout.ms" => {
            c.cluster.zookeeper_session_timeout_ms = parse_num(k, v, 100, 600_000)?
        }
        "zookeeper.connection.timeout.ms" => {
            c.cluster.zookeeper_connection_timeout_ms = Some(parse_num(k, v, 100, 600_000)?)
        }
        "broker.rack" => c.cluster.broker_rack = Some(v.to_string()),
        "min.insync.replicas" => c.cluster.min_insync_replicas = parse_num(k, v, 1, 1000)?,
        "unclean.leader.election.enable" => {
            c.cluster.unclean_leader_election_enable = parse_bool(k, v)?
        }
        "replica.lag.time.max.ms" => {
            c.cluster.replica_lag_time_max_ms = parse_num(k, v, 10, u64::MAX / 2)?
        }
        "replica.socket.timeout.ms" => {
            c.cluster.replica_socket_timeout_ms = parse_num(k, v, 10, u64::MAX / 2)?
        }
        "replica.fetch.wait.max.ms" => {
            c.cluster.replica_fetch_wait_max_ms = parse_num(k, v, 0, 600_000)?
        }
        "replica.fetch.min.bytes" => {
            c.cluster.replica_fetch_min_bytes = parse_num(k, v, 1, i32::MAX)?
        }
        "replica.fetch.max.bytes" => {
            c.cluster.replica_fetch_max_bytes = parse_num(k, v, 1024, i32::MAX)?
        }
        "replica.fetch.backoff.ms" => {
            c.cluster.replica_fetch_backoff_ms = parse_num(k, v, 0, 600_000)?
        }
        "num.replica.fetchers" => {
            let _: u32 = parse_num(k, v, 1, 1024)?;
        }
        "replica.high.watermark.checkpoint.interval.ms" => {
            c.cluster.replica_high_watermark_checkpoint_interval_ms =
                parse_num(k, v, 10, u64::MAX / 2)?
        }
        "controlled.shutdown.enable" => c.cluster.controlled_shutdown_enable = parse_bool(k, v)?,
        "auto.leader.rebalance.enable" => {
            c.cluster.auto_leader_rebalance_enable = parse_bool(k, v)?
        }
        "leader.imbalance.per.broker.percentage" => {
            c.cluster.leader_imbalance_per_broker_percentage = parse_num(k, v, 0, 100)?
        }
        "leader.imbalance.check.interval.seconds" => {
            c.cluster.leader_imbalance_check_interval_seconds = parse_num(k, v, 1, 86_400 * 365)?
        }
        "leader.replication.throttled.rate" => {
            c.cluster.leader_replication_throttled_rate = parse_num(k, v, 0, i64::MAX as u64)?
        }
        "follower.replication.throttled.rate" => {
            c.cluster.follower_replication_throttled_rate = parse_num(k, v, 0, i64::MAX as u64)?
        }
        "controlled.shutdown.max.retries" => {
            c.cluster.controlled_shutdown_max_retries = parse_num(k, v, 0, 1000)?
        }
        "controlled.shutdown.retry.backoff.ms" => {
            c.cluster.controlled_shutdown_retry_backoff_ms = parse_num(k, v, 0, 600_000)?
        }
        "inter.broker.listener.name" => {
            c.cluster.inter_broker_listener_name = Some(v.trim().to_string())
        }
        "offsets.topic.replication.factor" => {
            c.cluster.offsets_topic_replication_factor = parse_num(k, v, 1, i16::MAX)?
        }
        _ => return Ok(false),
    }
    Ok(true)
}
