package dev.ringlet.examples;

import java.util.Properties;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * A producer as the seed's "Java development" section writes one, on today's client.
 *
 * <p>Usage: {@code ProducerExample BOOTSTRAP TOPIC COUNT}. Sends COUNT keyed records and exits
 * non-zero if any was not acknowledged.
 *
 * <p>The seed's (old Scala producer) settings and what they became:
 * <ul>
 *   <li>{@code metadata.broker.list} → {@code bootstrap.servers}: any brokers of the cluster; the
 *       client learns the rest from Metadata.</li>
 *   <li>{@code request.required.acks} (0 / 1 / -1) → {@code acks} ("0", "1", "all"); "all" waits for
 *       every in-sync replica, the safe default since Kafka 3.0.</li>
 *   <li>{@code producer.type=async} → every send is asynchronous now: {@code send()} returns a
 *       Future and batches in the background; {@code .get()} on it makes a send synchronous.</li>
 *   <li>{@code queue.buffering.max.ms} → {@code linger.ms}: how long a batch waits to fill.</li>
 *   <li>{@code batch.num.messages} → {@code batch.size}: now a size in bytes per partition batch.</li>
 *   <li>{@code queue.buffering.max.messages} → {@code buffer.memory}: bytes the producer may buffer;
 *       {@code queue.enqueue.timeout.ms} → {@code max.block.ms}: how long send() blocks when full.</li>
 *   <li>{@code compression.codec} → {@code compression.type} (none, gzip, snappy, lz4, zstd).</li>
 *   <li>{@code message.send.max.retries} / {@code retry.backoff.ms} → {@code retries} (effectively
 *       unbounded now) bounded by {@code delivery.timeout.ms}, and {@code retry.backoff.ms}.</li>
 *   <li>{@code serializer.class} / {@code key.serializer.class} → {@code value.serializer} /
 *       {@code key.serializer}.</li>
 *   <li>{@code partitioner.class} → {@code partitioner.class} (keyed records go to
 *       murmur2(key) % partitions; unkeyed ones stick to a partition per batch).</li>
 *   <li>(new) {@code enable.idempotence=true}: retries never duplicate or reorder records.</li>
 * </ul>
 */
public final class ProducerExample {
  private ProducerExample() {}

  public static void main(String[] args) throws Exception {
    if (args.length != 3) {
      System.err.println("usage: ProducerExample BOOTSTRAP TOPIC COUNT");
      System.exit(2);
    }
    String topic = args[1];
    int count = Integer.parseInt(args[2]);
    Properties props = new Properties();
    props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    props.put(ProducerConfig.ACKS_CONFIG, "all");
    props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
    props.put(ProducerConfig.LINGER_MS_CONFIG, "5");
    props.put(ProducerConfig.BATCH_SIZE_CONFIG, "16384");
    props.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, "lz4");
    props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
    props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());

    AtomicInteger acked = new AtomicInteger();
    AtomicReference<Exception> failure = new AtomicReference<>();
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
      for (int i = 0; i < count; i++) {
        producer.send(new ProducerRecord<>(topic, "key-" + (i % 10), "message-" + i), (md, e) -> {
          if (e != null) {
            failure.compareAndSet(null, e);
          } else {
            acked.incrementAndGet();
          }
        });
      }
      producer.flush();
    }
    if (failure.get() != null) {
      System.err.println("send failed: " + failure.get());
      System.exit(1);
    }
    System.out.println("sent " + acked.get() + " records to " + topic);
    System.exit(acked.get() == count ? 0 : 1);
  }
}
