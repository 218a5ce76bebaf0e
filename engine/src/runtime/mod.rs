//! The thread-per-core runtime: shards, each one OS thread with its own reactor and executor.
//!
//! A shard runs tasks spawned on it (never moved to another thread), reaps I/O completions from
//! its reactor, and runs messages other shards send to its bounded inbox. Code on a shard reaches
//! its context through [`spawn`], the I/O functions in [`io`] and [`call_on`].

pub mod executor;
pub mod fs;
pub mod io;
pub mod op;
pub mod portable;
pub mod reactor;
pub mod sync;
pub mod uring;

pub use portable::FaultConfig;
pub use reactor::BackendKind;

use executor::{eventfd, kick, RunQueue};
use reactor::{Backend, Reactor};
use std::cell::RefCell;
use std::future::Future;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Index of a shard, `0..num.io.threads`.
pub type ShardId = usize;

/// A closure sent to another shard's inbox.
type Message = Box<dyn FnOnce() + Send>;

/// Capacity of each shard's inbox; senders wait (asynchronously) when it is full.
pub const INBOX_CAPACITY: usize = 4096;
/// Runnables run per turn before the reactor is polled again, so I/O is never starved.
const RUN_BATCH: usize = 256;

/// Which I/O backend to ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    /// io_uring when the kernel allows it, otherwise portable.
    Auto,
    /// io_uring or fail.
    Uring,
    /// The portable backend, with optional fault injection.
    Portable(Option<FaultConfig>),
}

/// Handles every shard holds to reach every other shard.
pub struct ShardSet {
    inboxes: Vec<crossbeam_channel::Sender<Message>>,
    /// A receiving end of each inbox, so a sender that finds its target gone can drop what it
    /// queued (its caller then sees `Canceled` instead of waiting forever).
    drains: Vec<crossbeam_channel::Receiver<Message>>,
    /// Set by a shard as its loop returns; it takes no message after that.
    closed: Vec<AtomicBool>,
    /// Senders waiting for room in each inbox (notified as the shard takes messages).
    space: Vec<sync::WaitList>,
    wake_fds: Vec<RawFd>,
}

impl ShardSet {
    fn new(
        inboxes: Vec<crossbeam_channel::Sender<Message>>,
        drains: Vec<crossbeam_channel::Receiver<Message>>,
        wake_fds: Vec<RawFd>,
    ) -> ShardSet {
        let closed = inboxes.iter().map(|_| AtomicBool::new(false)).collect();
        let space = inboxes.iter().map(|_| sync::WaitList::new()).collect();
        ShardSet {
            inboxes,
            drains,
            closed,
            space,
            wake_fds,
        }
    }

    /// Drops every message waiting in `shard`'s inbox: their callers see `Canceled`.
    fn discard_inbox(&self, shard: ShardId) {
        while let Ok(m) = self.drains[shard].try_recv() {
            drop(m);
        }
    }
}

impl ShardSet {
    /// Number of shards.
    pub fn len(&self) -> usize {
        self.inboxes.len()
    }

    /// Whether there are no shards (never, once running).
    pub fn is_empty(&self) -> bool {
        self.inboxes.is_empty()
    }
}

/// What a shard thread knows about itself.
pub struct ShardContext {
    pub shard_id: ShardId,
    reactor: RefCell<Reactor>,
    queue: Arc<RunQueue>,
    inbox: crossbeam_channel::Receiver<Message>,
    shards: Arc<ShardSet>,
    wake_fd: RawFd,
}

thread_local! {
    static CONTEXT: RefCell<Option<Rc<ShardContext>>> = const { RefCell::new(None) };
}

/// The current shard's context; panics off a shard thread (a programming error).
pub fn context() -> Rc<ShardContext> {
    CONTEXT.with(|c| c.borrow().clone().expect("not on a shard thread"))
}

pub(crate) fn with_reactor<R>(f: impl FnOnce(&mut Reactor) -> R) -> R {
    CONTEXT.with(|c| {
        let ctx = c.borrow();
        let ctx = ctx.as_ref().expect("I/O outside a shard thread");
        let mut r = ctx.reactor.borrow_mut();
        f(&mut r)
    })
}

pub(crate) fn try_with_reactor(f: impl FnOnce(&mut Reactor)) {
    let _ = CONTEXT.try_with(|c| {
        if let Ok(ctx) = c.try_borrow() {
            if let Some(ctx) = ctx.as_ref() {
                if let Ok(mut r) = ctx.reactor.try_borrow_mut() {
                    f(&mut r);
                }
            }
        }
    });
}

