//! Broker state: topic metadata shared by all shards, and each shard's own partitions.
//!
//! Metadata (topics, partition counts, placement, per-topic configs) changes rarely and is read
//! under a `RwLock`; it is persisted as JSON in the first log directory. Partitions live only on
//! their owning shard, in a thread-local map, and are reached from other shards with
//! the one route of [`Broker::on_partition`]. Creating, changing and deleting topics is in
//! [`topics`].

pub mod dynamic;
pub mod quotas;
pub mod reconcile;
mod topics;
pub(crate) use topics::validate_assignment;

use crate::config::BrokerConfig;
use crate::error_code as ec;
use ringlet_engine::log_manager;
use ringlet_engine::runtime::sync::WaitList;
use ringlet_engine::runtime::{self, ShardId};
use ringlet_engine::TopicPartition;
use ringlet_engine::{LogConfig, Partition};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Where one partition lives.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Placement {
    pub shard: ShardId,
    pub log_dir: usize,
    /// Whether this broker holds a replica (in a cluster, a topic's other partitions live on
    /// other brokers only).
    #[serde(default = "yes")]
    pub local: bool,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TopicMeta {
    pub id: [u8; 16],
    pub partitions: Vec<Placement>,
    pub configs: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Metadata {
    pub topics: BTreeMap<String, TopicMeta>,
    /// Dynamic group configs (IncrementalAlterConfigs on GROUP resources) of a single broker;
    /// a cluster keeps them in ZooKeeper (`/config/groups/<group>`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, BTreeMap<String, String>>,
    /// Dynamic broker configs of a single broker (`<default>` and its id); a cluster keeps them
    /// in ZooKeeper (`/config/brokers/...`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub brokers: BTreeMap<String, BTreeMap<String, String>>,
    /// Client quotas of a single broker, by entity path (`users/<u>`, `clients/<c>`, ...); a
    /// cluster keeps them in ZooKeeper (`/config/<path>`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub quotas: BTreeMap<String, BTreeMap<String, f64>>,
}

/// The outcome of work on a partition's owner shard; `Err(code)` when it could not run there.
pub type OnPartition<T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, i16>>>>;

pub const METADATA_FILE: &str = "ringlet-metadata.json";
pub const CLEAN_SHUTDOWN_FILE: &str = ".ringlet_cleanshutdown";

pub struct Broker {
    pub config: BrokerConfig,
    pub metadata: RwLock<Metadata>,
    /// Serialises topic creation and deletion.
    admin: Mutex<()>,
    /// Topics whose logs are being opened on their shards, so two creators never race.
    creating: Mutex<std::collections::HashSet<String>>,
    pub clean_start: Vec<bool>,
    pub requests_in_flight: AtomicUsize,
    /// Notified as requests finish (`queued.max.requests` waiters, shutdown's drain).
    pub request_finished: WaitList,
    pub connections: AtomicUsize,
    /// Open connections per client IP, for `max.connections.per.ip`.
    pub connections_per_ip: Mutex<HashMap<std::net::IpAddr, usize>>,
    /// Client quotas in force and their meters.
    pub quotas: crate::quota::Quotas,
    pub shutting_down: AtomicBool,
    /// Notified when shutdown begins.
    pub shutdown_begun: WaitList,
    /// Set when a shard could not close its logs cleanly; the clean-shutdown marker is then withheld.
    pub unclean: AtomicBool,
    next_producer_id: AtomicI64,
    pub cluster_id: String,
    pub authorizer: crate::security::Authorizer,
    pub credentials: crate::security::Credentials,
    pub auth_failures: crate::sasl::FailureLimiter,
    /// The rustls configuration of each listener in `config.listeners` that uses TLS.
    pub tls: Vec<Option<std::sync::Arc<rustls::ServerConfig>>>,
    /// The cluster this broker belongs to (`zookeeper.connect`); `None` for a single broker.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Topic id to name, rebuilt from the metadata when a lookup misses (see [`Broker::topic_name`]).
    topic_ids: RwLock<HashMap<[u8; 16], String>>,
    /// The dynamic broker configs in force and the settings they make ([`dynamic`]).
    dynamic: RwLock<(dynamic::Dynamic, Arc<BrokerConfig>)>,
}

fn metadata_brokers(md: &Metadata, key: &str) -> BTreeMap<String, String> {
    md.brokers.get(key).cloned().unwrap_or_default()
}

pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err("topic name is empty, '.' or '..'".into());
    }
    if name.len() > 249 {
        return Err("topic name is longer than 249 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        return Err("topic name may contain only ASCII letters, digits, '.', '_' and '-'".into());
    }
    Ok(())
}

impl Broker {
    pub fn new(config: BrokerConfig) -> std::io::Result<Broker> {
        let mut clean_start = Vec::new();
        for d in &config.log_dirs {
            std::fs::create_dir_all(d)?;
            let marker = d.join(CLEAN_SHUTDOWN_FILE);
            clean_start.push(marker.exists());
            if marker.exists() {
                std::fs::remove_file(&marker)?;
            }
        }
        let path = config.log_dirs[0].join(METADATA_FILE);
        let metadata = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Metadata::default(),
            Err(e) => return Err(e),
        };
        let now = ringlet_engine::config::now_ms();
        let authorizer = crate::security::Authorizer::open(
            &config.log_dirs[0],
            config.authorizer_enabled,
            config.super_users.clone(),
            config.allow_everyone_if_no_acl_found,
        )?;
        let credentials = crate::security::Credentials::open(&config.log_dirs[0])?;
        let mut tls = Vec::new();
        for l in &config.listeners {
            tls.push(match &l.ssl {
                Some(s) => Some(crate::tls::server_config(&l.name, s).map_err(|e| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
                })?),
                None => None,
            });
        }
        let cluster = if config.cluster.zookeeper_connect.is_some() {
            if config.broker_id < 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "broker.id must be set (>= 0) with zookeeper.connect",
                ));
            }
            Some(crate::cluster::coordination::start(&config)?)
        } else {
            None
        };
        // A single broker's dynamic configs are in force from the start (a cluster's come with
        // its first view).
        let dynamic = match &cluster {
            None => dynamic::Dynamic {
                default: metadata_brokers(&metadata, dynamic::DEFAULT),
                own: metadata_brokers(&metadata, &config.broker_id.to_string()),
            },
            Some(_) => dynamic::Dynamic::default(),
        };
        let effective = Arc::new(
            dynamic::effective(&config, &dynamic)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?,
        );
        let next_producer_id = if cluster.is_some() {
            // Unique across brokers: the broker id in the top bits, a clock-based counter below.
            (i64::from(config.broker_id & 0x3ff) << 52) | ((now & 0xff_ffff_ffff) << 8)
        } else {
            now << 8
        };
        let quotas = crate::quota::Quotas::new(
            std::time::Duration::from_secs(config.quota_window_size_seconds),
            config.quota_window_num,
        );
        if cluster.is_none() {
            quotas.set(crate::quota::from_stored(&metadata.quotas));
        }
        Ok(Broker {
            cluster,
            authorizer,
            credentials,
            auth_failures: crate::sasl::FailureLimiter::default(),
            tls,
            config,
            metadata: RwLock::new(metadata),
            admin: Mutex::new(()),
            creating: Mutex::new(std::collections::HashSet::new()),
            clean_start,
            requests_in_flight: AtomicUsize::new(0),
            request_finished: WaitList::new(),
            connections: AtomicUsize::new(0),
            connections_per_ip: Mutex::new(HashMap::new()),
            quotas,
            shutting_down: AtomicBool::new(false),
            shutdown_begun: WaitList::new(),
            unclean: AtomicBool::new(false),
            next_producer_id: AtomicI64::new(next_producer_id),
            cluster_id: "ringlet-cluster-0".into(),
            topic_ids: RwLock::new(HashMap::new()),
            dynamic: RwLock::new((dynamic, effective)),
        })
    }

    /// Starts shutdown: every shard's main task stops serving and closes its logs.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        self.shutdown_begun.notify_all();
        if let Some(c) = &self.cluster {
            c.begin_stopping();
        }
    }

    /// A request (counted in `requests_in_flight`) has been answered.
    pub fn finish_request(&self) {
        self.requests_in_flight.fetch_sub(1, Ordering::AcqRel);
        self.request_finished.notify_all();
    }

    pub fn allocate_producer_id(&self) -> i64 {
        self.next_producer_id.fetch_add(1, Ordering::Relaxed)
    }

    fn persist(&self, md: &Metadata) -> std::io::Result<()> {
        let path = self.config.log_dirs[0].join(METADATA_FILE);
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec_pretty(md).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, bytes)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &path)
    }

    /// A group's dynamic configs (empty when none are set): from ZooKeeper's view in a
    /// cluster, else from this broker's metadata.
    pub fn group_configs(&self, group: &str) -> BTreeMap<String, String> {
        let found = match &self.cluster {
            Some(c) => c.view().group_configs.get(group).cloned(),
            None => self
                .metadata
                .read()
                .expect("metadata lock")
                .groups
                .get(group)
                .cloned(),
        };
        found.unwrap_or_default()
    }

    /// Replaces a group's dynamic configs, durably and, in a cluster, for every broker.
    pub async fn set_group_configs(
        &self,
        group: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), (i16, String)> {
        tracing::info!(group, configs = ?configs, "group configs set");
        if let Some(c) = &self.cluster {
            return c
                .set_config("groups", group, configs)
                .await
                .map_err(|m| (ec::UNKNOWN_SERVER_ERROR, m));
        }
        let _admin = self.admin.lock().expect("admin lock");
        let mut md = self.metadata.write().expect("metadata lock");
        if configs.is_empty() {
            md.groups.remove(group);
        } else {
            md.groups.insert(group.to_string(), configs);
        }
        self.persist(&md)
            .map_err(|e| (ec::KAFKA_STORAGE_ERROR, e.to_string()))
    }

    pub fn partition_dir(&self, topic: &str, partition: i32, log_dir: usize) -> PathBuf {
        self.config.log_dirs[log_dir].join(format!("{topic}-{partition}"))
    }

    /// `f` of the topic's id and configs: from the cluster view in a cluster, else from this
    /// broker's metadata; `None` when there is no such topic.
    fn with_topic<T>(
        &self,
        topic: &str,
        f: impl FnOnce([u8; 16], &BTreeMap<String, String>) -> T,
    ) -> Option<T> {
        match &self.cluster {
            Some(c) => c.view().topics.get(topic).map(|t| f(t.id, &t.configs)),
            None => self
                .metadata
                .read()
                .expect("metadata lock")
                .topics
                .get(topic)
                .map(|t| f(t.id, &t.configs)),
        }
    }

    /// Every topic's partition count (the cluster's view in a cluster).
    pub fn topic_partition_counts(&self) -> BTreeMap<String, i32> {
        match &self.cluster {
            Some(c) => c
                .view()
                .topics
                .iter()
                .map(|(n, t)| (n.clone(), t.replicas.len() as i32))
                .collect(),
            None => self
                .metadata
                .read()
                .expect("metadata lock")
                .topics
                .iter()
                .map(|(n, t)| (n.clone(), t.partitions.len() as i32))
                .collect(),
        }
    }

    /// The topic's id.
    /// A topic's configs (its overrides): in a cluster from ZooKeeper's view, so that a broker
    /// holding no replica of it describes and alters it too.
    pub fn topic_configs(&self, topic: &str) -> Option<BTreeMap<String, String>> {
        if let Some(c) = &self.cluster {
            let v = c.view();
            return v
                .topics
                .get(topic)
                .filter(|_| !v.deleting.contains(topic))
                .map(|t| t.configs.clone());
        }
        self.metadata
            .read()
            .expect("metadata lock")
            .topics
            .get(topic)
            .map(|t| t.configs.clone())
    }

    pub fn topic_id(&self, topic: &str) -> Option<[u8; 16]> {
        self.with_topic(topic, |id, _| id)
    }

    /// The name of the topic with this id, `None` when no topic has it (UNKNOWN_TOPIC_ID). A hit
    /// in the cache is checked against the topic's current id (a topic deleted and created again
    /// has a new one); a miss rebuilds the cache once.
    pub fn topic_name(&self, id: [u8; 16]) -> Option<String> {
        let cached = self.topic_ids.read().expect("ids lock").get(&id).cloned();
        if let Some(name) = cached {
            if self.topic_id(&name) == Some(id) {
                return Some(name);
            }
        }
        let ids: HashMap<[u8; 16], String> = match &self.cluster {
            Some(c) => c
                .view()
                .topics
                .iter()
                .map(|(n, t)| (t.id, n.clone()))
                .collect(),
            None => self
                .metadata
                .read()
                .expect("metadata lock")
                .topics
                .iter()
                .map(|(n, t)| (t.id, n.clone()))
                .collect(),
        };
        let found = ids.get(&id).cloned();
        *self.topic_ids.write().expect("ids lock") = ids;
        found
    }

    /// The codec (and level) the topic stores batches in: its `compression.type`, else the
    /// broker's; `None` for `producer`, which keeps batches as produced.
    pub fn topic_codec(&self, topic: &str) -> Option<ringlet_format::codec::Target> {
        use ringlet_format::codec::{Codec, Target};
        self.with_topic(topic, |_, configs| {
            let kind = configs
                .get("compression.type")
                .unwrap_or(&self.config.compression_type);
            let codec = crate::config::topic::compression_codec(kind)
                .ok()
                .flatten()?;
            let level_key = match codec {
                Codec::Gzip => "compression.gzip.level",
                Codec::Lz4 => "compression.lz4.level",
                Codec::Zstd => "compression.zstd.level",
                Codec::None | Codec::Snappy => return Some(Target::new(codec)),
            };
            let broker_level = match codec {
                Codec::Gzip => self.config.compression_gzip_level,
                Codec::Lz4 => self.config.compression_lz4_level,
                _ => self.config.compression_zstd_level,
            };
            let level = configs
                .get(level_key)
                .and_then(|v| v.parse().ok())
                .unwrap_or(broker_level);
            Some(Target { codec, level })
        })
        .flatten()
    }

    /// Whether a topic exists: in the cluster view in a cluster, else here.
    pub fn topic_exists(&self, topic: &str) -> bool {
        match &self.cluster {
            Some(c) => c.view().topics.contains_key(topic),
            None => self.owner(topic, 0).is_some(),
        }
    }

    /// The code for a partition this broker does not hold: NOT_LEADER_OR_FOLLOWER when it exists
    /// in the cluster (another broker leads it; the client refreshes metadata), else
    /// UNKNOWN_TOPIC_OR_PARTITION.
    pub fn absent_partition_error(&self, topic: &str, partition: i32) -> i16 {
        let elsewhere = self.cluster.as_ref().is_some_and(|c| {
            c.view()
                .topics
                .get(topic)
                .is_some_and(|t| (0..t.replicas.len() as i32).contains(&partition))
        });
        if elsewhere {
            ec::NOT_LEADER_OR_FOLLOWER
        } else {
            ec::UNKNOWN_TOPIC_OR_PARTITION
        }
    }

    /// Whether the partition exists: on this broker, or anywhere in the cluster.
    /// Whether this broker knows the cluster's topics: always on a single broker; in a cluster
    /// once its first view is loaded.
    pub fn view_loaded(&self) -> bool {
        self.cluster.as_ref().is_none_or(|c| c.view().loaded)
    }

    pub fn partition_exists(&self, topic: &str, partition: i32) -> bool {
        match &self.cluster {
            Some(c) => c
                .view()
                .topics
                .get(topic)
                .is_some_and(|t| (0..t.replicas.len() as i32).contains(&partition)),
            None => self.owner(topic, partition).is_some(),
        }
    }

    /// The one route to a partition's log: runs `f` with the partition on the shard that owns it.
    /// One rule for "not here": a partition not placed on this broker, or no longer open on its
    /// shard (deleted or moved meanwhile), answers [`Broker::absent_partition_error`]; a shard
    /// that is gone (shutdown) answers NOT_LEADER_OR_FOLLOWER, which clients retry.
    pub async fn on_partition<T, F, Fut>(
        self: &Arc<Self>,
        topic: &str,
        partition: i32,
        f: F,
    ) -> Result<T, i16>
    where
        T: Send + 'static,
        F: FnOnce(Rc<Partition>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, i16>> + 'static,
    {
        self.start_on_partition(topic, partition, f)
            .await
            .await
            .and_then(|r| r)
    }

    /// As [`Broker::on_partition`], but `f` is called at once in the owner's inbox order (so two
    /// starts from one connection, awaited one after the other, run in that order: pipelined
    /// produce), and only its future's outcome is awaited later.
    pub async fn start_on_partition<T, F, Fut>(
        self: &Arc<Self>,
        topic: &str,
        partition: i32,
        f: F,
    ) -> OnPartition<T>
    where
        T: Send + 'static,
        F: FnOnce(Rc<Partition>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T> + 'static,
    {
        let Some(owner) = self.owner(topic, partition) else {
            let code = self.absent_partition_error(topic, partition);
            return Box::pin(async move { Err(code) });
        };
        let b = self.clone();
        let topic = topic.to_string();
        let started = runtime::start_on(owner, move || {
            let ready = log_manager::get(&topic, partition).map(f);
            let missing = match ready {
                Some(_) => ec::NONE,
                None => b.absent_partition_error(&topic, partition),
            };
            async move {
                match ready {
                    Some(fut) => Ok(fut.await),
                    None => Err(missing),
                }
            }
        })
        .await;
        match started {
            Ok(outcome) => {
                Box::pin(async move { outcome.await.unwrap_or(Err(ec::NOT_LEADER_OR_FOLLOWER)) })
            }
            Err(_) => Box::pin(async { Err(ec::NOT_LEADER_OR_FOLLOWER) }),
        }
    }

    /// As [`Broker::on_partition`], but `f` runs on the owner only for as long as the caller
    /// waits: dropping the returned future stops it there (a long poll over several partitions
    /// leaves nothing behind once one answers).
    pub async fn park_on_partition<T, F, Fut>(
        self: &Arc<Self>,
        topic: &str,
        partition: i32,
        f: F,
    ) -> Result<T, i16>
    where
        T: Send + 'static,
        F: FnOnce(Rc<Partition>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, i16>> + 'static,
    {
        let Some(owner) = self.owner(topic, partition) else {
            return Err(self.absent_partition_error(topic, partition));
        };
        let b = self.clone();
        let topic = topic.to_string();
        runtime::call_on_cancellable(owner, move || async move {
            match log_manager::get(&topic, partition) {
                Some(part) => f(part).await,
                None => Err(b.absent_partition_error(&topic, partition)),
            }
        })
        .await
        .unwrap_or(Err(ec::NOT_LEADER_OR_FOLLOWER))
    }

    /// The owning shard of a partition, if it exists.
    pub fn owner(&self, topic: &str, partition: i32) -> Option<ShardId> {
        let md = self.metadata.read().expect("metadata lock");
        md.topics
            .get(topic)
            .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?))
            .filter(|p| p.local)
            .map(|p| p.shard)
    }

    /// The log settings of a topic: broker defaults overridden by topic configs (validated by
    /// the one topic-config table, [`crate::config::topic`]).
    pub fn log_config(&self, configs: &BTreeMap<String, String>) -> Result<LogConfig, String> {
        let ctx = crate::config::topic::TopicContext {
            clustered: self.cluster.is_some(),
        };
        crate::config::topic::log_config(&self.effective_config().log, ctx, configs)
    }

    /// Opens, on the current shard, every partition placed here (start-up).
    pub fn open_local_partitions(&self) -> Result<usize, ringlet_engine::LogError> {
        let me = runtime::shard_id();
        let topics = self.metadata.read().expect("metadata lock").topics.clone();
        let mut n = 0;
        for (name, t) in topics {
            let cfg = self
                .log_config(&t.configs)
                .unwrap_or_else(|_| self.effective_config().log.clone());
            for (i, p) in t.partitions.iter().enumerate() {
                if p.shard != me || !p.local {
                    continue;
                }
                let dir = self.partition_dir(&name, i as i32, p.log_dir);
                let opts = log_manager::OpenOptions {
                    clean: self.clean_start[p.log_dir],
                    replicated: self.cluster.is_some(),
                };
                log_manager::open(
                    &TopicPartition::new(&name, i as i32),
                    &dir,
                    cfg.clone(),
                    opts,
                )?;
                n += 1;
            }
        }
        Ok(n)
    }
}
