//! Client quotas (KIP-13, KIP-55, KIP-124, KIP-546, KIP-612), Kafka's model: quota configs per
//! entity (`user`, `client-id`, both, or `ip`; a missing name is the entity type's default),
//! resolved for each request with Kafka's precedence, measured per resolved entity over
//! `quota.window.num` windows of `quota.window.size.seconds`, and enforced by answering with
//! `throttle_time_ms` and muting the connection (no request is read from it) for that long
//! (KIP-219). `connection_creation_rate` (ip entities) closes connections over the rate.
//!
//! The configs live in the metadata file of a single broker and in ZooKeeper in a cluster
//! (`/config/users/<u>[/clients/<c>]`, `/config/clients/<c>`, `/config/ips/<ip>`, Kafka's
//! ZooKeeper-mode places); with none set, a request pays one atomic load and an empty-map check.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// The name of an entity type's default in paths and in Kafka's tools' output.
pub const DEFAULT: &str = "<default>";

/// A quota entity: each type present or not; a present type without a name is its default.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entity {
    pub user: Option<Option<String>>,
    pub client_id: Option<Option<String>>,
    pub ip: Option<Option<String>>,
}

/// Quota values by entity.
pub type Configs = BTreeMap<Entity, BTreeMap<String, f64>>;

/// Kafka's sanitizer for names in ZooKeeper paths: URL encoding, so `/` and the like cannot
/// escape the entity's node.
fn sanitize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"._-*".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn desanitize(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn segment(name: &Option<String>) -> String {
    name.as_deref()
        .map_or_else(|| DEFAULT.to_string(), sanitize)
}

fn unsegment(s: &str) -> Option<Option<String>> {
    if s == DEFAULT {
        Some(None)
    } else {
        desanitize(s).map(Some)
    }
}

impl Entity {
    /// From a request's `(entity_type, entity_name)` pairs, with Kafka's checks.
    pub fn from_parts(parts: &[(String, Option<String>)]) -> Result<Entity, String> {
        let mut e = Entity::default();
        for (kind, name) in parts {
            let slot = match kind.as_str() {
                "user" => &mut e.user,
                "client-id" => &mut e.client_id,
                "ip" => &mut e.ip,
                other => return Err(format!("Unhandled client quota entity type: {other}")),
            };
            if slot.is_some() {
                return Err(format!("Duplicate {kind} entity type in the quota entity"));
            }
            *slot = Some(name.clone());
        }
        if parts.is_empty() {
            return Err("Invalid empty client quota entity".into());
        }
        if e.ip.is_some() && (e.user.is_some() || e.client_id.is_some()) {
            return Err("Invalid quota entity combination, IP entity should not be combined with User or ClientId entities.".into());
        }
        if let Some(Some(ip)) = &e.ip {
            if ip.parse::<std::net::IpAddr>().is_err() {
                return Err(format!("{ip} is not a valid IP or resolvable host."));
            }
        }
        Ok(e)
    }

    /// The `(entity_type, entity_name)` pairs, as DescribeClientQuotas answers them.
    pub fn parts(&self) -> Vec<(&'static str, Option<String>)> {
        let mut out = Vec::new();
        for (kind, v) in [
            ("user", &self.user),
            ("client-id", &self.client_id),
            ("ip", &self.ip),
        ] {
            if let Some(name) = v {
                out.push((kind, name.clone()));
            }
        }
        out
    }

    /// The path under `/config` (and the metadata file's key): `users/<u>[/clients/<c>]`,
    /// `clients/<c>`, `ips/<ip>`.
    pub fn path(&self) -> String {
        match (&self.user, &self.client_id, &self.ip) {
            (Some(u), Some(c), _) => format!("users/{}/clients/{}", segment(u), segment(c)),
            (Some(u), None, _) => format!("users/{}", segment(u)),
            (None, Some(c), _) => format!("clients/{}", segment(c)),
            (None, None, Some(i)) => format!("ips/{}", segment(i)),
            (None, None, None) => String::new(),
        }
    }

    pub fn from_path(p: &str) -> Option<Entity> {
        let s: Vec<&str> = p.split('/').collect();
        let mut e = Entity::default();
        match s.as_slice() {
            ["users", u] => e.user = Some(unsegment(u)?),
            ["users", u, "clients", c] => {
                e.user = Some(unsegment(u)?);
                e.client_id = Some(unsegment(c)?);
            }
            ["clients", c] => e.client_id = Some(unsegment(c)?),
            ["ips", i] => e.ip = Some(unsegment(i)?),
            _ => return None,
        }
        Some(e)
    }
}

/// Kafka's checks of one quota value for an entity.
pub fn validate(e: &Entity, key: &str, value: f64) -> Result<(), String> {
    let allowed: &[&str] = if e.ip.is_some() {
        &[CONNECTION_CREATION_RATE]
    } else {
        &[
            PRODUCER_BYTE_RATE,
            CONSUMER_BYTE_RATE,
            REQUEST_PERCENTAGE,
            CONTROLLER_MUTATION_RATE,
        ]
    };
    if !allowed.contains(&key) {
        return Err(format!("Invalid configuration key {key}"));
    }
    let integral = matches!(
        key,
        PRODUCER_BYTE_RATE | CONSUMER_BYTE_RATE | CONNECTION_CREATION_RATE
    );
    if integral && value.fract() != 0.0 {
        return Err(format!(
            "Integer value expected for configuration key {key}, but got {value}"
        ));
    }
    if value.is_nan() || value <= 0.0 {
        return Err(format!("Quota {key} must be positive, but got {value}"));
    }
    Ok(())
}

/// The entities, most specific first, whose `key` applies to a client (Kafka's
/// DefaultQuotaCallback order).
fn candidates(user: &str, client: &str) -> [Entity; 8] {
    let u = || Some(Some(user.to_string()));
    let c = || Some(Some(client.to_string()));
    let d = || Some(None);
    let e = |user, client_id| Entity {
        user,
        client_id,
        ip: None,
    };
    [
        e(u(), c()),
        e(u(), d()),
        e(u(), None),
        e(d(), c()),
        e(d(), d()),
        e(d(), None),
        e(None, c()),
        e(None, d()),
    ]
}

/// The quota `key` in force for a client, and the entity it comes from.
pub fn resolve(configs: &Configs, user: &str, client: &str, key: &str) -> Option<(Entity, f64)> {
    candidates(user, client)
        .into_iter()
        .find_map(|e| configs.get(&e)?.get(key).map(|v| (e.clone(), *v)))
}

/// The quotas a change leaves an entity with.
pub fn apply_changes(
    current: Option<&BTreeMap<String, f64>>,
    changes: &BTreeMap<String, Option<f64>>,
) -> BTreeMap<String, f64> {
    let mut next = current.cloned().unwrap_or_default();
    for (k, v) in changes {
        match v {
            Some(v) => {
                next.insert(k.clone(), *v);
            }
            None => {
                next.remove(k);
            }
        }
    }
    next
}

/// Configs as stored (by entity path) to configs by entity; unreadable paths are skipped.
pub fn from_stored(stored: &BTreeMap<String, BTreeMap<String, f64>>) -> Configs {
    stored
        .iter()
        .filter_map(|(p, v)| Some((Entity::from_path(p)?, v.clone())))
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

/// A rate over the last `samples` windows (Kafka's SampledStat Rate).
#[derive(Debug, Default)]
struct Meter {
    samples: VecDeque<(Instant, f64)>,
    total: f64,
    throttle_ms: u64,
}

impl Meter {
    fn record(&mut self, now: Instant, v: f64, window: Duration, n: usize) {
        if self
            .samples
            .back()
            .is_none_or(|(start, _)| now.duration_since(*start) >= window)
        {
            self.samples.push_back((now, 0.0));
        }
        while self.samples.len() > n {
            self.samples.pop_front();
        }
        if let Some(s) = self.samples.back_mut() {
            s.1 += v;
        }
        self.total += v;
    }

    /// Per second, over the elapsed windows (at least `n - 1` of them, as Kafka's), and that
    /// span in seconds.
    fn rate(&self, now: Instant, window: Duration, n: usize) -> (f64, f64) {
        let Some((first, _)) = self.samples.front() else {
            return (0.0, 0.0);
        };
        let span = now
            .duration_since(*first)
            .max(window * (n.saturating_sub(1)) as u32)
            .as_secs_f64()
            .max(1e-3);
        (self.samples.iter().map(|s| s.1).sum::<f64>() / span, span)
    }
}

/// A future that adds the time spent in its `poll` calls (the shard's time on it, not the time
/// it waits) to `spent`: what a request costs against `request_percentage`.
pub struct Timed<F> {
    pub inner: F,
    pub spent: std::rc::Rc<std::cell::Cell<Duration>>,
}

impl<F: std::future::Future + Unpin> std::future::Future for Timed<F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let start = Instant::now();
        let r = std::pin::Pin::new(&mut self.inner).poll(cx);
        self.spent.set(self.spent.get() + start.elapsed());
        r
    }
}