/// The id of the shard this code runs on.
pub fn shard_id() -> ShardId {
    context().shard_id
}

/// Number of shards in this runtime.
pub fn shard_count() -> usize {
    context().shards.len()
}

/// The backend this shard's reactor runs on.
pub fn backend_kind() -> BackendKind {
    context().reactor.borrow().kind()
}

/// Spawns a task on the current shard.
pub fn spawn<F>(future: F) -> async_task::Task<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let queue = context().queue.clone();
    let (runnable, task) = async_task::spawn_local(future, move |r| queue.push(r));
    runnable.schedule();
    task
}

/// This shard's engine counters, with its queue depths as they are now.
pub fn shard_stats() -> crate::stats::ShardStats {
    let ctx = context();
    crate::stats::ShardStats {
        run_queue_depth: ctx.queue.len() as u64,
        inbox_depth: ctx.inbox.len() as u64,
        ops_in_flight: with_reactor(|r| r.in_flight() as u64),
        ..crate::stats::snapshot()
    }
}

/// Runs `f` on shard `target` and returns its result. Waits (without blocking the thread) while
/// the target's inbox is full, so cross-shard traffic is bounded.
pub async fn call_on<T, F, Fut>(
    target: ShardId,
    f: F,
) -> Result<T, futures_channel::oneshot::Canceled>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    start_on(target, f).await?.await
}

/// The future of a result computed on another shard (or this one).
pub type Started<T> =
    std::pin::Pin<Box<dyn Future<Output = Result<T, futures_channel::oneshot::Canceled>>>>;

/// Starts `f` on shard `target` and returns, once `f` has been called there or is queued in the
/// target's inbox, the future of its result. Two `start_on` calls from one shard to one target,
/// awaited one after the other, call their closures in that order: a connection uses this to
/// queue pipelined appends in request order without waiting for the first one's outcome.
pub async fn start_on<T, F, Fut>(
    target: ShardId,
    f: F,
) -> Result<Started<T>, futures_channel::oneshot::Canceled>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    start_on_with(target, f, false).await
}

/// As [`call_on`], but the work on `target` is dropped as soon as the caller drops the returned
/// future: for waits that only matter while someone waits (a long poll parked on several
/// partitions leaves no waiter behind once one of them answers). Work that must finish once
/// started uses [`call_on`].
pub async fn call_on_cancellable<T, F, Fut>(
    target: ShardId,
    f: F,
) -> Result<T, futures_channel::oneshot::Canceled>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    start_on_with(target, f, true).await?.await
}

/// Runs a future and sends its output, or stops early once the receiver is gone.
struct UntilCanceled<F: Future> {
    fut: std::pin::Pin<Box<F>>,
    tx: Option<futures_channel::oneshot::Sender<F::Output>>,
    cancellable: bool,
}

impl<F: Future> Future for UntilCanceled<F> {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        use std::task::Poll;
        if let Poll::Ready(v) = self.fut.as_mut().poll(cx) {
            if let Some(tx) = self.tx.take() {
                let _ = tx.send(v);
            }
            return Poll::Ready(());
        }
        if self.cancellable {
            if let Some(tx) = self.tx.as_mut() {
                if tx.poll_canceled(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
        }
        Poll::Pending
    }
}

async fn start_on_with<T, F, Fut>(
    target: ShardId,
    f: F,
    cancellable: bool,
) -> Result<Started<T>, futures_channel::oneshot::Canceled>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    let ctx = context();
    if target == ctx.shard_id {
        let fut = f();
        return Ok(Box::pin(async move { Ok(fut.await) }));
    }
    let set = &ctx.shards;
    if set.closed[target].load(Ordering::SeqCst) {
        return Err(futures_channel::oneshot::Canceled);
    }
    let (tx, rx) = futures_channel::oneshot::channel();
    let mut msg: Message = Box::new(move || {
        // Call `f` now, in inbox order; only its outcome is awaited in a task.
        let fut = f();
        spawn(UntilCanceled {
            fut: Box::pin(fut),
            tx: Some(tx),
            cancellable,
        })
        .detach();
    });
    loop {
        match set.inboxes[target].try_send(msg) {
            Ok(()) => {
                kick(set.wake_fds[target]);
                // The target closes, then empties its inbox. A message sent after it emptied it
                // would wait forever: whoever sees the flag set after sending empties it too.
                if set.closed[target].load(Ordering::SeqCst) {
                    set.discard_inbox(target);
                }
                break;
            }
            Err(crossbeam_channel::TrySendError::Full(m)) => {
                msg = m;
                // Wait for the target to take messages (or to close) rather than poll it.
                set.space[target]
                    .wait_until(|| {
                        !set.inboxes[target].is_full() || set.closed[target].load(Ordering::SeqCst)
                    })
                    .await;
                if set.closed[target].load(Ordering::SeqCst) {
                    return Err(futures_channel::oneshot::Canceled);
                }
            }
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => {
                return Err(futures_channel::oneshot::Canceled);
            }
        }
    }
    Ok(Box::pin(rx))
}

