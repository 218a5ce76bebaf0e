//! The same runtime tests against each I/O backend: files, sockets, timers, cancellation,
//! splice, cross-shard calls and injected faults.

use bytes::Bytes;
use ringlet_engine::runtime::op::OpKind;
use ringlet_engine::runtime::{self, io, BackendChoice, FaultConfig, Runtime, RuntimeConfig};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn backends() -> Vec<(&'static str, BackendChoice)> {
    let mut v = vec![("portable", BackendChoice::Portable(None))];
    if runtime::uring_available() {
        v.push(("uring", BackendChoice::Uring));
    } else {
        eprintln!("io_uring unavailable: testing the portable backend only");
    }
    v
}

fn temp_file(tag: &str) -> (std::path::PathBuf, std::fs::File) {
    let p = std::env::temp_dir().join(format!("ringlet-rt-{}-{tag}", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&p)
        .unwrap();
    (p, f)
}

#[test]
fn file_write_read_fsync() {
    for (name, backend) in backends() {
        let (path, file) = temp_file(name);
        let fd = file.as_raw_fd();
        runtime::block_on(backend, async move {
            let bufs = vec![
                Bytes::from_static(b"hello "),
                Bytes::from_static(b"world"),
                Bytes::from(vec![b'!'; 5000]),
            ];
            let n = io::write_all(fd, bufs, Some(10)).await.unwrap();
            assert_eq!(n, 5011);
            io::writeback(fd, 0, 5011).await.unwrap();
            io::fdatasync(fd).await.unwrap();
            let back = io::read_at(fd, 10, 11).await.unwrap();
            assert_eq!(&back, b"hello world");
            let tail = io::read_at(fd, 5015, 100).await.unwrap();
            assert_eq!(tail.len(), 6, "short read at end of file");
        })
        .unwrap();
        drop(file);
        std::fs::remove_file(path).unwrap();
    }
}

#[test]
fn socket_accept_recv_send() {
    for (name, backend) in backends() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"ping").unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).unwrap();
            buf
        });
        runtime::block_on(backend, async move {
            let conn = io::accept(listener.as_raw_fd()).await.unwrap();
            let mut buf = Vec::with_capacity(16);
            while buf.len() < 4 {
                let (res, b) = io::recv(conn.as_raw_fd(), buf).await;
                buf = b;
                assert!(res.unwrap() > 0);
            }
            assert_eq!(&buf, b"ping");
            io::write_all(
                conn.as_raw_fd(),
                vec![Bytes::from_static(b"po"), Bytes::from_static(b"ng")],
                None,
            )
            .await
            .unwrap();
        })
        .unwrap();
        assert_eq!(&client.join().unwrap(), b"pong", "{name}");
    }
}

#[test]
fn timeout_and_cancel() {
    for (name, backend) in backends() {
        runtime::block_on(backend, async move {
            let t = Instant::now();
            io::sleep(Duration::from_millis(30)).await;
            assert!(
                t.elapsed() >= Duration::from_millis(29),
                "{name}: sleep too short"
            );
            // A long timeout, cancelled, completes early with ECANCELED.
            let op = io::Op::submit(OpKind::timeout(Duration::from_secs(30)));
            op.cancel();
            let c = op.await;
            assert_eq!(c.result, -libc::ECANCELED, "{name}");
            // A recv on an idle socket, dropped before completion, leaves its buffer with the
            // reactor; the runtime keeps working.
            let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
            a.set_nonblocking(true).unwrap();
            let pending = io::Op::submit(OpKind::Recv {
                fd: a.as_raw_fd(),
                buf: Vec::with_capacity(64),
            });
            drop(pending);
            io::sleep(Duration::from_millis(1)).await;
        })
        .unwrap();
    }
}

#[test]
fn splice_file_to_pipe() {
    for (name, backend) in backends() {
        let (path, mut file) = temp_file(&format!("splice-{name}"));
        file.write_all(b"0123456789").unwrap();
        let (mut rd, wr) = std::io::pipe().unwrap();
        let (ffd, wfd) = (file.as_raw_fd(), wr.as_raw_fd());
        let n = runtime::block_on(backend, async move {
            io::splice(ffd, Some(3), wfd, 4).await.unwrap()
        })
        .unwrap();
        assert_eq!(n, 4);
        let mut out = [0u8; 4];
        rd.read_exact(&mut out).unwrap();
        assert_eq!(&out, b"3456");
        drop(file);
        std::fs::remove_file(path).unwrap();
    }
}

#[test]
fn cross_shard_calls_run_on_the_target() {
    for (_, backend) in backends() {
        let done = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let (d, r) = (done.clone(), refused.clone());
        let rt =
            Runtime::start(
                RuntimeConfig {
                    shards: 2,
                    backend,
                    pin_threads: false,
                    ring_entries: 64,
                    inline_file_writes: true,
                },
                move |shard| {
                    let (d, r) = (d.clone(), r.clone());
                    async move {
                        if shard == 0 {
                            for i in 0..2000u64 {
                                let seen = runtime::call_on(1, move || async move {
                                    (runtime::shard_id(), i * 2)
                                })
                                .await
                                .unwrap();
                                assert_eq!(seen, (1, i * 2));
                            }
                            d.fetch_add(1, Ordering::SeqCst);
                            // Shard 1 now returns at any instant. Every call either runs there or
                            // is refused once it has gone; none waits forever (this hung before
                            // a returning shard failed the calls left in its inbox).
                            let deadline = Instant::now() + Duration::from_secs(20);
                            loop {
                                match runtime::call_on(1, || async { runtime::shard_id() }).await {
                                    Ok(s) => assert_eq!(s, 1),
                                    Err(_) => break,
                                }
                                assert!(Instant::now() < deadline, "shard 1 never went away");
                            }
                            r.fetch_add(1, Ordering::SeqCst);
                        } else {
                            // Shard 1 serves calls until shard 0 is done.
                            let deadline = Instant::now() + Duration::from_secs(60);
                            while d.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
                                io::sleep(Duration::from_millis(1)).await;
                            }
                        }
                    }
                },
            )
            .unwrap();
        rt.join().unwrap();
        assert_eq!(done.load(Ordering::SeqCst), 1);
        assert_eq!(refused.load(Ordering::SeqCst), 1);
    }
}

