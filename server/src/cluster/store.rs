//! The coordination interface and its ZooKeeper implementation.
//!
//! Everything Ringlet needs from a coordination service fits in [`MetadataStore`]: ephemeral
//! creation, reads with versions, conditional writes, `multi` with checks, one recursive watch,
//! and session events. The trait is what an etcd or Raft-log store would implement instead.

use zookeeper_client as zk;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    NoNode,
    NodeExists,
    BadVersion,
    /// The session is gone or the connection failed: start a new session.
    Session(String),
    Other(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::NoNode => write!(f, "no such node"),
            StoreError::NodeExists => write!(f, "node exists"),
            StoreError::BadVersion => write!(f, "version changed"),
            StoreError::Session(m) => write!(f, "session: {m}"),
            StoreError::Other(m) => write!(f, "{m}"),
        }
    }
}

impl From<zk::Error> for StoreError {
    fn from(e: zk::Error) -> Self {
        match e {
            zk::Error::NoNode => StoreError::NoNode,
            zk::Error::NodeExists => StoreError::NodeExists,
            zk::Error::BadVersion => StoreError::BadVersion,
            zk::Error::SessionExpired
            | zk::Error::ConnectionLoss
            | zk::Error::ClientClosed
            | zk::Error::Timeout
            | zk::Error::NoHosts
            | zk::Error::SessionMoved
            | zk::Error::AuthFailed => StoreError::Session(e.to_string()),
            other => StoreError::Other(other.to_string()),
        }
    }
}

/// One operation of an atomic [`MetadataStore::multi`].
#[derive(Debug, Clone)]
pub enum Op {
    Check {
        path: String,
        version: i32,
    },
    Create {
        path: String,
        data: Vec<u8>,
    },
    CreateEphemeral {
        path: String,
        data: Vec<u8>,
    },
    Set {
        path: String,
        data: Vec<u8>,
        version: i32,
    },
    Delete {
        path: String,
    },
}

/// A node: data, version, creation id.
#[derive(Debug, Clone)]
pub struct Node {
    pub data: Vec<u8>,
    pub version: i32,
    pub czxid: i64,
}

/// What the watch reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Something under the root changed.
    Changed(String),
    /// The session ended (expired or closed): every ephemeral node of it is gone.
    SessionLost,
}

#[allow(async_fn_in_trait)]
pub trait MetadataStore {
    /// Creates an ephemeral node; returns its creation id.
    async fn create_ephemeral(&self, path: &str, data: &[u8]) -> Result<i64, StoreError>;
    /// Creates a persistent node (and its missing parents when `parents`).
    async fn create(&self, path: &str, data: &[u8]) -> Result<(), StoreError>;
    async fn get(&self, path: &str) -> Result<Option<Node>, StoreError>;
    async fn children(&self, path: &str) -> Result<Vec<String>, StoreError>;
    /// Sets `path` if its version is still `version`; returns the new version.
    async fn set(&self, path: &str, data: &[u8], version: i32) -> Result<i32, StoreError>;
    /// All or nothing; returns the new version of each `Set`, in order.
    async fn multi(&self, ops: &[Op]) -> Result<Vec<i32>, StoreError>;
    /// The next change under the root, or the end of the session.
    async fn next_event(&mut self) -> Event;
}

pub struct ZkStore {
    client: zk::Client,
    watcher: zk::PersistentWatcher,
    state: zk::StateWatcher,
}

fn open_acl() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