/// Runtime settings.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Number of shards (`num.io.threads`).
    pub shards: usize,
    pub backend: BackendChoice,
    /// Pin shard `i` to core `i % cores`.
    pub pin_threads: bool,
    /// Submission queue entries per ring.
    pub ring_entries: u32,
    /// On io_uring, try positioned file writes inline before using the ring (measured faster
    /// where the filesystem has no async buffered writes; see docs/adr/0001-runtime.md).
    pub inline_file_writes: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            shards: 1,
            backend: BackendChoice::Auto,
            pin_threads: false,
            ring_entries: 1024,
            inline_file_writes: true,
        }
    }
}

fn make_backend(choice: &BackendChoice, entries: u32, inline: bool) -> std::io::Result<Backend> {
    match choice {
        BackendChoice::Uring => Ok(Backend::Uring(uring::UringBackend::new(entries, inline)?)),
        BackendChoice::Portable(f) => {
            Ok(Backend::Portable(portable::PortableBackend::new(f.clone())))
        }
        BackendChoice::Auto => match uring::UringBackend::new(entries, inline) {
            Ok(b) => Ok(Backend::Uring(b)),
            Err(e) => {
                tracing::warn!(error = %e, "io_uring unavailable, using the portable backend");
                Ok(Backend::Portable(portable::PortableBackend::new(None)))
            }
        },
    }
}

/// Whether this kernel lets us create an io_uring.
pub fn uring_available() -> bool {
    uring::UringBackend::new(8, true).is_ok()
}

fn pin_to_core(shard: ShardId) {
    // SAFETY: sysconf takes no pointers.
    let cores = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and sched_setaffinity only touch it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(shard % cores, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            tracing::warn!(shard, "could not pin shard thread to a core");
        }
    }
}

/// A running set of shards.
pub struct Runtime {
    threads: Vec<std::thread::JoinHandle<std::io::Result<()>>>,
    shards: Arc<ShardSet>,
}

impl Runtime {
    /// Starts `config.shards` threads; each runs `main(shard_id)` as its main task and returns
    /// when that future has finished.
    pub fn start<M, Fut>(config: RuntimeConfig, main: M) -> std::io::Result<Runtime>
    where
        M: Fn(ShardId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        assert!(config.shards >= 1, "a runtime needs at least one shard");
        let mut senders = Vec::new();
        let mut receivers = Vec::new();
        let mut wake_fds = Vec::new();
        for _ in 0..config.shards {
            let (tx, rx) = crossbeam_channel::bounded(INBOX_CAPACITY);
            senders.push(tx);
            receivers.push(rx);
            wake_fds.push(eventfd()?);
        }
        let shards = Arc::new(ShardSet::new(senders, receivers.clone(), wake_fds.clone()));
        // Probe the backend once on this thread so a hard failure is reported before threads start.
        drop(make_backend(&config.backend, 8, config.inline_file_writes)?);
        let main = Arc::new(main);
        let mut threads = Vec::new();
        for (shard_id, inbox) in receivers.into_iter().enumerate() {
            let shards = shards.clone();
            let config = config.clone();
            let main = main.clone();
            let wake_fd = wake_fds[shard_id];
            let t = std::thread::Builder::new()
                .name(format!("ringlet-shard-{shard_id}"))
                .spawn(move || {
                    if config.pin_threads {
                        pin_to_core(shard_id);
                    }
                    let backend = make_backend(
                        &config.backend,
                        config.ring_entries,
                        config.inline_file_writes,
                    )?;
                    run_shard(shard_id, backend, inbox, shards, wake_fd, move || {
                        main(shard_id)
                    })
                })?;
            threads.push(t);
        }
        Ok(Runtime { threads, shards })
    }

