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
    ("listeners", "PLAINTEXT://:9092", "Where to listen: comma-separated NAME://host:port (empty host = all interfaces); each NAME's security protocol comes from `listener.security.protocol.map`."),
    ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL", "Listener name to security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL). Any ssl.*/sasl.* key below may be set for one listener as `listener.name.<name lower-case>.<key>`. See docs/security.md."),
    ("port", "9092", "Old form of the listener port; used when `listeners` is not set."),
    ("advertised.listeners", "(listeners)", "NAME://host:port per listener: the address given in Metadata to clients that connected on that listener; defaults to the listener's, with `localhost` when its host is empty or 0.0.0.0."),
    ("ssl.keystore.type", "PEM", "Only PEM (rustls; JKS and PKCS12 stores must be converted with openssl/keytool)."),
    ("ssl.keystore.location", "(unset)", "PEM file holding the broker's private key and certificate chain (SSL and SASL_SSL listeners)."),
    ("ssl.keystore.certificate.chain", "(unset)", "The certificate chain as PEM text (Kafka's form), or a path to a PEM file; with `ssl.keystore.key`, instead of `ssl.keystore.location`."),
    ("ssl.keystore.key", "(unset)", "The private key (PKCS#8, PKCS#1 or SEC1) as PEM text or a path to a PEM file. Encrypted keys are refused: `ssl.key.password` is not supported."),
    ("ssl.truststore.type", "PEM", "Only PEM."),
    ("ssl.truststore.location", "(unset)", "PEM file of the CA certificates that client certificates must chain to (`ssl.client.auth`)."),
    ("ssl.truststore.certificates", "(unset)", "The trusted CA certificates as PEM text, instead of `ssl.truststore.location`."),
    ("ssl.client.auth", "none", "none, requested (verify a certificate when the client sends one) or required; the certificate's subject (RFC 2253, e.g. `CN=alice,O=acme`) becomes the principal `User:CN=alice,O=acme`."),
    ("ssl.principal.mapping.rules", "DEFAULT", "Kafka's rules from a client certificate's subject to a user name: `RULE:^CN=(.*?),O=acme$/$1/L,DEFAULT` (a rule's regex must match the whole subject; $1... are its groups; /L lower-cases, /U upper-cases; DEFAULT keeps the subject). A certificate no rule matches is refused."),
    ("ssl.enabled.protocols", "TLSv1.2,TLSv1.3", "TLS versions accepted; only TLSv1.2 and TLSv1.3 exist here (older ones are refused)."),
    ("sasl.enabled.mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512", "SASL mechanisms of SASL_* listeners: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (Kafka's default GSSAPI is not supported)."),
    ("sasl.jaas.config", "(unset)", "For PLAIN: `org.apache.kafka.common.security.plain.PlainLoginModule required user_alice=\"alice-secret\";` lists users and passwords (Kafka reads it as `listener.name.<l>.plain.sasl.jaas.config`, accepted too). PLAIN also accepts a user's SCRAM credential (`ringlet users`), so passwords need not live in this file."),
    ("connections.max.reauth.ms", "0", "KIP-368: SASL sessions last this long; the client must re-authenticate before then or its next request closes the connection. 0: sessions never expire."),
    ("connection.failed.authentication.delay.ms", "100", "Delay before answering a failed authentication, doubled for each further failure from the same IP address within a minute (up to 5 s), so that password guessing is slow."),
    ("authorizer.class.name", "", "Non-empty turns on ACL authorization of every request (Kafka's class names, e.g. `kafka.security.authorizer.AclAuthorizer`, are accepted; ACLs are kept in `<first log dir>/__security/acls.json`)."),
    ("super.users", "", "Principals allowed everything, `User:admin;User:CN=ops`."),
    ("allow.everyone.if.no.acl.found", "false", "With the authorizer on: allow an operation on a resource that no ACL matches at all."),
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
    ("default.replication.factor", "1", "Replication factor of auto-created topics and of CreateTopics without one (above 1 needs a cluster: `zookeeper.connect`)."),
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
    ("offset.metadata.max.bytes", "4096", "Longest metadata string an offset commit may carry (longer: OFFSET_METADATA_TOO_LARGE)."),
    ("group.initial.rebalance.delay.ms", "3000", "How long the first rebalance of an empty group waits for more members to join."),
    ("group.min.session.timeout.ms", "6000", "Smallest session.timeout.ms a consumer may ask for (INVALID_SESSION_TIMEOUT below it)."),
    ("group.max.session.timeout.ms", "1800000", "Largest session.timeout.ms a consumer may ask for."),
    ("zookeeper.connect", "(unset)", "ZooKeeper ensemble `host:port[,host:port...][/chroot]` holding cluster metadata; unset runs a single broker on its embedded metadata. See docs/operations.md."),
    ("zookeeper.session.timeout.ms", "18000", "ZooKeeper session timeout: a broker silent this long loses its registration (and its leaderships) and is fenced."),
    ("zookeeper.connection.timeout.ms", "(zookeeper.session.timeout.ms)", "How long to wait for a ZooKeeper connection at start-up."),
    ("broker.rack", "(unset)", "Rack of this broker; replicas of a partition are spread over racks first."),
    ("min.insync.replicas", "1", "Fewest in-sync replicas for an acks=all produce: below it produce fails with NOT_ENOUGH_REPLICAS and the high watermark stands still."),
    ("unclean.leader.election.enable", "false", "Only false: a new leader always comes from the in-sync replicas."),
    ("replica.lag.time.max.ms", "30000", "A follower that has not caught up to the leader's log end for this long leaves the ISR."),
    ("replica.socket.timeout.ms", "30000", "Socket timeout of a follower's fetch from its leader (at least replica.fetch.wait.max.ms)."),
    ("replica.fetch.wait.max.ms", "500", "Longest a follower's fetch waits at the leader for new data."),
    ("replica.fetch.min.bytes", "1", "Bytes a follower's fetch waits for."),
    ("replica.fetch.max.bytes", "1048576", "Bytes a follower asks for per partition per fetch (the first batch always comes whole)."),
    ("replica.fetch.backoff.ms", "1000", "Pause after a failed follower fetch."),
    ("num.replica.fetchers", "1", "Accepted; Ringlet runs one fetcher per shard per leader broker (thread-per-core)."),
    ("replica.high.watermark.checkpoint.interval.ms", "5000", "How often each replica writes its high watermark to disk."),
    ("controlled.shutdown.enable", "true", "On SIGTERM, ask the controller to move leadership away before exiting."),
    ("controlled.shutdown.max.retries", "3", "Attempts at a controlled shutdown before exiting anyway."),
    ("controlled.shutdown.retry.backoff.ms", "5000", "Wait between controlled-shutdown attempts."),
    ("inter.broker.listener.name", "(the first PLAINTEXT listener)", "Listener whose advertised address followers fetch from."),
    ("offsets.topic.replication.factor", "3", "Replication factor of `__consumer_offsets` in a cluster (capped at the live brokers when it is created)."),
];

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
        }
    }
}

