#!/usr/bin/env bash
# Compatibility suites: clients and tools nobody here wrote, judged against a fresh broker.
#
#   scripts/compat.sh                    # every suite against a fresh `ringlet serve`
#   scripts/compat.sh --against kafka    # the same suites against the reference Apache Kafka
#   scripts/compat.sh --full             # franz-go's whole kgo suite, not only its allowlist
#   scripts/compat.sh --suite java ...   # only the named suites (java tools streams connect franz-go examples differential)
#
# Prints one line per suite, exactly `SUITE: N passed, M failed`, then the failures. Against
# Ringlet a failure passes the run only when compat/expected-failures.txt lists it with a reason;
# against Kafka nothing is excused except the franz-go tests its allowlist leaves out. Caches: the
# Maven repository (~/.m2), the Kafka jars (.cache/kafka) and the Go module and build caches
# (.cache/go), all outside git.
set -euo pipefail
# The whole script is one block, so bash reads all of it before running any: editing it while a
# run is under way cannot change that run.
{
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

AGAINST=ringlet
FULL=0
SUITES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --against) AGAINST="$2"; shift 2 ;;
    --full) FULL=1; shift ;;
    --suite) SUITES+=("$2"); shift 2 ;;
    *) echo "usage: $0 [--against ringlet|kafka] [--full] [--suite NAME]..." >&2; exit 2 ;;
  esac
done
[ ${#SUITES[@]} -eq 0 ] && SUITES=(java tools streams connect franz-go examples differential)
case "$AGAINST" in ringlet|kafka) ;; *) echo "--against ringlet or kafka" >&2; exit 2 ;; esac

OUT="$(mktemp -d /tmp/ringlet-compat-XXXXXX)"
RESULTS="$OUT/results.jsonl"
SUMMARY="$OUT/summary.txt"
EXPECTED=()
[ "$AGAINST" = ringlet ] && EXPECTED=(--expected "$ROOT/compat/expected-failures.txt")
PY=python3
[ -x "$ROOT/.venv/bin/python" ] && PY="$ROOT/.venv/bin/python"
export GOPATH="$ROOT/.cache/go" GOMODCACHE="$ROOT/.cache/go/mod" GOCACHE="$ROOT/.cache/go/build" GOFLAGS=-modcacherw
export GOTOOLCHAIN=local
MVN=(mvn -B -q -Dstyle.color=never)

RINGLET_PID=""
SECURE_PID=""
SCRAM_SEEDS=""
KAFKA_DIR="$OUT/kafka"
cleanup() {
  for pid in $RINGLET_PID $SECURE_PID; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  # A broker the streams suite restarted (restart-broker.sh) is no child of this shell.
  if [ -f "$OUT/ringlet/pid" ]; then
    local pid; pid="$(cat "$OUT/ringlet/pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  if [ "$AGAINST" = kafka ]; then KAFKA_REFERENCE_DIR="$KAFKA_DIR" scripts/kafka-reference.sh stop || true; fi
  rm -rf "$OUT/ringlet/data" "$OUT/secure/data"  # the logs stay for a look after a failure
}
trap cleanup EXIT

# Both brokers run with a 0 ms initial rebalance delay so that group tests do not wait 3 s a join;
# Ringlet's cleaner checks every 500 ms (not 15 s) so that the tools suite sees compaction soon.
start_ringlet() {
  local bin="${RINGLET_BIN:-$ROOT/target/debug/ringlet}"
  [ -x "$bin" ] || cargo build -q -p ringlet-cli --bin ringlet
  local port
  port="$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  mkdir -p "$OUT/ringlet"
  "$bin" serve --override "listeners=PLAINTEXT://127.0.0.1:$port" --override "log.dirs=$OUT/ringlet/data" \
    --override group.initial.rebalance.delay.ms=0 --override log.cleaner.backoff.ms=500 \
    --override group.share.min.record.lock.duration.ms=1000 \
    ${RINGLET_IO_BACKEND:+--override ringlet.io.backend=$RINGLET_IO_BACKEND} \
    >"$OUT/ringlet/broker.log" 2>&1 &
  RINGLET_PID=$!
  for _ in $(seq 1 300); do
    if $PY - "$port" <<'EOF' 2>/dev/null
import socket, struct, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1) as s:
    body = struct.pack(">hhih", 18, 0, 1, -1)
    s.sendall(struct.pack(">i", len(body)) + body)
    s.settimeout(2)
    sys.exit(0 if len(s.recv(4)) == 4 else 1)
