#!/usr/bin/env bash
# Ringlet beside Apache Kafka in one sitting (issue 20's yardstick): the same load against each
# broker in turn, rounds interleaved (Kafka, Ringlet, Kafka, Ringlet, ...), so the machine's noise
# falls on both. Per run: throughput, produce and end-to-end latency, and the broker's
# CPU-seconds per GB and RSS read from /proc around the run. The machine's ceilings (fio direct
# and buffered writes, fio direct reads, a direct write+fdatasync loop, iperf3 loopback) are
# measured in the same sitting, first.
#
# Usage: benches/e2e/vs-kafka.sh [ROUNDS] [SECONDS] [PARTITIONS]
#   RINGLET_BIN   the ringlet release binary (default target/release/ringlet, built if missing)
#   LOADS         the loads to run (default: all of those below but many)
#   RATE          records/s of the `omb` load (default: half of Kafka's acks1 rate in round 1)
#   MANY          partitions of the `many` phase (default 10000; 0 skips it)
#   OUT           the report directory (default a new one); given an earlier run's, with ROUNDS 0
#                 and LOADS empty, only the `many` phase runs and the report covers both
#   LONG          seconds of the acks1 load (default 60: the issue's "sustained 60 s"); others SECONDS
# Loads, each on a broker started for it (Kafka, then Ringlet, load by load):
#   acks1      ringlet loadgen, 1 KiB, acks=1, 2 producers, PARTITIONS partitions
#   acks1x100  the same on 100 partitions
#   keyed      acks1 with keys (100,000 distinct), so the producer partitions by key hash
#   acksall    acks=all, 1 producer and 1 consumer reading the tail
#   durable    acks=all on a topic created with flush.messages=1 (kafka-topics.sh --config), so
#              every acknowledged batch is fsynced on both brokers
#   omb        OpenMessaging-style: 100 partitions, 4 producers, 4 consumers, acks=all, RATE
#              records/s open loop; p50/p99/p99.9 produce (from intended send) and end to end
#   perftest   Kafka's own kafka-producer-perf-test, 1 KiB, acks=1, unthrottled, 200k records
# Then one `many` phase per broker (not per round): a topic of MANY partitions made with
# kafka-topics.sh (time to create), 10 s idle (CPU, RSS), then loadgen acks=1 over all of them.
# Kafka is scripts/kafka-reference.sh (4.1.1, KRaft single node, page-cache durability, 1 GiB
# heap); Ringlet runs with num.io.threads=2 on this 2-core machine and its defaults (direct I/O
# where the file system takes it). Neither fsyncs per message outside `durable`. Ringlet keeps
# 8 GiB per partition (log.retention.bytes, checked every 5 s): at its rate a 60 s run writes more
# than this disk holds, so retention deletes segments while it runs (work Kafka is not asked for).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}; SECS=${2:-20}; PARTS=${3:-2}
BIN=${RINGLET_BIN:-target/release/ringlet}
LOADS=${LOADS:-acks1 acks1x100 keyed acksall durable omb perftest}
MANY=${MANY:-10000}
[ -x "$BIN" ] || cargo build --release -q -p ringlet-cli
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
OUT=${OUT:-$(mktemp -d /tmp/ringlet-vs-kafka-XXXX)}   # an earlier run's OUT: its ceilings are kept
LONG=${LONG:-60}
COMMON=(--record-size 1024 --batch-size 262144 --max-in-flight 5 --warmup 2
        --linger-ms 2 --quiet --output json)
echo "reports in $OUT" >&2

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
topics() { compat/bin/kafka-topics.sh --bootstrap-server "$@" >/dev/null 2>&1; }
rate() { # records/s of the omb load: RATE, or half of Kafka's first acks1 rate
  if [ -n "${RATE:-}" ]; then echo "$RATE"; return; fi
  python3 -c "import json,sys; print(int(json.load(open(sys.argv[1]))['produced']['records_per_s'] / 2))" \
    "$OUT/kafka-1-acks1.json" 2>/dev/null || echo 50000
}

# load SIDE ROUND LOAD BOOTSTRAP
one_load() {
  local side=$1 round=$2 load=$3 boot=$4 out="$OUT/$1-$2-$3"
  local lg=("$BIN" loadgen --bootstrap-server "$boot" --topic "$load-$round" "${COMMON[@]}")
  local secs=$SECS; [ "$load" = acks1 ] && secs=$LONG
  lg+=(--duration "$secs")
  case $load in
    acks1) "${lg[@]}" --partitions "$PARTS" --producers 2 --consumers 0 --acks 1 >"$out.json" ;;
    acks1x100) "${lg[@]}" --partitions 100 --producers 2 --consumers 0 --acks 1 >"$out.json" ;;
    keyed) "${lg[@]}" --partitions "$PARTS" --producers 2 --consumers 0 --acks 1 \
             --keys 100000 >"$out.json" ;;
    acksall) "${lg[@]}" --partitions "$PARTS" --producers 1 --consumers 1 --acks all >"$out.json" ;;
    durable) topics "$boot" --create --topic "$load-$round" --partitions "$PARTS" \
               --replication-factor 1 --config flush.messages=1
             "${lg[@]}" --partitions "$PARTS" --producers 1 --consumers 0 --acks all >"$out.json" ;;
    omb) "${lg[@]}" --partitions 100 --producers 4 --consumers 4 --acks all \
           --rate "$(rate)" >"$out.json" ;;
    perftest) compat/bin/kafka-producer-perf-test.sh --topic "$load-$round" --num-records 200000 \
               --record-size 1024 --throughput -1 \
               --producer-props "bootstrap.servers=$boot" acks=1 linger.ms=2 batch.size=262144 \
               >"$out.txt" 2>&1 ;;
  esac
}