impl ZkStore {
    /// Connects to `connect` (`host:port[,host:port...][/chroot]`), creating the chroot when
    /// missing, and sets one persistent recursive watch on the root.
    pub async fn connect(
        connect: &str,
        session_timeout: std::time::Duration,
        connection_timeout: std::time::Duration,
    ) -> Result<ZkStore, StoreError> {
        let (hosts, chroot) = match connect.find('/') {
            Some(i) => (&connect[..i], Some(connect[i..].trim_end_matches('/'))),
            None => (connect, None),
        };
        let mut client = zk::Client::connector()
            .with_session_timeout(session_timeout)
            .with_connection_timeout(connection_timeout)
            .connect(hosts)
            .await?;
        if let Some(root) = chroot.filter(|r| !r.is_empty()) {
            client.mkdir(root, &open_acl()).await?;
            client = client
                .chroot(root.to_string())
                .map_err(|_| StoreError::Other(format!("bad chroot {root}")))?;
        }
        let watcher = client
            .watch("/", zk::AddWatchMode::PersistentRecursive)
            .await?;
        let state = client.state_watcher();
        Ok(ZkStore {
            client,
            watcher,
            state,
        })
    }

    pub fn session_id(&self) -> i64 {
        self.client.session_id().0
    }
}

impl MetadataStore for ZkStore {
    async fn create_ephemeral(&self, path: &str, data: &[u8]) -> Result<i64, StoreError> {
        let opts = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
        let (stat, _) = self.client.create(path, data, &opts).await?;
        Ok(stat.czxid)
    }

    async fn create(&self, path: &str, data: &[u8]) -> Result<(), StoreError> {
        if let Some(i) = path.rfind('/').filter(|&i| i > 0) {
            self.client.mkdir(&path[..i], &open_acl()).await?;
        }
        self.client.create(path, data, &open_acl()).await?;
        Ok(())
    }

    async fn get(&self, path: &str) -> Result<Option<Node>, StoreError> {
        match self.client.get_data(path).await {
            Ok((data, stat)) => Ok(Some(Node {
                data,
                version: stat.version,
                czxid: stat.czxid,
            })),
            Err(zk::Error::NoNode) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn children(&self, path: &str) -> Result<Vec<String>, StoreError> {
        match self.client.list_children(path).await {
            Ok(c) => Ok(c),
            Err(zk::Error::NoNode) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    async fn set(&self, path: &str, data: &[u8], version: i32) -> Result<i32, StoreError> {
        let stat = self.client.set_data(path, data, Some(version)).await?;
        Ok(stat.version)
    }

    async fn multi(&self, ops: &[Op]) -> Result<Vec<i32>, StoreError> {
        let mut w = self.client.new_multi_writer();
        let opts = open_acl();
        for op in ops {
            match op {
                Op::Check { path, version } => w.add_check_version(path, *version),
                Op::Create { path, data } => w.add_create(path, data, &opts),
                Op::CreateEphemeral { path, data } => w.add_create(
                    path,
                    data,
                    &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all()),
                ),
                Op::Set {
                    path,
                    data,
                    version,
                } => w.add_set_data(path, data, Some(*version)),
                Op::Delete { path } => w.add_delete(path, None),
            }
            .map_err(StoreError::from)?;
        }
        match w.commit().await {
            Ok(results) => Ok(results
                .into_iter()
                .filter_map(|r| match r {
                    zk::MultiWriteResult::SetData { stat } => Some(stat.version),
                    _ => None,
                })
                .collect()),
            Err(zk::MultiWriteError::OperationFailed { source, .. }) => Err(source.into()),
            Err(zk::MultiWriteError::RequestFailed { source }) => Err(source.into()),
        }
    }

    async fn next_event(&mut self) -> Event {
        use futures_util::future::{select, Either};
        let ev = {
            let a = std::pin::pin!(self.watcher.changed());
            let b = std::pin::pin!(self.state.changed());
            match select(a, b).await {
                Either::Left((ev, _)) => Some(ev),
                Either::Right((state, _)) => {
                    if state.is_terminated() {
                        return Event::SessionLost;
                    }
                    None
                }
            }
        };
        match ev {
            Some(ev) if ev.event_type == zk::EventType::Session => {
                if ev.session_state.is_terminated() {
                    Event::SessionLost
                } else {
                    Event::Changed(String::new())
                }
            }
            Some(ev) => Event::Changed(ev.path),
            None => Event::Changed(String::new()),
        }
    }
}