EOF
    then BOOTSTRAP="127.0.0.1:$port"; write_restart "$bin" "$port"; return; fi
    kill -0 "$RINGLET_PID" 2>/dev/null || { cat "$OUT/ringlet/broker.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "ringlet did not start" >&2; exit 1
}

# `$OUT/restart-broker.sh`: kill -9 the broker and start it again on the same port and data (the
# streams suite restarts the broker between two runs of its application: -Drestart.command).
write_restart() {
  local bin="$1" port="$2" backend=""
  [ -n "${RINGLET_IO_BACKEND:-}" ] && backend="--override ringlet.io.backend=$RINGLET_IO_BACKEND"
  echo "$RINGLET_PID" >"$OUT/ringlet/pid"
  {
    echo '#!/usr/bin/env bash'
    echo 'set -eu'
    echo "pidfile='$OUT/ringlet/pid'"
    echo 'kill -9 "$(cat "$pidfile")" 2>/dev/null || true'
    # (Gone or a zombie: the first broker is compat.sh's child, reaped only at its exit.)
    echo 'pid="$(cat "$pidfile")"'
    echo 'while st="$(cut -d" " -f3 "/proc/$pid/stat" 2>/dev/null)" && [ "$st" != Z ]; do sleep 0.05; done'
    echo "setsid '$bin' serve --override 'listeners=PLAINTEXT://127.0.0.1:$port' --override 'log.dirs=$OUT/ringlet/data' --override group.initial.rebalance.delay.ms=0 --override log.cleaner.backoff.ms=500 --override group.share.min.record.lock.duration.ms=1000 $backend >>'$OUT/ringlet/broker.log' 2>&1 </dev/null &"
    echo 'echo $! >"$pidfile"'
    echo 'for _ in $(seq 1 300); do'
    echo "  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then exit 0; fi"
    echo '  sleep 0.1'
    echo 'done'
    echo 'echo "the restarted broker does not listen" >&2; exit 1'
  } >"$OUT/restart-broker.sh"
  chmod +x "$OUT/restart-broker.sh"
}

# The reference with a SASL_SSL listener too, set up as the secured Ringlet (for SecurityTest).
KAFKA_SECURE_CONFIG=""
start_kafka() {
  local out
  out="$(KAFKA_REFERENCE_DIR="$KAFKA_DIR" KAFKA_REFERENCE_REBALANCE_DELAY_MS=0 KAFKA_REFERENCE_SECURE=1 \
    scripts/kafka-reference.sh start)"
  BOOTSTRAP="$(echo "$out" | tail -1 | awk '{print $2}')"
  KAFKA_SECURE_CONFIG="$(echo "$out" | awk '$1 == "secure" {print $2}')"
}

summarize() { "$PY" compat/summarize.py "$@" "${EXPECTED[@]}" --results-json "$RESULTS" | tee -a "$SUMMARY"; }

STATUS=0
run_suite() {
  local name="$1"
  echo "== suite $name (against $AGAINST at $BOOTSTRAP)" >&2
  if ! "suite_$name"; then STATUS=1; fi
}

# A second Ringlet for the Java suite's SecurityTest: a SASL_SSL listener (certificates made here
# with openssl), PLAIN for the super user admin, SCRAM for the users the test creates, ACLs on.
# Writes the admin's client properties to $OUT/secure/admin.properties.
start_secure_ringlet() {
  local d="$OUT/secure" bin="${RINGLET_BIN:-$ROOT/target/debug/ringlet}" port sasl_port
  if [ -n "$SECURE_PID" ]; then return 0; fi
  mkdir -p "$d"
  # A SCRAM-SHA-512 user for franz-go's SCRAM tests, made before the start as kafka-storage
  # format --add-scram would.
  "$bin" users --data-dir "$d/data" --add --user kgo --password kgo-secret --mechanism SCRAM-SHA-512 \
    >"$d/users.log" 2>&1 || { cat "$d/users.log" >&2; return 1; }
  (cd "$d" && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >server.ext &&
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=compat-ca &&
    openssl req -newkey rsa:2048 -nodes -keyout broker.key -out broker.csr -subj /CN=localhost &&
    openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out broker.pem -days 2 \
      -extfile server.ext) >"$d/openssl.log" 2>&1 || { cat "$d/openssl.log" >&2; return 1; }
  port="$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  sasl_port="$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  SCRAM_SEEDS="127.0.0.1:$sasl_port"
  "$bin" serve --override "listeners=SASL_SSL://127.0.0.1:$port,SASL_PLAINTEXT://127.0.0.1:$sasl_port" \
    --override "log.dirs=$d/data" \
    --override "ssl.keystore.certificate.chain=$d/broker.pem" --override "ssl.keystore.key=$d/broker.key" \
    --override "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512" \
    --override 'listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_admin="admin-secret";' \
    --override 'listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_admin="admin-secret";' \
    --override authorizer.class.name=kafka.security.authorizer.AclAuthorizer --override super.users=User:admin \
    --override group.initial.rebalance.delay.ms=0 >"$d/broker.log" 2>&1 &
  SECURE_PID=$!
  cat >"$d/admin.properties" <<EOF
bootstrap.servers=127.0.0.1:$port
security.protocol=SASL_SSL
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret";
ssl.truststore.type=PEM
ssl.truststore.location=$d/ca.pem
EOF
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    kill -0 "$SECURE_PID" 2>/dev/null || { cat "$d/broker.log" >&2; return 1; }
    sleep 0.1
  done
  return 1
}

