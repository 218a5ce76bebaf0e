//! Ringlet's storage engine: thread-per-core shards on io_uring and Kafka-format partition logs.
//!
//! The engine stores and serves record batches; it knows nothing of Kafka requests. The
//! [`runtime`] runs shards; [`partition::Partition`] is a partition owned by one shard, whose
//! [`partition_log::PartitionLog`] keeps Kafka's on-disk format; each shard's
//! [`log_manager`] opens, tracks, closes and deletes the partitions it owns and runs their
//! housekeeping; the [`cleaner`] compacts the logs whose `cleanup.policy` asks for it.

pub mod cleaner;
pub mod config;
mod direct;
pub mod error;
pub mod log_manager;
pub mod offset_index;
pub mod partition;
pub mod partition_log;
pub mod read_ahead;
pub mod runtime;
pub mod segment;
pub mod stats;
pub mod tail_cache;
pub mod time_index;

pub use config::LogConfig;
pub use error::{BatchError, LogError};
pub use log_manager::TopicPartition;
pub use partition::{FileRegion, Offsets, Partition, ReadResult, Region};
pub use partition_log::{AbortedTxn, AppendInfo, PartitionLog, ProducerInfo};
