//! The shard's log manager (as Redpanda's `log_manager`): it opens, tracks, closes and deletes the
//! partition logs this shard owns, and runs their housekeeping (scheduled flushes, retention) on
//! the shard. The server asks it for a partition by topic and index; nothing else keeps a registry.
//!
//! One manager per shard thread, so its state is a thread-local: only the owning shard touches it,
//! without locks. Lookups take `&str` and allocate nothing.

use crate::config::{now_ms, LogConfig};
use crate::error::LogError;
use crate::partition::Partition;
use crate::partition_log::PartitionLog;
use crate::runtime::io;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A partition's name: its topic and index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: Arc::from(topic),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// How a log is opened.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// The previous run stopped cleanly: recovery trusts the indexes and checkpoints.
    pub clean: bool,
    /// The partition is replicated (a cluster): the high watermark and leader epochs are kept.
    pub replicated: bool,
}

/// Topic -> partition index -> partition.
type Logs = HashMap<Arc<str>, BTreeMap<i32, Rc<Partition>>>;

thread_local! {
    /// This shard's partitions.
    static LOGS: RefCell<Logs> = RefCell::new(HashMap::new());
}

/// The partition `topic`-`partition` if this shard owns it.
pub fn get(topic: &str, partition: i32) -> Option<Rc<Partition>> {
    LOGS.with(|l| l.borrow().get(topic)?.get(&partition).cloned())
}

/// Every partition of this shard, in no particular order of topics.
pub fn all() -> Vec<(TopicPartition, Rc<Partition>)> {
    LOGS.with(|l| {
        l.borrow()
            .iter()
            .flat_map(|(t, ps)| {
                ps.iter().map(move |(&i, p)| {
                    (
                        TopicPartition {
                            topic: t.clone(),
                            partition: i,
                        },
                        p.clone(),
                    )
                })
            })
            .collect()
    })
}

/// How many partitions this shard holds.
pub fn count() -> usize {
    LOGS.with(|l| l.borrow().values().map(BTreeMap::len).sum())
}

/// Opens (recovering as needed) the log in `dir` and makes it this shard's `tp`. A partition
/// already open under that name is replaced (closed when its last user lets go).
pub fn open(
    tp: &TopicPartition,
    dir: &Path,
    config: LogConfig,
    opts: OpenOptions,
) -> Result<Rc<Partition>, LogError> {
    let mut log = PartitionLog::open(dir, config, opts.clean)?;
    if opts.replicated {
        log.set_replicated()?;
    }
    let part = Partition::new(log);
    LOGS.with(|l| {
        l.borrow_mut()
            .entry(tp.topic.clone())
            .or_default()
            .insert(tp.partition, part.clone())
    });
    Ok(part)
}

/// Forgets `topic`-`partition` and returns it; its files stay. The caller closes it or lets it go.
fn take(topic: &str, partition: i32) -> Option<Rc<Partition>> {
    LOGS.with(|l| {
        let mut l = l.borrow_mut();
        let ps = l.get_mut(topic)?;
        let part = ps.remove(&partition);
        if ps.is_empty() {
            l.remove(topic);
        }
        part
    })
}

/// Removes `topic`-`partition` from this shard and deletes its directory (DeleteTopics, or a
/// replica moved away). Fetches still holding the partition finish on the open descriptors.
/// Returns whether the shard had it.
pub fn delete(topic: &str, partition: i32) -> Result<bool, LogError> {
    let Some(part) = take(topic, partition) else {
        return Ok(false);
    };
    let dir = part.log.borrow().dir().to_path_buf();
    drop(part);
    match crate::runtime::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(LogError::io(&dir, e)),
    }
}

/// Applies a new topic configuration to `topic`-`partition`; false when the shard lacks it.
pub fn reconfigure(topic: &str, partition: i32, config: LogConfig) -> bool {
    match get(topic, partition) {
        Some(p) => {
            p.set_config(config);
            true
        }
        None => false,
    }
}

/// Closes every log of this shard (indexes written, active segment synced, high watermark
/// checkpointed) and forgets them. Returns how many closed and the errors of those that failed.
pub fn close_all() -> (usize, Vec<(TopicPartition, LogError)>) {
    let parts = all();
    LOGS.with(|l| l.borrow_mut().clear());
    let mut failed = Vec::new();
    let n = parts.len();
    for (tp, p) in parts {
        let mut log = p.log.borrow_mut();
        if let Err(e) = log.close() {
            failed.push((tp.clone(), e));
        }
        if log.is_replicated() {
            if let Err(e) = log.checkpoint_high_watermark() {
                failed.push((tp, e));
            }
        }
    }
    (n, failed)
}

/// Housekeeping periods: `log.flush.scheduler.interval.ms`, `log.retention.check.interval.ms`.
#[derive(Debug, Clone, Copy)]
pub struct Housekeeping {
    pub flush_every: Duration,
    pub retention_every: Duration,
}

/// Runs on the shard until the task is dropped: time-based flushes (`flush.ms`) and retention
/// (`retention.ms`, `retention.bytes`) of every log this shard holds.
pub async fn housekeeping(h: Housekeeping) {
    let mut last_retention = Instant::now();
    loop {
        io::sleep(h.flush_every.min(h.retention_every)).await;
        for (tp, p) in all() {
            if let Err(e) = p.flush_if_due(false).await {
                tracing::error!(partition = %tp, error = %e, "scheduled flush failed");
            }
        }
        if last_retention.elapsed() >= h.retention_every {
            last_retention = Instant::now();
            let now = now_ms();
            for (tp, p) in all() {
                // (Each deleted segment is logged where it goes.)
                if let Err(e) = p.log.borrow_mut().apply_retention(now) {
                    tracing::error!(partition = %tp, error = %e, "retention failed");
                }
            }
        }
    }
}
