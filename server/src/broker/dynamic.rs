//! Dynamic broker configs (KIP-226): the log defaults every topic inherits, changed with
//! AlterConfigs / IncrementalAlterConfigs on a BROKER resource without a restart, for one broker
//! (resource name = its id) or for all (resource name empty: `<default>`). A cluster keeps them
//! in ZooKeeper as Kafka's ZooKeeper mode did (`/config/brokers/<default>`, `/config/brokers/<id>`)
//! and each broker applies what names it; a single broker keeps them in its metadata file.
//!
//! Precedence, as Kafka's: the broker's own dynamic value, then the cluster-wide dynamic default,
//! then `server.properties` / `--override`, then the built-in default. The effective settings are
//! the static properties with the dynamic ones laid over them, parsed by the same code as at
//! start-up; every local partition is reconfigured when they change.

use super::Broker;
use crate::config::topic::TOPIC_KEYS;
use crate::config::BrokerConfig;
use crate::error_code as ec;
use ringlet_engine::{log_manager, runtime};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The znode name (and metadata key) of the cluster-wide dynamic default.
pub const DEFAULT: &str = "<default>";

/// The broker keys that change without a restart: the broker defaults of topic configs (what
/// Kafka's DynamicLogConfig covers), except `min.insync.replicas`, which the replication layer
/// reads at start-up, and the replication throttle rates.
pub fn is_dynamic(key: &str) -> bool {
    use crate::cluster::throttle::{FOLLOWER_RATE, LEADER_RATE};
    key == LEADER_RATE
        || key == FOLLOWER_RATE
        || (key != "min.insync.replicas" && TOPIC_KEYS.iter().any(|k| k.synonyms.contains(&key)))
}

/// The dynamic configs in force on a broker: the cluster-wide default and its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dynamic {
    pub default: BTreeMap<String, String>,
    pub own: BTreeMap<String, String>,
}

/// The settings in force: the static properties with `dynamic` laid over them.
pub fn effective(base: &BrokerConfig, dynamic: &Dynamic) -> Result<BrokerConfig, String> {
    if dynamic.default.is_empty() && dynamic.own.is_empty() {
        return Ok(base.clone());
    }
    let mut props = base.properties.clone();
    props.extend(dynamic.default.clone());
    props.extend(dynamic.own.clone());
    let (mut c, _) = BrokerConfig::from_properties(&props).map_err(|e| e.to_string())?;
    // What was set statically stays the record of `server.properties`.
    c.properties = base.properties.clone();
    Ok(c)
}

impl Broker {
    /// The broker settings in force now (static ones with the dynamic configs over them).
    pub fn effective_config(&self) -> Arc<BrokerConfig> {
        self.dynamic.read().expect("dynamic lock").1.clone()
    }

    /// The dynamic configs in force on this broker.
    pub fn dynamic_configs(&self) -> Dynamic {
        self.dynamic.read().expect("dynamic lock").0.clone()
    }

    /// The dynamic configs a BROKER resource holds (`name` empty: the cluster default).
    pub fn broker_resource_configs(&self, name: &str) -> BTreeMap<String, String> {
        let key = if name.is_empty() { DEFAULT } else { name };
        match &self.cluster {
            Some(c) => c.view().broker_configs.get(key).cloned(),
            None => self
                .metadata
                .read()
                .expect("metadata lock")
                .brokers
                .get(key)
                .cloned(),
        }
        .unwrap_or_default()
    }

    /// Replaces a BROKER resource's dynamic configs (validated: dynamic keys only, values as
    /// at start-up). A cluster writes them to ZooKeeper and every broker applies what names it;
    /// a single broker stores and applies them at once.
    pub async fn set_broker_configs(
        self: &Arc<Self>,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), (i16, String)> {
        let me = self.config.broker_id.to_string();
        let known = match &self.cluster {
            Some(c) => name.is_empty() || c.view().brokers.keys().any(|b| b.to_string() == name),
            None => name.is_empty() || name == me,
        };
        if !known {
            return Err((ec::INVALID_REQUEST, format!("unknown broker '{name}'")));
        }
        let fixed: Vec<&str> = configs
            .keys()
            .map(String::as_str)
            .filter(|k| !is_dynamic(k))
            .collect();
        if !fixed.is_empty() {
            return Err((
                ec::INVALID_REQUEST,
                format!("Cannot update these configs dynamically: {fixed:?}"),
            ));
        }
        let mut trial = self.dynamic_configs();
        if name.is_empty() {
            trial.default = configs.clone();
        } else {
            trial.own = configs.clone();
        }
        effective(&self.config, &trial).map_err(|m| (ec::INVALID_CONFIG, m))?;
        if validate_only {
            return Ok(());
        }
        let key = if name.is_empty() { DEFAULT } else { name };
        tracing::info!(broker = key, configs = ?configs, "dynamic broker configs set");
        if let Some(c) = &self.cluster {
            c.set_config("brokers", key, configs)
                .await
                .map_err(|m| (ec::UNKNOWN_SERVER_ERROR, m))?;
            let d = self.dynamic_from_view(&c.view());
            self.apply_dynamic(d).await;
            return Ok(());
        }
        let d = {
            let _admin = self.admin.lock().expect("admin lock");
            let mut md = self.metadata.write().expect("metadata lock");
            if configs.is_empty() {
                md.brokers.remove(key);
            } else {
                md.brokers.insert(key.to_string(), configs);
            }
            self.persist(&md)
                .map_err(|e| (ec::KAFKA_STORAGE_ERROR, e.to_string()))?;
            Dynamic {
                default: md.brokers.get(DEFAULT).cloned().unwrap_or_default(),
                own: md.brokers.get(&me).cloned().unwrap_or_default(),
            }
        };
        self.apply_dynamic(d).await;
        Ok(())
    }

