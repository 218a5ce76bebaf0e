#!/usr/bin/env bash
# Start, stop or query ZooKeeper on every host of the hosts file, over ssh (the seed's §1.1.2).
#   deploy/cluster/zk-cluster.sh start|stop|status [hosts-file]
# ZOOKEEPER_HOME: where bin/zkServer.sh lives on the hosts (Debian: /usr/share/zookeeper).
# RINGLET_SSH: the ssh command (default "ssh -T"); needs password-less login to every host.
set -euo pipefail
action=${1:?usage: $0 start|stop|status [hosts-file]}
hosts_file=${2:-$(dirname "$0")/hosts}
ZOOKEEPER_HOME=${ZOOKEEPER_HOME:-/usr/share/zookeeper}
SSH=${RINGLET_SSH:-ssh -T}
case "$action" in start|stop|status) ;; *) echo "unknown action $action" >&2; exit 2 ;; esac
hosts=$(sed 's/#.*$//;/^[[:space:]]*$/d' "$hosts_file")
for host in $hosts; do
  $SSH "$host" <<EOF
    [ -f ~/.bash_profile ] && source ~/.bash_profile
    $ZOOKEEPER_HOME/bin/zkServer.sh $action
EOF
  echo "$action $host ZooKeeper [ done ]"
  [ "$action" = status ] || sleep "${RINGLET_HOST_GAP:-1}"
done
echo "$action all ZooKeeper [ done ]"
