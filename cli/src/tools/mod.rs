//! Operator tools that speak the Kafka protocol to any broker (like Kafka's `bin/*.sh` scripts),
//! built on the workspace's client crate (`ringlet-client`).

use std::collections::HashMap;

pub mod acls;
pub mod consume;
pub mod groups;
pub mod produce;
pub mod records;
pub mod topics;
pub mod users;

/// `Ok` for error code 0, else "{what} failed: NAME (code): message", as the tools print broker
/// refusals.
pub fn check(
    what: &str,
    code: i16,
    message: Option<&kafka_protocol::protocol::StrBytes>,
) -> anyhow::Result<()> {
    ringlet_client::admin::check(code, message).map_err(|e| anyhow::anyhow!("{what} failed: {e}"))
}

/// `--property key=value` flags as a map; one without `=` is refused, not ignored.
pub fn properties(flags: &[String]) -> anyhow::Result<HashMap<String, String>> {
    flags
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow::anyhow!("--property {p}: expected key=value"))
        })
        .collect()
}
