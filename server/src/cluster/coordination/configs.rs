//! Dynamic configs in ZooKeeper (`/config/<entity>/<name>`, Kafka's JSON): written whatever the
//! node's version, and the client quotas read back by entity path.

use super::json::*;
use crate::cluster::store::{MetadataStore, StoreError, ZkStore};
use std::collections::BTreeMap;

/// Writes `path` (created when missing, with its missing parents holding no configs) whatever
/// its version, retrying a racing writer.
pub(super) async fn set_config(
    store: &ZkStore,
    path: &str,
    configs: &std::collections::BTreeMap<String, String>,
) -> Result<(), StoreError> {
    let body = config_json(configs);
    for _ in 0..50 {
        let r = match store.get(path).await? {
            Some(node) => store.set(path, &body, node.version).await.map(|_| ()),
            None => store.create(path, &body).await,
        };
        match r {
            Err(StoreError::NoNode) => {
                // A parent is missing (`/config/users/<u>` under a user's client entity).
                let mut at = String::new();
                for part in path.trim_start_matches('/').split('/').collect::<Vec<_>>()[..]
                    .split_last()
                    .map_or(&[][..], |(_, parents)| parents)
                {
                    at.push('/');
                    at.push_str(part);
                    match store.create(&at, &config_json(&Default::default())).await {
                        Ok(()) | Err(StoreError::NodeExists) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(StoreError::BadVersion | StoreError::NodeExists) => continue,
            other => return other,
        }
    }
    Err(StoreError::Other(format!(
        "{path}: too many concurrent writers"
    )))
}

/// The client quotas under `/config/users`, `/config/clients` and `/config/ips`, by entity
/// path, and the SCRAM credentials in the user znodes.
pub(super) async fn read_quotas(
    store: &ZkStore,
) -> Result<
    (
        BTreeMap<String, BTreeMap<String, f64>>,
        super::security::ScramUsers,
    ),
    StoreError,
> {
    let mut paths = Vec::new();
    for kind in ["users", "clients", "ips"] {
        for name in store.children(&format!("/config/{kind}")).await? {
            paths.push(format!("{kind}/{name}"));
            if kind == "users" {
                for c in store
                    .children(&format!("/config/users/{name}/clients"))
                    .await?
                {
                    paths.push(format!("users/{name}/clients/{c}"));
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    let mut users = Vec::new();
    for p in paths {
        let Some(node) = store.get(&format!("/config/{p}")).await? else {
            continue;
        };
        let Ok(c) = serde_json::from_slice::<ConfigJson>(&node.data) else {
            tracing::warn!(entity = p, "unreadable client quotas");
            continue;
        };
        if let Some(Some(user)) = crate::quota::Entity::from_path(&p)
            .filter(|e| e.client_id.is_none())
            .and_then(|e| e.user)
        {
            users.push((user, c.config.clone()));
        }
        let values: BTreeMap<String, f64> = c
            .config
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.parse().ok()?)))
            .collect();
        if !values.is_empty() {
            out.insert(p, values);
        }
    }
    let scram = super::security::scram_users(users.iter().map(|(u, c)| (u.clone(), c)));
    Ok((out, scram))
}
