//! The transaction coordinator (KIP-98, transaction version 1): each transactional id belongs to
//! one partition of the internal `__transaction_state` topic (Java's
//! `abs(transactionalId.hashCode) % transaction.state.log.num.partitions`), and so to the shard
//! that owns that partition, as groups do on `__consumer_offsets`. An id's state (producer id
//! and epoch, timeout, state, partitions) is a compacted record of that partition, written before
//! any answer that depends on it and replayed when the shard starts or takes the partition over.
//!
//! A transaction goes Empty -> Ongoing (AddPartitionsToTxn, AddOffsetsToTxn) -> PrepareCommit or
//! PrepareAbort (EndTxn, written first: the decision is durable) -> markers written to every
//! partition of the transaction -> CompleteCommit or CompleteAbort. A coordinator restarted
//! between the two finishes the markers from its tick. InitProducerId on an id with an open
//! transaction, and a transaction open past its timeout, abort it with the epoch bumped, which
//! fences the old producer on every partition the markers reach.
//!
//! By role: [`log`] is the record codec and replay; [`markers`] writes commit/abort markers to
//! the transaction's partitions; [`verify`] is the partition leaders' side of KIP-890 (adding or
//! verifying a partition before its first transactional batch); this file holds the state,
//! placement and the operations.

mod log;
mod markers;
mod verify;

use crate::broker::Broker;
use crate::error_code as ec;
use ringlet_engine::{log_manager, runtime};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

pub use markers::{write_marker, write_markers};
pub use verify::{add_or_verify, gate_produce, TxnBatch};

pub const TXN_TOPIC: &str = "__transaction_state";

/// Kafka's transaction states, with their codes in the transaction log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl State {
    const ALL: [State; 8] = [
        State::Empty,
        State::Ongoing,
        State::PrepareCommit,
        State::PrepareAbort,
        State::CompleteCommit,
        State::CompleteAbort,
        State::Dead,
        State::PrepareEpochFence,
    ];

    pub fn code(self) -> i8 {
        State::ALL.iter().position(|s| *s == self).expect("listed") as i8
    }

    pub fn from_code(c: i8) -> Option<State> {
        State::ALL.get(usize::try_from(c).ok()?).copied()
    }

    /// The name DescribeTransactions and ListTransactions use.
    pub fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::Ongoing => "Ongoing",
            State::PrepareCommit => "PrepareCommit",
            State::PrepareAbort => "PrepareAbort",
            State::CompleteCommit => "CompleteCommit",
            State::CompleteAbort => "CompleteAbort",
            State::Dead => "Dead",
            State::PrepareEpochFence => "PrepareEpochFence",
        }
    }
}

/// One transactional id's state.
#[derive(Clone, Debug)]
pub struct TxnMeta {
    pub producer_id: i64,
    pub epoch: i16,
    pub timeout_ms: i32,
    pub state: State,
    pub partitions: BTreeSet<(String, i32)>,
    pub last_update_ms: i64,
    pub start_ms: i64,
    /// Version 2: the producer id a transaction ending with its epoch exhausted hands over to
    /// once its markers are written (-1: none). Kept in memory only (the v0 record has no field
    /// for it), so a coordinator move in that instant leaves the producer to re-initialise.
    pub next_producer_id: i64,
    /// A write for this id is in flight: other requests get CONCURRENT_TRANSACTIONS.
    busy: bool,
}

/// What the coordinator did on one shard, for metrics.
#[derive(Clone, Debug, Default)]
pub struct TxnMetrics {
    pub committed: u64,
    pub aborted: u64,
    /// Aborted by the coordinator because they were open past their timeout.
    pub timed_out: u64,
    /// Open now on this shard's coordinators.
    pub ongoing: u64,
}

thread_local! {
    static METRICS: RefCell<TxnMetrics> = RefCell::new(TxnMetrics::default());
    static TXNS: RefCell<HashMap<String, TxnMeta>> = RefCell::new(HashMap::new());
    /// Transaction-log partitions (in a cluster) whose ids this shard serves; `false` while
    /// loading.
    static SERVING: RefCell<HashMap<i32, bool>> = RefCell::new(HashMap::new());
}