# measure SIDE ROUND LOAD PID BOOTSTRAP: one load, with the broker's CPU around it.
measure() {
  local side=$1 round=$2 load=$3 pid=$4 boot=$5 t0 t1
  t0=$(cpu_ticks "$pid")
  one_load "$side" "$round" "$load" "$boot"
  t1=$(cpu_ticks "$pid")
  echo "$(( t1 - t0 )) $(rss_kb "$pid")" >"$OUT/$side-$round-$load.cpu"
}

# many SIDE PID BOOTSTRAP: MANY partitions, created, idle, then loaded.
many() {
  local side=$1 pid=$2 boot=$3 t0 t1 c0 c1
  t0=$(date +%s.%N)
  # Kafka (KRaft) refuses a request of more than 10,000 records ("Unable to perform excessively
  # large batch operation": the topic record plus one per partition), so the topic is made with
  # at most 5,000 partitions and then grown, on both brokers alike.
  topics "$boot" --create --topic many --partitions "$(( MANY < 5000 ? MANY : 5000 ))" \
    --replication-factor 1
  local n=5000
  while [ "$n" -lt "$MANY" ]; do
    n=$(( n + 5000 < MANY ? n + 5000 : MANY ))
    topics "$boot" --alter --topic many --partitions "$n"
  done
  t1=$(date +%s.%N)
  sleep 5   # leadership and files settle
  c0=$(cpu_ticks "$pid"); sleep 10; c1=$(cpu_ticks "$pid")
  echo "$(echo "$t1 - $t0" | bc) $(( c1 - c0 )) $(rss_kb "$pid")" >"$OUT/$side-many-idle.txt"
  c0=$(cpu_ticks "$pid")
  "$BIN" loadgen --bootstrap-server "$boot" --topic many --partitions "$MANY" --record-size 1024 \
    --batch-size 16384 --max-in-flight 5 --warmup 2 --duration "$SECS" --linger-ms 5 --quiet \
    --output json --producers 2 --consumers 0 --acks 1 >"$OUT/$side-many-load.json" || true
  c1=$(cpu_ticks "$pid")
  echo "$(( c1 - c0 )) $(rss_kb "$pid")" >"$OUT/$side-many-load.cpu"
}

# Each load runs on a broker started for it with empty data (removed when it stops): at these
# rates a round's loads together write more than the disk holds, and no load inherits another's
# page cache or segments.
kafka_broker() { # ROUND LOAD|many
  local boot pid
  boot=$(scripts/kafka-reference.sh start | awk '/^bootstrap/ {print $2}')
  pid=$(cat .cache/kafka-reference/pid)
  if [ "$2" = many ]; then many kafka "$pid" "$boot"; else measure kafka "$1" "$2" "$pid" "$boot"; fi
  scripts/kafka-reference.sh stop >/dev/null
  sync
}

ringlet_broker() { # ROUND LOAD|many
  local port=19800 data pid
  data=$(mktemp -d /tmp/ringlet-vs-data-XXXX)
  "$BIN" serve --override "listeners=PLAINTEXT://127.0.0.1:$port" --override "log.dirs=$data" \
    --override num.io.threads=2 --override log.retention.bytes=8589934592 \
    --override log.retention.check.interval.ms=5000 >"$data.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  if [ "$2" = many ]; then many ringlet "$pid" "127.0.0.1:$port"
  else measure ringlet "$1" "$2" "$pid" "127.0.0.1:$port"; fi
  kill "$pid"; wait "$pid" || true
  rm -rf "$data" "$data.log"; sync
}

ceilings() { # fio and iperf3 on the file system the brokers use
  local dir; dir=$(mktemp -d /tmp/ringlet-vs-fio-XXXX)
  local f=(--directory="$dir" --name=c --size=4g --runtime=8 --time_based --output-format=json)
  if command -v fio >/dev/null; then
    fio "${f[@]}" --rw=write --bs=256k --ioengine=io_uring --iodepth=4 --direct=1 >"$OUT/fio-direct-write.json"
    fio "${f[@]}" --rw=write --bs=256k --ioengine=psync --direct=0 --end_fsync=1 >"$OUT/fio-buffered-write.json"
    sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
    fio "${f[@]}" --rw=read --bs=256k --ioengine=io_uring --iodepth=4 --direct=1 >"$OUT/fio-direct-read.json"
    # The durable row's yardstick: a direct write + fdatasync loop of a group commit's size.
    fio "${f[@]}" --rw=write --bs=64k --ioengine=psync --direct=1 --fdatasync=1 >"$OUT/fio-direct-sync-write.json"
  fi
  rm -rf "$dir"
  if command -v iperf3 >/dev/null; then
    iperf3 -s -1 -p 19751 >/dev/null 2>&1 & sleep 0.5
    iperf3 -c 127.0.0.1 -p 19751 -t 5 -J >"$OUT/iperf3.json" || true
    wait || true
  fi
}

[ -e "$OUT/fio-direct-write.json" ] || ceilings
for r in $(seq "$ROUNDS"); do
  for load in $LOADS; do kafka_broker "$r" "$load"; ringlet_broker "$r" "$load"; done
done
if [ "$MANY" -gt 0 ]; then kafka_broker - many; ringlet_broker - many; fi

python3 "$(dirname "$0")/vs_kafka_report.py" "$OUT" "$ROUNDS" "$(getconf CLK_TCK)" "$LOADS"
