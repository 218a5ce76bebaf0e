//! Who a connection is and what it may do: the session (listener, principal, peer), the ACL
//! authorizer (`authorizer.class.name`, `super.users`, `allow.everyone.if.no.acl.found`) and the
//! SCRAM credential store. Both stores are JSON files under `<first log dir>/__security/`,
//! written atomically (temporary file, fsync, rename) on every change.

use ringlet_client::scram::{self, Credential, Mechanism};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// One connection's identity, shared by its reader, its writer and the handlers.
#[derive(Debug)]
pub struct Session {
    /// Index of the listener in `BrokerConfig::listeners`.
    pub listener: usize,
    /// `User:name` (SASL), `User:CN=...` (TLS client certificate) or `User:ANONYMOUS`.
    pub principal: RefCell<String>,
    pub peer: String,
    /// The peer's IP address as ACL host patterns see it.
    pub host: String,
    /// The client id of the latest request (client quotas are per client id).
    pub client_id: RefCell<String>,
    /// A client over its quota: no request is read from the connection before this (KIP-219).
    pub muted_until: std::cell::Cell<Option<std::time::Instant>>,
    /// Shard time spent handling this connection's requests and not yet charged to its
    /// `request_percentage` quota ([`crate::quota::Timed`] adds to it).
    pub request_time: std::rc::Rc<std::cell::Cell<std::time::Duration>>,
    /// A broker's connection (a ClusterAction request was allowed on it): exempt from request
    /// quotas, as Kafka exempts inter-broker requests.
    pub quota_exempt: std::cell::Cell<bool>,
}

impl Session {
    pub fn new(listener: usize, peer: String) -> Session {
        let host = peer
            .parse::<std::net::SocketAddr>()
            .map_or_else(|_| peer.clone(), |a| a.ip().to_string());
        Session {
            listener,
            principal: RefCell::new(ANONYMOUS.into()),
            peer,
            host,
            client_id: RefCell::new(String::new()),
            muted_until: std::cell::Cell::new(None),
            request_time: Default::default(),
            quota_exempt: std::cell::Cell::new(false),
        }
    }

    /// The user a client quota sees: the principal's name (`ANONYMOUS` when unauthenticated).
    pub fn quota_user(&self) -> String {
        let p = self.principal.borrow();
        p.strip_prefix("User:").unwrap_or(&p).to_string()
    }

    /// Charges `amount` against the client's `key` quota; over it, mutes the connection and
    /// returns the throttle time for the response.
    pub fn charge_quota(
        &self,
        quotas: &crate::quota::Quotas,
        key: &'static str,
        amount: f64,
    ) -> i32 {
        if quotas.is_empty() {
            return 0;
        }
        let ms = quotas.record(key, &self.quota_user(), &self.client_id.borrow(), amount);
        if ms > 0 {
            let until = std::time::Instant::now() + std::time::Duration::from_millis(ms);
            self.muted_until
                .set(Some(self.muted_until.get().map_or(until, |u| u.max(until))));
        }
        ms.min(i32::MAX as u64) as i32
    }

    /// Charges the shard time spent on this connection's requests since the last call to its
    /// `request_percentage` quota (KIP-124: 100 is one thread's whole time); over it, the
    /// connection is muted. Inter-broker connections are exempt.
    pub fn charge_request_time(&self, quotas: &crate::quota::Quotas) {
        let spent = self.request_time.take();
        if spent.is_zero() || self.quota_exempt.get() {
            return;
        }
        let percent_seconds = spent.as_nanos() as f64 * 1e-7;
        self.charge_quota(quotas, crate::quota::REQUEST_PERCENTAGE, percent_seconds);
    }

    pub fn principal(&self) -> String {
        self.principal.borrow().clone()
    }
}

// Kafka's codes for ACL resource types, pattern types, operations and permissions.
pub mod code {
    pub const ANY: i8 = 1;
    pub const MATCH: i8 = 2;
    pub const LITERAL: i8 = 3;
    pub const PREFIXED: i8 = 4;

    pub const TOPIC: i8 = 2;
    pub const GROUP: i8 = 3;
    pub const CLUSTER: i8 = 4;
    pub const TRANSACTIONAL_ID: i8 = 5;

    pub const ALL: i8 = 2;
    pub const READ: i8 = 3;
    pub const WRITE: i8 = 4;
    pub const CREATE: i8 = 5;
    pub const DELETE: i8 = 6;
    pub const ALTER: i8 = 7;
    pub const DESCRIBE: i8 = 8;
    pub const CLUSTER_ACTION: i8 = 9;
    pub const DESCRIBE_CONFIGS: i8 = 10;
    pub const ALTER_CONFIGS: i8 = 11;
    pub const IDEMPOTENT_WRITE: i8 = 12;

