//! Multi-broker clusters: metadata in ZooKeeper, replication between brokers.
//!
//! * [`store`]: the narrow coordination interface ([`store::MetadataStore`]) and its ZooKeeper
//!   implementation, used only from the coordination thread.
//! * [`coordination`]: the coordination thread (one per broker): broker registration, controller
//!   election and the controller's decisions, the cluster view every shard reads, and the writes
//!   shards ask for (ISR changes, topic creation and deletion, controlled shutdown).
//! * [`replica`]: what runs on the shards: leader and follower roles, the high watermark, ISR
//!   shrink and expand, follower fetchers and truncation by leader epoch.
//!
//! Shards never block on ZooKeeper: they read the latest [`ClusterView`] (an `Arc` swapped under a
//! lock held for a pointer copy) and send requests over a bounded channel, awaiting a oneshot.
//! Brokers learn state changes from ZooKeeper watches; there are no controller-to-broker RPCs
//! (see docs/adr/0007-replication.md).

pub mod coordination;
pub mod peer;
pub mod replica;
pub mod store;
pub mod throttle;
pub mod topics;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// A live broker as registered in `/brokers/ids/<id>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: i32,
    /// `(listener name, host, port)` of each advertised listener.
    pub endpoints: Vec<(String, String, u16)>,
    pub rack: Option<String>,
    /// The registration znode's creation zxid (KIP-380's broker epoch).
    pub epoch: i64,
}

impl BrokerInfo {
    /// The advertised address of listener `name`, else of the first listener.
    pub fn endpoint(&self, name: Option<&str>) -> Option<(String, u16)> {
        let e = match name {
            Some(n) => self.endpoints.iter().find(|e| e.0 == n),
            None => None,
        }
        .or_else(|| self.endpoints.first())?;
        Some((e.1.clone(), e.2))
    }
}

/// `/brokers/topics/<t>/partitions/<p>/state`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionState {
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    pub controller_epoch: i32,
    /// The znode's version (Kafka's zkVersion / partition epoch): every write is conditional on it.
    pub version: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    pub id: [u8; 16],
    /// Replica assignment per partition, preferred leader first.
    pub replicas: Vec<Vec<i32>>,
    pub configs: BTreeMap<String, String>,
    /// State per partition (`None` until the controller has created it).
    pub states: Vec<Option<PartitionState>>,
    /// Partitions being reassigned (KIP-455), by index: `replicas` then holds the target replicas
    /// followed by those leaving.
    pub reassigning: BTreeMap<usize, Reassignment>,
    /// The assignment znode's version: the controller's writes are conditional on it.
    pub version: i32,
}

/// An ongoing reassignment of one partition, as Kafka's topic znode records it: the target is
/// the replicas minus `removing`, the original the replicas minus `adding`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reassignment {
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// An AlterPartitionReassignments waiting for the controller (`/admin/reassign_partitions`):
/// the target replicas, or `None` to cancel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReassignRequest {
    pub topic: String,
    pub partition: i32,
    pub target: Option<Vec<i32>>,
}

/// What a broker knows of the cluster: a snapshot of ZooKeeper, read after every change.
#[derive(Clone, Debug, Default)]
pub struct ClusterView {
    /// False until the first full read after registration.
    pub loaded: bool,
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub controller: i32,
    pub controller_epoch: i32,
    pub topics: BTreeMap<String, TopicInfo>,
    pub shutting_down: BTreeSet<i32>,
    pub deleting: BTreeSet<String>,
    /// Partitions an ElectLeaders asked to move to their preferred replica
    /// (`/admin/preferred_replica_election`, Kafka's znode), until the controller has.
    pub preferred_elections: BTreeSet<(String, i32)>,
    /// Partitions an ElectLeaders (UNCLEAN) asked to give a leader even if out of sync
    /// (`/admin/unclean_leader_election`, Ringlet's znode), until the controller has.
    pub unclean_elections: BTreeSet<(String, i32)>,
    /// Reassignments asked for and not yet started by the controller.
    pub reassign_requests: Vec<ReassignRequest>,
    /// Dynamic broker configs (`/config/brokers/<default>` and `/config/brokers/<id>`).
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Client quotas (`/config/users/...`, `/config/clients/...`, `/config/ips/...`), by
    /// entity path under `/config`.
    pub quotas: BTreeMap<String, BTreeMap<String, f64>>,
    /// SCRAM credentials (in `/config/users/<user>`, beside its quotas), by user.
    pub scram: coordination::security::ScramUsers,
    /// ACLs (`/kafka-acl/...`, `/kafka-acl-extended/prefixed/...`).
    pub acls: Vec<crate::security::Acl>,
    /// Dynamic group configs (`/config/groups/<group>`), by group id.
    pub group_configs: BTreeMap<String, BTreeMap<String, String>>,
}