    /// Waits for every shard to finish.
    pub fn join(self) -> std::io::Result<()> {
        let mut result = Ok(());
        for t in self.threads {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(_) => result = Err(std::io::Error::other("a shard thread panicked")),
            }
        }
        for fd in &self.shards.wake_fds {
            // SAFETY: closes an eventfd this runtime created and no thread uses any more.
            unsafe { libc::close(*fd) };
        }
        result
    }
}

/// Runs one future to completion on the calling thread as a single-shard runtime.
pub fn block_on<F>(backend: BackendChoice, future: F) -> std::io::Result<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    block_on_with(
        &RuntimeConfig {
            backend,
            ..RuntimeConfig::default()
        },
        future,
    )
}

/// [`block_on`] with every runtime setting (`shards` and `pin_threads` are ignored).
pub fn block_on_with<F>(config: &RuntimeConfig, future: F) -> std::io::Result<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let (tx, rx) = crossbeam_channel::bounded(INBOX_CAPACITY);
    let wake_fd = eventfd()?;
    let shards = Arc::new(ShardSet::new(vec![tx], vec![rx.clone()], vec![wake_fd]));
    let backend = make_backend(&config.backend, 256, config.inline_file_writes)?;
    let out = Rc::new(RefCell::new(None));
    let out2 = out.clone();
    let res = run_shard(0, backend, rx, shards, wake_fd, move || async move {
        *out2.borrow_mut() = Some(future.await);
    });
    // SAFETY: closes the eventfd created above; the shard loop has returned.
    unsafe { libc::close(wake_fd) };
    res?;
    let v = out.borrow_mut().take().expect("main future finished");
    Ok(v)
}

fn run_shard<M, Fut>(
    shard_id: ShardId,
    backend: Backend,
    inbox: crossbeam_channel::Receiver<Message>,
    shards: Arc<ShardSet>,
    wake_fd: RawFd,
    main: M,
) -> std::io::Result<()>
where
    M: FnOnce() -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let ctx = Rc::new(ShardContext {
        shard_id,
        reactor: RefCell::new(Reactor::new(backend)),
        queue: Arc::new(RunQueue::new(wake_fd)),
        inbox,
        shards,
        wake_fd,
    });
    CONTEXT.with(|c| *c.borrow_mut() = Some(ctx.clone()));
    let main_task = spawn(main());
    let mut batch = Vec::with_capacity(RUN_BATCH);
    let result = loop {
        batch.clear();
        ctx.queue.take(RUN_BATCH, &mut batch);
        for r in batch.drain(..) {
            r.run();
        }
        let mut took = false;
        for _ in 0..RUN_BATCH {
            match ctx.inbox.try_recv() {
                Ok(m) => {
                    took = true;
                    m()
                }
                Err(_) => break,
            }
        }
        if took {
            ctx.shards.space[shard_id].notify_all();
        }
        if main_task.is_finished() {
            break Ok(());
        }
        let idle = ctx.queue.is_empty() && ctx.inbox.is_empty();
        let waited_from = idle.then(Instant::now);
        if let Err(e) = ctx.reactor.borrow_mut().turn(idle, ctx.wake_fd) {
            break Err(e);
        }
        crate::stats::reactor_turn(waited_from.map(|t| t.elapsed()));
    };
    // Refuse further calls and fail the queued ones: their callers must not wait for a shard
    // that is gone (at shutdown, or when one shard's main returns before another's).
    ctx.shards.closed[shard_id].store(true, Ordering::SeqCst);
    ctx.shards.discard_inbox(shard_id);
    ctx.shards.space[shard_id].notify_all();
    drop(main_task);
    // Drop every runnable still queued (a queued runnable holds the queue it is in, so leaving
    // them would leak their futures, and with them the reply senders of calls in progress).
    // Dropping a future may wake another task: repeat until nothing is queued.
    loop {
        batch.clear();
        ctx.queue.take(usize::MAX, &mut batch);
        if batch.is_empty() {
            break;
        }
        batch.clear();
    }
    // Let detached tasks observe nothing more: drop the context (and the reactor's wakers).
    CONTEXT.with(|c| c.borrow_mut().take());
    result
}
