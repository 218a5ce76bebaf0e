#!/usr/bin/env bash
# Kafka's bin/kafka-share-groups.sh: runs org.apache.kafka.tools.consumer.group.ShareGroupCommand from the Maven jars (scripts/kafka-reference.sh fetch).
exec "$(dirname "$0")/../../scripts/kafka-reference.sh" tool org.apache.kafka.tools.consumer.group.ShareGroupCommand "$@"