impl ClusterView {
    pub fn state(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        self.topics
            .get(topic)?
            .states
            .get(usize::try_from(partition).ok()?)?
            .as_ref()
    }

    /// Partitions with fewer in-sync replicas than replicas, and partitions with no live leader.
    pub fn health(&self) -> (usize, usize) {
        let (mut under, mut offline) = (0, 0);
        for t in self.topics.values() {
            for (r, s) in t.replicas.iter().zip(&t.states) {
                match s {
                    Some(s) if s.leader >= 0 && self.brokers.contains_key(&s.leader) => {
                        if s.isr.len() < r.len() {
                            under += 1;
                        }
                    }
                    _ => offline += 1,
                }
            }
        }
        (under, offline)
    }
}

/// A write a shard asks the coordination thread for.
pub enum Request {
    /// The leader's ISR change: set the state znode if its version is still `version`.
    AlterIsr {
        topic: String,
        partition: i32,
        state: PartitionState,
        reply: futures_channel::oneshot::Sender<Result<i32, String>>,
    },
    /// Creates `/brokers/topics/<t>`; the controller then creates the partition states.
    CreateTopic {
        topic: String,
        info: TopicInfo,
        reply: futures_channel::oneshot::Sender<Result<(), (i16, String)>>,
    },
    /// Marks a topic for deletion (`/admin/delete_topics/<t>`); the controller deletes it.
    DeleteTopic {
        topic: String,
        reply: futures_channel::oneshot::Sender<Result<(), String>>,
    },
    /// Registers `/brokers/shutting_down/<id>`: the controller moves leadership away.
    ControlledShutdown {
        reply: futures_channel::oneshot::Sender<Result<(), String>>,
    },
    /// Asks the controller to move these partitions' leadership to their preferred replicas
    /// (writes `/admin/preferred_replica_election`), or with `unclean` to elect a leader for
    /// these leaderless partitions from any live replica (`/admin/unclean_leader_election`).
    PreferredElection {
        partitions: Vec<(String, i32)>,
        unclean: bool,
        reply: futures_channel::oneshot::Sender<Result<(), String>>,
    },
    /// Adds partitions to a topic: `replicas` is the whole new assignment (the existing
    /// partitions' unchanged); the controller then creates the new partitions' states.
    AddPartitions {
        topic: String,
        replicas: Vec<Vec<i32>>,
        reply: futures_channel::oneshot::Sender<Result<(), (i16, String)>>,
    },
    /// Hands reassignments to the controller (writes `/admin/reassign_partitions`); fails with
    /// `Busy` while an earlier batch is still there.
    Reassign {
        requests: Vec<ReassignRequest>,
        reply: futures_channel::oneshot::Sender<Result<(), ReassignRefused>>,
    },
    /// Replaces an entity's dynamic configs (`/config/<entity>/<name>`, Kafka's JSON).
    SetConfig {
        entity: &'static str,
        name: String,
        configs: BTreeMap<String, String>,
        reply: futures_channel::oneshot::Sender<Result<(), String>>,
    },
    /// Changes some keys of an entity's config znode, keeping the others (a user's SCRAM
    /// credentials and quotas share one).
    UpdateConfig {
        entity: &'static str,
        name: String,
        changes: BTreeMap<String, Option<String>>,
        reply: futures_channel::oneshot::Sender<Result<(), String>>,
    },
    /// Adds and removes ACLs (exact entries) in ZooKeeper.
    UpdateAcls {
        add: Vec<crate::security::Acl>,
        remove: Vec<crate::security::Acl>,
        reply: futures_channel::oneshot::Sender<Result<(), String>>,
    },
    /// Closes the session (the broker is exiting): its ephemeral nodes go at once.
    Close {
        reply: futures_channel::oneshot::Sender<Result<(), String>>,
    },
}

