#!/usr/bin/env bash
# Direct I/O against buffered writes (`ringlet.log.direct.io`), one binary, interleaved rounds,
# with the machine's ceilings measured in the same sitting (fio direct and buffered writes, fio
# direct reads, iperf3 loopback). Issue 20's "decide by measurement".
#
# Usage: benches/e2e/direct-vs-buffered.sh [ROUNDS] [SECONDS] [PARTITIONS]
#   RINGLET_BIN  the release binary (default target/release/ringlet, built if missing)
# Per round and mode, each on a fresh broker (2 shards) and data directory:
#   produce   loadgen 1 KiB acks=1, 2 producers, no consumer, SECONDS sustained
#   cold      the broker restarted (no tail cache), the page cache dropped, then a consume-only
#             run reading what `produce` wrote; in direct mode twice, through the read-ahead
#             windows (O_DIRECT reads, `direct`) and through the page cache (`direct-pc`,
#             ringlet.log.read.ahead.bytes=0), each after a restart and a drop of the caches
#   mixed     a new topic: 1 producer acks=1 and 1 consumer reading the tail, SECONDS
#   durable   a broker with log.flush.interval.messages=1: acks=all, 1 producer, SECONDS
# CPU-seconds per GB: the broker's utime+stime over the load, per GB produced plus consumed.
#   MODES  the modes, in each round's order (default "buffered direct"); besides those two:
#          direct-prealloc  direct with log.preallocate=true (fallocate of each new segment)
#          direct-zc        direct with ringlet.fetch.send.zc=true (SEND_ZC of the tail cache's
#                           and the read-ahead windows' buffers)
#   NO_PC  set: skip the `direct-pc` cold read
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}; SECS=${2:-20}; PARTS=${3:-2}
BIN=${RINGLET_BIN:-target/release/ringlet}
MODES=${MODES:-buffered direct}
[ -x "$BIN" ] || cargo build --release -q -p ringlet-cli
OUT=$(mktemp -d /tmp/ringlet-dvb-XXXX)
PORT=19750
COMMON=(--record-size 1024 --partitions "$PARTS" --batch-size 262144 --max-in-flight 5 --warmup 2
        --linger-ms 2 --quiet --output json)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

start() { # MODE DATA [extra overrides...] -> pid on stdout
  local mode=$1 data=$2; shift 2
  local opts=(--override ringlet.log.direct.io=true)
  case $mode in
    buffered) opts=(--override ringlet.log.direct.io=false) ;;
    direct-prealloc) opts+=(--override log.preallocate=true) ;;
    direct-zc) opts+=(--override ringlet.fetch.send.zc=true) ;;
  esac
  "$BIN" serve --override "listeners=PLAINTEXT://127.0.0.1:$PORT" --override "log.dirs=$data" \
    --override num.io.threads=2 "${opts[@]}" "$@" \
    >>"$data.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
  echo "$pid"
}
# The broker is not this shell's child (started in a command substitution): wait for it by polling.
stop() { kill "$1"; while kill -0 "$1" 2>/dev/null; do sleep 0.1; done; }

measure() { # NAME PID loadgen-args...
  local name=$1 pid=$2 t0 t1; shift 2
  t0=$(cpu_ticks "$pid")
  "$BIN" loadgen --bootstrap-server 127.0.0.1:$PORT "${COMMON[@]}" "$@" >"$OUT/$name.json"
  t1=$(cpu_ticks "$pid")
  echo $(( t1 - t0 )) >"$OUT/$name.cpu"
}

round() { # MODE ROUND
  local mode=$1 r=$2 data pid
  data=$(mktemp -d /tmp/ringlet-dvb-data-XXXX)
  pid=$(start "$mode" "$data")
  measure "$mode-$r-produce" "$pid" --topic p --duration "$SECS" --producers 2 --consumers 0 --acks 1
  stop "$pid"
  sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
  pid=$(start "$mode" "$data")
  measure "$mode-$r-cold" "$pid" --topic p --producers 0 --consumers 1
  if [ "$mode" = direct ] && [ -z "${NO_PC:-}" ]; then
    stop "$pid"; sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
    pid=$(start "$mode" "$data" --override ringlet.log.read.ahead.bytes=0)
    measure "direct-pc-$r-cold" "$pid" --topic p --producers 0 --consumers 1
  fi
  measure "$mode-$r-mixed" "$pid" --topic m --duration "$SECS" --producers 1 --consumers 1 --acks 1
  stop "$pid"
  pid=$(start "$mode" "$data" --override log.flush.interval.messages=1)
  measure "$mode-$r-durable" "$pid" --topic d --duration "$SECS" --producers 1 --consumers 0 --acks all
  stop "$pid"
  rm -rf "$data" "$data.log"; sync
}