    pub const DENY: i8 = 2;
    pub const ALLOW: i8 = 3;
}

pub const CLUSTER_NAME: &str = "kafka-cluster";

/// One access control entry on a resource pattern, in Kafka's codes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission_type: i8,
}

/// A Describe/DeleteAcls filter; `None` matches anything.
#[derive(Clone, Debug, Default)]
pub struct AclFilter {
    pub resource_type: i8,
    pub resource_name: Option<String>,
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission_type: i8,
}

impl Acl {
    /// Whether this ACL's resource pattern covers `name` of `resource_type`.
    fn covers(&self, resource_type: i8, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                code::LITERAL => self.resource_name == name || self.resource_name == "*",
                code::PREFIXED => name.starts_with(&self.resource_name),
                _ => false,
            }
    }
}

impl AclFilter {
    pub fn matches(&self, a: &Acl) -> bool {
        let pattern_ok = match (self.pattern_type, &self.resource_name) {
            (code::ANY, None) | (code::MATCH, None) => true,
            (code::ANY, Some(n)) => a.resource_name == *n,
            (code::MATCH, Some(n)) => a.covers(a.resource_type, n),
            (p, None) => a.pattern_type == p,
            (p, Some(n)) => a.pattern_type == p && a.resource_name == *n,
        };
        (self.resource_type == code::ANY || self.resource_type == a.resource_type)
            && pattern_ok
            && self.principal.as_ref().is_none_or(|p| *p == a.principal)
            && self.host.as_ref().is_none_or(|h| *h == a.host)
            && (self.operation == code::ANY || self.operation == a.operation)
            && (self.permission_type == code::ANY || self.permission_type == a.permission_type)
    }
}

fn security_dir(log_dir: &Path) -> PathBuf {
    log_dir.join("__security")
}

fn load_json<T: for<'de> Deserialize<'de> + Default>(path: &Path) -> std::io::Result<T> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(e),
    }
}

/// Writes `value` to `path` so that a crash leaves the old or the new file, never a torn one.
fn store_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let dir = path.parent().expect("a file in a directory");
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?,
    )?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// The ACL authorizer.
pub struct Authorizer {
    pub enabled: bool,
    super_users: Vec<String>,
    allow_if_no_acl: bool,
    acls: RwLock<Vec<Acl>>,
    path: PathBuf,
}

impl Authorizer {
    pub fn open(
        log_dir: &Path,
        enabled: bool,
        super_users: Vec<String>,
        allow_if_no_acl: bool,
    ) -> std::io::Result<Authorizer> {
        let path = security_dir(log_dir).join("acls.json");
        let acls: Vec<Acl> = load_json(&path)?;
        Ok(Authorizer {
            enabled,
            super_users,
            allow_if_no_acl,
            acls: RwLock::new(acls),
            path,
        })
    }

    /// Whether `principal` from `host` may perform `operation` on the named resource. DENY wins
    /// over ALLOW; READ, WRITE, DELETE and ALTER imply DESCRIBE, ALTER_CONFIGS implies
    /// DESCRIBE_CONFIGS (as in Kafka).
    pub fn authorize(&self, s: &Session, operation: i8, resource_type: i8, name: &str) -> bool {
        if !self.enabled {
            return true;
        }
        let principal = s.principal.borrow();
        if self.super_users.contains(&*principal) {
            return true;
        }
        let acls = self.acls.read().expect("acl lock");
        let mut any = false;
        let mut allowed = false;
        for a in acls.iter().filter(|a| a.covers(resource_type, name)) {
            any = true;
            if a.principal != *principal && a.principal != "User:*" {
                continue;
            }
            if a.host != "*" && a.host != s.host {
                continue;
            }
            let op_matches = a.operation == code::ALL || a.operation == operation;
            if a.permission_type == code::DENY && op_matches {
                return false;
            }
            let implied = match operation {
                code::DESCRIBE => matches!(
                    a.operation,
                    code::READ | code::WRITE | code::DELETE | code::ALTER
                ),
                code::DESCRIBE_CONFIGS => a.operation == code::ALTER_CONFIGS,
                _ => false,
            };
            if a.permission_type == code::ALLOW && (op_matches || implied) {
                allowed = true;
            }
        }
        allowed || (!any && self.allow_if_no_acl)
    }

    /// Logs and counts a refusal; returns false for use in conditions.
    pub fn denied(&self, s: &Session, operation: i8, resource_type: i8, name: &str) -> bool {
        if self.authorize(s, operation, resource_type, name) {
            return false;
        }
        tracing::info!(principal = %s.principal.borrow(), host = %s.host, operation = op_name(operation), resource = %format!("{}:{name}", resource_name(resource_type)), "authorization denied");
        true
    }

