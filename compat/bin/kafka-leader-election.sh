#!/usr/bin/env bash
# Kafka's bin/kafka-leader-election.sh: runs org.apache.kafka.tools.LeaderElectionCommand from the Maven jars (scripts/kafka-reference.sh fetch).
exec "$(dirname "$0")/../../scripts/kafka-reference.sh" tool org.apache.kafka.tools.LeaderElectionCommand "$@"
