//! Kafka's record batch v2 format, both ways: the header layout, CRC-32C, varints, validation and
//! the record walk the broker needs, and the batch builders that clients (and the broker, for
//! its own logs such as `__consumer_offsets`) use. No I/O: the client, the load generator and the
//! tuning tool use it without compiling the storage engine.

pub mod batch;
pub mod codec;
pub mod compact;
pub mod control;
pub mod error;

pub use error::BatchError;
