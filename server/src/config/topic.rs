//! Topic-level configuration, defined once: every key a topic may set, with its type and
//! validation (Kafka's, checked against Apache Kafka 4.1.1), the broker setting that gives its
//! default, and its meaning. CreateTopics, AlterConfigs, IncrementalAlterConfigs,
//! DescribeConfigs, the log and `docs/configuration.md` all read this table.

use super::{BrokerConfig, ConfigType};
use ringlet_engine::LogConfig;
use ringlet_format::batch::TimestampType;
use ringlet_format::codec::Codec;
use std::collections::BTreeMap;

/// Where a topic's configs are applied: whether the broker runs in a cluster.
#[derive(Clone, Copy, Debug)]
pub struct TopicContext {
    pub clustered: bool,
}

/// One topic-level key.
pub struct TopicKey {
    pub name: &'static str,
    /// Kafka's type for the key, as DescribeConfigs reports it.
    pub kind: ConfigType,
    /// The broker keys its default comes from, in Kafka's order of precedence (DescribeConfigs
    /// synonyms).
    pub synonyms: &'static [&'static str],
    /// The broker setting its default comes from (shown in the docs), or the fixed default.
    pub default_from: &'static str,
    pub doc: &'static str,
    /// Validates `value` (Kafka's error message on refusal) and applies it to the log's settings.
    apply: fn(&mut LogConfig, TopicContext, &'static str, &str) -> Result<(), String>,
    /// The broker default, as DescribeConfigs reports it.
    default: fn(&BrokerConfig) -> String,
}

