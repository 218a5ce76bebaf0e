//! A small blocking Kafka client built on the `kafka-protocol` message structs (the same ones the
//! broker decodes): one connection per [`conn::Conn`], requests answered in order.
//!
//! It speaks only the protocol, so it works against any Kafka-compatible broker:
//! * [`admin`]: metadata, offsets, topics (create, delete, partitions, configs) and consumer
//!   groups (list, describe, committed offsets, admin offset commits, delete), with refusals as
//!   [`admin::BrokerError`] (Kafka's code, name and message);
//! * [`producer::Producer`]: per-partition batches bounded by `batch.size` and `linger.ms`,
//!   keyed records partitioned like Kafka's default partitioner, acks 0, 1 or all, compression;
//! * [`consumer::Consumer`]: fetches from a start position or a consumer group's committed
//!   offsets, with `max.poll.records`-style polls, offset reset and commits;
//! * [`group::GroupMember`]: the classic group protocol (join, sync, heartbeat, commit, leave).
//!
//! The console tools (`ringlet produce`, `consume`, `topics`, `groups`), the load generator and
//! the tuner use it.

pub mod admin;
pub mod codec;
pub mod conn;
pub mod consumer;
pub mod errors;
pub mod group;
pub mod producer;
pub mod records;
pub mod scram;
pub mod security;

pub use codec::Codec;
pub use conn::{ClientError, Conn};
pub use errors::error_name;
pub use records::Record;
