"""Fixtures for end-to-end tests: a real `ringlet serve` process on a free port.

The broker binary is taken from RINGLET_BIN, or target/debug/ringlet (scripts/test.sh builds it).
"""
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("RINGLET_BIN", os.path.join(ROOT, "target", "debug", "ringlet"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, overrides=None, data_dir=None, port=None, env=None, host="127.0.0.1",
                 prefix=None):
        # `host`/`prefix`: a broker on its own network namespace (tests/e2e/netns.py) listens on
        # that namespace's address and runs under `ip netns exec NAME`.
        self.host = host
        self.prefix = list(prefix or [])
        self.env = dict(env or {})
        self.port = port or free_port()
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="ringlet-e2e-")
        self.overrides = dict(overrides or {})
        self.proc = None
        self.log_path = os.path.join(self.data_dir, "broker.log")

    @property
    def bootstrap(self):
        return f"{self.host}:{self.port}"

    def start(self):
        args = self.prefix + [BIN, "serve",
                "--override", f"listeners=PLAINTEXT://{self.host}:{self.port}",
                "--override", f"log.dirs={self.data_dir}/data"]
        # RINGLET_IO_BACKEND=portable runs the whole suite on the portable backend, as on a machine
        # where io_uring is disabled.
        if os.environ.get("RINGLET_IO_BACKEND"):
            args += ["--override", f"ringlet.io.backend={os.environ['RINGLET_IO_BACKEND']}"]
        # RINGLET_LOG_DIRECT_IO=false runs it with page-cache writes instead of direct I/O.
        if os.environ.get("RINGLET_LOG_DIRECT_IO"):
            args += ["--override", f"ringlet.log.direct.io={os.environ['RINGLET_LOG_DIRECT_IO']}"]
        for k, v in self.overrides.items():
            args += ["--override", f"{k}={v}"]
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, RINGLET_LOG=os.environ.get("RINGLET_LOG", "info"),
                                              **self.env))
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited with {self.proc.returncode}: {self.read_log()}")
            # Started means this process answers a request: after a crash the old process's
            # listener can linger briefly in the kernel and accept connections nobody serves.
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5) as s:
                    body = struct.pack(">hhih", 18, 0, 1, -1)
                    s.sendall(struct.pack(">i", len(body)) + body)
                    s.settimeout(1.0)
                    if len(s.recv(4)) == 4 and self.proc.poll() is None:
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("broker did not start listening in 30 s")

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=timeout)
        if self.proc:
            self.log.close()
        return self.proc.returncode if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture(scope="module")
def broker():
    b = Broker().start()
    yield b
    b.stop()
    assert "panicked" not in b.read_log(), b.read_log()
    shutil.rmtree(b.data_dir, ignore_errors=True)


@pytest.fixture
def fresh_broker():
    made = []

    def make(overrides=None):
        b = Broker(overrides).start()
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop(signal.SIGKILL)
        assert "panicked" not in b.read_log(), b.read_log()
        shutil.rmtree(b.data_dir, ignore_errors=True)


def unique(prefix):
    return f"{prefix}-{os.getpid()}-{time.monotonic_ns()}"
