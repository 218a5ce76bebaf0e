#!/usr/bin/env bash
# Kafka's bin/kafka-console-share-consumer.sh: runs org.apache.kafka.tools.consumer.ConsoleShareConsumer from the Maven jars (scripts/kafka-reference.sh fetch).
exec "$(dirname "$0")/../../scripts/kafka-reference.sh" tool org.apache.kafka.tools.consumer.ConsoleShareConsumer "$@"