/// The broker's quota configs and meters.
#[derive(Debug)]
pub struct Quotas {
    configs: RwLock<Arc<Configs>>,
    meters: Mutex<HashMap<(&'static str, Entity), Meter>>,
    window: Duration,
    samples: usize,
}

impl Quotas {
    pub fn new(window: Duration, samples: usize) -> Quotas {
        Quotas {
            configs: Default::default(),
            meters: Default::default(),
            window,
            samples: samples.max(2),
        }
    }

    /// Whether no quota is set at all (the common case: nothing to count).
    pub fn is_empty(&self) -> bool {
        self.configs.read().expect("quota lock").is_empty()
    }

    pub fn configs(&self) -> Arc<Configs> {
        self.configs.read().expect("quota lock").clone()
    }

    /// Puts new configs in force (meters of entities no longer limited go).
    pub fn set(&self, c: Configs) {
        if *self.configs() == c {
            return;
        }
        tracing::info!(entities = c.len(), "client quotas in force");
        self.meters
            .lock()
            .expect("meter lock")
            .retain(|(_, e), _| c.contains_key(e));
        *self.configs.write().expect("quota lock") = Arc::new(c);
    }

    /// Counts `amount` (bytes; percent-seconds of shard time for `request_percentage`) against
    /// the client's `key` quota; returns how long it is to be throttled (0 when it has no such
    /// quota or is within it).
    pub fn record(&self, key: &'static str, user: &str, client: &str, amount: f64) -> u64 {
        let configs = self.configs();
        if configs.is_empty() {
            return 0;
        }
        let Some((entity, quota)) = resolve(&configs, user, client, key) else {
            return 0;
        };
        self.charge(key, entity, quota, amount)
    }

