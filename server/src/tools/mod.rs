//! Operator tools that speak the Kafka protocol to any broker (like Kafka's `bin/*.sh` scripts).

pub mod topics;
