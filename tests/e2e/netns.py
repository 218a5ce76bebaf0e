"""Hosts on one machine for network-partition tests (issue 26 item 2): each host is a network
namespace with one veth link to a bridge in the root namespace, where the test's clients run.
Faults are nftables rules inside a host's namespace, so they act on that host's packets only:

  block(a, b)              nothing passes between a and b, either way
  block(a, b, one_way=True) a's packets to b are dropped; b's still reach a
  loss(a, b, percent)      that share of a's packets to b dropped at random (one way)
  slow(a, rate)            a's outgoing link limited to `rate` (tc tbf, e.g. "1mbit"): packets
                           beyond it wait in a queue of up to 200 ms, then drop
  heal()                   every rule and limit gone

`b` may be a host or None (the root namespace: the clients). Fixed delay is not modelled: the
kernel here has no `sch_netem` (CONFIG_NET_SCH_NETEM is not set), so `tc netem` cannot run;
random loss through nftables' `numgen` and a token-bucket rate limit (`sch_tbf`, whose queue
delays what exceeds the rate) stand in for a bad link.

Needs root, iproute2 and nftables (Debian's `nftables`, installed by scripts/test.sh);
`unavailable()` says why not where they are missing.
"""
import ipaddress
import itertools
import os
import shutil
import subprocess

# Each Net of this process gets its own names: a deleted namespace is torn down by the kernel
# asynchronously, so the next Net must not reuse its interface names.
_SEQ = itertools.count()


def sh(*args, check=True):
    r = subprocess.run(list(args), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")
    return r


def unavailable():
    """Why network namespaces cannot be used here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    probe = f"rlprobe{os.getpid() % 100000}"
    try:
        sh("ip", "netns", "add", probe)
        sh("ip", "netns", "exec", probe, "nft", "add", "table", "inet", "probe")
    except RuntimeError as e:
        return f"cannot create a network namespace with an nftables table: {e}"
    finally:
        sh("ip", "netns", "del", probe, check=False)
    return None


class Host:
    def __init__(self, net, name, ip):
        self.net = net
        self.name = name
        self.ns = f"{net.tag}-{name}"
        self.ip = ip
        self.veth = None

    @property
    def prefix(self):
        """Run a command on this host: `prefix + [program, args...]`."""
        return ["ip", "netns", "exec", self.ns]

    def nft(self, *rule):
        sh(*self.prefix, "nft", *rule)


class Net:
    def __init__(self):
        self.tag = f"rl{os.getpid() % 100000}{chr(ord('a') + next(_SEQ) % 26)}"
        self.bridge = f"{self.tag}br"
        self.hosts = {}
        self.subnet = self._free_subnet()
        self.gateway = str(self.subnet.network_address + 254)
        self._cleanup_leftovers()
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")

    @staticmethod
    def _free_subnet():
        used = sh("ip", "-o", "addr").stdout
        for third in range(40, 250):
            net = ipaddress.ip_network(f"10.231.{(os.getpid() + third) % 250}.0/24")
            if f" {net.network_address.exploded.rsplit('.', 1)[0]}." not in used:
                return net
        raise RuntimeError("no free 10.231.x.0/24 subnet")

    def _cleanup_leftovers(self):
        for line in sh("ip", "netns", "list").stdout.splitlines():
            ns = line.split()[0] if line.strip() else ""
            if ns.startswith(f"{self.tag}-"):
                sh("ip", "netns", "del", ns, check=False)
        for line in sh("ip", "-o", "link").stdout.splitlines():
            name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
            if name.startswith(self.tag):
                sh("ip", "link", "del", name, check=False)

    def add_host(self, name):
        ip = str(self.subnet.network_address + len(self.hosts) + 1)
        h = Host(self, name, ip)
        veth = f"{self.tag}v{len(self.hosts) + 1}"
        h.veth = veth
        sh("ip", "netns", "add", h.ns)
        self.hosts[name] = h  # from here on close() removes it, whatever fails next
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", h.ns)
        sh("ip", "link", "set", veth, "master", self.bridge, "up")
        sh(*h.prefix, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
        sh(*h.prefix, "ip", "link", "set", "eth0", "up")
        sh(*h.prefix, "ip", "link", "set", "lo", "up")
        sh(*h.prefix, "ip", "route", "add", "default", "via", self.gateway)
        h.nft("add", "table", "inet", "faults")
        h.nft("add", "chain", "inet", "faults", "in", "{ type filter hook input priority 0; }")
        h.nft("add", "chain", "inet", "faults", "out", "{ type filter hook output priority 0; }")
        return h

    def _ip(self, b):
        return self.gateway if b is None else b.ip

    def block(self, a, b, one_way=False):
        a.nft("add", "rule", "inet", "faults", "out", "ip", "daddr", self._ip(b), "drop")
        if not one_way:
            a.nft("add", "rule", "inet", "faults", "in", "ip", "saddr", self._ip(b), "drop")

    def loss(self, a, b, percent):
        if percent >= 100:
            return self.block(a, b, one_way=True)
        a.nft("add", "rule", "inet", "faults", "out", "ip", "daddr", self._ip(b),
              "numgen", "random", "mod", "100", "<", str(int(percent)), "drop")

    def slow(self, a, rate):
        sh(*a.prefix, "tc", "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", rate,
           "burst", "16kb", "latency", "200ms")

    def rules(self, a):
        return sh(*a.prefix, "nft", "list", "table", "inet", "faults").stdout

    def heal(self):
        for h in self.hosts.values():
            h.nft("flush", "chain", "inet", "faults", "in")
            h.nft("flush", "chain", "inet", "faults", "out")
            if "tbf" in sh(*h.prefix, "tc", "qdisc", "show", "dev", "eth0").stdout:
                sh(*h.prefix, "tc", "qdisc", "del", "dev", "eth0", "root")

    def close(self):
        for h in self.hosts.values():
            # Deleting the root end removes both ends at once; the namespace itself goes later.
            sh("ip", "link", "del", h.veth, check=False)
            sh("ip", "netns", "del", h.ns, check=False)
        sh("ip", "link", "del", self.bridge, check=False)
        self.hosts = {}