/// Why a batch of reassignments was not handed to the controller.
#[derive(Debug)]
pub enum ReassignRefused {
    /// The controller has not yet taken the previous batch.
    Busy,
    Failed(String),
}

/// The broker's handle on the cluster, shared by the shards and the coordination thread.
pub struct Cluster {
    pub broker_id: i32,
    pub config: crate::config::ClusterConfig,
    view: RwLock<Arc<ClusterView>>,
    /// Bumped at every new view.
    pub generation: AtomicU64,
    /// Notified at every new view and fencing change (waiters re-check what they wait for).
    pub changed: ringlet_engine::runtime::sync::WaitList,
    /// True while this broker holds no ZooKeeper session (not yet registered, or expired): it
    /// leads nothing then, whatever the last view says.
    pub fenced: AtomicBool,
    /// The broker epoch of the current registration.
    pub broker_epoch: AtomicI64,
    /// Set once the session was closed for good.
    pub closed: AtomicBool,
    /// Set when the broker begins to shut down: replica fetchers and maintenance stop.
    pub stopping: AtomicBool,
    /// The listener replica fetchers connect to (`inter.broker.listener.name`, else the first
    /// PLAINTEXT listener).
    pub inter_broker_listener: Option<String>,
    /// Replication throttles (`leader.` / `follower.replication.throttled.rate`), dynamic.
    pub throttles: throttle::Throttles,
    /// TLS and SASL of connections to the other brokers.
    pub peer_security: peer::PeerSecurity,
    requests: tokio::sync::mpsc::Sender<Request>,
}

impl Cluster {
    /// Where broker `id` takes inter-broker connections: its address, and the advertised host
    /// (what a TLS certificate must name).
    pub fn peer_endpoint(&self, id: i32) -> Option<(std::net::SocketAddr, String)> {
        use std::net::ToSocketAddrs;
        let (h, p) = self
            .view()
            .brokers
            .get(&id)?
            .endpoint(self.inter_broker_listener.as_deref())?;
        let addr = (h.as_str(), p).to_socket_addrs().ok()?.next()?;
        Some((addr, h))
    }