/// The listener address.
#[derive(Clone, Debug)]
pub struct Listener {
    pub host: String,
    pub port: u16,
}

pub use ringlet_client::security::Protocol as SecurityProtocol;

/// Whether a TLS listener asks for client certificates (`ssl.client.auth`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

/// The TLS settings of one listener, as PEM bytes.
#[derive(Clone, Debug)]
pub struct SslSettings {
    pub certificate_chain: Vec<u8>,
    pub key: Vec<u8>,
    pub truststore: Option<Vec<u8>>,
    pub client_auth: ClientAuth,
    pub tls12: bool,
    pub tls13: bool,
    pub principal_rules: Vec<PrincipalRule>,
}

/// One entry of `ssl.principal.mapping.rules`.
#[derive(Clone, Debug)]
pub enum PrincipalRule {
    Default,
    Rule {
        pattern: regex::Regex,
        replacement: String,
        case: Option<char>,
    },
}

/// Reads up to an unescaped `/`; returns the part (with `\/` unescaped) and the rest after it.
fn until_slash(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if s[i + 1..].starts_with('/') => {
                out.push('/');
                chars.next();
            }
            '/' => return Some((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

/// Parses Kafka's `ssl.principal.mapping.rules`.
pub fn parse_principal_rules(key: &str, value: &str) -> Result<Vec<PrincipalRule>, ConfigError> {
    let allowed = "comma-separated RULE:regex/replacement/[L|U] entries and DEFAULT";
    let mut rules = Vec::new();
    let java_group = regex::Regex::new(r"\$(\d+)").expect("valid");
    let mut rest = value.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        if rest.is_empty() {
            break;
        }
        if let Some(r) = rest.strip_prefix("DEFAULT") {
            rules.push(PrincipalRule::Default);
            rest = r;
        } else if let Some(r) = rest.strip_prefix("RULE:") {
            let (pattern, r) = until_slash(r).ok_or_else(|| invalid(key, value, allowed))?;
            let (replacement, r) = until_slash(r).ok_or_else(|| invalid(key, value, allowed))?;
            let (case, r) = match r.chars().next() {
                Some(c @ ('L' | 'U')) => (Some(c), &r[1..]),
                _ => (None, r),
            };
            let anchored = format!("^(?:{pattern})$");
            let pattern = regex::Regex::new(&anchored)
                .map_err(|e| invalid(key, value, &format!("valid regular expressions ({e})")))?;
            // Java's `$1` is the regex crate's `${1}`.
            let replacement = java_group.replace_all(&replacement, "$${$1}").into_owned();
            rules.push(PrincipalRule::Rule {
                pattern,
                replacement,
                case,
            });
            rest = r;
        } else {
            return Err(invalid(key, value, allowed));
        }
        rest = rest.trim_start();
        if !rest.is_empty() && !rest.starts_with(',') {
            return Err(invalid(key, value, allowed));
        }
    }
    if rules.is_empty() {
        rules.push(PrincipalRule::Default);
    }
    Ok(rules)
}

/// The user name for a certificate subject: the first rule that matches, or None.
pub fn map_principal(rules: &[PrincipalRule], subject: &str) -> Option<String> {
    for r in rules {
        match r {
            PrincipalRule::Default => return Some(subject.to_string()),
            PrincipalRule::Rule {
                pattern,
                replacement,
                case,
            } => {
                if pattern.is_match(subject) {
                    let name = pattern.replace(subject, replacement.as_str()).into_owned();
                    return Some(match case {
                        Some('L') => name.to_lowercase(),
                        Some('U') => name.to_uppercase(),
                        _ => name,
                    });
                }
            }
        }
    }
    None
}

/// One named listener: where, with which security protocol and settings.
#[derive(Clone, Debug)]
pub struct ListenerSpec {
    pub name: String,
    pub protocol: SecurityProtocol,
    pub listener: Listener,
    pub advertised: Listener,
    pub ssl: Option<SslSettings>,
    pub sasl_mechanisms: Vec<String>,
    /// PLAIN users and passwords from the JAAS configuration.
    pub plain_users: BTreeMap<String, String>,
}

/// `listeners` / `advertised.listeners` entries: NAME://host:port.
fn parse_endpoints(key: &str, value: &str) -> Result<Vec<(String, Listener)>, ConfigError> {
    let mut out = Vec::new();
    for e in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, rest) = e
            .split_once("://")
            .ok_or_else(|| invalid(key, value, "NAME://host:port[,NAME://host:port...]"))?;
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| invalid(key, value, "NAME://host:port"))?;
        let port = port
            .parse()
            .map_err(|_| invalid(key, value, "a port in [0, 65535]"))?;
        let name = name.to_ascii_uppercase();
        if out.iter().any(|(n, _): &(String, Listener)| *n == name) {
            return Err(invalid(key, value, "each listener name once"));
        }
        out.push((
            name,
            Listener {
                host: host.trim_matches(|c| c == '[' || c == ']').to_string(),
                port,
            },
        ));
    }
    if out.is_empty() {
        return Err(invalid(key, value, "one or more NAME://host:port"));
    }
    Ok(out)
}

