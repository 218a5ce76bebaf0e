//! The transaction coordinator's keys (`transaction.*`, `transactional.id.*`), Kafka's names and
//! defaults.

use super::{parse_num, ConfigError};

#[derive(Clone, Debug)]
pub struct TransactionConfig {
    /// `transaction.state.log.num.partitions`
    pub state_log_num_partitions: i32,
    /// `transaction.state.log.replication.factor` (a cluster; fewer when fewer brokers are up)
    pub state_log_replication_factor: i16,
    /// `transaction.state.log.min.isr`
    pub state_log_min_isr: i16,
    /// `transaction.state.log.segment.bytes`
    pub state_log_segment_bytes: u64,
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer may ask for.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: an id idle this long is forgotten.
    pub id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often the coordinator
    /// looks for transactions open past their timeout (and finishes interrupted ones).
    pub abort_timed_out_interval_ms: u64,
    /// `transaction.version`: the finalized level of Kafka's `transaction.version` feature that
    /// ApiVersions advertises. 2 (Kafka 4's default for a new cluster) lets clients use
    /// KIP-890 part 2: partitions join a transaction implicitly when produced to, and every
    /// EndTxn bumps the producer epoch. Kafka finalizes it with `kafka-features.sh`; Ringlet reads
    /// it at start (1 pins clients to version 1 transactions).
    pub version: i16,
    /// `transaction.partition.verification.enable`: a partition leader checks with the
    /// coordinator that a version 1 transaction's first batch to a partition belongs to an open
    /// transaction (KIP-890 part 1), so a late batch cannot start a transaction that never ends.
    pub partition_verification_enable: bool,
}

impl Default for TransactionConfig {
    fn default() -> Self {
        TransactionConfig {
            state_log_num_partitions: 50,
            state_log_replication_factor: 3,
            state_log_min_isr: 2,
            state_log_segment_bytes: 104_857_600,
            max_timeout_ms: 900_000,
            id_expiration_ms: 604_800_000,
            abort_timed_out_interval_ms: 10_000,
            version: 2,
            partition_verification_enable: true,
        }
    }
}

/// Applies one `transaction.*` key; whether `k` is one.
pub(super) fn apply(t: &mut TransactionConfig, k: &str, v: &str) -> Result<bool, ConfigError> {
    match k {
        "transaction.state.log.num.partitions" => {
            t.state_log_num_partitions = parse_num(k, v, 1, 10_000)?
        }
        "transaction.state.log.replication.factor" => {
            t.state_log_replication_factor = parse_num(k, v, 1, i16::MAX)?
        }
        "transaction.state.log.min.isr" => t.state_log_min_isr = parse_num(k, v, 1, i16::MAX)?,
        "transaction.state.log.segment.bytes" => {
            t.state_log_segment_bytes = parse_num(k, v, 14, i32::MAX as u64)?
        }
        "transaction.max.timeout.ms" => t.max_timeout_ms = parse_num(k, v, 1, i32::MAX)?,
        "transactional.id.expiration.ms" => {
            t.id_expiration_ms = parse_num(k, v, 1, i64::from(i32::MAX))?
        }
        "transaction.abort.timed.out.transaction.cleanup.interval.ms" => {
            t.abort_timed_out_interval_ms = parse_num(k, v, 1, i32::MAX as u64)?
        }
        "transaction.version" => t.version = parse_num(k, v, 0, 2)?,
        "transaction.partition.verification.enable" => {
            t.partition_verification_enable = super::parse_bool(k, v)?
        }
        // Kafka's interval for removing expired ids; Ringlet checks expiry at every tick.
        "transaction.remove.expired.transaction.cleanup.interval.ms" => {
            let _: i32 = parse_num(k, v, 1, i32::MAX)?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}
