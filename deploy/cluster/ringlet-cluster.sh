#!/usr/bin/env bash
# Start, stop or query Ringlet on every host of the hosts file, over ssh (the seed's §1.2.2).
#   deploy/cluster/ringlet-cluster.sh start|stop|status [hosts-file]
# Each host runs `ringlet serve $RINGLET_CONF` in the background; its server.properties sets a
# distinct broker.id, its listeners, log.dirs and the shared zookeeper.connect (see
# docs/operations.md, "A three-broker cluster"). Stop sends SIGTERM: with
# controlled.shutdown.enable=true (the default) leadership moves to other in-sync replicas
# before the broker exits; the script waits for that exit host by host, so a rolling stop never
# takes two replicas of a partition away at once.
# RINGLET_HOME (default /opt/ringlet), RINGLET_CONF (default $RINGLET_HOME/server.properties),
# RINGLET_LOG (default $RINGLET_HOME/ringlet.log), RINGLET_SSH (default "ssh -T").
set -euo pipefail
action=${1:?usage: $0 start|stop|status [hosts-file]}
hosts_file=${2:-$(dirname "$0")/hosts}
RINGLET_HOME=${RINGLET_HOME:-/opt/ringlet}
RINGLET_CONF=${RINGLET_CONF:-$RINGLET_HOME/server.properties}
RINGLET_LOG=${RINGLET_LOG:-$RINGLET_HOME/ringlet.log}
SSH=${RINGLET_SSH:-ssh -T}
case "$action" in start|stop|status) ;; *) echo "unknown action $action" >&2; exit 2 ;; esac
hosts=$(sed 's/#.*$//;/^[[:space:]]*$/d' "$hosts_file")
for host in $hosts; do
  case "$action" in
    start)
      $SSH "$host" <<EOF
        [ -f ~/.bash_profile ] && source ~/.bash_profile
        cd $RINGLET_HOME
        nohup $RINGLET_HOME/ringlet serve $RINGLET_CONF >> $RINGLET_LOG 2>&1 < /dev/null &
EOF
      ;;
    stop)
      $SSH "$host" <<EOF
        pids=\$(pgrep -f "[r]inglet serve" || true)
        [ -z "\$pids" ] && exit 0
        kill -TERM \$pids
        for i in \$(seq 1 120); do
          pgrep -f "[r]inglet serve" >/dev/null || exit 0
          sleep 0.5
        done
        echo "ringlet did not exit in 60 s" >&2
        exit 1
EOF
      ;;
    status)
      $SSH "$host" <<EOF
        pgrep -fa "[r]inglet serve" || echo "not running"
EOF
      ;;
  esac
  echo "$action $host ringlet [ done ]"
  [ "$action" = status ] || sleep "${RINGLET_HOST_GAP:-1}"
done
echo "$action all ringlet [ done ]"