#[test]
fn injected_faults_fail_writes_and_fsyncs() {
    let faults = FaultConfig {
        seed: 42,
        write_error_ppm: 1_000_000,
        fsync_error_ppm: 1_000_000,
        torn_writes: false,
        errno: libc::ENOSPC,
        metadata_error_ppm: 0,
    };
    let (path, file) = temp_file("faults");
    let fd = file.as_raw_fd();
    runtime::block_on(BackendChoice::Portable(Some(faults)), async move {
        let e = io::write_all(fd, vec![Bytes::from_static(b"x")], Some(0))
            .await
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        let e = io::fdatasync(fd).await.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
    })
    .unwrap();
    drop(file);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn socket_writes_wait_for_a_slow_reader() {
    // 8 MiB through a socket whose reader lags: io_uring answers EAGAIN on O_NONBLOCK sockets for
    // write ops, so write_all must wait for room rather than fail.
    for (name, backend) in backends() {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let reader = std::thread::spawn(move || {
            let mut total = 0usize;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                std::thread::sleep(Duration::from_micros(200));
                match b.read(&mut buf) {
                    Ok(0) => return total,
                    Ok(n) => total += n,
                    Err(e) => panic!("read: {e}"),
                }
            }
        });
        let fd = a.as_raw_fd();
        runtime::block_on(backend, async move {
            let chunk = Bytes::from(vec![7u8; 1 << 20]);
            let n = io::write_all(fd, vec![chunk; 8], None).await.unwrap();
            assert_eq!(n, 8 << 20);
        })
        .unwrap();
        drop(a);
        assert_eq!(reader.join().unwrap(), 8 << 20, "{name}");
    }
}

#[test]
fn a_cancellable_call_stops_on_the_target_when_its_caller_drops_it() {
    struct Guard(Arc<AtomicUsize>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    for (_, backend) in backends() {
        let dropped = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicUsize::new(0));
        let (d, s) = (dropped.clone(), stop.clone());
        let rt = Runtime::start(
            RuntimeConfig {
                shards: 2,
                backend,
                pin_threads: false,
                ring_entries: 64,
                inline_file_writes: true,
            },
            move |shard| {
                let (d, s) = (d.clone(), s.clone());
                async move {
                    if shard == 0 {
                        let g = d.clone();
                        let waiter =
                            runtime::spawn(runtime::call_on_cancellable(1, move || async move {
                                let _guard = Guard(g);
                                io::sleep(Duration::from_secs(60)).await;
                            }));
                        io::sleep(Duration::from_millis(50)).await;
                        assert_eq!(d.load(Ordering::SeqCst), 0, "still parked on shard 1");
                        drop(waiter);
                        let deadline = Instant::now() + Duration::from_secs(5);
                        while d.load(Ordering::SeqCst) == 0 {
                            assert!(Instant::now() < deadline, "the parked call was left behind");
                            io::sleep(Duration::from_millis(5)).await;
                        }
                        s.fetch_add(1, Ordering::SeqCst);
                    } else {
                        // Serves until shard 0 is done (or gave up: a failed assertion there).
                        let deadline = Instant::now() + Duration::from_secs(15);
                        while s.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
                            io::sleep(Duration::from_millis(1)).await;
                        }
                    }
                }
            },
        )
        .unwrap();
        rt.join().unwrap();
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
    }
}

#[test]
fn a_full_inbox_makes_senders_wait_for_room_not_fail() {
    for (_, backend) in backends() {
        let sum = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicUsize::new(0));
        let (total, s) = (sum.clone(), stop.clone());
        let rt = Runtime::start(
            RuntimeConfig {
                shards: 2,
                backend,
                pin_threads: false,
                ring_entries: 64,
                inline_file_writes: true,
            },
            move |shard| {
                let (total, s) = (total.clone(), s.clone());
                async move {
                    if shard == 0 {
                        // Far more queued calls than the inbox holds, none awaited until all
                        // are queued: the sender must wait for room, and lose none.
                        let n = runtime::INBOX_CAPACITY * 3;
                        let mut started = Vec::with_capacity(n);
                        for i in 0..n {
                            let f = runtime::start_on(1, move || {
                                // Slow the target a little so its inbox fills.
                                std::thread::sleep(Duration::from_micros(2));
                                async move { i }
                            })
                            .await
                            .unwrap();
                            started.push(f);
                        }
                        for f in started {
                            total.fetch_add(f.await.unwrap(), Ordering::SeqCst);
                        }
                        s.fetch_add(1, Ordering::SeqCst);
                    } else {
                        let deadline = Instant::now() + Duration::from_secs(60);
                        while s.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
                            io::sleep(Duration::from_millis(1)).await;
                        }
                    }
                }
            },
        )
        .unwrap();
        rt.join().unwrap();
        let n = runtime::INBOX_CAPACITY * 3;
        assert_eq!(sum.load(Ordering::SeqCst), n * (n - 1) / 2);
    }
}