/// Every topic key Ringlet accepts, in the order DescribeConfigs lists them.
pub const TOPIC_KEYS: &[TopicKey] = &[
    TopicKey {
        name: "cleanup.policy",
        kind: ConfigType::List,
        synonyms: &["log.cleanup.policy"],
        default_from: "log.cleanup.policy",
        doc: "`delete` (segments past `retention.ms`/`retention.bytes` are deleted), `compact` (the log cleaner keeps the latest record of each key; records without a key are refused), `compact,delete` (both), or empty (KIP-1106: neither; the log is kept whole).",
        apply: |c, _, k, v| {
            (c.delete, c.compact) = cleanup_policy(v)
                .map_err(|bad| format!("Invalid value {bad} for configuration {k}: String must be one of: compact, delete"))?;
            Ok(())
        },
        default: |b| policy_name(b.log.delete, b.log.compact).into(),
    },
    TopicKey {
        name: "retention.ms",
        kind: ConfigType::Long,
        synonyms: &["log.retention.ms", "log.retention.minutes", "log.retention.hours"],
        default_from: "log.retention.ms",
        doc: "Delete segments whose newest record is older than this; -1 keeps forever.",
        apply: |c, _, k, v| {
            c.retention_ms = long(k, v, -1)?;
            Ok(())
        },
        default: |b| b.log.retention_ms.to_string(),
    },
    TopicKey {
        name: "retention.bytes",
        kind: ConfigType::Long,
        synonyms: &["log.retention.bytes"],
        default_from: "log.retention.bytes",
        doc: "Per-partition size above which the oldest segments are deleted; negative is unlimited.",
        apply: |c, _, k, v| {
            c.retention_bytes = long(k, v, i64::MIN)?.max(-1);
            Ok(())
        },
        default: |b| b.log.retention_bytes.to_string(),
    },
    TopicKey {
        name: "segment.bytes",
        kind: ConfigType::Int,
        synonyms: &["log.segment.bytes"],
        default_from: "log.segment.bytes",
        doc: "Roll size of this topic's segments (at least 1048576, as Kafka 4.x).",
        apply: |c, _, k, v| {
            c.segment_bytes = int(k, v, 1_048_576)? as u64;
            Ok(())
        },
        default: |b| b.log.segment_bytes.to_string(),
    },
    TopicKey {
        name: "segment.ms",
        kind: ConfigType::Long,
        synonyms: &["log.roll.ms", "log.roll.hours"],
        default_from: "log.roll.ms",
        doc: "Roll age of this topic's segments.",
        apply: |c, _, k, v| {
            c.segment_ms = long(k, v, 1)?;
            Ok(())
        },
        default: |b| b.log.segment_ms.to_string(),
    },
    TopicKey {
        name: "segment.index.bytes",
        kind: ConfigType::Int,
        synonyms: &["log.index.size.max.bytes"],
        default_from: "log.index.size.max.bytes",
        doc: "Roll when the offset index reaches this size.",
        apply: |c, _, k, v| {
            c.segment_index_bytes = int(k, v, 4)? as usize;
            Ok(())
        },
        default: |b| b.log.segment_index_bytes.to_string(),
    },
    TopicKey {
        name: "index.interval.bytes",
        kind: ConfigType::Int,
        synonyms: &["log.index.interval.bytes"],
        default_from: "log.index.interval.bytes",
        doc: "Bytes between offset index entries.",
        apply: |c, _, k, v| {
            c.index_interval_bytes = int(k, v, 0)? as usize;
            Ok(())
        },
        default: |b| b.log.index_interval_bytes.to_string(),
    },
    TopicKey {
        name: "flush.messages",
        kind: ConfigType::Long,
        synonyms: &["log.flush.interval.messages"],
        default_from: "log.flush.interval.messages",
        doc: "fdatasync once this many messages are unflushed.",
        apply: |c, _, k, v| {
            c.flush_interval_messages = long(k, v, 1)? as u64;
            Ok(())
        },
        default: |b| b.log.flush_interval_messages.min(i64::MAX as u64).to_string(),
    },
    TopicKey {
        name: "flush.ms",
        kind: ConfigType::Long,
        synonyms: &["log.flush.interval.ms"],
        default_from: "log.flush.interval.ms",
        doc: "fdatasync data older than this.",
        apply: |c, _, k, v| {
            c.flush_interval_ms = long(k, v, 0)?;
            Ok(())
        },
        default: |b| b.log.flush_interval_ms.to_string(),
    },
    TopicKey {
        name: "max.message.bytes",
        kind: ConfigType::Int,
        synonyms: &["message.max.bytes"],
        default_from: "message.max.bytes",
        doc: "Largest record batch accepted for this topic.",
        apply: |c, _, k, v| {
            c.max_message_bytes = int(k, v, 0)? as usize;
            Ok(())
        },
        default: |b| b.log.max_message_bytes.to_string(),
    },
    TopicKey {
        name: "message.timestamp.type",
        kind: ConfigType::String,
        synonyms: &["log.message.timestamp.type"],
        default_from: "log.message.timestamp.type",
        doc: "CreateTime or LogAppendTime.",
        apply: |c, _, k, v| {
            c.timestamp_type = match v {
                "CreateTime" => TimestampType::CreateTime,
                "LogAppendTime" => TimestampType::LogAppendTime,
                _ => return Err(format!(
                    "Invalid value {v} for configuration {k}: String must be one of: CreateTime, LogAppendTime"
                )),
            };
            Ok(())
        },
        default: |b| match b.log.timestamp_type {
            TimestampType::CreateTime => "CreateTime".into(),
            TimestampType::LogAppendTime => "LogAppendTime".into(),
        },
    },
    TopicKey {
        name: "preallocate",
        kind: ConfigType::Boolean,
        synonyms: &["log.preallocate"],
        default_from: "log.preallocate",
        doc: "Reserve segment.bytes of disk for each new segment of this topic.",
        apply: |c, _, k, v| {
            c.preallocate = boolean(k, v)?;
            Ok(())
        },
        default: |b| b.log.preallocate.to_string(),
    },
    TopicKey {
        name: "message.timestamp.before.max.ms",
        kind: ConfigType::Long,
        synonyms: &["log.message.timestamp.before.max.ms"],
        default_from: "log.message.timestamp.before.max.ms",
        doc: "CreateTime: refuse records further than this behind the broker's clock.",
        apply: |c, _, k, v| {
            c.timestamp_before_max_ms = long(k, v, 0)?;
            Ok(())
        },
        default: |b| b.log.timestamp_before_max_ms.to_string(),
    },
    TopicKey {
        name: "message.timestamp.after.max.ms",
        kind: ConfigType::Long,
        synonyms: &["log.message.timestamp.after.max.ms"],
        default_from: "log.message.timestamp.after.max.ms",
        doc: "CreateTime: refuse records further than this ahead of the broker's clock.",
        apply: |c, _, k, v| {
            c.timestamp_after_max_ms = long(k, v, 0)?;
            Ok(())
        },
        default: |b| b.log.timestamp_after_max_ms.to_string(),
    },
    TopicKey {
        name: "min.insync.replicas",
        kind: ConfigType::Int,
        synonyms: &["min.insync.replicas"],
        default_from: "min.insync.replicas",
        doc: "At least 1; must be 1 on a single broker (Kafka accepts more and then refuses acks=all produce).",
        apply: |_, ctx, k, v| {
            let n = int(k, v, 1)?;
            if !ctx.clustered && n != 1 {
                return Err(format!(
                    "Invalid value {v} for configuration {k}: must be 1 on a single broker"
                ));
            }
            Ok(())
        },
        default: |b| b.cluster.min_insync_replicas.to_string(),
    },
    TopicKey {
        name: "unclean.leader.election.enable",
        kind: ConfigType::Boolean,
        synonyms: &["unclean.leader.election.enable"],
        default_from: "unclean.leader.election.enable",
        doc: "When every in-sync replica is gone, the controller elects a live out-of-sync replica (losing what only the ISR had) rather than leaving the partition offline.",
        apply: |_, _, k, v| boolean(k, v).map(|_| ()),
        default: |b| b.cluster.unclean_leader_election_enable.to_string(),
    },
    TopicKey {
        name: "compression.type",
        kind: ConfigType::String,
        synonyms: &["compression.type"],
        default_from: "compression.type",
        doc: "`producer` keeps batches as produced (no copy); `uncompressed`, `gzip`, `snappy`, `lz4` or `zstd` makes the broker recompress a batch whose codec differs before storing it (Kafka's default levels: gzip 6, lz4 9, zstd 3), so fetches return the topic's codec.",
        apply: |_, _, _, v| compression_codec(v).map(|_| ()),
        default: |b| b.compression_type.clone(),
    },
    TopicKey {
        name: "delete.retention.ms",
        kind: ConfigType::Long,
        synonyms: &["log.cleaner.delete.retention.ms"],
        default_from: "log.cleaner.delete.retention.ms",
        doc: "How long a tombstone (a null value) stays readable after its batch was first compacted (KIP-534's delete horizon), so consumers reading from the start see deletions.",
        apply: |c, _, k, v| {
            c.delete_retention_ms = long(k, v, 0)?;
            Ok(())
        },
        default: |b| b.log.delete_retention_ms.to_string(),
    },
    TopicKey {
        name: "min.compaction.lag.ms",
        kind: ConfigType::Long,
        synonyms: &["log.cleaner.min.compaction.lag.ms"],
        default_from: "log.cleaner.min.compaction.lag.ms",
        doc: "A segment whose newest record is younger than this is not compacted.",
        apply: |c, _, k, v| {
            c.min_compaction_lag_ms = long(k, v, 0)?;
            Ok(())
        },
        default: |b| b.log.min_compaction_lag_ms.to_string(),
    },
    TopicKey {
        name: "max.compaction.lag.ms",
        kind: ConfigType::Long,
        synonyms: &["log.cleaner.max.compaction.lag.ms"],
        default_from: "log.cleaner.max.compaction.lag.ms",
        doc: "A dirty segment whose newest record is older than this is compacted whatever the dirty ratio.",
        apply: |c, _, k, v| {
            c.max_compaction_lag_ms = long(k, v, 1)?;
            Ok(())
        },
        default: |b| b.log.max_compaction_lag_ms.to_string(),
    },
    TopicKey {
        name: "min.cleanable.dirty.ratio",
        kind: ConfigType::Double,
        synonyms: &["log.cleaner.min.cleanable.ratio"],
        default_from: "log.cleaner.min.cleanable.ratio",
        doc: "The cleaner compacts a log once this share of its non-active bytes has not been compacted yet.",
        apply: |c, _, k, v| {
            c.min_cleanable_dirty_ratio = ratio(k, v)?;
            Ok(())
        },
        default: |b| format!("{:?}", b.log.min_cleanable_dirty_ratio),
    },
    TopicKey {
        name: "compression.gzip.level",
        kind: ConfigType::Int,
        synonyms: &["compression.gzip.level"],
        default_from: "compression.gzip.level",
        doc: "zlib's level for gzip (1-9, or -1: zlib's default, 6), when the broker recompresses.",
        apply: |_, _, k, v| compression_level(k, v).map(|_| ()),
        default: |b| b.compression_gzip_level.to_string(),
    },
    TopicKey {
        name: "compression.lz4.level",
        kind: ConfigType::Int,
        synonyms: &["compression.lz4.level"],
        default_from: "compression.lz4.level",
        doc: "LZ4 level (1-17; above 2 the high-compression mode), when the broker recompresses.",
        apply: |_, _, k, v| compression_level(k, v).map(|_| ()),
        default: |b| b.compression_lz4_level.to_string(),
    },
    TopicKey {
        name: "compression.zstd.level",
        kind: ConfigType::Int,
        synonyms: &["compression.zstd.level"],
        default_from: "compression.zstd.level",
        doc: "zstd level (-131072 to 22), when the broker recompresses.",
        apply: |_, _, k, v| compression_level(k, v).map(|_| ()),
        default: |b| b.compression_zstd_level.to_string(),
    },
    TopicKey {
        name: "leader.replication.throttled.replicas",
        kind: ConfigType::List,
        synonyms: &[],
        default_from: "(empty)",
        doc: "Replicas (`<partition>:<broker>,...`, or `*`) whose leader throttles what it serves to out-of-sync followers to its `leader.replication.throttled.rate` (KIP-73).",
        apply: |_, _, k, v| throttled_replicas(k, v),
        default: |_| String::new(),
    },
    TopicKey {
        name: "follower.replication.throttled.replicas",
        kind: ConfigType::List,
        synonyms: &[],
        default_from: "(empty)",
        doc: "Replicas (`<partition>:<broker>,...`, or `*`) that fetch at most `follower.replication.throttled.rate` while out of sync (KIP-73).",
        apply: |_, _, k, v| throttled_replicas(k, v),
        default: |_| String::new(),
    },
];

