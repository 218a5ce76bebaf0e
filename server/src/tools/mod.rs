//! Operator tools that speak the Kafka protocol to any broker (like Kafka's `bin/*.sh` scripts).

pub mod consume;
pub mod groups;
pub mod produce;
pub mod records;
pub mod topics;
