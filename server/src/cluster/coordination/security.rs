//! A cluster's security metadata in ZooKeeper, where Kafka's ZooKeeper mode kept it, so that a
//! user created or an ACL added through one broker holds on every broker:
//!
//! * SCRAM credentials in the user's config znode (`/config/users/<user>`, beside its client
//!   quotas): `"SCRAM-SHA-256": "salt=<b64>,stored_key=<b64>,server_key=<b64>,iterations=<n>"`;
//! * ACLs per resource pattern: `/kafka-acl/<Type>/<name>` (literal) and
//!   `/kafka-acl-extended/prefixed/<Type>/<name>`, each
//!   `{"version":1,"acls":[{"principal":..,"permissionType":"Allow","operation":"Read","host":..}]}`.
//!
//! Kafka's change-notification znodes (`/kafka-acl-changes`, `/config/changes`) are not written:
//! every broker watches the whole tree (ADR 0007).

use super::json::ConfigJson;
use crate::cluster::store::{MetadataStore, Op, StoreError, ZkStore};
use crate::security::{code, op_name, resource_name, Acl};
use ringlet_client::scram::{self, Credential, Mechanism};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// SCRAM credentials by user and mechanism.
pub type ScramUsers = BTreeMap<String, BTreeMap<Mechanism, Credential>>;

/// Kafka's ZooKeeper form of one credential.
pub fn scram_string(c: &Credential) -> String {
    format!(
        "salt={},stored_key={},server_key={},iterations={}",
        scram::b64(&c.salt),
        scram::b64(&c.stored_key),
        scram::b64(&c.server_key),
        c.iterations
    )
}

/// Reads [`scram_string`]'s form back.
pub fn parse_scram(s: &str) -> Option<Credential> {
    let fields: BTreeMap<&str, &str> = s.split(',').filter_map(|f| f.split_once('=')).collect();
    Some(Credential {
        salt: scram::unb64(fields.get("salt")?)?,
        stored_key: scram::unb64(fields.get("stored_key")?)?,
        server_key: scram::unb64(fields.get("server_key")?)?,
        iterations: fields.get("iterations")?.parse().ok()?,
    })
}

/// The SCRAM credentials in user config znodes (`configs`: the user's path under `/config`
/// and its config map), by user name.
pub fn scram_users<'a>(
    configs: impl Iterator<Item = (String, &'a BTreeMap<String, String>)>,
) -> ScramUsers {
    let mut out = ScramUsers::new();
    for (user, c) in configs {
        for (k, v) in c {
            let Some(m) = Mechanism::from_name(k) else {
                continue;
            };
            match parse_scram(v) {
                Some(cred) => {
                    out.entry(user.clone()).or_default().insert(m, cred);
                }
                None => tracing::warn!(user, mechanism = k, "unreadable SCRAM credential"),
            }
        }
    }
    out
}

/// Changes some keys of a config znode (`None` removes one), keeping the others (a user's
/// quotas and credentials share it); created when missing. Retries a racing writer.
pub(super) async fn update_config(
    store: &ZkStore,
    path: &str,
    changes: &BTreeMap<String, Option<String>>,
) -> Result<(), StoreError> {
    for _ in 0..50 {
        let node = store.get(path).await?;
        let mut configs: BTreeMap<String, String> = match &node {
            Some(n) => serde_json::from_slice::<ConfigJson>(&n.data)
                .map(|c| c.config)
                .unwrap_or_default(),
            None => BTreeMap::new(),
        };
        for (k, v) in changes {
            match v {
                Some(v) => configs.insert(k.clone(), v.clone()),
                None => configs.remove(k),
            };
        }
        let body = super::json::config_json(&configs);
        let r = match node {
            Some(n) => store.set(path, &body, n.version).await.map(|_| ()),
            None => store.create(path, &body).await,
        };
        match r {
            Err(StoreError::BadVersion | StoreError::NodeExists) => continue,
            other => return other,
        }
    }
    Err(StoreError::Other(format!(
        "{path}: too many concurrent writers"
    )))
}