suite_java() {
  rm -rf compat/java/target/surefire-reports
  local security=()
  if [ "$AGAINST" = ringlet ]; then
    start_secure_ringlet && security=(-Dsecurity.config="$OUT/secure/admin.properties")
  elif [ -n "$KAFKA_SECURE_CONFIG" ]; then
    security=(-Dsecurity.config="$KAFKA_SECURE_CONFIG")
  fi
  "${MVN[@]}" -f compat/java/pom.xml test -Dbootstrap="$BOOTSTRAP" -DexcludedGroups=streams "${security[@]}" \
    -Dsurefire.failIfNoSpecifiedTests=false -Dmaven.test.failure.ignore=true >"$OUT/java.log" 2>&1 \
    || { tail -40 "$OUT/java.log" >&2; }
  summarize java --junit compat/java/target/surefire-reports
}

suite_streams() {
  rm -rf compat/java/target/surefire-reports
  local restart=()
  [ "$AGAINST" = ringlet ] && restart=(-Drestart.command="$OUT/restart-broker.sh")
  "${MVN[@]}" -f compat/java/pom.xml test -Dbootstrap="$BOOTSTRAP" -Dgroups=streams "${restart[@]}" \
    -Dmaven.test.failure.ignore=true >"$OUT/streams.log" 2>&1 || { tail -40 "$OUT/streams.log" >&2; }
  summarize streams --junit compat/java/target/surefire-reports
}

suite_tools() {
  scripts/kafka-reference.sh fetch
  local logdir=""; [ -d "$OUT/ringlet/data" ] && logdir="$OUT/ringlet/data"
  COMPAT_BOOTSTRAP="$BOOTSTRAP" COMPAT_LOG_DIR="$logdir" "$PY" -m pytest -q -p no:cacheprovider \
    --junitxml="$OUT/tools.xml" compat/tools >"$OUT/tools.log" 2>&1 || tail -60 "$OUT/tools.log" >&2
  summarize tools --junit "$OUT/tools.xml"
}

# franz-go's own integration tests (kgo and kadm), compiled from the module the Go proxy serves.
# Only the tests compat/franz-go/allowlist.txt marks `pass` run, unless --full.
suite_franz-go() {
  local bin="$ROOT/.cache/go/bin"
  mkdir -p "$bin"
  (cd compat/franz-go && go mod download && \
    go test -c -o "$bin/kgo.test" github.com/twmb/franz-go/pkg/kgo && \
    go test -c -o "$bin/kadm.test" github.com/twmb/franz-go/pkg/kadm && \
    go test -c -o "$bin/ringlet.test" .) >"$OUT/franz-go-build.log" 2>&1 \
    || { cat "$OUT/franz-go-build.log" >&2; return 1; }
  local run=()
  if [ "$FULL" = 0 ]; then
    run=(-test.run "^($(awk '$1 == "pass" {print $2}' compat/franz-go/allowlist.txt | paste -sd'|'))\$")
  fi
  : >"$OUT/franz-go.json"
  # The SCRAM tests log in to the secure broker's SASL_PLAINTEXT listener as the user made there.
  local scram=()
  if [ "$AGAINST" = ringlet ] && start_secure_ringlet; then
    scram=(KGO_TEST_SCRAM_SEEDS="$SCRAM_SEEDS" KGO_TEST_SCRAM=kgo:kgo-secret:512)
  fi
  # ringlet: Ringlet's own tests written with franz-go (compat/franz-go/*_test.go).
  for pkg in kgo kadm ringlet; do
    # Tests run from a scratch folder: kgo writes nothing, but a test binary's cwd is its package's.
    (cd "$OUT" && env "${scram[@]}" KGO_SEEDS="$BOOTSTRAP" KGO_TEST_RF=1 KGO_TEST_RECORDS="${KGO_TEST_RECORDS:-20000}" \
      timeout 900 "$bin/$pkg.test" -test.v=test2json -test.timeout 14m "${run[@]}" 2>&1 \
      | go tool test2json -p "$pkg" >>"$OUT/franz-go.json") || true
  done
  if [ "$FULL" = 1 ]; then
    # The whole suite: report every result; the allowlist's skip lines say why each other fails.
    summarize franz-go --gotest "$OUT/franz-go.json" --allowlist compat/franz-go/allowlist.txt
  else
    summarize franz-go --gotest "$OUT/franz-go.json"
  fi
}

