//! Broker configuration: Kafka's `server.properties` keys, their defaults, and validation.
//!
//! `ringlet serve [server.properties] [--override key=value]...` reads the file (if any), then the
//! overrides. Unknown keys are logged and ignored; a value that does not parse or is out of range
//! stops start-up with the key, the value and what is allowed.

use ringlet_engine::batch::TimestampType;
use ringlet_engine::runtime::BackendChoice;
use ringlet_engine::LogConfig;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid value {value:?} for {key}: {allowed}")]
    Invalid {
        key: String,
        value: String,
        allowed: String,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed line {line} in {path}: {text:?} (expected key=value)")]
    Malformed {
        path: PathBuf,
        line: usize,
        text: String,
    },
}

/// Every key Ringlet reads, with its default (as Kafka writes it) and meaning. The order is the
/// order of `docs/configuration.md`.
pub const KEYS: &[(&str, &str, &str)] = &[
    ("broker.id", "0", "Unique id of this broker."),
    ("listeners", "PLAINTEXT://:9092", "Where to listen: PLAINTEXT://host:port (empty host = all interfaces)."),
    ("port", "9092", "Old form of the listener port; used when `listeners` is not set."),
    ("advertised.listeners", "(listeners)", "Address given to clients in Metadata; defaults to the listener, with `localhost` when the listener host is empty or 0.0.0.0."),
    ("log.dirs", "./ringlet-data", "Comma-separated data directories; a new partition goes to the one holding fewest partitions."),
    ("log.dir", "./ringlet-data", "Single data directory, used when `log.dirs` is not set."),
    ("num.io.threads", "(number of cores)", "Number of shards: one thread per core, each with its own io_uring."),
    ("ringlet.io.backend", "auto", "I/O backend: auto (io_uring when the kernel allows it), uring, or portable."),
    ("ringlet.io.inline.file.writes", "true", "On io_uring, write log data inline (RWF_NOWAIT first) instead of through the ring; faster where the filesystem lacks async buffered writes (see docs/adr/0001-runtime.md)."),
    ("ringlet.io.fault.injection", "", "For tests only: inject storage faults through the portable backend (which it forces), e.g. `write.error.ppm=1000,fsync.error.ppm=0,errno=ENOSPC,torn.writes=true,seed=7`; empty: off."),
    ("ringlet.metrics.listener", "", "host:port of the Prometheus metrics endpoint (GET /metrics over HTTP); empty: off. See docs/operations.md."),
    ("ringlet.fetch.send.zc", "false", "With ringlet.fetch.zero.copy=false: send fetched record buffers with io_uring SEND_ZC (MSG_ZEROCOPY) instead of a copying send. Measured slower than splice and than a plain send here (docs/adr/0005-fetch-send-path.md); kept for NICs where it may pay."),
    ("ringlet.fetch.zero.copy", "true", "Send fetched records from segment files to sockets with splice (no copy through user space); false reads them into a buffer and sends it (see docs/benchmarks.md)."),
    ("message.max.bytes", "1048588", "Largest record batch the broker accepts."),
    ("socket.send.buffer.bytes", "102400", "SO_SNDBUF of client sockets (-1: the OS default)."),
    ("socket.receive.buffer.bytes", "-1", "SO_RCVBUF of client sockets (-1: the OS default, with receive autotuning; Kafka's default is 102400, which caps produce throughput: see docs/adr/0004-socket-buffers.md)."),
    ("socket.request.max.bytes", "104857600", "Largest request frame; a larger frame closes the connection."),
    ("queued.max.requests", "500", "Requests being processed across the broker before connections stop reading."),
    ("max.connections", "2147483647", "Connections accepted at once; more are closed at accept."),
    ("max.connections.per.ip", "2147483647", "Connections accepted at once from one IP address; more are closed at accept."),
    ("max.connections.per.ip.overrides", "", "Per-IP exceptions to `max.connections.per.ip`, as `IP:count,IP:count` (IP literals)."),
    ("connections.max.idle.ms", "600000", "Close a connection idle this long between requests, or that takes this long to send one request (slow clients, slow-loris)."),
    ("fetch.max.bytes", "57671680", "Most record bytes one Fetch response carries, whatever the request asks (the first batch always goes whole)."),
    ("num.partitions", "1", "Partitions of an auto-created topic or one created without a count."),
    ("default.replication.factor", "1", "Replication factor of auto-created topics (only 1 until replication lands)."),
    ("auto.create.topics.enable", "true", "Create a topic when a client asks for metadata of or produces to an unknown one."),
    ("delete.topic.enable", "true", "Allow DeleteTopics."),
    ("log.segment.bytes", "1073741824", "Roll a segment when it would exceed this size."),
    ("log.roll.ms", "604800000", "Roll a non-empty segment this old (also `log.roll.hours`, default 168)."),
    ("log.roll.hours", "168", "See `log.roll.ms`."),
    ("log.index.interval.bytes", "4096", "Bytes of log between offset index entries."),
    ("log.index.size.max.bytes", "10485760", "Roll when a segment's offset index reaches this size."),
    ("log.retention.ms", "604800000", "Delete segments whose newest record is older than this; -1 keeps forever (also `log.retention.minutes`, `log.retention.hours`)."),
    ("log.retention.minutes", "(unset)", "See `log.retention.ms`."),
    ("log.retention.hours", "168", "See `log.retention.ms`."),
    ("log.retention.bytes", "-1", "Per-partition size above which the oldest segments are deleted; -1 is unlimited."),
    ("log.retention.check.interval.ms", "300000", "How often retention runs."),
    ("log.flush.interval.messages", "9223372036854775807", "fdatasync once this many messages are unflushed; 1 makes every acknowledged append durable."),
    ("log.flush.interval.ms", "(unset: page cache)", "fdatasync data older than this."),
    ("log.flush.scheduler.interval.ms", "1000", "How often the time-based flush is checked."),
    ("ringlet.log.writeback.bytes", "1048576", "Start writeback of log data (sync_file_range, not a durability point) every this many written bytes per partition, so dirty pages never reach the kernel's writer throttling; 0 turns it off."),
    ("log.message.timestamp.type", "CreateTime", "CreateTime or LogAppendTime."),
    ("offsets.topic.num.partitions", "50", "Partitions of the internal `__consumer_offsets` topic; a group lives on partition abs(hash(group.id)) % this."),
    ("offsets.retention.minutes", "10080", "Committed offsets of an empty group older than this are deleted."),
    ("group.initial.rebalance.delay.ms", "3000", "How long the first rebalance of an empty group waits for more members to join."),
    ("group.min.session.timeout.ms", "6000", "Smallest session.timeout.ms a consumer may ask for (INVALID_SESSION_TIMEOUT below it)."),
    ("group.max.session.timeout.ms", "1800000", "Largest session.timeout.ms a consumer may ask for."),
    ("zookeeper.connect", "(unset)", "Accepted for compatibility; a multi-broker cluster is not implemented yet."),
];

