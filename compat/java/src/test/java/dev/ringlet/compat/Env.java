package dev.ringlet.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** The broker under test (-Dbootstrap) and small helpers every test uses. */
final class Env {
  private static final AtomicLong SEQ = new AtomicLong();

  private Env() {}

  static String bootstrap() {
    return System.getProperty("bootstrap", "127.0.0.1:9092");
  }

  /** A topic or group name no other test or run uses. */
  static String unique(String prefix) {
    return prefix + "-" + ProcessHandle.current().pid() + "-" + System.nanoTime() + "-" + SEQ.incrementAndGet();
  }

  static Properties base() {
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap());
    return p;
  }

  static Admin admin() {
    Properties p = base();
    p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
    p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
    return Admin.create(p);
  }

  static KafkaProducer<String, String> producer(Map<String, Object> extra) {
    Properties p = base();
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
    p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
    p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
    p.putAll(extra);
    return new KafkaProducer<>(p);
  }

  static KafkaConsumer<String, String> consumer(String group, Map<String, Object> extra) {
    Properties p = base();
    p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
    if (group != null) {
      p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    }
    p.putAll(extra);
    return new KafkaConsumer<>(p);
  }

  /** Creates a topic and waits until every partition has a leader. */
  static String topic(Admin admin, String prefix, int partitions, Map<String, String> configs) throws Exception {
    String name = unique(prefix);
    admin.createTopics(List.of(new NewTopic(name, partitions, (short) 1).configs(configs))).all().get(30, TimeUnit.SECONDS);
    long deadline = System.currentTimeMillis() + 30_000;
    while (true) {
      try {
        var d = admin.describeTopics(Set.of(name)).allTopicNames().get(10, TimeUnit.SECONDS).get(name);
        if (d.partitions().size() == partitions && d.partitions().stream().allMatch(p -> p.leader() != null)) {
          return name;
        }
      } catch (Exception e) {
        if (System.currentTimeMillis() > deadline) {
          throw e;
        }
      }
      if (System.currentTimeMillis() > deadline) {
        throw new AssertionError("topic " + name + " has no leaders after 30 s");
      }
      Thread.sleep(100);
    }
  }

  static String topic(Admin admin, String prefix, int partitions) throws Exception {
    return topic(admin, prefix, partitions, Map.of());
  }

  /** Polls until `count` records arrived or `timeout` passed; returns what arrived. */
  static List<ConsumerRecord<String, String>> pollUntil(KafkaConsumer<String, String> c, int count, Duration timeout) {
    List<ConsumerRecord<String, String>> got = new ArrayList<>();
    long deadline = System.nanoTime() + timeout.toNanos();
    while (got.size() < count && System.nanoTime() < deadline) {
      for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
        got.add(r);
      }
    }
    return got;
  }

  static <T> Collection<T> nonNull(Collection<T> c) {
    return c == null ? List.of() : c;
  }
}
