package dev.ringlet.examples;

import java.time.Duration;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * A group consumer as the seed's "Java development" section writes one, on today's client.
 *
 * <p>Usage: {@code ConsumerExample BOOTSTRAP TOPIC GROUP COUNT}. Reads until COUNT records arrived
 * (or 60 s passed), commits, and exits non-zero if fewer arrived.
 *
 * <p>The seed's (old high-level consumer) settings and what they became:
 * <ul>
 *   <li>{@code zookeeper.connect} → {@code bootstrap.servers}: consumers talk to brokers only; the
 *       group coordinator (a broker) keeps membership and offsets in {@code __consumer_offsets}.</li>
 *   <li>{@code group.id} → {@code group.id}.</li>
 *   <li>{@code auto.commit.enable} → {@code enable.auto.commit}; {@code auto.commit.interval.ms} →
 *       {@code auto.commit.interval.ms} (commits happen inside poll() and on close).</li>
 *   <li>{@code auto.offset.reset} smallest / largest → earliest / latest (none: throw).</li>
 *   <li>{@code zookeeper.session.timeout.ms} → {@code session.timeout.ms} with
 *       {@code heartbeat.interval.ms}; and {@code max.poll.interval.ms} bounds the time between
 *       polls before the member is removed.</li>
 *   <li>{@code rebalance.max.retries} / {@code rebalance.backoff.ms} → handled by the group protocol
 *       ({@code partition.assignment.strategy}: range, roundrobin, sticky, cooperative-sticky).</li>
 *   <li>{@code fetch.message.max.bytes} → {@code max.partition.fetch.bytes} and {@code fetch.max.bytes};
 *       {@code fetch.wait.max.ms} → {@code fetch.max.wait.ms}; {@code fetch.min.bytes} → same.</li>
 *   <li>{@code consumer.timeout.ms} → the Duration given to poll().</li>
 * </ul>
 */
public final class ConsumerExample {
  private ConsumerExample() {}

  public static void main(String[] args) {
    if (args.length != 4) {
      System.err.println("usage: ConsumerExample BOOTSTRAP TOPIC GROUP COUNT");
      System.exit(2);
    }
    int want = Integer.parseInt(args[3]);
    Properties props = new Properties();
    props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    props.put(ConsumerConfig.GROUP_ID_CONFIG, args[2]);
    props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "true");
    props.put(ConsumerConfig.AUTO_COMMIT_INTERVAL_MS_CONFIG, "1000");
    props.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "45000");
    props.put(ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG, "1048576");
    props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());

    int got = 0;
    long deadline = System.currentTimeMillis() + 60_000;
    try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
      consumer.subscribe(List.of(args[1]));
      while (got < want && System.currentTimeMillis() < deadline) {
        for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
          got++;
          if (got <= 3) {
            System.out.printf("partition %d offset %d key %s value %s%n", r.partition(), r.offset(), r.key(), r.value());
          }
        }
      }
      consumer.commitSync();
    }
    System.out.println("consumed " + got + " records");
    System.exit(got == want ? 0 : 1);
  }
}
