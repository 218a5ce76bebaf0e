"""Replication on a three-broker cluster with ZooKeeper (started by the test), under a fixed
fault schedule with a fixed seed: every fault kind once. The longer randomized campaign is
`tests/e2e/replication_check.py --runs N --faults M` (figures in docs/reliability.md)."""
import pytest

from cluster import zookeeper_available
from replication_check import FAULTS, campaign

pytestmark = pytest.mark.skipif(not zookeeper_available(),
                                reason="needs Debian's zookeeper package (scripts/test.sh installs it)")


def test_replication_survives_every_fault_kind():
    s = campaign(seed=20261125, faults=FAULTS, gap=(0.5, 1.5), log=print)
    print({k: v for k, v in s.items() if k != "fault_log"})
    assert s["anomalies"] == [], s
    assert s["faults"] == len(FAULTS) and s["faults_ok"] == len(FAULTS), s["fault_log"]
    assert s["acknowledged"] > 1000, s
    assert s["lost"] == 0 and s["read_then_truncated"] == 0 and s["duplicates"] == 0, s
    assert s["replicas_identical"] and s["full_isr_at_end"], s
    assert s["refused_not_enough_replicas"] > 0, s
    assert s["consumer_reads"] > 0 and s["hw_samples"] > 0, s
