"""The power-loss file system (`ringlet-powerfail`, powerfail/src/main.rs) for the tests: mounted
on a fresh directory, it loses every write not yet fsynced when `cut()` is called, as a disk
does when the machine loses power. Needs /dev/fuse and root (it mounts without fusermount)."""
import os
import subprocess
import tempfile
import time

from conftest import ROOT

BIN = os.environ.get("RINGLET_POWERFAIL_BIN",
                     os.path.join(ROOT, "target", "debug", "ringlet-powerfail"))


def available():
    return os.path.exists("/dev/fuse") and os.geteuid() == 0 and os.path.exists(BIN)


class PowerFail:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ringlet-powerfail-")
        self.log = open(self.dir + ".log", "w")
        self.proc = subprocess.Popen([BIN, self.dir], stderr=self.log, stdout=self.log)
        deadline = time.time() + 10
        while not os.path.ismount(self.dir):
            if self.proc.poll() is not None or time.time() > deadline:
                self.proc.kill()
                self.proc.wait()
                self.log.close()
                raise RuntimeError(f"ringlet-powerfail did not mount: {self.read_log()}")
            time.sleep(0.05)
        self.cuts = 0

    def cut(self):
        """The power goes out: every file back to its last fsync."""
        with open(os.path.join(self.dir, ".powercut"), "w") as f:
            f.write("cut")
        self.cuts += 1

    def read_log(self):
        with open(self.dir + ".log") as f:
            return f.read()

    def close(self):
        subprocess.run(["umount", "-l", self.dir], capture_output=True)
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