impl TopicKey {
    /// The value a topic without an override has: the broker's setting.
    pub fn default_value(&self, broker: &BrokerConfig) -> String {
        (self.default)(broker)
    }
}

/// A `compression.type` value: `Ok(None)` for `producer` (batches kept as produced), else the
/// codec the broker stores batches in.
pub fn compression_codec(v: &str) -> Result<Option<Codec>, String> {
    Ok(Some(match v {
        "producer" => return Ok(None),
        "uncompressed" => Codec::None,
        "gzip" => Codec::Gzip,
        "snappy" => Codec::Snappy,
        "lz4" => Codec::Lz4,
        "zstd" => Codec::Zstd,
        _ => {
            return Err(format!(
                "Invalid value {v} for configuration compression.type: String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer"
            ))
        }
    }))
}

/// A `compression.<codec>.level` value, checked with Kafka's ranges and messages.
pub fn compression_level(k: &str, v: &str) -> Result<i32, String> {
    let n = int(k, v, i32::MIN)?;
    let (min, max) = match k {
        "compression.gzip.level" => {
            if n == -1 || (1..=9).contains(&n) {
                return Ok(n);
            }
            return Err(format!(
                "Invalid value {v} for configuration {k}: Value must be between 1 and 9 or equal to -1"
            ));
        }
        "compression.lz4.level" => (1, 17),
        _ => (-131_072, 22),
    };
    if n < min {
        return Err(format!(
            "Invalid value {v} for configuration {k}: Value must be at least {min}"
        ));
    }
    if n > max {
        return Err(format!(
            "Invalid value {v} for configuration {k}: Value must be no more than {max}"
        ));
    }
    Ok(n)
}