/// The listener address.
#[derive(Clone, Debug)]
pub struct Listener {
    pub host: String,
    pub port: u16,
}

#[derive(Clone, Debug)]
pub struct BrokerConfig {
    pub broker_id: i32,
    pub listener: Listener,
    pub advertised: Listener,
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
    pub group_min_session_timeout_ms: i32,
    pub group_max_session_timeout_ms: i32,
    pub log: LogConfig,
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
        "write.error.ppm=N, fsync.error.ppm=N, errno=EIO|ENOSPC, torn.writes=true|false, seed=N";
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| invalid(key, value, allowed))?;
        match k.trim() {
            "write.error.ppm" => f.write_error_ppm = parse_num(key, v.trim(), 0, 1_000_000)?,
            "fsync.error.ppm" => f.fsync_error_ppm = parse_num(key, v.trim(), 0, 1_000_000)?,
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

fn invalid(key: &str, value: &str, allowed: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: value.into(),
        allowed: allowed.into(),
    }
}

fn parse_num<T: std::str::FromStr + PartialOrd + Copy + std::fmt::Display>(
    key: &str,
    value: &str,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    let v: T = value
        .trim()
        .parse()
        .map_err(|_| invalid(key, value, &format!("an integer in [{min}, {max}]")))?;
    if v < min || v > max {
        return Err(invalid(
            key,
            value,
            &format!("an integer in [{min}, {max}]"),
        ));
    }
    Ok(v)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, value, "true or false")),
    }
}

