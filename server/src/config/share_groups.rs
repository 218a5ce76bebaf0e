//! The KIP-932 share-group keys (`group.share.*`, the `share.version` feature level), Kafka's
//! names, defaults and bounds.

use super::{invalid, parse_num, ConfigError};

#[derive(Clone, Debug)]
pub struct ShareGroupConfig {
    /// `share.version`: the feature level ApiVersions finalizes (Kafka sets it with
    /// kafka-features.sh); 1 serves share groups (their APIs are advertised only then).
    pub version: i16,
    /// `group.share.session.timeout.ms` (within its min/max keys).
    pub session_timeout_ms: i32,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// `group.share.heartbeat.interval.ms`, told to members in every answer.
    pub heartbeat_interval_ms: i32,
    pub min_heartbeat_interval_ms: i32,
    pub max_heartbeat_interval_ms: i32,
    /// `group.share.record.lock.duration.ms`: how long a member holds acquired records.
    pub record_lock_duration_ms: i32,
    pub min_record_lock_duration_ms: i32,
    pub max_record_lock_duration_ms: i32,
    /// `group.share.delivery.count.limit`: deliveries of one record before it is archived.
    pub delivery_count_limit: i32,
    /// `group.share.partition.max.record.locks`: records in flight per share partition.
    pub partition_max_record_locks: i32,
    /// `group.share.max.size`: members per share group.
    pub max_size: i32,
    /// `group.share.max.share.sessions`: share sessions per broker.
    pub max_share_sessions: i32,
}

impl Default for ShareGroupConfig {
    fn default() -> Self {
        ShareGroupConfig {
            version: 1,
            session_timeout_ms: 45_000,
            min_session_timeout_ms: 45_000,
            max_session_timeout_ms: 60_000,
            heartbeat_interval_ms: 5_000,
            min_heartbeat_interval_ms: 5_000,
            max_heartbeat_interval_ms: 15_000,
            record_lock_duration_ms: 30_000,
            min_record_lock_duration_ms: 15_000,
            max_record_lock_duration_ms: 60_000,
            delivery_count_limit: 5,
            partition_max_record_locks: 2000,
            max_size: 200,
            max_share_sessions: 2000,
        }
    }
}

/// Applies one share-group key; whether `k` is one.
pub(super) fn apply(c: &mut ShareGroupConfig, k: &str, v: &str) -> Result<bool, ConfigError> {
    let n = |lo: i32, hi: i32| parse_num(k, v, lo, hi);
    match k {
        "share.version" => c.version = parse_num(k, v, 0, 1)?,
        "group.share.session.timeout.ms" => c.session_timeout_ms = n(1, i32::MAX)?,
        "group.share.min.session.timeout.ms" => c.min_session_timeout_ms = n(1, i32::MAX)?,
        "group.share.max.session.timeout.ms" => c.max_session_timeout_ms = n(1, i32::MAX)?,
        "group.share.heartbeat.interval.ms" => c.heartbeat_interval_ms = n(1, i32::MAX)?,
        "group.share.min.heartbeat.interval.ms" => c.min_heartbeat_interval_ms = n(1, i32::MAX)?,
        "group.share.max.heartbeat.interval.ms" => c.max_heartbeat_interval_ms = n(1, i32::MAX)?,
        "group.share.record.lock.duration.ms" => c.record_lock_duration_ms = n(1000, 3_600_000)?,
        "group.share.min.record.lock.duration.ms" => {
            c.min_record_lock_duration_ms = n(1000, 3_600_000)?
        }
        "group.share.max.record.lock.duration.ms" => {
            c.max_record_lock_duration_ms = n(1000, 3_600_000)?
        }
        "group.share.delivery.count.limit" => c.delivery_count_limit = n(2, 10)?,
        "group.share.partition.max.record.locks" => c.partition_max_record_locks = n(100, 10_000)?,
        "group.share.max.size" => c.max_size = n(1, 1000)?,
        "group.share.max.share.sessions" => c.max_share_sessions = n(1, i32::MAX)?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// Kafka's cross-key rules: each value within its min and max keys, the heartbeat shorter than
/// the session.
pub(super) fn validate(c: &ShareGroupConfig) -> Result<(), ConfigError> {
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
        "group.share.session.timeout.ms",
        c.session_timeout_ms,
        c.min_session_timeout_ms,
        c.max_session_timeout_ms,
    )?;
    within(
        "group.share.heartbeat.interval.ms",
        c.heartbeat_interval_ms,
        c.min_heartbeat_interval_ms,
        c.max_heartbeat_interval_ms,
    )?;
    within(
        "group.share.record.lock.duration.ms",
        c.record_lock_duration_ms,
        c.min_record_lock_duration_ms,
        c.max_record_lock_duration_ms,
    )?;
    if c.heartbeat_interval_ms >= c.session_timeout_ms {
        return Err(invalid(
            "group.share.heartbeat.interval.ms",
            &c.heartbeat_interval_ms.to_string(),
            "less than group.share.session.timeout.ms",
        ));
    }
    Ok(())
}