    /// Connects to broker `id` over the inter-broker listener.
    pub async fn connect_peer(
        &self,
        id: i32,
        timeout: std::time::Duration,
        client_id: &str,
    ) -> std::io::Result<peer::PeerConn> {
        let (addr, host) = self.peer_endpoint(id).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("broker {id} has no inter-broker endpoint"),
            )
        })?;
        peer::PeerConn::connect(addr, &host, &self.peer_security, timeout, client_id).await
    }

    pub fn view(&self) -> Arc<ClusterView> {
        self.view.read().expect("view lock").clone()
    }

    fn publish(&self, view: ClusterView) {
        *self.view.write().expect("view lock") = Arc::new(view);
        self.generation.fetch_add(1, Ordering::Release);
        self.changed.notify_all();
    }

    /// Waits (without polling) until a view satisfies `cond`; false if `until` passes first.
    pub async fn wait_for_view(
        &self,
        until: std::time::Instant,
        cond: impl Fn(&ClusterView) -> bool,
    ) -> bool {
        loop {
            let seen = self.generation.load(Ordering::Acquire);
            if cond(&self.view()) {
                return true;
            }
            let now = std::time::Instant::now();
            if now >= until {
                return false;
            }
            let newer = self
                .changed
                .wait_until(|| self.generation.load(Ordering::Acquire) != seen);
            let timeout = ringlet_engine::runtime::io::sleep(until - now);
            futures_util::future::select(std::pin::pin!(newer), std::pin::pin!(timeout)).await;
        }
    }

    /// The broker begins to shut down: replication stops (its tasks see it at their next turn).
    pub fn begin_stopping(&self) {
        self.stopping.store(true, Ordering::Release);
        self.changed.notify_all();
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Records whether this broker is fenced (no ZooKeeper session) and tells the waiters.
    fn set_fenced(&self, fenced: bool) {
        self.fenced.store(fenced, Ordering::Release);
        self.changed.notify_all();
    }

    /// Closes the ZooKeeper session and waits (bounded) until it is closed.
    pub fn close(&self) {
        let (tx, mut rx) = futures_channel::oneshot::channel();
        if self.request(Request::Close { reply: tx }).is_err() {
            return;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while std::time::Instant::now() < deadline {
            if !matches!(rx.try_recv(), Ok(None)) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    pub fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::Acquire)
    }

    /// Sends a request to the coordination thread without blocking (fails when its bounded
    /// queue is full).
    pub fn request(&self, r: Request) -> Result<(), String> {
        self.requests
            .try_send(r)
            .map_err(|e| format!("coordination queue: {e}"))
    }

    /// Asks the coordination thread for an ISR change and waits for its outcome: the state's
    /// new version.
    pub async fn alter_isr(
        &self,
        topic: &str,
        partition: i32,
        state: PartitionState,
    ) -> Result<i32, String> {
        let (tx, rx) = futures_channel::oneshot::channel();
        self.request(Request::AlterIsr {
            topic: topic.to_string(),
            partition,
            state,
            reply: tx,
        })?;
        rx.await
            .map_err(|_| "coordination thread gone".to_string())?
    }

    /// Writes an entity's dynamic configs to ZooKeeper and waits (up to 10 s) until this
    /// broker's view shows them, so a describe that follows on this broker sees them.
    pub async fn set_config(
        &self,
        entity: &'static str,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), String> {
        let (tx, rx) = futures_channel::oneshot::channel();
        self.request(Request::SetConfig {
            entity,
            name: name.to_string(),
            configs: configs.clone(),
            reply: tx,
        })?;
        rx.await
            .map_err(|_| "coordination thread gone".to_string())??;
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let seen = self
            .wait_for_view(until, |v| match entity {
                "groups" => v
                    .group_configs
                    .get(name)
                    .map_or(configs.is_empty(), |c| *c == configs),
                "topics" => v.topics.get(name).is_some_and(|t| t.configs == configs),
                "brokers" => v
                    .broker_configs
                    .get(name)
                    .map_or(configs.is_empty(), |c| *c == configs),
                _ => true,
            })
            .await;
        if !seen {
            tracing::warn!(
                entity,
                name,
                "dynamic configs written but not yet seen in the view"
            );
        }
        Ok(())
    }

    /// Changes some keys of `/config/<entity>/<name>`, keeping the others.
    pub async fn update_config(
        &self,
        entity: &'static str,
        name: &str,
        changes: BTreeMap<String, Option<String>>,
    ) -> Result<(), String> {
        let (tx, rx) = futures_channel::oneshot::channel();
        self.request(Request::UpdateConfig {
            entity,
            name: name.to_string(),
            changes,
            reply: tx,
        })?;
        rx.await
            .map_err(|_| "coordination thread gone".to_string())?
    }

    /// Changes a user's SCRAM credentials (`/config/users/<user>`, each mechanism a key; `None`
    /// deletes) and waits until the view shows them.
    pub async fn update_scram(
        &self,
        user: &str,
        changes: BTreeMap<String, Option<String>>,
    ) -> Result<(), String> {
        let name = crate::quota::Entity {
            user: Some(Some(user.to_string())),
            ..Default::default()
        }
        .path();
        let name = name.trim_start_matches("users/").to_string();
        let wanted: Vec<(String, bool)> = changes
            .iter()
            .map(|(k, v)| (k.clone(), v.is_some()))
            .collect();
        self.update_config("users", &name, changes).await?;
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        self.wait_for_view(until, |v| {
            wanted.iter().all(|(m, present)| {
                let has = ringlet_client::scram::Mechanism::from_name(m)
                    .is_some_and(|m| v.scram.get(user).is_some_and(|u| u.contains_key(&m)));
                has == *present
            })
        })
        .await;
        Ok(())
    }

    /// Adds and removes ACLs in ZooKeeper and waits until the view shows it.
    pub async fn update_acls(
        &self,
        add: Vec<crate::security::Acl>,
        remove: Vec<crate::security::Acl>,
    ) -> Result<(), String> {
        let (tx, rx) = futures_channel::oneshot::channel();
        self.request(Request::UpdateAcls {
            add: add.clone(),
            remove: remove.clone(),
            reply: tx,
        })?;
        rx.await
            .map_err(|_| "coordination thread gone".to_string())??;
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        self.wait_for_view(until, |v| {
            add.iter().all(|a| v.acls.contains(a))
                && remove
                    .iter()
                    .all(|a| add.contains(a) || !v.acls.contains(a))
        })
        .await;
        Ok(())
    }
}
