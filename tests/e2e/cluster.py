"""A three-broker Ringlet cluster on one machine, for the replication tests: one ZooKeeper
(Debian's package, started here on a free port), three `ringlet serve` processes with their own
ports and data directories, and a TCP fault proxy in front of each broker's replication listener,
so that the links followers fetch over can be cut without touching client traffic.
"""
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from conftest import Broker, free_port

ZK_CLASSPATH = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar"


def zookeeper_available():
    return os.path.exists("/usr/share/java/zookeeper.jar") and shutil.which("java") is not None


class ZooKeeper:
    """A standalone ZooKeeper with a short tick, so session timeouts of a few seconds are allowed."""

    def __init__(self, host=None):
        # `host`: a tests/e2e/netns.py host to run on (its address, fixed port 2181).
        self.dir = tempfile.mkdtemp(prefix="ringlet-zk-")
        self.host = host.ip if host else "127.0.0.1"
        self.prefix = host.prefix if host else []
        self.port = 2181 if host else free_port()
        self.proc = None

    def start(self):
        os.makedirs(f"{self.dir}/data", exist_ok=True)
        cfg = f"{self.dir}/zoo.cfg"
        with open(cfg, "w") as f:
            f.write(f"tickTime=200\ndataDir={self.dir}/data\nclientPort={self.port}\n"
                    f"clientPortAddress={self.host}\nminSessionTimeout=400\nmaxSessionTimeout=60000\n"
                    "admin.enableServer=false\n4lw.commands.whitelist=ruok\n")
        self.log = open(f"{self.dir}/zk.log", "ab")
        self.proc = subprocess.Popen(
            self.prefix + ["java", "-Xmx256m", "-cp", ZK_CLASSPATH, f"-Dzookeeper.log.dir={self.dir}",
             "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as s:
                    s.sendall(b"ruok")
                    if s.recv(4) == b"imok":
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("ZooKeeper did not start in 60 s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class FaultProxy:
    """Forwards 127.0.0.1:port to a target; `cut()` drops every connection and refuses new ones
    until `heal()`."""

    def __init__(self, target_port, avoid=()):
        self.target = target_port
        self.port = free_port()
        while self.port in avoid:
            self.port = free_port()
        self.blocked = False
        self.conns = []
        self.lock = threading.Lock()
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", self.port))
        self.srv.listen(64)
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while self.running:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            if self.blocked:
                c.close()
                continue
            try:
                u = socket.create_connection(("127.0.0.1", self.target), timeout=2)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d or self.blocked:
                    break
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.close()
            except OSError:
                pass

    def cut(self):
        self.blocked = True
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.conns = []

    def heal(self):
        self.blocked = False

    def close(self):
        self.running = False
        self.cut()
        self.srv.close()


class Cluster:
    """`netns=True`: ZooKeeper and each broker on its own network namespace (tests/e2e/netns.py,
    `self.net`, hosts "zk" and "b1".."bN"), the clients in the root one; faults are packet
    filters on those hosts instead of the TCP proxies (`self.proxies` is then empty)."""

    def __init__(self, n=3, overrides=None, netns=False):
        self.net = None
        if netns:
            from netns import Net
            self.net = Net()
            try:
                self.zk = ZooKeeper(self.net.add_host("zk")).start()
            except Exception:
                self.net.close()
                raise
        else:
            self.zk = ZooKeeper().start()
        self.chroot = "/ringlet"
        self.brokers = {}
        self.proxies = {}
        used = {self.zk.port}
        for i in range(1, n + 1):
            if netns:
                try:
                    h = self.net.add_host(f"b{i}")
                except Exception:
                    self.zk.stop()
                    self.net.close()
                    raise
                host, prefix, port, repl = h.ip, h.prefix, 9092, 9093
                advertised_repl = repl
            else:
                # Ports chosen now are bound only when the brokers start: until then the kernel
                # may hand the same one out again, so each is checked against those taken.
                port, repl = self._port(used), self._port(used)
                host, prefix = "127.0.0.1", None
                proxy = FaultProxy(repl, avoid=used)
                used.add(proxy.port)
                self.proxies[i] = proxy
                advertised_repl = proxy.port
            o = {
                "broker.id": i,
                "listeners": f"PLAINTEXT://{host}:{port},REPLICATION://{host}:{repl}",
                "advertised.listeners": f"PLAINTEXT://{host}:{port},REPLICATION://{host}:{advertised_repl}",
                "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,REPLICATION:PLAINTEXT",
                "inter.broker.listener.name": "REPLICATION",
                "zookeeper.connect": f"{self.zk.host}:{self.zk.port}{self.chroot}",
                "zookeeper.session.timeout.ms": 3000,
                "replica.lag.time.max.ms": 1500,
                "replica.fetch.backoff.ms": 200,
                "replica.socket.timeout.ms": 3000,
                "default.replication.factor": 3,
                "min.insync.replicas": 2,
                "offsets.topic.num.partitions": 3,
                "num.io.threads": 2,
                "controlled.shutdown.retry.backoff.ms": 3000,
                "group.initial.rebalance.delay.ms": 0,
            }
            o.update(overrides or {})
            b = Broker(o, port=port, host=host, prefix=prefix)
            # Broker() rewrites `listeners`; keep ours.
            self.brokers[i] = b

    @staticmethod
    def _port(used):
        p = free_port()
        while p in used:
            p = free_port()
        used.add(p)
        return p

    def start(self):
        for b in self.brokers.values():
            start_broker(b)
        self.wait_formed()
        return self

    def wait_formed(self, timeout=60):
        """Until every broker is registered and the controller knows them all: a validate-only
        CreateTopics with a replica on every broker (which the controller answers from its own
        view, a few ms behind the registrations) is accepted."""
        from confluent_kafka.admin import AdminClient, NewTopic
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                md = admin.list_topics(timeout=2)
                if len(md.brokers) == len(self.brokers) and md.controller_id >= 0:
                    probe = NewTopic("formed-probe", num_partitions=1,
                                     replica_assignment=[sorted(self.brokers)])
                    admin.create_topics([probe], validate_only=True)["formed-probe"].result(5)
                    return
            except Exception:  # noqa: BLE001
                pass
            time.sleep(0.1)
        raise RuntimeError("the cluster did not form")

    @property
    def bootstrap(self):
        return ",".join(b.bootstrap for b in self.brokers.values())

    def restart(self, i):
        start_broker(self.brokers[i])

    def pid(self, i):
        return self.brokers[i].proc.pid

    def signal(self, i, sig):
        os.kill(self.pid(i), sig)

    def kill9(self, i):
        b = self.brokers[i]
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait()
        b.log.close()

    def replica_logs(self, topic, partition):
        """Concatenated segment bytes of each broker's replica (for byte-for-byte comparison),
        each segment up to its last batch: an active segment written with direct I/O ends in
        the zeros that pad its last block until it is closed, whose length depends on the
        replica's own write history."""
        out = {}
        for i, b in self.brokers.items():
            d = f"{b.overrides.get('log.dirs', b.data_dir + '/data')}/{topic}-{partition}"
            data = b""
            for f in sorted(glob.glob(f"{d}/*.log")):
                with open(f, "rb") as fh:
                    data += batches(fh.read())
            out[i] = data
        return out

    def stop(self):
        for b in self.brokers.values():
            if b.alive():
                try:
                    os.kill(b.proc.pid, signal.SIGCONT)
                except OSError:
                    pass
                b.stop(signal.SIGKILL)
        for p in self.proxies.values():
            p.close()
        self.zk.stop()
        if self.net:
            self.net.close()

    def host(self, i):
        """Broker i's network namespace host (netns clusters)."""
        return self.net.hosts[f"b{i}"]

    def logs_contain(self, text):
        return [i for i, b in self.brokers.items() if text in b.read_log()]

    def cleanup(self):
        keep = os.environ.get("RINGLET_KEEP_LOGS")
        for i, b in self.brokers.items():
            if keep and os.path.exists(b.log_path):
                os.makedirs(keep, exist_ok=True)
                shutil.copy(b.log_path, os.path.join(keep, f"broker-{i}.log"))
            shutil.rmtree(b.data_dir, ignore_errors=True)


def batches(seg):
    """`seg` up to the end of its last whole batch (base offset, then a positive length)."""
    pos = 0
    while pos + 12 <= len(seg):
        length = int.from_bytes(seg[pos + 8:pos + 12], "big", signed=True)
        if length <= 0 or pos + 12 + length > len(seg):
            break
        pos += 12 + length
    return seg[:pos]


def start_broker(b):
    # Broker.start passes listeners=PLAINTEXT://127.0.0.1:{port} first; the override that follows
    # (this cluster's, with the replication listener) wins.
    return b.start()