# The Java examples (examples/java): built by Maven, run as a user would run them.
suite_examples() {
  local topic="examples-$$-$RANDOM" producer=fail consumer=fail
  if ! "${MVN[@]}" -f examples/java/pom.xml package -DskipTests >"$OUT/examples-build.log" 2>&1; then
    cat "$OUT/examples-build.log" >&2
    summarize examples --named ProducerExample=fail ConsumerExample=fail
    return
  fi
  local cp="examples/java/target/ringlet-examples.jar:examples/java/target/lib/*"
  if timeout 120 java -cp "$cp" dev.ringlet.examples.ProducerExample "$BOOTSTRAP" "$topic" 100 \
      >"$OUT/examples-producer.log" 2>&1 && grep -q "sent 100 records" "$OUT/examples-producer.log"; then
    producer=pass
  else
    cat "$OUT/examples-producer.log" >&2
  fi
  if timeout 120 java -cp "$cp" dev.ringlet.examples.ConsumerExample "$BOOTSTRAP" "$topic" "examples-group-$$" 100 \
      >"$OUT/examples-consumer.log" 2>&1 && grep -q "consumed 100 records" "$OUT/examples-consumer.log"; then
    consumer=pass
  else
    cat "$OUT/examples-consumer.log" >&2
  fi
  summarize examples --named "ProducerExample=$producer" "ConsumerExample=$consumer"
}

# Kafka Connect: a distributed worker from Kafka's jars runs file connectors through the broker.
suite_connect() {
  scripts/kafka-reference.sh fetch
  BOOTSTRAP="$BOOTSTRAP" KAFKA_LIBS="$ROOT/.cache/kafka/libs" "$PY" -m pytest -q -p no:cacheprovider \
    --junitxml="$OUT/connect.xml" compat/connect >"$OUT/connect.log" 2>&1 || tail -80 "$OUT/connect.log" >&2
  summarize connect --junit "$OUT/connect.xml"
}

# Differential tests: the same scenarios on a fresh Ringlet and on the reference Kafka, compared
# (they start both brokers themselves, so they run once, whatever --against says).
suite_differential() {
  RINGLET_BIN="${RINGLET_BIN:-$ROOT/target/debug/ringlet}" "$PY" -m pytest -q -p no:cacheprovider \
    --junitxml="$OUT/differential.xml" compat/differential >"$OUT/differential.log" 2>&1 \
    || tail -80 "$OUT/differential.log" >&2
  summarize differential --junit "$OUT/differential.xml"
}

if [ "$AGAINST" = ringlet ]; then start_ringlet; else start_kafka; fi
for s in "${SUITES[@]}"; do
  if [ "$s" = differential ] && [ "$AGAINST" = kafka ]; then continue; fi
  run_suite "$s"
done
# Kept for compat/table.py, which regenerates docs/compatibility.md from the last run of each.
# A run of some suites replaces only theirs.
mkdir -p "$ROOT/.cache/compat"
"$PY" - "$RESULTS" "$ROOT/.cache/compat/results-$AGAINST.jsonl" <<'EOF' || true
import json, os, sys
new, keep = sys.argv[1], sys.argv[2]
merged = {}
for path in (keep, new):
    if os.path.exists(path):
        for line in open(path, encoding="utf-8"):
            rec = json.loads(line)
            merged[rec["suite"]] = rec
with open(keep, "w", encoding="utf-8") as f:
    for rec in merged.values():
        f.write(json.dumps(rec) + "\n")
EOF
echo "== compatibility summary (against $AGAINST; logs in $OUT)"
grep -E '^[a-z-]+: [0-9]+ passed, [0-9]+ failed$' "$SUMMARY" || true
exit $STATUS
}