    /// What of a cluster view's dynamic broker configs is this broker's.
    pub fn dynamic_from_view(&self, view: &crate::cluster::ClusterView) -> Dynamic {
        let me = self.config.broker_id.to_string();
        Dynamic {
            default: view
                .broker_configs
                .get(DEFAULT)
                .cloned()
                .unwrap_or_default(),
            own: view.broker_configs.get(&me).cloned().unwrap_or_default(),
        }
    }

    /// Puts `d` in force if it differs from what is: the effective settings are rebuilt and
    /// every local partition reconfigured with its topic's configs over the new defaults.
    pub async fn apply_dynamic(self: &Arc<Self>, d: Dynamic) {
        if self.dynamic_configs() == d {
            return;
        }
        let cfg = match effective(&self.config, &d) {
            Ok(c) => Arc::new(c),
            Err(m) => {
                tracing::error!(
                    error = m,
                    "dynamic broker configs refused; keeping the previous ones"
                );
                return;
            }
        };
        if let Some(c) = &self.cluster {
            c.throttles
                .leader
                .set_rate(cfg.cluster.leader_replication_throttled_rate);
            c.throttles
                .follower
                .set_rate(cfg.cluster.follower_replication_throttled_rate);
        }
        *self.dynamic.write().expect("dynamic lock") = (d, cfg);
        let topics: Vec<(String, BTreeMap<String, String>, Vec<super::Placement>)> = self
            .metadata
            .read()
            .expect("metadata lock")
            .topics
            .iter()
            .map(|(n, t)| (n.clone(), t.configs.clone(), t.partitions.clone()))
            .collect();
        for (name, configs, placements) in topics {
            let Ok(log) = self.log_config(&configs) else {
                continue;
            };
            for (i, p) in placements.iter().enumerate().filter(|(_, p)| p.local) {
                let (topic, log) = (name.clone(), log.clone());
                let _ = runtime::call_on(p.shard, move || async move {
                    log_manager::reconfigure(&topic, i as i32, log);
                })
                .await;
            }
        }
        tracing::info!("dynamic broker configs applied to every local partition");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_defaults_are_dynamic_and_the_rest_is_not() {
        assert!(is_dynamic("log.retention.ms"));
        assert!(is_dynamic("message.max.bytes"));
        assert!(is_dynamic("log.segment.bytes"));
        assert!(!is_dynamic("min.insync.replicas"));
        assert!(!is_dynamic("listeners"));
        assert!(!is_dynamic("num.io.threads"));
        assert!(is_dynamic("leader.replication.throttled.rate"));
    }

    #[test]
    fn the_own_value_wins_over_the_default_over_the_static_one() {
        let mut props = BTreeMap::new();
        props.insert("message.max.bytes".to_string(), "5000".to_string());
        let (base, _) = BrokerConfig::from_properties(&props).unwrap();
        let mut d = Dynamic::default();
        assert_eq!(effective(&base, &d).unwrap().log.max_message_bytes, 5000);
        d.default.insert("message.max.bytes".into(), "6000".into());
        assert_eq!(effective(&base, &d).unwrap().log.max_message_bytes, 6000);
        d.own.insert("message.max.bytes".into(), "7000".into());
        let e = effective(&base, &d).unwrap();
        assert_eq!(e.log.max_message_bytes, 7000);
        assert_eq!(
            e.properties.get("message.max.bytes").map(String::as_str),
            Some("5000")
        );
        d.own.insert("message.max.bytes".into(), "-3".into());
        assert!(effective(&base, &d).is_err());
    }
}
