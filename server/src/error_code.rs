//! Kafka wire error codes, and the one place engine errors map to them.

use ringlet_engine::{BatchError, LogError};

pub const NONE: i16 = 0;
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
pub const CORRUPT_MESSAGE: i16 = 2;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const MESSAGE_TOO_LARGE: i16 = 10;
pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
pub const RECORD_LIST_TOO_LARGE: i16 = 18;
pub const INVALID_REQUIRED_ACKS: i16 = 21;
pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
pub const INVALID_PARTITIONS: i16 = 37;
pub const INVALID_REPLICATION_FACTOR: i16 = 38;
pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
pub const INVALID_TIMESTAMP: i16 = 32;
pub const INVALID_CONFIG: i16 = 40;
pub const UNSUPPORTED_VERSION: i16 = 35;
pub const INVALID_REQUEST: i16 = 42;
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
pub const TOPIC_DELETION_DISABLED: i16 = 73;
pub const KAFKA_STORAGE_ERROR: i16 = 56;
pub const INVALID_RECORD: i16 = 87;
pub const REQUEST_TIMED_OUT: i16 = 7;
pub const NOT_ENOUGH_REPLICAS: i16 = 19;
pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
pub const LEADER_NOT_AVAILABLE: i16 = 5;
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
pub const REPLICA_NOT_AVAILABLE: i16 = 9;
pub const NOT_CONTROLLER: i16 = 41;
pub const FENCED_LEADER_EPOCH: i16 = 74;
pub const OFFSET_NOT_AVAILABLE: i16 = 78;
pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
pub const NOT_COORDINATOR: i16 = 16;
pub const ILLEGAL_GENERATION: i16 = 22;
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
pub const INVALID_GROUP_ID: i16 = 24;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const INVALID_SESSION_TIMEOUT: i16 = 26;
pub const REBALANCE_IN_PROGRESS: i16 = 27;
pub const NON_EMPTY_GROUP: i16 = 68;
pub const POLICY_VIOLATION: i16 = 44;
pub const GROUP_ID_NOT_FOUND: i16 = 69;
pub const MEMBER_ID_REQUIRED: i16 = 79;
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
pub const UNKNOWN_TOPIC_ID: i16 = 100;
pub const MISMATCHED_ENDPOINT_TYPE: i16 = 114;
pub const UNKNOWN_SERVER_ERROR: i16 = -1;
pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
pub const GROUP_AUTHORIZATION_FAILED: i16 = 30;
pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
pub const INVALID_TXN_STATE: i16 = 48;
pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
pub const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
pub const CONCURRENT_TRANSACTIONS: i16 = 51;
pub const TRANSACTION_COORDINATOR_FENCED: i16 = 52;
pub const UNSTABLE_OFFSET_COMMIT: i16 = 88;
pub const PRODUCER_FENCED: i16 = 90;
pub const OPERATION_NOT_ATTEMPTED: i16 = 55;
pub const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;
pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
pub const FENCED_INSTANCE_ID: i16 = 82;
pub const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
pub const ELIGIBLE_LEADERS_NOT_AVAILABLE: i16 = 83;
pub const ELECTION_NOT_NEEDED: i16 = 84;
pub const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
pub const FENCED_MEMBER_EPOCH: i16 = 110;
pub const UNRELEASED_INSTANCE_ID: i16 = 111;
pub const UNSUPPORTED_ASSIGNOR: i16 = 112;
pub const STALE_MEMBER_EPOCH: i16 = 113;
pub const INVALID_REGULAR_EXPRESSION: i16 = 128;
pub const INVALID_RECORD_STATE: i16 = 121;
pub const SHARE_SESSION_NOT_FOUND: i16 = 122;
pub const INVALID_SHARE_SESSION_EPOCH: i16 = 123;
pub const SHARE_SESSION_LIMIT_REACHED: i16 = 133;
pub const THROTTLING_QUOTA_EXCEEDED: i16 = 89;

/// Kafka's name for a code, for log lines and metrics.
pub fn name(code: i16) -> &'static str {
    ringlet_client::error_name(code)
}

/// Maps an engine error to the code a producer or consumer gets.
pub fn from_log_error(e: &LogError) -> i16 {
    match e {
        LogError::Batch(b) => match b {
            BatchError::TooLarge { .. } => MESSAGE_TOO_LARGE,
            BatchError::UnsupportedMagic { magic } if *magic < 2 => UNSUPPORTED_FOR_MESSAGE_FORMAT,
            BatchError::InvalidTimestamp { .. } => INVALID_RECORD,
            BatchError::TimestampOutOfRange { .. } => INVALID_TIMESTAMP,
            BatchError::InvalidRecord { .. } => INVALID_RECORD,
            BatchError::NullKeyOnCompactedTopic { .. } => INVALID_RECORD,
            BatchError::ControlFromClient => INVALID_RECORD,
            BatchError::OutOfOrderSequence { .. } => OUT_OF_ORDER_SEQUENCE_NUMBER,
            BatchError::InvalidProducerEpoch { .. } => INVALID_PRODUCER_EPOCH,
            _ => CORRUPT_MESSAGE,
        },
        LogError::Io { .. } | LogError::Offline | LogError::Corrupt { .. } => KAFKA_STORAGE_ERROR,
        LogError::OffsetOutOfRange { .. } => OFFSET_OUT_OF_RANGE,
        LogError::DeletePolicy => POLICY_VIOLATION,
        LogError::QueueFull => REQUEST_TIMED_OUT,
        LogError::NotContiguous { .. } => CORRUPT_MESSAGE,
    }
}
