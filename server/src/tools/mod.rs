//! Operator tools that speak the Kafka protocol to any broker (like Kafka's `bin/*.sh` scripts),
//! built on the workspace's client crate (`ringlet-client`).

pub mod consume;
pub mod groups;
pub mod produce;
pub mod topics;
