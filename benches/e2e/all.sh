#!/usr/bin/env bash
# Every whole-system row of docs/benchmarks.md in one run, with the machine's limits measured in
# the same sitting: loopback (iperf3) and the generator's ceiling, ringlet loadgen against the
# broker (acks=1, acks=all, half rate), confluent-kafka and kcat producing, consuming on the copy
# and splice paths, start-up with 10,000 partitions, 1 GB recovery, durable produce against an
# fdatasync loop. Usage: benches/e2e/all.sh [SECONDS_PER_LOADGEN_RUN]  (release build, .venv)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q
echo "### ringlet loadgen, limits in the same run"
bash benches/e2e/loadgen.sh "${1:-10}"
echo "### existing clients: produce and consume"
bash benches/e2e/run.sh
echo "### start-up, recovery, durable produce"
.venv/bin/python benches/e2e/startup_recovery.py
