#!/usr/bin/env bash
# The reference Apache Kafka broker, for side-by-side runs with Ringlet.
#
#   scripts/kafka-reference.sh start   # fetch (Maven), format KRaft storage, start; last line: bootstrap 127.0.0.1:PORT
#   scripts/kafka-reference.sh stop    # end it and remove its data
#   scripts/kafka-reference.sh fetch   # only fetch the jars into .cache/kafka/libs
#   scripts/kafka-reference.sh tool CLASS ARGS...   # run one of Kafka's tool classes from those jars
#   KAFKA_REFERENCE_SECURE=1 ... start   # also a SASL_SSL listener; prints `secure ADMIN.PROPERTIES` before the bootstrap line
#   KAFKA_REFERENCE_FEATURES=share.version=1 ... start   # format with a feature level (kafka-storage format --feature)
#   KAFKA_REFERENCE_VERSION=4.2.2 ... start   # another Kafka release than compat/kafka/pom.xml's (jars in .cache/kafka/libs-VERSION)
#
# Kafka comes from Maven Central only (compat/kafka/pom.xml, `mvn dependency:copy-dependencies`),
# into the ignored .cache/kafka/libs. The broker is a single KRaft node (broker and controller in
# one process) on free loopback ports, with the settings in which Ringlet's defaults differ from a
# Kafka cluster's made the same as Ringlet's (replication factors 1 on one node). Its state lives
# in $KAFKA_REFERENCE_DIR (default .cache/kafka-reference), so two can run with two folders.
set -euo pipefail
# One block, read whole before it runs: editing the script cannot change a run under way.
{
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VERSION="${KAFKA_REFERENCE_VERSION:-}"
LIBS="$ROOT/.cache/kafka/libs${VERSION:+-$VERSION}"
DIR="${KAFKA_REFERENCE_DIR:-$ROOT/.cache/kafka-reference}"

fetch() {
  if [ ! -f "$LIBS/.complete" ] || [ "$ROOT/compat/kafka/pom.xml" -nt "$LIBS/.complete" ]; then
    echo "== fetching Apache Kafka through Maven into .cache/kafka/libs" >&2
    rm -rf "$LIBS"
    local pom="$ROOT/compat/kafka/pom.xml"
    if [ -n "$VERSION" ]; then
      # Another release: the broker and tools only (Connect's jars are not served for every one).
      mkdir -p "$ROOT/.cache/kafka"
      pom="$ROOT/.cache/kafka/pom-$VERSION.xml"
      sed '/<artifactId>connect-/d' "$ROOT/compat/kafka/pom.xml" >"$pom"
    fi
    mvn -q -B -f "$pom" dependency:copy-dependencies \
      ${VERSION:+-Dkafka.version=$VERSION} -DoutputDirectory="$LIBS" >&2
    touch "$LIBS/.complete"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# True when something on PORT answers an ApiVersions request.
answers() {
  python3 - "$1" <<'EOF'
import socket, struct, sys
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1) as s:
        body = struct.pack(">hhih", 18, 0, 1, -1)
        s.sendall(struct.pack(">i", len(body)) + body)
        s.settimeout(2)
        sys.exit(0 if len(s.recv(4)) == 4 else 1)
except OSError:
    sys.exit(1)
EOF
}

tool() {
  fetch
  local class="$1"; shift
  exec java -Xmx512m -Dlog4j2.configurationFile="$ROOT/compat/kafka/log4j2-tools.properties" \
    -cp "$LIBS/*" "$class" "$@"
}

start() {
  fetch
  if [ -f "$DIR/pid" ] && kill -0 "$(cat "$DIR/pid")" 2>/dev/null; then
    echo "bootstrap $(cat "$DIR/bootstrap")"
    return
  fi
  rm -rf "$DIR"
  mkdir -p "$DIR/data" "$DIR/logs"
  local port cport sport="" listeners advertised
  port="$(free_port)"
  cport="$(free_port)"
  while [ "$cport" = "$port" ]; do cport="$(free_port)"; done
  listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
  advertised="PLAINTEXT://127.0.0.1:$port"
  if [ "${KAFKA_REFERENCE_SECURE:-0}" = 1 ]; then
    sport="$(free_port)"
    listeners="$listeners,SASL_SSL://127.0.0.1:$sport"
    advertised="$advertised,SASL_SSL://127.0.0.1:$sport"
  fi
  cat >"$DIR/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
log.dirs=$DIR/data
# As Ringlet's defaults on one node.
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=50
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=${KAFKA_REFERENCE_REBALANCE_DELAY_MS:-3000}
EOF
  if [ -n "$sport" ]; then secure_config "$sport"; fi
  local cluster_id
  cluster_id="$(java -cp "$LIBS/*" -Dlog4j2.configurationFile="$ROOT/compat/kafka/log4j2-tools.properties" \
    kafka.tools.StorageTool random-uuid)"
  java -cp "$LIBS/*" -Dlog4j2.configurationFile="$ROOT/compat/kafka/log4j2-tools.properties" \
    kafka.tools.StorageTool format -t "$cluster_id" -c "$DIR/server.properties" \
    ${KAFKA_REFERENCE_FEATURES:+--feature "$KAFKA_REFERENCE_FEATURES"} >"$DIR/logs/format.log" 2>&1
  # setsid: the broker outlives this script and is not hit by the caller's job-control signals.
  setsid java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dkafka.logs.dir="$DIR/logs" -Dlog4j2.configurationFile="$ROOT/compat/kafka/log4j2.properties" \
    -cp "$LIBS/*" kafka.Kafka "$DIR/server.properties" >"$DIR/logs/stdout.log" 2>&1 </dev/null &
  echo $! >"$DIR/pid"
  echo "127.0.0.1:$port" >"$DIR/bootstrap"
  local deadline=$((SECONDS + 90))
  until answers "$port"; do
    if ! kill -0 "$(cat "$DIR/pid")" 2>/dev/null; then
      echo "kafka exited; its log:" >&2
      tail -40 "$DIR/logs/stdout.log" "$DIR/logs/server.log" >&2 || true
      exit 1
    fi
    if [ $SECONDS -gt $deadline ]; then
      echo "kafka did not answer on 127.0.0.1:$port in 90 s" >&2
      stop
      exit 1
    fi
    sleep 0.5
  done
  # Serving means the broker has registered with its controller, so Metadata lists it.
  until grep -q "Kafka Server started" "$DIR/logs/server.log" 2>/dev/null; do
    [ $SECONDS -gt $deadline ] && { echo "kafka never logged its start" >&2; stop; exit 1; }
    sleep 0.5
  done
  if [ -n "$sport" ]; then echo "secure $DIR/admin.properties"; fi
  echo "bootstrap 127.0.0.1:$port"
}

# KAFKA_REFERENCE_SECURE=1: a SASL_SSL listener as well (PEM certificates made with openssl, PLAIN
# for the super user admin, SCRAM for users made over the AdminClient, the StandardAuthorizer with
# ANONYMOUS, the PLAINTEXT and controller listeners' principal, a super user too), and the admin's
# client properties in $DIR/admin.properties: the same set-up scripts/compat.sh gives Ringlet.
secure_config() {
  local sport="$1" t="$DIR/tls"
  mkdir -p "$t"
  (cd "$t" && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >server.ext &&
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=reference-ca &&
    openssl req -newkey rsa:2048 -nodes -keyout broker.key -out broker.csr -subj /CN=localhost &&
    openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out broker.pem -days 2 \
      -extfile server.ext && cat broker.key broker.pem >keystore.pem) >"$DIR/logs/openssl.log" 2>&1
  cat >>"$DIR/server.properties" <<EOF
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location=$t/keystore.pem
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:ANONYMOUS
EOF
  cat >"$DIR/admin.properties" <<EOF
bootstrap.servers=127.0.0.1:$sport
security.protocol=SASL_SSL
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret";
ssl.truststore.type=PEM
ssl.truststore.location=$t/ca.pem
EOF
}

stop() {
  if [ -f "$DIR/pid" ]; then
    local pid
    pid="$(cat "$DIR/pid")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  rm -rf "$DIR"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  fetch) fetch ;;
  tool) shift; tool "$@" ;;
  *) echo "usage: $0 start|stop|fetch|tool CLASS ARGS..." >&2; exit 2 ;;
esac
exit 0
}
