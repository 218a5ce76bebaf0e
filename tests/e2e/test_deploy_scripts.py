"""deploy/cluster/*.sh: the seed's start/stop scripts over the hosts in a file. ssh is replaced by
a stand-in that records which host got which script and runs it locally, so a real broker is
started and stopped through the script."""
import os
import socket
import stat
import subprocess
import time

from conftest import BIN, ROOT, free_port

SCRIPTS = os.path.join(ROOT, "deploy", "cluster")


def fake_ssh(tmp_path):
    p = tmp_path / "fake-ssh"
    p.write_text('#!/usr/bin/env bash\n'
                 'host="$1"\n'
                 'script=$(cat)\n'
                 'printf "== %s\\n%s\\n" "$host" "$script" >> "$FAKE_SSH_LOG"\n'
                 'exec bash -c "$script"\n')
    p.chmod(p.stat().st_mode | stat.S_IEXEC)
    return str(p)


def test_zk_script_runs_zkserver_on_every_listed_host(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("# comment\nzk1\n\nzk2  # trailing comment\nzk3\n")
    home = tmp_path / "zk"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "zkServer.sh").write_text('#!/bin/sh\necho "zkServer $1" >> "$FAKE_ZK_LOG"\n')
    (home / "bin" / "zkServer.sh").chmod(0o755)
    env = dict(os.environ, RINGLET_SSH=fake_ssh(tmp_path), FAKE_SSH_LOG=str(tmp_path / "ssh.log"),
               FAKE_ZK_LOG=str(tmp_path / "zk.log"), ZOOKEEPER_HOME=str(home), RINGLET_HOST_GAP="0")
    out = subprocess.run([f"{SCRIPTS}/zk-cluster.sh", "start", str(hosts)], env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "start all ZooKeeper [ done ]" in out.stdout
    ssh_log = (tmp_path / "ssh.log").read_text()
    assert [l for l in ssh_log.splitlines() if l.startswith("== ")] == ["== zk1", "== zk2", "== zk3"]
    assert (tmp_path / "zk.log").read_text().splitlines() == ["zkServer start"] * 3
    bad = subprocess.run([f"{SCRIPTS}/zk-cluster.sh", "restart", str(hosts)], env=env,
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2


def test_ringlet_script_starts_and_stops_a_broker(tmp_path):
    port = free_port()
    home = tmp_path / "ringlet"
    home.mkdir()
    os.symlink(BIN, home / "ringlet")
    (home / "server.properties").write_text(
        f"listeners=PLAINTEXT://127.0.0.1:{port}\nlog.dirs={home}/data\nnum.io.threads=1\n")
    hosts = tmp_path / "hosts"
    hosts.write_text("broker1\n")
    env = dict(os.environ, RINGLET_SSH=fake_ssh(tmp_path), FAKE_SSH_LOG=str(tmp_path / "ssh.log"),
               RINGLET_HOME=str(home), RINGLET_HOST_GAP="0")
    out = subprocess.run([f"{SCRIPTS}/ringlet-cluster.sh", "start", str(hosts)], env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        raise AssertionError("broker did not start: " + (home / "ringlet.log").read_text())
    out = subprocess.run([f"{SCRIPTS}/ringlet-cluster.sh", "stop", str(hosts)], env=env,
                         capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    assert "stop all ringlet [ done ]" in out.stdout
    log = (home / "ringlet.log").read_text()
    assert "ringlet broker stopped" in log, log
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        raise AssertionError("still listening after stop")
    except OSError:
        pass
