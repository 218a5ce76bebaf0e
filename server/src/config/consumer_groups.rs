//! The KIP-848 consumer-group keys (`group.consumer.*`, `group.coordinator.rebalance.protocols`),
//! Kafka's names, defaults and bounds.

use super::{invalid, parse_num, ConfigError};

#[derive(Clone, Debug)]
pub struct ConsumerGroupConfig {
    /// `group.coordinator.rebalance.protocols`: `consumer` in the list enables
    /// ConsumerGroupHeartbeat (advertised in ApiVersions).
    pub consumer_protocol_enabled: bool,
    /// `group.consumer.session.timeout.ms` (within the min/max keys below).
    pub session_timeout_ms: i32,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`, told to members in every answer.
    pub heartbeat_interval_ms: i32,
    pub min_heartbeat_interval_ms: i32,
    pub max_heartbeat_interval_ms: i32,
    /// `group.consumer.assignors`: canonical names (`uniform`, `range`), the first the default.
    pub assignors: Vec<String>,
    /// `group.consumer.max.size`
    pub max_size: i32,
    /// `group.consumer.migration.policy`: which online conversions of groups with members are
    /// allowed (`coordinator::migration`).
    pub migration_policy: String,
}

impl Default for ConsumerGroupConfig {
    fn default() -> Self {
        ConsumerGroupConfig {
            consumer_protocol_enabled: true,
            session_timeout_ms: 45_000,
            min_session_timeout_ms: 45_000,
            max_session_timeout_ms: 60_000,
            heartbeat_interval_ms: 5_000,
            min_heartbeat_interval_ms: 5_000,
            max_heartbeat_interval_ms: 15_000,
            assignors: vec!["uniform".into(), "range".into()],
            max_size: i32::MAX,
            migration_policy: "bidirectional".into(),
        }
    }
}

/// Kafka's assignor names, short and class names alike, to the short one.
pub fn canonical_assignor(name: &str) -> Option<&'static str> {
    match name {
        "uniform" | "org.apache.kafka.coordinator.group.assignor.UniformAssignor" => {
            Some("uniform")
        }
        "range" | "org.apache.kafka.coordinator.group.assignor.RangeAssignor" => Some("range"),
        _ => None,
    }
}

/// Applies one consumer-group key; whether `k` is one.
pub(super) fn apply(c: &mut ConsumerGroupConfig, k: &str, v: &str) -> Result<bool, ConfigError> {
    match k {
        "group.coordinator.rebalance.protocols" => {
            let list: Vec<&str> = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            if !list.contains(&"classic")
                || list
                    .iter()
                    .any(|p| !matches!(*p, "classic" | "consumer" | "streams" | "share"))
            {
                return Err(invalid(
                    k,
                    v,
                    "a list of classic, consumer, streams, share including classic",
                ));
            }
            c.consumer_protocol_enabled = list.contains(&"consumer");
        }
        "group.consumer.session.timeout.ms" => c.session_timeout_ms = parse_num(k, v, 1, i32::MAX)?,
        "group.consumer.min.session.timeout.ms" => {
            c.min_session_timeout_ms = parse_num(k, v, 1, i32::MAX)?
        }
        "group.consumer.max.session.timeout.ms" => {
            c.max_session_timeout_ms = parse_num(k, v, 1, i32::MAX)?
        }
        "group.consumer.heartbeat.interval.ms" => {
            c.heartbeat_interval_ms = parse_num(k, v, 1, i32::MAX)?
        }
        "group.consumer.min.heartbeat.interval.ms" => {
            c.min_heartbeat_interval_ms = parse_num(k, v, 1, i32::MAX)?
        }
        "group.consumer.max.heartbeat.interval.ms" => {
            c.max_heartbeat_interval_ms = parse_num(k, v, 1, i32::MAX)?
        }
        "group.consumer.assignors" => {
            let mut names = Vec::new();
            for a in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match canonical_assignor(a) {
                    Some(n) => names.push(n.to_string()),
                    None => return Err(invalid(k, v, "uniform, range (or Kafka's class names)")),
                }
            }
            if names.is_empty() {
                return Err(invalid(k, v, "at least one assignor"));
            }
            c.assignors = names;
        }
        "group.consumer.max.size" => c.max_size = parse_num(k, v, 1, i32::MAX)?,
        "group.consumer.migration.policy" => {
            let p = v.to_ascii_lowercase();
            if !matches!(
                p.as_str(),
                "disabled" | "upgrade" | "downgrade" | "bidirectional"
            ) {
                return Err(invalid(
                    k,
                    v,
                    "disabled, upgrade, downgrade or bidirectional",
                ));
            }
            c.migration_policy = p;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Kafka's cross-key rules: each timeout within its bounds, the heartbeat shorter than the
/// session.
pub(super) fn validate(c: &ConsumerGroupConfig) -> Result<(), ConfigError> {
    let within = |k: &str, v: i32, lo: i32, hi: i32| {
        if v < lo || v > hi {
            Err(invalid(
                k,
                &v.to_string(),
                &format!("between {lo} and {hi} (its min and max keys)"),
            ))
        } else {
            Ok(())
        }
    };
    within(
        "group.consumer.session.timeout.ms",
        c.session_timeout_ms,
        c.min_session_timeout_ms,
        c.max_session_timeout_ms,
    )?;
    within(
        "group.consumer.heartbeat.interval.ms",
        c.heartbeat_interval_ms,
        c.min_heartbeat_interval_ms,
        c.max_heartbeat_interval_ms,
    )?;
    if c.heartbeat_interval_ms >= c.session_timeout_ms {
        return Err(invalid(
            "group.consumer.heartbeat.interval.ms",
            &c.heartbeat_interval_ms.to_string(),
            "less than group.consumer.session.timeout.ms",
        ));
    }
    Ok(())
}
