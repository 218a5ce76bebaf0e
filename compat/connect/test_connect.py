"""Kafka Connect against the broker under test (BOOTSTRAP): a distributed worker from Apache
Kafka's own jars (connect-runtime, connect-file; KAFKA_LIBS) creates its compacted internal
topics, runs a file source -> topic -> file sink pipeline to the exact expected output, and
resumes after a worker restart with nothing lost and nothing repeated.

Run by `scripts/compat.sh --suite connect` (which fetches the jars and starts the broker)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

BOOTSTRAP = os.environ.get("BOOTSTRAP", "127.0.0.1:9092")
LIBS = os.environ.get("KAFKA_LIBS", os.path.join(os.path.dirname(__file__), "..", "..", ".cache",
                                                  "kafka", "libs"))
LOG4J = os.path.join(os.path.dirname(__file__), "..", "kafka", "log4j2-tools.properties")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Worker:
    def __init__(self, work, group):
        self.work = work
        self.port = free_port()
        self.props = os.path.join(work, "worker.properties")
        with open(self.props, "w") as f:
            f.write("\n".join([
                f"bootstrap.servers={BOOTSTRAP}",
                f"group.id={group}",
                f"config.storage.topic={group}-configs",
                f"offset.storage.topic={group}-offsets",
                f"status.storage.topic={group}-status",
                "config.storage.replication.factor=1",
                "offset.storage.replication.factor=1",
                "status.storage.replication.factor=1",
                "offset.storage.partitions=2",
                "status.storage.partitions=1",
                "offset.flush.interval.ms=500",
                "key.converter=org.apache.kafka.connect.storage.StringConverter",
                "value.converter=org.apache.kafka.connect.storage.StringConverter",
                f"listeners=http://127.0.0.1:{self.port}",
                "plugin.discovery=only_scan",
                "",
            ]))
        self.proc = None

    def start(self):
        self.log = open(os.path.join(self.work, "worker.log"), "ab")
        self.proc = subprocess.Popen(
            ["java", "-Xmx512m", f"-Dlog4j2.configurationFile={LOG4J}", "-cp",
             os.path.join(LIBS, "*"), "org.apache.kafka.connect.cli.ConnectDistributed", self.props],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            assert self.proc.poll() is None, f"the worker exited: {self.tail()}"
            try:
                if isinstance(self.get("/connectors"), list):
                    return self
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"the worker's REST API never answered: {self.tail()}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def tail(self):
        with open(os.path.join(self.work, "worker.log"), "rb") as f:
            return f.read()[-3000:].decode(errors="replace")

    def request(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
            return json.loads(text) if text else None

    def get(self, path):
        return self.request("GET", path)

    def create(self, name, config):
        deadline = time.time() + 60
        while True:
            try:
                return self.request("PUT", f"/connectors/{name}/config", config)
            except urllib.error.HTTPError as e:
                # 409: a rebalance is under way; try again.
                if e.code != 409 or time.time() > deadline:
                    raise AssertionError(f"{e.code} {e.read()!r}") from e
                time.sleep(1)

    def running(self, name):
        try:
            s = self.get(f"/connectors/{name}/status")
        except OSError:
            return False
        return s["connector"]["state"] == "RUNNING" and s["tasks"] and all(
            t["state"] == "RUNNING" for t in s["tasks"])


def wait_for(cond, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [l.rstrip("\n") for l in f if l.strip()]


@pytest.fixture
def work():
    d = tempfile.mkdtemp(prefix="ringlet-connect-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_file_pipeline_runs_and_resumes_after_a_worker_restart(work):
    group = f"connect-{os.getpid()}-{time.monotonic_ns()}"
    topic = f"{group}-lines"
    source, sink = os.path.join(work, "in.txt"), os.path.join(work, "out.txt")
    first = [f"line {i} of the first batch" for i in range(200)]
    with open(source, "w") as f:
        f.write("\n".join(first) + "\n")
    w = Worker(work, group).start()
    try:
        w.create("src", {"connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
                         "tasks.max": "1", "file": source, "topic": topic})
        w.create("sink", {"connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
                          "tasks.max": "1", "file": sink, "topics": topic})
        wait_for(lambda: w.running("src") and w.running("sink"), 90, "both connectors to run")
        wait_for(lambda: len(lines(sink)) >= len(first), 90, "the sink to write every line")
        assert lines(sink) == first
        # Let the source's position and the sink's offsets be committed (offset.flush.interval.ms).
        time.sleep(2)
    finally:
        w.stop()
    # The worker's internal topics are compacted, as Connect requires.
    a = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for t in (f"{group}-configs", f"{group}-offsets", f"{group}-status"):
        res = ConfigResource(ConfigResource.Type.TOPIC, t)
        assert a.describe_configs([res])[res].result(timeout=30)["cleanup.policy"].value == "compact", t
    # More lines while no worker runs; a new worker resumes from the stored configs and offsets.
    more = [f"line {i} after the restart" for i in range(100)]
    with open(source, "a") as f:
        f.write("\n".join(more) + "\n")
    w = Worker(work, group)
    w.port = free_port()
    with open(w.props) as f:
        props = [l for l in f.read().splitlines() if not l.startswith("listeners=")]
    with open(w.props, "w") as f:
        f.write("\n".join(props + [f"listeners=http://127.0.0.1:{w.port}", ""]))
    w.start()
    try:
        assert sorted(w.get("/connectors")) == ["sink", "src"]
        wait_for(lambda: len(lines(sink)) >= len(first) + len(more), 90,
                 "the sink to write the new lines")
        time.sleep(2)
        assert lines(sink) == first + more, "lost or repeated lines after the restart"
    finally:
        w.stop()