/// A PEM value given inline (Kafka's `ssl.keystore.key` form) or as a path to a file.
fn pem_value(key: &str, value: &str) -> Result<Vec<u8>, ConfigError> {
    if value.trim_start().starts_with("-----BEGIN") {
        return Ok(value.replace("\\n", "\n").into_bytes());
    }
    std::fs::read(value).map_err(|source| ConfigError::Read {
        path: PathBuf::from(format!("{value} ({key})")),
        source,
    })
}

/// Builds the listener specs from `listeners`, the protocol map, `advertised.listeners` and the
/// (possibly listener-prefixed) ssl.* and sasl.* keys.
fn listener_specs(
    props: &BTreeMap<String, String>,
    endpoints: Vec<(String, Listener)>,
) -> Result<Vec<ListenerSpec>, ConfigError> {
    let map_key = "listener.security.protocol.map";
    let map_value = props.get(map_key).map_or(
        "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        String::as_str,
    );
    let mut map = BTreeMap::new();
    for e in map_value
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let (n, p) = e
            .split_once(':')
            .ok_or_else(|| invalid(map_key, map_value, "NAME:PROTOCOL,NAME:PROTOCOL"))?;
        let p = SecurityProtocol::parse(p.trim()).ok_or_else(|| {
            invalid(
                map_key,
                map_value,
                "protocols PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
            )
        })?;
        map.insert(n.trim().to_ascii_uppercase(), p);
    }
    let advertised = match props.get("advertised.listeners") {
        Some(v) => parse_endpoints("advertised.listeners", v)?,
        None => Vec::new(),
    };
    let mut specs = Vec::new();
    for (name, listener) in endpoints {
        let protocol = *map.get(&name).ok_or_else(|| {
            invalid(
                "listeners",
                &name,
                "a listener name that listener.security.protocol.map maps to a protocol",
            )
        })?;
        let prefix = format!("listener.name.{}.", name.to_ascii_lowercase());
        let get = |k: &str| -> Option<(String, &str)> {
            let pk = format!("{prefix}{k}");
            if let Some(v) = props.get(&pk) {
                return Some((pk, v.as_str()));
            }
            props.get(k).map(|v| (k.to_string(), v.as_str()))
        };
        let mut adv = advertised
            .iter()
            .find(|(n, _)| *n == name)
            .map_or_else(|| listener.clone(), |(_, l)| l.clone());
        if adv.host.is_empty() || adv.host == "0.0.0.0" {
            adv.host = "localhost".into();
        }
        let ssl = if protocol.tls() {
            for k in ["ssl.keystore.type", "ssl.truststore.type"] {
                if let Some((k, v)) = get(k) {
                    if !v.eq_ignore_ascii_case("PEM") {
                        return Err(invalid(
                            &k,
                            v,
                            "PEM (convert JKS/PKCS12 stores with keytool/openssl)",
                        ));
                    }
                }
            }
            if let Some((k, v)) = get("ssl.key.password") {
                if !v.is_empty() {
                    return Err(invalid(&k, "(hidden)", "unset: encrypted private keys are not supported; decrypt with `openssl pkey`"));
                }
            }
            let (certificate_chain, key) = match (
                get("ssl.keystore.certificate.chain"),
                get("ssl.keystore.key"),
                get("ssl.keystore.location"),
            ) {
                (Some((ck, c)), Some((kk, k)), _) => (pem_value(&ck, c)?, pem_value(&kk, k)?),
                (_, _, Some((lk, l))) => {
                    let pem = pem_value(&lk, l)?;
                    (pem.clone(), pem)
                }
                _ => {
                    return Err(invalid(
                        &format!("{prefix}ssl.keystore.location"),
                        "(unset)",
                        &format!("listener {name} is {}: set ssl.keystore.location (PEM key and certificates) or ssl.keystore.certificate.chain and ssl.keystore.key", protocol.name()),
                    ))
                }
            };
            let truststore = match (
                get("ssl.truststore.certificates"),
                get("ssl.truststore.location"),
            ) {
                (Some((k, v)), _) | (None, Some((k, v))) => Some(pem_value(&k, v)?),
                _ => None,
            };
            let client_auth = match get("ssl.client.auth") {
                None => ClientAuth::None,
                Some((k, v)) => match v.to_ascii_lowercase().as_str() {
                    "none" | "" => ClientAuth::None,
                    "requested" => ClientAuth::Requested,
                    "required" => ClientAuth::Required,
                    _ => return Err(invalid(&k, v, "none, requested or required")),
                },
            };
            if client_auth != ClientAuth::None && truststore.is_none() {
                return Err(invalid(
                    &format!("{prefix}ssl.truststore.location"),
                    "(unset)",
                    "the CA certificates to verify client certificates with (ssl.client.auth is on)",
                ));
            }
            let (mut tls12, mut tls13) = (true, true);
            if let Some((k, v)) = get("ssl.enabled.protocols") {
                (tls12, tls13) = (false, false);
                for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    match p {
                        "TLSv1.2" => tls12 = true,
                        "TLSv1.3" => tls13 = true,
                        _ => return Err(invalid(&k, v, "TLSv1.2 and/or TLSv1.3")),
                    }
                }
                if !tls12 && !tls13 {
                    return Err(invalid(&k, v, "TLSv1.2 and/or TLSv1.3"));
                }
            }
            let principal_rules = match get("ssl.principal.mapping.rules") {
                Some((k, v)) => parse_principal_rules(&k, v)?,
                None => vec![PrincipalRule::Default],
            };
            Some(SslSettings {
                principal_rules,
                certificate_chain,
                key,
                truststore,
                client_auth,
                tls12,
                tls13,
            })
        } else {
            None
        };
        let mut sasl_mechanisms = Vec::new();
        let mut plain_users = BTreeMap::new();
        if protocol.sasl() {
            let (k, v) = get("sasl.enabled.mechanisms").unwrap_or((
                "sasl.enabled.mechanisms".into(),
                "SCRAM-SHA-256,SCRAM-SHA-512",
            ));
            for m in v.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                if m != "PLAIN" && ringlet_client::scram::Mechanism::from_name(m).is_none() {
                    return Err(invalid(&k, v, "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"));
                }
                sasl_mechanisms.push(m.to_string());
            }
            if sasl_mechanisms.is_empty() {
                return Err(invalid(
                    &k,
                    v,
                    "one or more of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
                ));
            }
            let jaas = props
                .get(&format!("{prefix}plain.sasl.jaas.config"))
                .or_else(|| props.get(&format!("{prefix}sasl.jaas.config")))
                .or_else(|| props.get("sasl.jaas.config"));
            if let Some(jaas) = jaas {
                for part in jaas.split_whitespace() {
                    if let Some(rest) = part.strip_prefix("user_") {
                        if let Some((user, _)) = rest.split_once('=') {
                            if let Some(pw) =
                                ringlet_client::security::jaas_option(jaas, &format!("user_{user}"))
                            {
                                plain_users.insert(user.to_string(), pw);
                            }
                        }
                    }
                }
            }
        }
        specs.push(ListenerSpec {
            name,
            protocol,
            listener,
            advertised: adv,
            ssl,
            sasl_mechanisms,
            plain_users,
        });
    }
    Ok(specs)
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
    pub log: LogConfig,
    pub cluster: ClusterConfig,
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
            log: LogConfig::default(),
            cluster: ClusterConfig::default(),
            properties: props.clone(),
        };
        let mut unknown = Vec::new();
        let mut endpoints = None;
        // Kafka's precedence: ms over minutes over hours.
        let get = |k: &str| props.get(k).map(String::as_str);
        for (k, v) in props {
            let v = v.as_str();
            match k.as_str() {
                "broker.id" => c.broker_id = parse_num(k, v, -1, i32::MAX)?,
                "listeners" => endpoints = Some(parse_endpoints(k, v)?),
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
                | "sasl.jaas.config" => {}
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
                "allow.everyone.if.no.acl.found" => {
                    c.allow_everyone_if_no_acl_found = parse_bool(k, v)?
                }
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
                "offset.metadata.max.bytes" => {
                    c.offset_metadata_max_bytes = parse_num(k, v, 0, i32::MAX as usize)?
                }
                "group.min.session.timeout.ms" => {
                    c.group_min_session_timeout_ms = parse_num(k, v, 1, i32::MAX)?
                }
                "group.max.session.timeout.ms" => {
                    c.group_max_session_timeout_ms = parse_num(k, v, 1, i32::MAX)?
                }
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
                    if parse_bool(k, v)? {
                        return Err(invalid(k, v, "false (Ringlet elects leaders only from the ISR; unclean election loses acknowledged data)"));
                    }
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
                "controlled.shutdown.enable" => {
                    c.cluster.controlled_shutdown_enable = parse_bool(k, v)?
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
                _ => unknown.push(k.clone()),
            }
        }
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

    #[test]
    fn principal_mapping_rules_follow_kafka() {
        let rules = parse_principal_rules(
            "k",
            r"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),O=(.*?)$/$1@$2/L, DEFAULT",
        )
        .unwrap();
        assert_eq!(
            map_principal(&rules, "CN=kafka-svc,OU=ServiceUsers,O=acme").as_deref(),
            Some("kafka-svc")
        );
        assert_eq!(
            map_principal(&rules, "CN=Alice,O=Acme").as_deref(),
            Some("alice@acme")
        );
        assert_eq!(map_principal(&rules, "C=US").as_deref(), Some("C=US"));
        let strict = parse_principal_rules("k", "RULE:^CN=([a-z]+)$/$1/U").unwrap();
        assert_eq!(map_principal(&strict, "CN=bob").as_deref(), Some("BOB"));
        assert_eq!(map_principal(&strict, "CN=bob,O=x"), None);
        assert!(parse_principal_rules("k", "RULE:^CN=(/$1").is_err());
        assert!(parse_principal_rules("k", "NOPE").is_err());
    }

    #[test]
    fn named_listeners_protocols_and_security_keys() {
        let (c, unknown) = BrokerConfig::from_properties(&props(&[
            ("listeners", "PLAINTEXT://127.0.0.1:9092,INTERNAL://:9094"),
            ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,INTERNAL:SASL_PLAINTEXT"),
            ("advertised.listeners", "INTERNAL://broker1:9094"),
            ("listener.name.internal.sasl.enabled.mechanisms", "PLAIN"),
            (
                "listener.name.internal.plain.sasl.jaas.config",
                r#"org.apache.kafka.common.security.plain.PlainLoginModule required user_admin="a-secret" user_bob="b";"#,
            ),
            ("super.users", "User:admin;User:CN=ops"),
        ]))
        .unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        assert_eq!(c.listeners.len(), 2);
        let internal = &c.listeners[1];
        assert_eq!(internal.protocol, SecurityProtocol::SaslPlaintext);
        assert_eq!(internal.advertised.host, "broker1");
        assert_eq!(c.listeners[0].advertised.host, "127.0.0.1");
        assert_eq!(internal.sasl_mechanisms, vec!["PLAIN".to_string()]);
        assert_eq!(
            internal.plain_users.get("admin").map(String::as_str),
            Some("a-secret")
        );
        assert_eq!(
            internal.plain_users.get("bob").map(String::as_str),
            Some("b")
        );
        assert_eq!(
            c.super_users,
            vec!["User:admin".to_string(), "User:CN=ops".to_string()]
        );
        // A listener name the map does not know, and an SSL listener without a keystore, stop start-up.
        assert!(BrokerConfig::from_properties(&props(&[("listeners", "FOO://:1")])).is_err());
        let e = BrokerConfig::from_properties(&props(&[("listeners", "SSL://:9093")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ssl.keystore.location"), "{e}");
    }
}