/// The transaction-log partition of an id: Kafka's placement, as groups'.
pub fn partition_for(txn_id: &str, partitions: i32) -> i32 {
    crate::coordinator::partition_for(txn_id, partitions)
}

/// Configs of `__transaction_state`, Kafka's: compacted, segments of
/// `transaction.state.log.segment.bytes`, `transaction.state.log.min.isr` (no more than the
/// replicas it has).
pub fn topic_configs(broker: &Broker, replicas: i16) -> BTreeMap<String, String> {
    let t = &broker.config.transactions;
    [
        ("cleanup.policy", "compact".to_string()),
        ("segment.bytes", t.state_log_segment_bytes.to_string()),
        (
            "min.insync.replicas",
            t.state_log_min_isr.min(replicas.max(1)).to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Whether this shard coordinates the ids of transaction-log partition `partition` now.
fn serving(broker: &Broker, partition: i32) -> Result<(), i16> {
    if broker.cluster.is_none() {
        return Ok(());
    }
    SERVING.with(|s| match s.borrow().get(&partition) {
        Some(true) => Ok(()),
        Some(false) => Err(ec::COORDINATOR_LOAD_IN_PROGRESS),
        None => Err(ec::NOT_COORDINATOR),
    })
}

/// Runs `f` on the shard that coordinates `txn_id`, once it serves the id's partition.
pub async fn on_coordinator<T, F, Fut>(broker: &Arc<Broker>, txn_id: &str, f: F) -> Result<T, i16>
where
    T: Send + 'static,
    F: FnOnce(i32) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, i16>> + 'static,
{
    if txn_id.is_empty() {
        return Err(ec::INVALID_REQUEST);
    }
    let p = partition_for(txn_id, broker.config.transactions.state_log_num_partitions);
    let Some(shard) = broker.owner(TXN_TOPIC, p) else {
        return Err(if broker.cluster.is_some() {
            ec::NOT_COORDINATOR
        } else {
            ec::COORDINATOR_NOT_AVAILABLE
        });
    };
    let b = broker.clone();
    runtime::call_on(shard, move || {
        let ready = serving(&b, p);
        let fut = ready.is_ok().then(|| f(p));
        async move {
            ready?;
            fut.expect("serving").await
        }
    })
    .await
    .unwrap_or(Err(ec::COORDINATOR_NOT_AVAILABLE))
}

/// Replays this shard's transaction-log partitions (a single broker, at start-up).
pub async fn load_local() -> usize {
    let mut n = 0;
    for (tp, part) in log_manager::all() {
        if &*tp.topic == TXN_TOPIC {
            let mut map = HashMap::new();
            n += log::load_partition(&part, &mut map).await;
            TXNS.with(|t| t.borrow_mut().extend(map));
        }
    }
    n
}

/// Follows leadership of the transaction-log partitions on the current shard (a cluster).
pub fn follow_leadership(partitions: i32) {
    crate::cluster::replica::on_leadership_change(move |topic, partition, change| {
        if topic != TXN_TOPIC {
            return;
        }
        match change {
            crate::cluster::replica::Leadership::Gained => {
                SERVING.with(|s| s.borrow_mut().insert(partition, false));
                runtime::spawn(async move {
                    let mut map = HashMap::new();
                    let n = match log_manager::get(TXN_TOPIC, partition) {
                        Some(part) => log::load_partition(&part, &mut map).await,
                        None => 0,
                    };
                    TXNS.with(|t| {
                        let mut t = t.borrow_mut();
                        t.retain(|id, _| partition_for(id, partitions) != partition);
                        t.extend(map);
                    });
                    SERVING.with(|s| s.borrow_mut().insert(partition, true));
                    tracing::info!(
                        partition,
                        records = n,
                        "now coordinating the transactions of this partition"
                    );
                })
                .detach();
            }
            crate::cluster::replica::Leadership::Lost => {
                if SERVING
                    .with(|s| s.borrow_mut().remove(&partition))
                    .is_some()
                {
                    TXNS.with(|t| {
                        t.borrow_mut()
                            .retain(|id, _| partition_for(id, partitions) != partition)
                    });
                }
            }
        }
    });
}

/// Writes an id's state (or its tombstone) to its transaction-log partition.
async fn persist(partition: i32, txn_id: &str, meta: Option<&TxnMeta>) -> Result<(), i16> {
    let Some(part) = log_manager::get(TXN_TOPIC, partition) else {
        return Err(ec::NOT_COORDINATOR);
    };
    tracing::debug!(txn_id, state = ?meta.map(|m| m.state), "persisting transaction state");
    let r = crate::coordinator::replicated_append(
        TXN_TOPIC,
        &part,
        partition,
        log::record(txn_id, meta),
    )
    .await;
    tracing::debug!(txn_id, ?r, "persisted transaction state");
    r
}

fn now() -> i64 {
    ringlet_engine::config::now_ms()
}

/// Marks an id busy, returning its state; CONCURRENT_TRANSACTIONS if it already is.
fn claim(txn_id: &str) -> Result<Option<TxnMeta>, i16> {
    TXNS.with(|t| match t.borrow_mut().get_mut(txn_id) {
        Some(m) if m.busy => Err(ec::CONCURRENT_TRANSACTIONS),
        Some(m) => {
            m.busy = true;
            Ok(Some(m.clone()))
        }
        None => Ok(None),
    })
}

/// Stores an id's new state (not busy), or releases it unchanged.
fn release(txn_id: &str, meta: Option<TxnMeta>) {
    TXNS.with(|t| {
        let mut t = t.borrow_mut();
        match meta {
            Some(mut m) => {
                m.busy = false;
                t.insert(txn_id.to_string(), m);
            }
            None => {
                if let Some(m) = t.get_mut(txn_id) {
                    m.busy = false;
                }
            }
        }
    });
}

/// Persists `next` for an id claimed busy, then stores it; on failure the id keeps `prev`.
async fn transition(partition: i32, txn_id: &str, next: TxnMeta) -> Result<TxnMeta, i16> {
    match persist(partition, txn_id, Some(&next)).await {
        Ok(()) => {
            release(txn_id, Some(next.clone()));
            Ok(next)
        }
        Err(code) => {
            release(txn_id, None);
            Err(code)
        }
    }
}

/// Checks a request's producer id and epoch against the id's state.
fn check_producer(m: &TxnMeta, producer_id: i64, epoch: i16) -> Result<(), i16> {
    if m.producer_id != producer_id {
        return Err(ec::INVALID_PRODUCER_ID_MAPPING);
    }
    if m.epoch != epoch {
        return Err(ec::PRODUCER_FENCED);
    }
    Ok(())
}

/// Aborts the open transaction of a claimed id with the epoch bumped (fencing its producer),
/// as InitProducerId does for a new instance and the tick does for a timed-out transaction.
async fn fence_and_abort(
    broker: &Arc<Broker>,
    partition: i32,
    txn_id: &str,
    m: TxnMeta,
) -> Result<TxnMeta, i16> {
    let mut prep = m.clone();
    prep.epoch = m.epoch.saturating_add(1);
    prep.state = State::PrepareAbort;
    prep.last_update_ms = now();
    persist(partition, txn_id, Some(&prep)).await?;
    complete(broker, partition, txn_id, prep).await
}

/// Writes the markers of a prepared transaction, then records it complete.
async fn complete(
    broker: &Arc<Broker>,
    partition: i32,
    txn_id: &str,
    prep: TxnMeta,
) -> Result<TxnMeta, i16> {
    let commit = prep.state == State::PrepareCommit;
    write_markers(
        broker,
        prep.producer_id,
        prep.epoch,
        commit,
        &prep.partitions,
    )
    .await?;
    let mut done = prep;
    done.state = if commit {
        State::CompleteCommit
    } else {
        State::CompleteAbort
    };
    done.partitions.clear();
    done.last_update_ms = now();
    if done.next_producer_id >= 0 {
        done.producer_id = done.next_producer_id;
        done.epoch = 0;
        done.next_producer_id = -1;
    }
    persist(partition, txn_id, Some(&done)).await?;
    METRICS.with(|m| {
        let mut m = m.borrow_mut();
        if commit {
            m.committed += 1;
        } else {
            m.aborted += 1;
        }
    });
    Ok(done)
}

/// This shard's coordinator metrics.
pub fn metrics_local() -> TxnMetrics {
    let mut m = METRICS.with(|m| m.borrow().clone());
    m.ongoing = TXNS.with(|t| {
        t.borrow()
            .values()
            .filter(|x| x.state == State::Ongoing)
            .count() as u64
    });
    m
}

/// InitProducerId with a transactional id: a producer id and a new epoch, after aborting (and
/// fencing) any transaction the id's previous producer left open. `expected`: the producer id
/// and epoch a producer re-initialising itself gives (KIP-360), `None` for a new producer.
pub async fn init_producer_id(
    broker: &Arc<Broker>,
    partition: i32,
    txn_id: &str,
    timeout_ms: i32,
    expected: Option<(i64, i16)>,
) -> Result<(i64, i16), i16> {
    let m = match claim(txn_id)? {
        None => {
            let fresh = TxnMeta {
                producer_id: broker.allocate_producer_id(),
                epoch: 0,
                timeout_ms,
                state: State::Empty,
                partitions: BTreeSet::new(),
                last_update_ms: now(),
                start_ms: -1,
                next_producer_id: -1,
                busy: true,
            };
            TXNS.with(|t| t.borrow_mut().insert(txn_id.to_string(), fresh.clone()));
            return match persist(partition, txn_id, Some(&fresh)).await {
                Ok(()) => {
                    release(txn_id, Some(fresh.clone()));
                    Ok((fresh.producer_id, fresh.epoch))
                }
                Err(code) => {
                    TXNS.with(|t| t.borrow_mut().remove(txn_id));
                    Err(code)
                }
            };
        }
        Some(m) => m,
    };
    if let Some((pid, epoch)) = expected {
        if pid != m.producer_id || (epoch != m.epoch && epoch != m.epoch.saturating_sub(1)) {
            release(txn_id, None);
            return Err(ec::PRODUCER_FENCED);
        }
    }
    let result = async {
        let m = match m.state {
            State::Ongoing => fence_and_abort(broker, partition, txn_id, m).await?,
            State::PrepareCommit | State::PrepareAbort => {
                complete(broker, partition, txn_id, m).await?
            }
            _ => m,
        };
        let mut next = m;
        if next.epoch >= i16::MAX - 1 {
            next.producer_id = broker.allocate_producer_id();
            next.epoch = 0;
        } else {
            next.epoch += 1;
        }
        next.timeout_ms = timeout_ms;
        next.state = State::Empty;
        next.partitions.clear();
        next.start_ms = -1;
        next.last_update_ms = now();
        persist(partition, txn_id, Some(&next)).await?;
        Ok(next)
    }
    .await;
    match result {
        Ok(next) => {
            let out = (next.producer_id, next.epoch);
            release(txn_id, Some(next));
            Ok(out)
        }
        Err(code) => {
            release(txn_id, None);
            Err(code)
        }
    }
}

/// AddPartitionsToTxn and AddOffsetsToTxn: the partitions join the id's transaction (opening
/// it). `verify_only` (v4+, broker to coordinator) only checks they already are in it.
pub async fn add_partitions(
    partition: i32,
    txn_id: &str,
    producer_id: i64,
    epoch: i16,
    parts: Vec<(String, i32)>,
    verify_only: bool,
) -> i16 {
    let m = match claim(txn_id) {
        Err(code) => return code,
        Ok(None) => return ec::INVALID_PRODUCER_ID_MAPPING,
        Ok(Some(m)) => m,
    };
    let refused = if let Err(code) = check_producer(&m, producer_id, epoch) {
        Some(code)
    } else if matches!(m.state, State::PrepareCommit | State::PrepareAbort) {
        Some(ec::CONCURRENT_TRANSACTIONS)
    } else if verify_only {
        let all_in = m.state == State::Ongoing && parts.iter().all(|p| m.partitions.contains(p));
        Some(if all_in {
            ec::NONE
        } else {
            ec::INVALID_TXN_STATE
        })
    } else if m.state == State::Ongoing && parts.iter().all(|p| m.partitions.contains(p)) {
        Some(ec::NONE)
    } else {
        None
    };
    if let Some(code) = refused {
        release(txn_id, None);
        return code;
    }
    let mut next = m.clone();
    if next.state != State::Ongoing {
        next.start_ms = now();
        next.state = State::Ongoing;
    }
    next.partitions.extend(parts);
    next.last_update_ms = now();
    match transition(partition, txn_id, next).await {
        Ok(_) => ec::NONE,
        Err(code) => code,
    }
}

/// EndTxn: commit or abort the id's transaction. The decision is written first; the answer
/// waits for the markers (a failure there leaves the transaction to the coordinator's tick).
/// `tv2` (EndTxn v5+, KIP-890 part 2): the epoch is bumped by every EndTxn and the answer carries
/// the producer id and epoch the client goes on with; a retry is recognised by its epoch being the
/// one before the bump.
pub async fn end_txn(
    broker: &Arc<Broker>,
    partition: i32,
    txn_id: &str,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    tv2: bool,
) -> Result<(i64, i16), i16> {
    let m = match claim(txn_id)? {
        None => return Err(ec::INVALID_PRODUCER_ID_MAPPING),
        Some(m) => m,
    };
    let refused = if tv2 {
        end_txn_refusal_v2(&m, producer_id, epoch, commit)
    } else {
        match (check_producer(&m, producer_id, epoch), m.state) {
            (Err(code), _) => Some(code),
            (Ok(()), State::Ongoing) => None,
            (Ok(()), State::CompleteCommit) if commit => Some(ec::NONE),
            (Ok(()), State::CompleteAbort) if !commit => Some(ec::NONE),
            (Ok(()), State::PrepareCommit | State::PrepareAbort) => {
                Some(ec::CONCURRENT_TRANSACTIONS)
            }
            _ => Some(ec::INVALID_TXN_STATE),
        }
    };
    if let Some(code) = refused {
        release(txn_id, None);
        return if code == ec::NONE {
            Ok((m.producer_id, m.epoch))
        } else {
            Err(code)
        };
    }
    let mut prep = m.clone();
    prep.state = if commit {
        State::PrepareCommit
    } else {
        State::PrepareAbort
    };
    if tv2 {
        // The markers carry the bumped epoch, fencing the transaction's own late batches. An
        // exhausted epoch moves the producer to a new id once the markers are written.
        if m.epoch >= i16::MAX - 1 {
            prep.next_producer_id = broker.allocate_producer_id();
        }
        prep.epoch = m.epoch + 1;
        if m.state != State::Ongoing {
            // An abort of a transaction no partition joined (its first batch failed).
            prep.partitions.clear();
            prep.start_ms = now();
        }
    }
    prep.last_update_ms = now();
    if let Err(code) = persist(partition, txn_id, Some(&prep)).await {
        release(txn_id, None);
        return Err(code);
    }
    let out = if prep.next_producer_id >= 0 {
        (prep.next_producer_id, 0)
    } else {
        (prep.producer_id, prep.epoch)
    };
    match complete(broker, partition, txn_id, prep.clone()).await {
        Ok(done) => release(txn_id, Some(done)),
        Err(code) => {
            tracing::warn!(
                transactional_id = txn_id,
                error = ec::name(code),
                "writing transaction markers failed; the coordinator retries"
            );
            release(txn_id, Some(prep));
        }
    }
    Ok(out)
}

/// Why a version 2 EndTxn is answered without a new transition (`Some(NONE)`: a retry of one
/// that completed), Kafka's rules: the request's epoch is the current one for an open (or
/// empty) transaction, and the one before the bump for a retry.
fn end_txn_refusal_v2(m: &TxnMeta, producer_id: i64, epoch: i16, commit: bool) -> Option<i16> {
    if m.producer_id != producer_id {
        return Some(ec::INVALID_PRODUCER_ID_MAPPING);
    }
    let retry = i32::from(m.epoch) == i32::from(epoch) + 1;
    let same_kind = |c: State, a: State| if commit { m.state == c } else { m.state == a };
    match m.state {
        State::Ongoing if epoch == m.epoch => None,
        // An abort before any partition joined still ends the transaction (and bumps the epoch),
        // so the client's next one starts clean.
        State::Empty | State::CompleteCommit | State::CompleteAbort
            if epoch == m.epoch && !commit =>
        {
            None
        }
        State::Empty | State::CompleteCommit | State::CompleteAbort if epoch == m.epoch => {
            Some(ec::INVALID_TXN_STATE)
        }
        State::CompleteCommit | State::CompleteAbort if retry => {
            Some(if same_kind(State::CompleteCommit, State::CompleteAbort) {
                ec::NONE
            } else {
                ec::INVALID_TXN_STATE
            })
        }
        State::PrepareCommit | State::PrepareAbort if retry => {
            Some(if same_kind(State::PrepareCommit, State::PrepareAbort) {
                ec::CONCURRENT_TRANSACTIONS
            } else {
                ec::INVALID_TXN_STATE
            })
        }
        _ => Some(ec::PRODUCER_FENCED),
    }
}

/// What DescribeTransactions and ListTransactions see of the ids this shard coordinates.
pub fn snapshot(filter: impl Fn(&str, &TxnMeta) -> bool) -> Vec<(String, TxnMeta)> {
    TXNS.with(|t| {
        t.borrow()
            .iter()
            .filter(|(id, m)| filter(id, m))
            .map(|(id, m)| (id.clone(), m.clone()))
            .collect()
    })
}

/// The coordinator's periodic work on this shard: finish prepared transactions whose markers
/// failed, abort (and fence) transactions open past their timeout, and forget ids idle past
/// `transactional.id.expiration.ms`.
pub async fn tick(broker: &Arc<Broker>) {
    let n = broker.config.transactions.state_log_num_partitions;
    let expiration = broker.config.transactions.id_expiration_ms;
    let t = now();
    let due = snapshot(|_, m| {
        !m.busy
            && match m.state {
                State::PrepareCommit | State::PrepareAbort => true,
                State::Ongoing => t - m.start_ms > i64::from(m.timeout_ms),
                State::Empty | State::CompleteCommit | State::CompleteAbort => {
                    t - m.last_update_ms > expiration
                }
                _ => false,
            }
    });
    for (id, _) in due {
        let partition = partition_for(&id, n);
        if serving(broker, partition).is_err() {
            continue;
        }
        let Ok(Some(m)) = claim(&id) else { continue };
        let res = match m.state {
            State::Ongoing => {
                tracing::info!(transactional_id = %id, timeout_ms = m.timeout_ms, "aborting a transaction open past its timeout");
                METRICS.with(|x| x.borrow_mut().timed_out += 1);
                fence_and_abort(broker, partition, &id, m).await
            }
            State::PrepareCommit | State::PrepareAbort => complete(broker, partition, &id, m).await,
            _ => match persist(partition, &id, None).await {
                Ok(()) => {
                    TXNS.with(|t| t.borrow_mut().remove(&id));
                    tracing::info!(transactional_id = %id, "transactional id expired");
                    continue;
                }
                Err(code) => Err(code),
            },
        };
        match res {
            Ok(m) => release(&id, Some(m)),
            Err(code) => {
                tracing::warn!(transactional_id = %id, error = ec::name(code), "transaction coordinator work failed; retried at the next tick");
                release(&id, None);
            }
        }
    }
}

/// Runs [`tick`] every `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
pub async fn tick_loop(broker: Arc<Broker>) {
    let every = std::time::Duration::from_millis(
        broker
            .config
            .transactions
            .abort_timed_out_interval_ms
            .max(10),
    );
    loop {
        ringlet_engine::runtime::io::sleep(every).await;
        tick(&broker).await;
    }
}
