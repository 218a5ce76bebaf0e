#!/usr/bin/env bash
# Ringlet beside Apache Kafka in one sitting (issue 20's yardstick): the same load against each
# broker in turn, rounds interleaved (Kafka, Ringlet, Kafka, Ringlet, ...), so the machine's noise
# falls on both. Per run: throughput, produce latency, and the broker's CPU-seconds per GB and RSS
# read from /proc around the run.
#
# Usage: benches/e2e/vs-kafka.sh [ROUNDS] [SECONDS] [PARTITIONS]
#   RINGLET_BIN   the ringlet release binary (default target/release/ringlet, built if missing)
# Loads, each a fresh topic on a broker started for the round:
#   acks1      ringlet loadgen, 1 KiB, acks=1, 2 producers, no consumer
#   acksall    ringlet loadgen, 1 KiB, acks=all, 1 producer and 1 consumer
#   perftest   Kafka's own kafka-producer-perf-test, 1 KiB, acks=1, unthrottled, 200k records
# Kafka is scripts/kafka-reference.sh (4.1.1, KRaft single node, page-cache durability, 1 GiB
# heap); Ringlet runs with num.io.threads=2 on this 2-core machine. Both use the embedded/default
# flush policy (neither fsyncs per message), so the comparison is like for like.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}; SECS=${2:-20}; PARTS=${3:-2}
BIN=${RINGLET_BIN:-target/release/ringlet}
[ -x "$BIN" ] || cargo build --release -q
OUT=$(mktemp -d /tmp/ringlet-vs-kafka-XXXX)
COMMON=(--record-size 1024 --partitions "$PARTS" --batch-size 262144 --max-in-flight 5 --warmup 2
        --duration "$SECS" --linger-ms 2 --quiet --output json)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# run SIDE ROUND PID BOOTSTRAP: the three loads against one broker, with its CPU around each.
run_loads() {
  local side=$1 round=$2 pid=$3 boot=$4 t0 t1
  for load in acks1 acksall perftest; do
    t0=$(cpu_ticks "$pid")
    case $load in
      acks1) "$BIN" loadgen --bootstrap-server "$boot" --topic "a1-$round" "${COMMON[@]}" \
               --producers 2 --consumers 0 --acks 1 >"$OUT/$side-$round-$load.json" ;;
      acksall) "$BIN" loadgen --bootstrap-server "$boot" --topic "aall-$round" "${COMMON[@]}" \
               --producers 1 --consumers 1 --acks all >"$OUT/$side-$round-$load.json" ;;
      perftest) compat/bin/kafka-producer-perf-test.sh --topic "pt-$round" --num-records 200000 \
               --record-size 1024 --throughput -1 \
               --producer-props "bootstrap.servers=$boot" acks=1 linger.ms=2 batch.size=262144 \
               >"$OUT/$side-$round-$load.txt" 2>&1 ;;
    esac
    t1=$(cpu_ticks "$pid")
    echo "$(( t1 - t0 )) $(rss_kb "$pid")" >"$OUT/$side-$round-$load.cpu"
  done
}

kafka_round() {
  local boot pid
  boot=$(scripts/kafka-reference.sh start | awk '/^bootstrap/ {print $2}')
  pid=$(cat .cache/kafka-reference/pid)
  run_loads kafka "$1" "$pid" "$boot"
  scripts/kafka-reference.sh stop >/dev/null
  sync
}

ringlet_round() {
  local port=19800 data pid
  data=$(mktemp -d /tmp/ringlet-vs-data-XXXX)
  "$BIN" serve --override "listeners=PLAINTEXT://127.0.0.1:$port" --override "log.dirs=$data" \
    --override num.io.threads=2 --override "num.partitions=$PARTS" >"$data.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  run_loads ringlet "$1" "$pid" "127.0.0.1:$port"
  kill "$pid"; wait "$pid" || true
  rm -rf "$data" "$data.log"; sync
}

for r in $(seq "$ROUNDS"); do kafka_round "$r"; ringlet_round "$r"; done

python3 - "$OUT" "$ROUNDS" "$(getconf CLK_TCK)" <<'PY'
import json, re, statistics, sys
out, rounds, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def loadgen(side, r, load):
    j = json.load(open(f"{out}/{side}-{r}-{load}.json"))
    mb = j["produced"]["mb_per_s"]
    lat = j["produce_latency_from_send"]
    gb = (j["produced"].get("bytes", 0) + j.get("consumed", {}).get("bytes", 0)) / 1e9
    return mb, lat.get("p99_ms", lat.get("p99", 0)), gb
def perftest(side, r):
    t = open(f"{out}/{side}-{r}-perftest.txt").read()
    m = re.findall(r"records sent, [\d.]+ records/sec \(([\d.]+) MB/sec\), [\d.]+ ms avg latency, "
                   r"[\d.]+ ms max latency, \d+ ms 50th, \d+ ms 95th, (\d+) ms 99th", t)
    if not m:
        return 0.0, 0.0, 0.0
    return float(m[-1][0]), float(m[-1][1]), 200000 * 1024 / 1e9
def cpu(side, r, load):
    ticks, rss = open(f"{out}/{side}-{r}-{load}.cpu").read().split()
    return int(ticks) / hz, int(rss) / 1024
print("| load | broker | MB/s per round | median MB/s | p99 ms (median) | CPU-s per GB | RSS MiB |")
print("|---|---|---|---|---|---|---|")
med = {}
for load in ["acks1", "acksall", "perftest"]:
    for side in ["kafka", "ringlet"]:
        rows = [perftest(side, r) if load == "perftest" else loadgen(side, r, load)
                for r in range(1, rounds + 1)]
        cpus = [cpu(side, r, load) for r in range(1, rounds + 1)]
        per_gb = [c[0] / g for c, (_, _, g) in zip(cpus, rows) if g > 0]
        mb = statistics.median(x[0] for x in rows)
        med[(load, side)] = (mb, statistics.median(per_gb) if per_gb else 0)
        print(f"| {load} | {side} | {' '.join(f'{x[0]:.0f}' for x in rows)} | {mb:.0f} | "
              f"{statistics.median(x[1] for x in rows):.1f} | "
              f"{med[(load, side)][1]:.2f} | {max(c[1] for c in cpus):.0f} |")
for load in ["acks1", "acksall", "perftest"]:
    (km, kc), (rm, rc) = med[(load, "kafka")], med[(load, "ringlet")]
    print(f"{load}: Ringlet/Kafka throughput {rm / km:.2f}, CPU-s per GB {rc / kc:.2f}"
          if km and kc else f"{load}: no Kafka figure")
print("reports in", out)
PY