/// A `cleanup.policy` value: `(delete, compact)`; the error is the bad element.
pub fn cleanup_policy(v: &str) -> Result<(bool, bool), String> {
    let (mut delete, mut compact) = (false, false);
    if v.trim().is_empty() {
        // KIP-1106: no policy: segments are neither deleted nor compacted.
        return Ok((false, false));
    }
    for p in v.split(',').map(str::trim) {
        match p {
            "delete" => delete = true,
            "compact" => compact = true,
            _ => return Err(v.to_string()),
        }
    }
    Ok((delete, compact))
}

/// Kafka's spelling of a policy.
pub fn policy_name(delete: bool, compact: bool) -> &'static str {
    match (delete, compact) {
        (true, true) => "compact,delete",
        (false, true) => "compact",
        (true, false) => "delete",
        (false, false) => "",
    }
}

/// Kafka's check of a throttled-replicas value: empty, `*`, or `<partition>:<broker>,...`.
pub fn throttled_replicas(key: &str, v: &str) -> Result<(), String> {
    let v = v.trim();
    let ok = v.is_empty()
        || v == "*"
        || v.split(',').all(|e| {
            e.trim().split_once(':').is_some_and(|(p, b)| {
                p.trim().parse::<u32>().is_ok() && b.trim().parse::<u32>().is_ok()
            })
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Invalid value {v} for configuration {key}: Should be a comma-separated list of [partitionId]:[brokerId] or the wildcard '*' to throttle all replicas"
        ))
    }
}