fn parse_listener(key: &str, value: &str) -> Result<Listener, ConfigError> {
    let first = value.split(',').next().unwrap_or("").trim();
    let rest = first.strip_prefix("PLAINTEXT://").ok_or_else(|| {
        invalid(
            key,
            value,
            "PLAINTEXT://host:port (other security protocols are not implemented yet)",
        )
    })?;
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| invalid(key, value, "PLAINTEXT://host:port"))?;
    let port = port
        .parse()
        .map_err(|_| invalid(key, value, "a port in [0, 65535]"))?;
    Ok(Listener {
        host: host.trim_matches(|c| c == '[' || c == ']').to_string(),
        port,
    })
}

/// Reads a `server.properties` file into key/value pairs (later lines win).
pub fn read_properties(path: &std::path::Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some((k, v)) = line.split_once('=').or_else(|| line.split_once(':')) else {
            return Err(ConfigError::Malformed {
                path: path.to_path_buf(),
                line: i + 1,
                text: line.into(),
            });
        };
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

impl BrokerConfig {
    /// Builds the configuration from properties; returns it and the unknown keys seen.
    pub fn from_properties(
        props: &BTreeMap<String, String>,
    ) -> Result<(BrokerConfig, Vec<String>), ConfigError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut c = BrokerConfig {
            broker_id: 0,
            listener: Listener {
                host: String::new(),
                port: 9092,
            },
            advertised: Listener {
                host: String::new(),
                port: 9092,
            },
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
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            log: LogConfig::default(),
            properties: props.clone(),
        };
        let mut unknown = Vec::new();
        let mut advertised = None;
        let mut listeners_set = false;
        // Kafka's precedence: ms over minutes over hours.
        let get = |k: &str| props.get(k).map(String::as_str);
        for (k, v) in props {
            let v = v.as_str();
            match k.as_str() {
                "broker.id" => c.broker_id = parse_num(k, v, -1, i32::MAX)?,
                "listeners" => {
                    c.listener = parse_listener(k, v)?;
                    listeners_set = true;
                }
                "port" => {}
                "advertised.listeners" => advertised = Some(parse_listener(k, v)?),
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
                "message.max.bytes" => {
                    c.log.max_message_bytes = parse_num(k, v, 0, i32::MAX as usize)?
                }
                "socket.send.buffer.bytes" => {
                    c.socket_send_buffer_bytes = parse_num(k, v, -1, i32::MAX)?
                }
                "socket.receive.buffer.bytes" => {
                    c.socket_receive_buffer_bytes = parse_num(k, v, -1, i32::MAX)?
                }
                "socket.request.max.bytes" => {
                    c.socket_request_max_bytes = parse_num(k, v, 1, i32::MAX as usize)?
                }
                "queued.max.requests" => {
                    c.queued_max_requests = parse_num(k, v, 1, i32::MAX as usize)?
                }
                "max.connections" => c.max_connections = parse_num(k, v, 0, i32::MAX as usize)?,
                "max.connections.per.ip" => {
                    c.max_connections_per_ip = parse_num(k, v, 0, i32::MAX as usize)?
                }
                "max.connections.per.ip.overrides" => {
                    c.max_connections_per_ip_overrides.clear();
                    for entry in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                        let parsed = entry.rsplit_once(':').and_then(|(ip, n)| {
                            Some((ip.trim().parse().ok()?, n.trim().parse().ok()?))
                        });
                        let (ip, n) = parsed.ok_or_else(|| invalid(k, v, "IP:count,IP:count"))?;
                        c.max_connections_per_ip_overrides.insert(ip, n);
                    }
                }
                "connections.max.idle.ms" => {
                    c.connections_max_idle_ms = parse_num(k, v, 1, i64::MAX as u64)?
                }
                "fetch.max.bytes" => c.fetch_max_bytes = parse_num(k, v, 1024, i32::MAX as usize)?,
                "num.partitions" => c.num_partitions = parse_num(k, v, 1, 100_000)?,
                "default.replication.factor" => {
                    c.default_replication_factor = parse_num(k, v, 1, i16::MAX)?;
                    if c.default_replication_factor != 1 {
                        return Err(invalid(k, v, "1 (a single broker has one replica; replication is not implemented yet)"));
                    }
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
                "ringlet.log.writeback.bytes" => {
                    c.log.writeback_bytes = parse_num(k, v, 0, u64::MAX)?
                }
                "log.message.timestamp.type" => {
                    c.log.timestamp_type = match v {
                        "CreateTime" => TimestampType::CreateTime,
                        "LogAppendTime" => TimestampType::LogAppendTime,
                        _ => return Err(invalid(k, v, "CreateTime or LogAppendTime")),
                    }
                }
                "offsets.topic.num.partitions" => {
                    c.offsets_topic_num_partitions = parse_num(k, v, 1, 10_000)?
                }
                "offsets.retention.minutes" => {
                    c.offsets_retention_minutes = parse_num(k, v, 1, i64::MAX / 60_000)?
                }
                "group.initial.rebalance.delay.ms" => {
                    c.group_initial_rebalance_delay_ms = parse_num(k, v, 0, 3_600_000)?
                }
                "group.min.session.timeout.ms" => {
                    c.group_min_session_timeout_ms = parse_num(k, v, 1, i32::MAX)?
                }
                "group.max.session.timeout.ms" => {
                    c.group_max_session_timeout_ms = parse_num(k, v, 1, i32::MAX)?
                }
                "zookeeper.connect" => {
                    tracing::warn!("zookeeper.connect is set but multi-broker clusters are not implemented yet; running single-node");
                }
                _ => unknown.push(k.clone()),
            }
        }
        if !listeners_set {
            if let Some(p) = get("port") {
                c.listener.port = parse_num("port", p, 0, u16::MAX)?;
            }
        }
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
        c.advertised = advertised.unwrap_or_else(|| c.listener.clone());
        if c.advertised.host.is_empty() || c.advertised.host == "0.0.0.0" {
            c.advertised.host = "localhost".into();
        }
        Ok((c, unknown))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_follow_kafka() {
        let (c, unknown) = BrokerConfig::from_properties(&props(&[])).unwrap();
        assert!(unknown.is_empty());
        assert_eq!(c.listener.port, 9092);
        assert_eq!(c.log.segment_bytes, 1 << 30);
        assert_eq!(c.log.retention_ms, 168 * 3_600_000);
        assert_eq!(c.queued_max_requests, 500);
        assert_eq!(c.socket_request_max_bytes, 104_857_600);
    }

    #[test]
    fn retention_precedence_and_units() {
        let (c, _) = BrokerConfig::from_properties(&props(&[
            ("log.retention.hours", "1"),
            ("log.retention.minutes", "5"),
        ]))
        .unwrap();
        assert_eq!(c.log.retention_ms, 300_000);
        let (c, _) = BrokerConfig::from_properties(&props(&[
            ("log.retention.ms", "10"),
            ("log.retention.minutes", "5"),
        ]))
        .unwrap();
        assert_eq!(c.log.retention_ms, 10);
    }

    #[test]
    fn invalid_values_name_key_and_allowed_range() {
        let e = BrokerConfig::from_properties(&props(&[("num.io.threads", "zero")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("num.io.threads") && e.contains("zero") && e.contains("integer"),
            "{e}"
        );
        let e = BrokerConfig::from_properties(&props(&[("auto.create.topics.enable", "yes")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("true or false"), "{e}");
    }

    #[test]
    fn docs_list_every_key() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/configuration.md"
        ))
        .unwrap();
        for (k, _, _) in KEYS {
            assert!(
                doc.contains(&format!("| `{k}` |")),
                "docs/configuration.md misses {k}"
            );
        }
        for k in crate::broker::TOPIC_CONFIG_KEYS {
            assert!(
                doc.contains(&format!("| `{k}` |")),
                "docs/configuration.md misses topic key {k}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_reported() {
        let (_, unknown) = BrokerConfig::from_properties(&props(&[("no.such.key", "1")])).unwrap();
        assert_eq!(unknown, vec!["no.such.key".to_string()]);
    }

    #[test]
    fn listeners_and_port() {
        let (c, _) =
            BrokerConfig::from_properties(&props(&[("listeners", "PLAINTEXT://127.0.0.1:19092")]))
                .unwrap();
        assert_eq!(
            (c.listener.host.as_str(), c.listener.port),
            ("127.0.0.1", 19092)
        );
        assert_eq!(c.advertised.host, "127.0.0.1");
        let (c, _) = BrokerConfig::from_properties(&props(&[("port", "9093")])).unwrap();
        assert_eq!(c.listener.port, 9093);
    }
}