ceilings() { # fio and iperf3 in the same sitting, on the same file system as the brokers
  local dir; dir=$(mktemp -d /tmp/ringlet-dvb-fio-XXXX)
  local f=(--directory="$dir" --name=c --size=4g --runtime=8 --time_based --output-format=json)
  if command -v fio >/dev/null; then
    fio "${f[@]}" --rw=write --bs=256k --ioengine=io_uring --iodepth=4 --direct=1 >"$OUT/fio-direct-write.json"
    fio "${f[@]}" --rw=write --bs=256k --ioengine=psync --direct=0 --end_fsync=1 >"$OUT/fio-buffered-write.json"
    sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
    fio "${f[@]}" --rw=read --bs=256k --ioengine=io_uring --iodepth=4 --direct=1 >"$OUT/fio-direct-read.json"
    fio "${f[@]}" --rw=write --bs=4k --ioengine=psync --direct=1 --fdatasync=1 >"$OUT/fio-direct-sync-write.json"
  fi
  rm -rf "$dir"
  if command -v iperf3 >/dev/null; then
    iperf3 -s -1 -p 19751 >/dev/null 2>&1 & sleep 0.5
    iperf3 -c 127.0.0.1 -p 19751 -t 5 -J >"$OUT/iperf3.json" || true
    wait || true
  fi
}

ceilings
for r in $(seq "$ROUNDS"); do for m in $MODES; do round "$m" "$r"; done; done

python3 - "$OUT" "$ROUNDS" "$(getconf CLK_TCK)" "$MODES" <<'PY'
import json, os, statistics, sys
out, rounds, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
modes = sys.argv[4].split()
def fio(name, rw):
    p = f"{out}/fio-{name}.json"
    if not os.path.exists(p):
        return None
    j = json.load(open(p))["jobs"][0][rw]
    return j["bw_bytes"] / 1e6, j["iops"]
for name, rw in [("direct-write", "write"), ("buffered-write", "write"), ("direct-read", "read"),
                 ("direct-sync-write", "write")]:
    f = fio(name, rw)
    if f:
        print(f"fio {name}: {f[0]:.0f} MB/s ({f[1]:.0f} IOPS)")
if os.path.exists(f"{out}/iperf3.json"):
    j = json.load(open(f"{out}/iperf3.json"))
    print(f"iperf3 loopback: {j['end']['sum_received']['bits_per_second'] / 8e6:.0f} MB/s")
def row(mode, r, load):
    j = json.load(open(f"{out}/{mode}-{r}-{load}.json"))
    ticks = int(open(f"{out}/{mode}-{r}-{load}.cpu").read())
    gb = (j["produced"]["bytes"] + j["consumed"]["bytes"]) / 1e9
    mb = j["consumed"]["mb_per_s"] if load == "cold" else j["produced"]["mb_per_s"]
    p99 = j["produce_latency_from_send"].get("p99_ms", 0)
    e2e = j["end_to_end_latency"].get("p99_ms", 0)
    return mb, j["consumed"]["mb_per_s"], p99, e2e, ticks / hz / gb if gb else 0
print("| load | mode | MB/s per round | median MB/s | consumed MB/s (median) | produce p99 ms | e2e p99 ms | CPU-s per GB |")
print("|---|---|---|---|---|---|---|---|")
med = {}
for load in ["produce", "cold", "mixed", "durable"]:
    has_pc = "direct" in modes and os.path.exists(f"{out}/direct-pc-1-cold.json")
    for mode in modes + (["direct-pc"] if load == "cold" and has_pc else []):
        rows = [row(mode, r, load) for r in range(1, rounds + 1)]
        m = [statistics.median(x[i] for x in rows) for i in range(5)]
        med[(load, mode)] = m
        print(f"| {load} | {mode} | {' '.join(f'{x[0]:.0f}' for x in rows)} | {m[0]:.0f} | {m[1]:.0f} | "
              f"{m[2]:.1f} | {m[3]:.1f} | {m[4]:.2f} |")
base = modes[0]
for load in ["produce", "cold", "mixed", "durable"]:
    b = med[(load, base)]
    for mode in modes[1:]:
        d = med[(load, mode)]
        if b[0] and b[4]:
            print(f"{load}: {mode}/{base} throughput {d[0] / b[0]:.2f}, CPU-s per GB {d[4] / b[4]:.2f}")
if ("cold", "direct-pc") in med:
    pc, d = med[("cold", "direct-pc")], med[("cold", "direct")]
    if pc[0] and pc[4]:
        print(f"cold, direct mode: O_DIRECT read-ahead / page cache throughput {d[0] / pc[0]:.2f}, "
              f"CPU-s per GB {d[4] / pc[4]:.2f}")
print("reports in", out)
PY