/// The key named `name`, if topics may set it.
pub fn topic_key(name: &str) -> Option<&'static TopicKey> {
    TOPIC_KEYS.iter().find(|k| k.name == name)
}

/// A topic's log settings: the broker's `base` overridden by the topic's configs, each validated.
/// The error is Kafka's message for the first bad key (answered as INVALID_CONFIG).
pub fn log_config(
    base: &LogConfig,
    ctx: TopicContext,
    configs: &BTreeMap<String, String>,
) -> Result<LogConfig, String> {
    let mut c = base.clone();
    for (k, v) in configs {
        let key = topic_key(k).ok_or_else(|| format!("Unknown topic config name: {k}"))?;
        (key.apply)(&mut c, ctx, key.name, v.trim())?;
    }
    Ok(c)
}

/// Every topic key's value for a topic: `(key, value, is_override)`, the override or the broker
/// default.
pub fn effective(
    broker: &BrokerConfig,
    configs: &BTreeMap<String, String>,
) -> Vec<(String, String, bool)> {
    TOPIC_KEYS
        .iter()
        .map(|k| match configs.get(k.name) {
            Some(v) => (k.name.to_string(), v.clone(), true),
            None => (k.name.to_string(), (k.default)(broker), false),
        })
        .collect()
}

fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    k: &str,
    v: &str,
    min: T,
    kind: &str,
) -> Result<T, String> {
    let n: T = v.parse().map_err(|_| {
        format!("Invalid value {v} for configuration {k}: Not a number of type {kind}")
    })?;
    if n < min {
        return Err(format!(
            "Invalid value {v} for configuration {k}: Value must be at least {min}"
        ));
    }
    Ok(n)
}

/// A Boolean value, as Kafka parses it (case-insensitive `true`/`false`).
pub fn boolean(k: &str, v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!(
            "Invalid value {v} for configuration {k}: Expected value to be either true or false"
        )),
    }
}

