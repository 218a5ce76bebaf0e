//! Ringlet's Kafka protocol server: configuration, broker state, request handlers, and `serve`.

pub mod broker;
pub mod cluster;
pub mod config;
pub mod coordinator;
pub mod error_code;
pub mod fuzzing;
pub mod handlers;
pub mod metrics;
pub mod quota;
pub mod response;
pub mod sasl;
pub mod security;
pub mod serve;
pub mod server;
pub mod share;
pub mod tls;
pub mod topic_id;
pub mod transport;
pub mod txn;