    pub fn list(&self, filter: &AclFilter) -> Vec<Acl> {
        let acls = self.acls.read().expect("acl lock");
        acls.iter().filter(|a| filter.matches(a)).cloned().collect()
    }

    /// Adds ACLs (an ACL already present is not added twice) and persists them.
    pub fn add(&self, new: Vec<Acl>) -> std::io::Result<()> {
        let mut acls = self.acls.write().expect("acl lock");
        let mut next = acls.clone();
        for a in new {
            if !next.contains(&a) {
                next.push(a);
            }
        }
        store_json(&self.path, &next)?;
        *acls = next;
        Ok(())
    }

    /// The ACLs in force now (a cluster's, from ZooKeeper), replacing the local ones in memory.
    pub fn replace(&self, acls: &[Acl]) {
        let mut current = self.acls.write().expect("acl lock");
        if *current != acls {
            tracing::info!(acls = acls.len(), "ACLs in force (cluster)");
            *current = acls.to_vec();
        }
    }

    /// Per filter, the ACLs it matches now (what DeleteAcls removes).
    pub fn matching(&self, filters: &[AclFilter]) -> Vec<Vec<Acl>> {
        let acls = self.acls.read().expect("acl lock");
        filters
            .iter()
            .map(|f| acls.iter().filter(|a| f.matches(a)).cloned().collect())
            .collect()
    }

    /// Removes every ACL a filter matches; returns them per filter.
    pub fn remove(&self, filters: &[AclFilter]) -> std::io::Result<Vec<Vec<Acl>>> {
        let mut acls = self.acls.write().expect("acl lock");
        let removed: Vec<Vec<Acl>> = filters
            .iter()
            .map(|f| acls.iter().filter(|a| f.matches(a)).cloned().collect())
            .collect();
        let next: Vec<Acl> = acls
            .iter()
            .filter(|a| !filters.iter().any(|f| f.matches(a)))
            .cloned()
            .collect();
        store_json(&self.path, &next)?;
        *acls = next;
        Ok(removed)
    }
}

pub fn op_name(op: i8) -> &'static str {
    match op {
        code::ALL => "All",
        code::READ => "Read",
        code::WRITE => "Write",
        code::CREATE => "Create",
        code::DELETE => "Delete",
        code::ALTER => "Alter",
        code::DESCRIBE => "Describe",
        code::CLUSTER_ACTION => "ClusterAction",
        code::DESCRIBE_CONFIGS => "DescribeConfigs",
        code::ALTER_CONFIGS => "AlterConfigs",
        code::IDEMPOTENT_WRITE => "IdempotentWrite",
        _ => "Unknown",
    }
}

