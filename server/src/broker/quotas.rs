//! The broker's client-quota configs: stored in the metadata file of a single broker, in
//! ZooKeeper (`/config/users/...`, `/config/clients/...`, `/config/ips/...`) in a cluster, where
//! every broker puts in force what its view shows.

use super::Broker;
use crate::error_code as ec;
use crate::quota::{self, Configs, Entity};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A quota value as Kafka's tools print it: integral values without a fraction.
pub fn value_string(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        v.to_string()
    }
}

impl Broker {
    /// The client quotas in force.
    pub fn quota_configs(&self) -> Arc<Configs> {
        self.quotas.configs()
    }

    /// Applies `changes` (a value, or `None` to remove the key) to an entity's quotas.
    pub async fn alter_quota(
        self: &Arc<Self>,
        entity: &Entity,
        changes: BTreeMap<String, Option<f64>>,
    ) -> Result<(), (i16, String)> {
        let path = entity.path();
        let next = quota::apply_changes(self.quota_configs().get(entity), &changes);
        tracing::info!(entity = path, quotas = ?next, "client quotas set");
        if let Some(c) = &self.cluster {
            let (kind, name) = path.split_once('/').expect("entity path");
            let kind: &'static str = match kind {
                "users" => "users",
                "clients" => "clients",
                _ => "ips",
            };
            // Only the quota keys change: a user's znode also holds its SCRAM credentials.
            let strings = changes
                .keys()
                .map(|k| (k.clone(), next.get(k).map(|v| value_string(*v))))
                .collect();
            c.update_config(kind, name, strings)
                .await
                .map_err(|m| (ec::UNKNOWN_SERVER_ERROR, m))?;
            let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
            c.wait_for_view(until, |v| {
                v.quotas.get(&path).map_or(next.is_empty(), |q| *q == next)
            })
            .await;
            self.quotas.set(quota::from_stored(&c.view().quotas));
            return Ok(());
        }
        let stored = {
            let _admin = self.admin.lock().expect("admin lock");
            let mut md = self.metadata.write().expect("metadata lock");
            if next.is_empty() {
                md.quotas.remove(&path);
            } else {
                md.quotas.insert(path, next);
            }
            self.persist(&md)
                .map_err(|e| (ec::KAFKA_STORAGE_ERROR, e.to_string()))?;
            md.quotas.clone()
        };
        self.quotas.set(quota::from_stored(&stored));
        Ok(())
    }
}