fn long(k: &str, v: &str, min: i64) -> Result<i64, String> {
    number(k, v, min, "LONG")
}

/// A DOUBLE between 0 and 1 (`min.cleanable.dirty.ratio`); refusals print the value as Java
/// prints a double (`2.0`), as Kafka's do.
fn ratio(k: &str, v: &str) -> Result<f64, String> {
    let n: f64 = v.trim().parse().map_err(|_| {
        format!("Invalid value {v} for configuration {k}: Not a number of type DOUBLE")
    })?;
    if n < 0.0 {
        return Err(format!(
            "Invalid value {n:?} for configuration {k}: Value must be at least 0"
        ));
    }
    if n > 1.0 {
        return Err(format!(
            "Invalid value {n:?} for configuration {k}: Value must be no more than 1"
        ));
    }
    Ok(n)
}

fn int(k: &str, v: &str, min: i32) -> Result<i32, String> {
    number(k, v, min, "INT")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(pairs: &[(&str, &str)], clustered: bool) -> Result<LogConfig, String> {
        let configs = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        log_config(&LogConfig::default(), TopicContext { clustered }, &configs)
    }

    #[test]
    fn values_apply_to_the_log() {
        let c = apply(
            &[
                ("retention.ms", "-1"),
                ("retention.bytes", "-5"),
                ("segment.bytes", "1048576"),
                ("message.timestamp.type", "LogAppendTime"),
            ],
            false,
        )
        .unwrap();
        assert_eq!(c.retention_ms, -1);
        assert_eq!(c.retention_bytes, -1);
        assert_eq!(c.segment_bytes, 1_048_576);
        assert_eq!(c.timestamp_type, TimestampType::LogAppendTime);
    }

    #[test]
    fn bad_values_are_refused_as_kafka_words_it() {
        // Each message is what Apache Kafka 4.1.1 answers for the same CreateTopics config.
        for (k, v, msg) in [
            ("retention.ms", "-2", "Value must be at least -1"),
            ("retention.ms", "soon", "Not a number of type LONG"),
            ("segment.bytes", "1000", "Value must be at least 1048576"),
            ("segment.bytes", "99999999999", "Not a number of type INT"),
            ("segment.ms", "0", "Value must be at least 1"),
            ("segment.index.bytes", "3", "Value must be at least 4"),
            ("index.interval.bytes", "-1", "Value must be at least 0"),
            ("flush.messages", "0", "Value must be at least 1"),
            ("flush.ms", "-1", "Value must be at least 0"),
            ("max.message.bytes", "-1", "Value must be at least 0"),
            ("message.timestamp.type", "Foo", "String must be one of"),
            ("min.insync.replicas", "0", "Value must be at least 1"),
            ("compression.type", "none", "String must be one of"),
        ] {
            let e = apply(&[(k, v)], true).unwrap_err();
            assert_eq!(
                e,
                format!(
                    "Invalid value {v} for configuration {k}: {msg}{}",
                    e.split_once(msg).map_or("", |(_, rest)| rest)
                ),
                "{k}={v}"
            );
        }
        assert!(apply(&[("no.such.key", "1")], false).is_err());
        assert!(apply(&[("min.insync.replicas", "2")], false).is_err());
        assert!(apply(&[("min.insync.replicas", "2")], true).is_ok());
        let c = apply(&[("cleanup.policy", "compact")], false).unwrap();
        assert!(c.compact && !c.delete);
        let c = apply(&[("cleanup.policy", "delete,compact")], false).unwrap();
        assert!(c.compact && c.delete);
        assert!(apply(&[("cleanup.policy", "compact,shred")], false).is_err());
        let c = apply(&[("cleanup.policy", "")], false).unwrap();
        assert!(
            !c.compact && !c.delete,
            "KIP-1106: an empty policy keeps everything"
        );
    }
}