pub fn resource_name(t: i8) -> &'static str {
    match t {
        code::TOPIC => "Topic",
        code::GROUP => "Group",
        code::CLUSTER => "Cluster",
        code::TRANSACTIONAL_ID => "TransactionalId",
        _ => "Unknown",
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredCredential {
    salt: String,
    iterations: u32,
    stored_key: String,
    server_key: String,
}

/// SCRAM credentials per user and mechanism: salted and hashed, never the password.
pub struct Credentials {
    users: RwLock<BTreeMap<String, BTreeMap<Mechanism, Credential>>>,
    path: PathBuf,
}

impl Credentials {
    pub fn open(log_dir: &Path) -> std::io::Result<Credentials> {
        let path = security_dir(log_dir).join("scram-credentials.json");
        let stored: BTreeMap<String, BTreeMap<String, StoredCredential>> = load_json(&path)?;
        let bad = |what: &str| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {what}", path.display()),
            )
        };
        let mut users = BTreeMap::new();
        for (user, mechs) in stored {
            let mut m = BTreeMap::new();
            for (name, c) in mechs {
                let mech = Mechanism::from_name(&name).ok_or_else(|| bad(&name))?;
                m.insert(
                    mech,
                    Credential {
                        salt: scram::unb64(&c.salt).ok_or_else(|| bad("salt"))?,
                        iterations: c.iterations,
                        stored_key: scram::unb64(&c.stored_key).ok_or_else(|| bad("stored_key"))?,
                        server_key: scram::unb64(&c.server_key).ok_or_else(|| bad("server_key"))?,
                    },
                );
            }
            users.insert(user, m);
        }
        Ok(Credentials {
            users: RwLock::new(users),
            path,
        })
    }

    /// The credentials in force now (a cluster's, from ZooKeeper), in memory.
    pub fn replace(&self, users: &BTreeMap<String, BTreeMap<Mechanism, Credential>>) {
        let mut current = self.users.write().expect("credentials lock");
        if *current != *users {
            tracing::info!(users = users.len(), "SCRAM credentials in force (cluster)");
            *current = users.clone();
        }
    }

    pub fn get(&self, user: &str, m: Mechanism) -> Option<Credential> {
        self.users
            .read()
            .expect("credentials lock")
            .get(user)?
            .get(&m)
            .cloned()
    }

    /// Every user's mechanisms and iteration counts (what DescribeUserScramCredentials shows).
    pub fn describe(&self) -> BTreeMap<String, Vec<(Mechanism, u32)>> {
        let users = self.users.read().expect("credentials lock");
        users
            .iter()
            .map(|(u, m)| {
                (
                    u.clone(),
                    m.iter().map(|(k, c)| (*k, c.iterations)).collect(),
                )
            })
            .collect()
    }

    /// Applies upserts and deletions at once and persists them.
    pub fn alter(
        &self,
        upserts: Vec<(String, Mechanism, Credential)>,
        deletions: Vec<(String, Mechanism)>,
    ) -> std::io::Result<()> {
        let mut users = self.users.write().expect("credentials lock");
        let mut next = users.clone();
        for (u, m) in deletions {
            if let Some(ms) = next.get_mut(&u) {
                ms.remove(&m);
                if ms.is_empty() {
                    next.remove(&u);
                }
            }
        }
        for (u, m, c) in upserts {
            next.entry(u).or_default().insert(m, c);
        }
        let stored: BTreeMap<String, BTreeMap<String, StoredCredential>> = next
            .iter()
            .map(|(u, ms)| {
                (
                    u.clone(),
                    ms.iter()
                        .map(|(m, c)| {
                            (
                                m.name().to_string(),
                                StoredCredential {
                                    salt: scram::b64(&c.salt),
                                    iterations: c.iterations,
                                    stored_key: scram::b64(&c.stored_key),
                                    server_key: scram::b64(&c.server_key),
                                },
                            )
                        })
                        .collect(),
                )
            })
            .collect();
        store_json(&self.path, &stored)?;
        *users = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(rt: i8, name: &str, pt: i8, who: &str, op: i8, perm: i8) -> Acl {
        Acl {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pt,
            principal: who.into(),
            host: "*".into(),
            operation: op,
            permission_type: perm,
        }
    }

    #[test]
    fn deny_wins_prefixes_match_and_describe_is_implied() {
        let dir = std::env::temp_dir().join(format!("ringlet-acl-{}", std::process::id()));
        let a = Authorizer::open(&dir, true, vec!["User:admin".into()], false).unwrap();
        a.add(vec![
            acl(
                code::TOPIC,
                "orders-",
                code::PREFIXED,
                "User:alice",
                code::WRITE,
                code::ALLOW,
            ),
            acl(
                code::TOPIC,
                "orders-secret",
                code::LITERAL,
                "User:alice",
                code::ALL,
                code::DENY,
            ),
        ])
        .unwrap();
        let s = Session::new(0, "127.0.0.1:5000".into());
        *s.principal.borrow_mut() = "User:alice".into();
        assert!(a.authorize(&s, code::WRITE, code::TOPIC, "orders-eu"));
        assert!(a.authorize(&s, code::DESCRIBE, code::TOPIC, "orders-eu"));
        assert!(!a.authorize(&s, code::READ, code::TOPIC, "orders-eu"));
        assert!(!a.authorize(&s, code::WRITE, code::TOPIC, "orders-secret"));
        assert!(!a.authorize(&s, code::WRITE, code::TOPIC, "payments"));
        *s.principal.borrow_mut() = "User:admin".into();
        assert!(a.authorize(&s, code::WRITE, code::TOPIC, "orders-secret"));
        // Persisted, and filters remove what they match.
        let b = Authorizer::open(&dir, true, vec![], true).unwrap();
        assert_eq!(
            b.list(&AclFilter {
                resource_type: code::ANY,
                pattern_type: code::ANY,
                operation: code::ANY,
                permission_type: code::ANY,
                ..Default::default()
            })
            .len(),
            2
        );
        let removed = b
            .remove(&[AclFilter {
                resource_type: code::TOPIC,
                resource_name: Some("orders-secret".into()),
                pattern_type: code::MATCH,
                operation: code::ANY,
                permission_type: code::ANY,
                ..Default::default()
            }])
            .unwrap();
        assert_eq!(
            removed[0].len(),
            2,
            "MATCH covers the literal and the prefix"
        );
        // No ACL left on the resource: allow.everyone.if.no.acl.found decides.
        *s.principal.borrow_mut() = "User:bob".into();
        assert!(b.authorize(&s, code::READ, code::TOPIC, "orders-eu"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
