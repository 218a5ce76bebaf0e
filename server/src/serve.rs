//! `ringlet serve`: start the shards, wait for SIGTERM/SIGINT, shut down cleanly.

use crate::broker::{Broker, CLEAN_SHUTDOWN_FILE};
use crate::config::{read_properties, BrokerConfig};
use crate::server;
use ringlet_engine::runtime::{Runtime, RuntimeConfig};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub fn run(properties: Option<PathBuf>, overrides: &[String]) -> anyhow::Result<()> {
    let mut props = match &properties {
        Some(p) => read_properties(p)?,
        None => BTreeMap::new(),
    };
    for o in overrides {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--override {o:?}: expected key=value"))?;
        props.insert(k.trim().to_string(), v.trim().to_string());
    }
    let (config, unknown) = BrokerConfig::from_properties(&props)?;
    for k in unknown {
        tracing::warn!(key = %k, "unknown configuration key ignored");
    }
    // A panic on any thread is a bug; a broker with a dead shard would leave that shard's
    // partitions hanging, so log it and exit, and let the supervisor restart (recovery runs).
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!(%info, "a broker thread panicked; exiting so that a restart recovers");
        default_hook(info);
        std::process::exit(70);
    }));
    let broker = Arc::new(Broker::new(config.clone())?);
    let shards = config.num_io_threads;
    // After a crash the kernel may hold the old listener a little longer (an io_uring being torn
    // down keeps its files open): wait for the port a while rather than fail at once.
    let port_deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    for l in &config.listeners {
        let (host, port) = (&l.listener.host, l.listener.port);
        loop {
            match server::ensure_free(host, port) {
                Ok(()) => break,
                Err(e)
                    if e.kind() == std::io::ErrorKind::AddrInUse
                        && std::time::Instant::now() < port_deadline =>
                {
                    tracing::warn!(port, "listener port still in use; retrying");
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                Err(e) => anyhow::bail!("cannot listen on {host}:{port} ({}): {e}", l.name),
            }
        }
    }
    // One socket per listener per shard (SO_REUSEPORT spreads connections over the shards).
    let mut listeners = Vec::new();
    for _ in 0..shards {
        let mut mine = Vec::new();
        for l in &config.listeners {
            let (host, port) = (&l.listener.host, l.listener.port);
            mine.push(server::bind_listener(host, port).map_err(|e| {
                anyhow::anyhow!("cannot listen on {host}:{port} ({}): {e}", l.name)
            })?);
        }
        listeners.push(mine);
    }
    let listeners = std::sync::Mutex::new(listeners.into_iter().map(Some).collect::<Vec<_>>());
    let metrics_listener = match &config.metrics_listener {
        Some(l) => Some(server::bind_socket(&l.host, l.port, false).map_err(|e| {
            anyhow::anyhow!(
                "cannot listen for metrics (ringlet.metrics.listener) on {}:{}: {e}",
                l.host,
                l.port
            )
        })?),
        None => None,
    };
    let metrics_listener = std::sync::Mutex::new(metrics_listener);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let ready_tx = std::sync::Mutex::new(ready_tx);
    let b = broker.clone();
    let runtime = Runtime::start(
        RuntimeConfig {
            shards,
            backend: config.backend.clone(),
            pin_threads: true,
            ring_entries: 4096,
            inline_file_writes: config.inline_file_writes,
        },
        move |shard| {
            let listener = listeners.lock().expect("listeners")[shard]
                .take()
                .expect("one listener per shard");
            let ready = ready_tx.lock().expect("ready").clone();
            if shard == 0 {
                if let Some(l) = metrics_listener.lock().expect("metrics listener").take() {
                    ringlet_engine::runtime::spawn(crate::metrics::serve(b.clone(), l)).detach();
                }
            }
            server::shard_main(b.clone(), listener, ready)
        },
    )?;
    for _ in 0..shards {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                broker.begin_shutdown();
                let _ = runtime.join();
                anyhow::bail!("start-up failed: {e}");
            }
            Err(_) => anyhow::bail!("a shard exited during start-up"),
        }
    }
    tracing::info!(
        listeners = %config
            .listeners
            .iter()
            .map(|l| format!("{}://{}:{} ({}, advertised {}:{})", l.name, l.listener.host, l.listener.port, l.protocol.name(), l.advertised.host, l.advertised.port))
            .collect::<Vec<_>>()
            .join(", "),
        authorizer = config.authorizer_enabled,
        shards,
        log_dirs = ?config.log_dirs,
        metrics = config.metrics_listener.as_ref().map(|l| format!("http://{}:{}/metrics", l.host, l.port)),
        "ringlet broker started"
    );
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])?;
    if let Some(sig) = signals.forever().next() {
        tracing::info!(signal = sig, "shutting down");
    }
    if let Some(cluster) = &broker.cluster {
        // Leadership moves to other in-sync replicas before this broker stops serving.
        crate::cluster::topics::controlled_shutdown(cluster);
    }
    broker.begin_shutdown();
    runtime.join()?;
    if let Some(cluster) = &broker.cluster {
        cluster.close();
    }
    if !broker.unclean.load(Ordering::Acquire) {
        for d in &config.log_dirs {
            std::fs::write(d.join(CLEAN_SHUTDOWN_FILE), b"")?;
        }
    }
    tracing::info!("ringlet broker stopped");
    Ok(())
}
