//! Ringlet's storage engine: thread-per-core shards on io_uring and Kafka-format partition logs.
//!
//! The engine stores and serves record batches; it knows nothing of Kafka requests. The
//! [`runtime`] runs shards; [`partition::Partition`] is a partition owned by one shard, whose
//! [`partition_log::PartitionLog`] keeps Kafka's on-disk format.

pub mod batch;
pub mod config;
pub mod error;
pub mod offset_index;
pub mod partition;
pub mod partition_log;
pub mod runtime;
pub mod segment;
pub mod stats;
pub mod time_index;

pub use config::LogConfig;
pub use error::{BatchError, LogError};
pub use partition::{FileRegion, Partition, ReadResult};
pub use partition_log::{AppendInfo, PartitionLog};
