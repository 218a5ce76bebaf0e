//! Broker configuration: Kafka's `server.properties` keys, their defaults, and validation.
//!
//! `ringlet serve [server.properties] [--override key=value]...` reads the file (if any), then the
//! overrides. Unknown keys are logged and ignored; a value that does not parse or is out of range
//! stops start-up with the key, the value and what is allowed.
//!
//! Split by what the keys are for: [`keys`] lists every key with its default and meaning (the
//! source of `docs/configuration.md`), [`listeners`] builds the listeners and their security
//! settings, [`broker`] parses everything else into [`BrokerConfig`].

mod broker;
mod consumer_groups;
mod keys;
mod listeners;
mod share_groups;
#[cfg(test)]
mod tests;
pub mod topic;
mod transactions;

pub use broker::{BrokerConfig, ClusterConfig};
pub use consumer_groups::{canonical_assignor, ConsumerGroupConfig};
pub use keys::{key_type, ConfigType, KEYS};
pub use listeners::{
    map_principal, parse_principal_rules, ClientAuth, Listener, ListenerSpec, PrincipalRule,
    SecurityProtocol, SslSettings,
};
pub use share_groups::ShareGroupConfig;
pub use transactions::TransactionConfig;

use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid value {value:?} for {key}: {allowed}")]
    Invalid {
        key: String,
        value: String,
        allowed: String,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed line {line} in {path}: {text:?} (expected key=value)")]
    Malformed {
        path: PathBuf,
        line: usize,
        text: String,
    },
}

pub(crate) fn invalid(key: &str, value: &str, allowed: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: value.into(),
        allowed: allowed.into(),
    }
}

pub(crate) fn parse_num<T: std::str::FromStr + PartialOrd + Copy + std::fmt::Display>(
    key: &str,
    value: &str,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    let v: T = value
        .trim()
        .parse()
        .map_err(|_| invalid(key, value, &format!("an integer in [{min}, {max}]")))?;
    if v < min || v > max {
        return Err(invalid(
            key,
            value,
            &format!("an integer in [{min}, {max}]"),
        ));
    }
    Ok(v)
}

pub(crate) fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, value, "true or false")),
    }
}

/// Reads a `server.properties` file into key/value pairs (later lines win).
pub fn read_properties(path: &std::path::Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some((k, v)) = line.split_once('=').or_else(|| line.split_once(':')) else {
            return Err(ConfigError::Malformed {
                path: path.to_path_buf(),
                line: i + 1,
                text: line.into(),
            });
        };
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}