    /// Takes back what [`Quotas::record`] counted (a throttled fetch sends no records).
    pub fn unrecord(&self, key: &'static str, user: &str, client: &str, amount: f64) {
        let configs = self.configs();
        if let Some((entity, _)) = resolve(&configs, user, client, key) {
            let mut meters = self.meters.lock().expect("meter lock");
            if let Some(m) = meters.get_mut(&(key, entity)) {
                m.record(Instant::now(), -amount, self.window, self.samples);
            }
        }
    }

    /// The most one response may carry without being throttled for certain: the quota over
    /// all but one window (Kafka's bound on a fetch's size). `None` without a quota.
    pub fn window_max(&self, key: &'static str, user: &str, client: &str) -> Option<usize> {
        let configs = self.configs();
        let (_, quota) = resolve(&configs, user, client, key)?;
        let span = self.window.as_secs_f64() * (self.samples - 1) as f64;
        Some((quota * span).max(1.0) as usize)
    }

    fn charge(&self, key: &'static str, entity: Entity, quota: f64, amount: f64) -> u64 {
        let now = Instant::now();
        let mut meters = self.meters.lock().expect("meter lock");
        let m = meters.entry((key, entity)).or_default();
        m.record(now, amount, self.window, self.samples);
        let (rate, span) = m.rate(now, self.window, self.samples);
        if rate <= quota {
            return 0;
        }
        // Kafka's: the delay X that brings the rate over the span W back to the quota,
        // O * W / (W + X) = T. Capped at the whole measured period (Kafka does not cap; a
        // single huge request would otherwise mute a connection for minutes).
        let cap = self.window.as_secs_f64() * 1000.0 * self.samples as f64;
        let ms = ((rate - quota) / quota * span * 1000.0).min(cap).round() as u64;
        m.throttle_ms += ms;
        ms
    }

    /// `connection_creation_rate` for `ip` (its own entity, else the ip default): false when a
    /// new connection would exceed it.
    pub fn admit_connection(&self, ip: std::net::IpAddr) -> bool {
        let configs = self.configs();
        if configs.is_empty() {
            return true;
        }
        let own = Entity {
            ip: Some(Some(ip.to_string())),
            ..Default::default()
        };
        let default = Entity {
            ip: Some(None),
            ..Default::default()
        };
        let Some((e, quota)) = [own, default].into_iter().find_map(|e| {
            let v = *configs.get(&e)?.get(CONNECTION_CREATION_RATE)?;
            Some((e, v))
        }) else {
            return true;
        };
        // A separate meter per address even under the default entity.
        let e = Entity {
            ip: Some(Some(ip.to_string())),
            ..e
        };
        self.charge(CONNECTION_CREATION_RATE, e, quota, 1.0) == 0
    }