/// Serves an `UpdateConfig` or `UpdateAcls` request; the error ends the session.
pub(super) async fn serve(store: &ZkStore, r: crate::cluster::Request) -> Result<(), StoreError> {
    use crate::cluster::Request;
    let (r, reply) = match r {
        Request::UpdateConfig {
            entity,
            name,
            changes,
            reply,
        } => {
            let path = format!("/config/{entity}/{name}");
            let r = update_config(store, &path, &changes).await;
            if r.is_ok() {
                // Values are not logged: they may be credentials.
                tracing::info!(entity, name, keys = ?changes.keys().collect::<Vec<_>>(), "configs updated");
            }
            (r, reply)
        }
        Request::UpdateAcls { add, remove, reply } => {
            let r = update_acls(store, &add, &remove).await;
            if r.is_ok() {
                tracing::info!(added = add.len(), removed = remove.len(), "ACLs written");
            }
            (r, reply)
        }
        _ => unreachable!("only security metadata requests are served here"),
    };
    let _ = reply.send(r.clone().map_err(|e| e.to_string()));
    match r {
        Err(e @ StoreError::Session(_)) => Err(e),
        _ => Ok(()),
    }
}

#[derive(Serialize, Deserialize)]
struct AclsJson {
    version: i32,
    acls: Vec<AclEntryJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AclEntryJson {
    principal: String,
    permission_type: String,
    operation: String,
    host: String,
}

const LITERAL_ROOT: &str = "/kafka-acl";
const PREFIXED_ROOT: &str = "/kafka-acl-extended/prefixed";
const RESOURCE_TYPES: [i8; 4] = [
    code::TOPIC,
    code::GROUP,
    code::CLUSTER,
    code::TRANSACTIONAL_ID,
];

/// A resource name as a znode name: Kafka's, with `%` and `/` escaped (a group or
/// transactional id may hold them).
fn encode(name: &str) -> String {
    name.replace('%', "%25").replace('/', "%2F")
}

fn decode(name: &str) -> String {
    name.replace("%2F", "/").replace("%25", "%")
}

/// The znode of an ACL's resource pattern.
fn acl_path(a: &Acl) -> String {
    let root = if a.pattern_type == code::PREFIXED {
        PREFIXED_ROOT
    } else {
        LITERAL_ROOT
    };
    format!(
        "{root}/{}/{}",
        resource_name(a.resource_type),
        encode(&a.resource_name)
    )
}

fn operation_code(name: &str) -> Option<i8> {
    (code::ALL..=code::IDEMPOTENT_WRITE).find(|c| op_name(*c) == name)
}

fn entries(acls: &[Acl]) -> Vec<u8> {
    serde_json::to_vec(&AclsJson {
        version: 1,
        acls: acls
            .iter()
            .map(|a| AclEntryJson {
                principal: a.principal.clone(),
                permission_type: if a.permission_type == code::DENY {
                    "Deny"
                } else {
                    "Allow"
                }
                .into(),
                operation: op_name(a.operation).into(),
                host: a.host.clone(),
            })
            .collect(),
    })
    .expect("acl json")
}

/// The ACLs of one resource pattern's znode.
fn parse_entries(data: &[u8], resource_type: i8, name: &str, pattern_type: i8) -> Vec<Acl> {
    let Ok(j) = serde_json::from_slice::<AclsJson>(data) else {
        tracing::warn!(resource = name, "unreadable ACL znode");
        return Vec::new();
    };
    j.acls
        .into_iter()
        .filter_map(|e| {
            Some(Acl {
                resource_type,
                resource_name: name.to_string(),
                pattern_type,
                principal: e.principal,
                host: e.host,
                operation: operation_code(&e.operation)?,
                permission_type: match e.permission_type.as_str() {
                    "Deny" => code::DENY,
                    "Allow" => code::ALLOW,
                    _ => return None,
                },
            })
        })
        .collect()
}

/// Every ACL in ZooKeeper.
pub(super) async fn read_acls(store: &ZkStore) -> Result<Vec<Acl>, StoreError> {
    let mut out = Vec::new();
    for (root, pattern) in [
        (LITERAL_ROOT, code::LITERAL),
        (PREFIXED_ROOT, code::PREFIXED),
    ] {
        for t in RESOURCE_TYPES {
            let dir = format!("{root}/{}", resource_name(t));
            for name in store.children(&dir).await? {
                if let Some(n) = store.get(&format!("{dir}/{name}")).await? {
                    out.extend(parse_entries(&n.data, t, &decode(&name), pattern));
                }
            }
        }
    }
    Ok(out)
}

/// Adds `add` and removes `remove` (exact entries), one conditional write per resource pattern
/// (its znode deleted when it has no ACL left). Retries a racing writer.
pub(super) async fn update_acls(
    store: &ZkStore,
    add: &[Acl],
    remove: &[Acl],
) -> Result<(), StoreError> {
    let mut by_path: BTreeMap<String, (i8, String, i8)> = BTreeMap::new();
    for a in add.iter().chain(remove) {
        by_path.insert(
            acl_path(a),
            (a.resource_type, a.resource_name.clone(), a.pattern_type),
        );
    }
    for (path, (rt, name, pt)) in by_path {
        let mut done = false;
        for _ in 0..50 {
            let node = store.get(&path).await?;
            let mut acls = node
                .as_ref()
                .map_or_else(Vec::new, |n| parse_entries(&n.data, rt, &name, pt));
            acls.retain(|a| !remove.contains(a));
            for a in add.iter().filter(|a| acl_path(a) == path) {
                if !acls.contains(a) {
                    acls.push(a.clone());
                }
            }
            let r = match (&node, acls.is_empty()) {
                (None, true) => Ok(()),
                (None, false) => store.create(&path, &entries(&acls)).await,
                (Some(n), false) => store
                    .set(&path, &entries(&acls), n.version)
                    .await
                    .map(|_| ()),
                (Some(n), true) => store
                    .multi(&[
                        Op::Check {
                            path: path.clone(),
                            version: n.version,
                        },
                        Op::Delete { path: path.clone() },
                    ])
                    .await
                    .map(|_| ()),
            };
            match r {
                Err(StoreError::BadVersion | StoreError::NodeExists | StoreError::NoNode) => {
                    continue
                }
                Err(e) => return Err(e),
                Ok(()) => {
                    done = true;
                    break;
                }
            }
        }
        if !done {
            return Err(StoreError::Other(format!(
                "{path}: too many concurrent writers"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_forms_round_trip() {
        let c = Credential::from_salted(Mechanism::Sha256, b"salt".to_vec(), 4096, &[7; 32]);
        assert_eq!(parse_scram(&scram_string(&c)), Some(c));
        let a = Acl {
            resource_type: code::GROUP,
            resource_name: "team/a%b".into(),
            pattern_type: code::PREFIXED,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: code::IDEMPOTENT_WRITE,
            permission_type: code::DENY,
        };
        assert_eq!(
            acl_path(&a),
            "/kafka-acl-extended/prefixed/Group/team%2Fa%25b"
        );
        let json = entries(std::slice::from_ref(&a));
        assert_eq!(
            String::from_utf8(json.clone()).unwrap(),
            r#"{"version":1,"acls":[{"principal":"User:alice","permissionType":"Deny","operation":"IdempotentWrite","host":"*"}]}"#
        );
        assert_eq!(
            parse_entries(&json, code::GROUP, "team/a%b", code::PREFIXED),
            vec![a]
        );
        assert_eq!(decode(&encode("x/%2F")), "x/%2F");
    }
}
