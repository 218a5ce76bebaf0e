"""Both brokers for the differential tests: a fresh `ringlet serve` and the reference Apache Kafka
(scripts/kafka-reference.sh, in a folder of its own so it never meets another run's broker)."""
import os
import shutil
import subprocess
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

def _e2e_broker_class():
    """tests/e2e's fixture class (a real `ringlet serve`), loaded under another module name."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("ringlet_e2e_conftest",
                                                  os.path.join(ROOT, "tests", "e2e", "conftest.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.Broker


Broker = _e2e_broker_class()


class Kafka:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="kafka-reference-")
        env = dict(os.environ, KAFKA_REFERENCE_DIR=self.dir)
        out = subprocess.run([os.path.join(ROOT, "scripts", "kafka-reference.sh"), "start"], env=env,
                             capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"kafka-reference.sh start failed: {out.stderr[-3000:]}")
        self.bootstrap = out.stdout.strip().splitlines()[-1].split()[1]
        self.env = env

    def stop(self):
        subprocess.run([os.path.join(ROOT, "scripts", "kafka-reference.sh"), "stop"], env=self.env,
                       capture_output=True, timeout=120)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def brokers():
    """{'ringlet': bootstrap, 'kafka': bootstrap}."""
    r = Broker({"group.initial.rebalance.delay.ms": "0"}).start()
    k = Kafka()
    yield {"ringlet": r.bootstrap, "kafka": k.bootstrap}
    r.stop()
    k.stop()
    assert "panicked" not in r.read_log()
    shutil.rmtree(r.data_dir, ignore_errors=True)