    /// Prometheus lines: per quota and entity, what was counted and the throttle time given.
    pub fn prometheus(&self) -> String {
        let meters = self.meters.lock().expect("meter lock");
        if meters.is_empty() {
            return String::new();
        }
        let mut out = String::from(
            "# HELP ringlet_quota_amount_total Bytes (connections) counted against each client quota entity.\n# TYPE ringlet_quota_amount_total counter\n",
        );
        let mut throttle = String::from(
            "# HELP ringlet_quota_throttle_time_ms_total Throttle time given to clients of each quota entity.\n# TYPE ringlet_quota_throttle_time_ms_total counter\n",
        );
        for ((key, e), m) in meters.iter() {
            let labels = format!("quota=\"{key}\",entity=\"{}\"", e.path());
            out.push_str(&format!(
                "ringlet_quota_amount_total{{{labels}}} {}\n",
                m.total
            ));
            throttle.push_str(&format!(
                "ringlet_quota_throttle_time_ms_total{{{labels}}} {}\n",
                m.throttle_ms
            ));
        }
        out + &throttle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(p: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect()
    }

    #[test]
    fn entities_round_trip_through_kafkas_paths() {
        for p in [
            &[("user", Some("alice/x"))][..],
            &[("user", None), ("client-id", Some("app"))],
            &[("client-id", None)],
            &[("ip", Some("10.0.0.1"))],
        ] {
            let e = Entity::from_parts(&parts(p)).unwrap();
            assert_eq!(
                Entity::from_path(&e.path()),
                Some(e.clone()),
                "{}",
                e.path()
            );
        }
        assert_eq!(
            Entity::from_parts(&parts(&[("user", None), ("client-id", Some("c"))]))
                .unwrap()
                .path(),
            "users/<default>/clients/c"
        );
        assert!(Entity::from_parts(&parts(&[("ip", Some("1.2.3.4")), ("user", None)])).is_err());
        assert!(Entity::from_parts(&parts(&[("ip", Some("no-ip"))])).is_err());
        assert!(Entity::from_parts(&parts(&[("user", None), ("user", None)])).is_err());
        assert!(Entity::from_parts(&parts(&[("group", None)])).is_err());
    }

    #[test]
    fn the_most_specific_entity_wins() {
        let mut c = Configs::new();
        let set = |c: &mut Configs, p: &[(&str, Option<&str>)], v: f64| {
            c.entry(Entity::from_parts(&parts(p)).unwrap())
                .or_default()
                .insert(PRODUCER_BYTE_RATE.into(), v);
        };
        set(&mut c, &[("client-id", None)], 1.0);
        assert_eq!(resolve(&c, "u", "app", PRODUCER_BYTE_RATE).unwrap().1, 1.0);
        set(&mut c, &[("client-id", Some("app"))], 2.0);
        assert_eq!(resolve(&c, "u", "app", PRODUCER_BYTE_RATE).unwrap().1, 2.0);
        set(&mut c, &[("user", None)], 3.0);
        assert_eq!(resolve(&c, "u", "app", PRODUCER_BYTE_RATE).unwrap().1, 3.0);
        set(
            &mut c,
            &[("user", Some("u")), ("client-id", Some("app"))],
            4.0,
        );
        assert_eq!(resolve(&c, "u", "app", PRODUCER_BYTE_RATE).unwrap().1, 4.0);
        assert_eq!(
            resolve(&c, "v", "other", PRODUCER_BYTE_RATE).unwrap().1,
            3.0
        );
        assert!(resolve(&c, "u", "app", CONSUMER_BYTE_RATE).is_none());
    }

    #[test]
    fn over_the_rate_a_client_is_throttled() {
        let q = Quotas::new(Duration::from_secs(1), 11);
        assert_eq!(q.record(PRODUCER_BYTE_RATE, "u", "app", 1e6), 0);
        let mut c = Configs::new();
        c.entry(Entity::from_parts(&parts(&[("client-id", Some("app"))])).unwrap())
            .or_default()
            .insert(PRODUCER_BYTE_RATE.into(), 1000.0);
        q.set(c);
        // 10 s of quota at once: throttled; another client is not.
        assert!(q.record(PRODUCER_BYTE_RATE, "u", "app", 10_000.0) == 0);
        assert!(q.record(PRODUCER_BYTE_RATE, "u", "app", 10_000.0) > 0);
        assert_eq!(q.record(PRODUCER_BYTE_RATE, "u", "other", 100_000.0), 0);
        assert!(q.prometheus().contains("entity=\"clients/app\""));
        assert!(validate(&Entity::default(), PRODUCER_BYTE_RATE, 1.5).is_err());
        assert!(validate(&Entity::default(), "nope", 1.0).is_err());
    }
}
