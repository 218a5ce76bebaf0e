"""Network partitions between hosts (issue 26 item 2): ZooKeeper and three brokers each on their
own network namespace on a bridge (tests/e2e/netns.py), the clients in the root namespace, and
faults as nftables rules in a host's namespace: a leader cut off from ZooKeeper only, from its
followers only, heard by them one way only, split from the whole cluster while its clients still
reach it, the controller cut off from ZooKeeper, 30 % random loss on a leader's links, and a
leader's link slowed to 1 Mbit/s. The
longer randomized campaign is `tests/e2e/replication_check.py --netns --runs N --faults M`
(figures in docs/reliability.md)."""
import socket
import subprocess
import sys
import time

import pytest

from cluster import zookeeper_available

try:
    from netns import Net, unavailable
    WHY_NOT = unavailable()
except Exception as e:  # noqa: BLE001
    WHY_NOT = f"tests/e2e/netns.py cannot run: {e}"

pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")

LISTENER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 7000)); s.listen(8)
while True:
    c, _ = s.accept(); c.sendall(b"hi"); c.close()
"""


def reaches(a, b):
    """Whether a process on host `a` (None: the root namespace) gets host b's greeting."""
    code = ("import socket,sys\n"
            "try:\n"
            f"  s=socket.create_connection(('{b.ip}',7000),timeout=1); sys.exit(0 if s.recv(2)==b'hi' else 1)\n"
            "except OSError: sys.exit(1)\n")
    prefix = a.prefix if a else []
    return subprocess.run(prefix + [sys.executable, "-c", code]).returncode == 0


def test_the_network_faults_really_drop_packets():
    """The control: each rule stops what it says and nothing else, and heal() undoes it, so a
    campaign that finds nothing has really been cut off."""
    net = Net()
    procs = []
    try:
        a, b, c = net.add_host("a"), net.add_host("b"), net.add_host("c")
        for h in (a, b, c):
            procs.append(subprocess.Popen(h.prefix + [sys.executable, "-c", LISTENER, h.ip]))
        deadline = time.time() + 10
        while not all(reaches(None, h) for h in (a, b, c)) and time.time() < deadline:
            time.sleep(0.1)
        assert reaches(a, b) and reaches(b, a) and reaches(None, a)
        net.block(a, b)
        assert not reaches(a, b) and not reaches(b, a)
        assert reaches(a, c) and reaches(None, a) and reaches(c, b)
        net.heal()
        assert reaches(a, b) and reaches(b, a)
        # One way: a's packets to b are dropped, so neither side completes a handshake with the
        # other, but b still reaches c and the clients still reach a.
        net.block(a, b, one_way=True)
        assert not reaches(a, b) and not reaches(b, a) and reaches(None, a)
        assert "drop" in net.rules(a) and "drop" not in net.rules(b)
        net.heal()
        net.loss(a, None, 100)
        assert not reaches(None, a) and reaches(b, a)
        net.heal()
        assert reaches(None, a)
        # A slow link is still a link; heal() takes the limit away.
        net.slow(a, "1mbit")
        shown = lambda: subprocess.run(a.prefix + ["tc", "qdisc", "show", "dev", "eth0"],  # noqa: E731
                                       capture_output=True, text=True).stdout
        assert "tbf" in shown() and reaches(None, a)
        net.heal()
        assert "tbf" not in shown()
    finally:
        for p in procs:
            p.kill()
        net.close()
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"{net.tag}-" not in out, "namespaces left behind"


@pytest.mark.skipif(not zookeeper_available(),
                    reason="needs Debian's zookeeper package (scripts/test.sh installs it)")
def test_replication_survives_every_network_fault():
    from replication_check import NET_FAULTS, campaign
    s = campaign(seed=20261207, faults=NET_FAULTS, gap=(0.5, 1.5), log=print, netns=True)
    print({k: v for k, v in s.items() if k != "fault_log"})
    assert s["anomalies"] == [], s
    assert s["faults"] == len(NET_FAULTS) and s["faults_ok"] == len(NET_FAULTS), s["fault_log"]
    assert s["acknowledged"] > 1000, s
    assert s["lost"] == 0 and s["read_then_truncated"] == 0 and s["duplicates"] == 0, s
    assert s["replicas_identical"] and s["full_isr_at_end"], s
    # The cut that leaves a leader alone in its ISR refused acks=all writes.
    assert s["refused_not_enough_replicas"] > 0, s
    faults = dict(s["fault_log"])
    assert faults["zk_isolated_leader"]["session_ended"], faults
    assert faults["lossy_leader"]["acknowledged_during"] > 0, faults
