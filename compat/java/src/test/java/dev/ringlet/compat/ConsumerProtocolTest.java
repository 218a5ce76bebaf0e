package dev.ringlet.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The KIP-848 consumer group protocol ({@code group.protocol=consumer}, the Java client's
 * recommended one in Kafka 4): the broker computes the assignment and hands it out through
 * ConsumerGroupHeartbeat; members split the partitions without ever owning one twice, commit with
 * their member epoch, and take over a leaving member's partitions from its committed offsets.
 */
class ConsumerProtocolTest {
  static Admin admin;
  static final Map<String, Object> CONSUMER_PROTOCOL =
      Map.of(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");

  @BeforeAll
  static void setUp() {
    admin = Env.admin();
  }

  @AfterAll
  static void tearDown() {
    admin.close();
  }

  private static void produce(String topic, int partitions, String prefix, int n) {
    try (KafkaProducer<String, String> p = Env.producer(Map.of())) {
      for (int i = 0; i < n; i++) {
        p.send(new ProducerRecord<>(topic, i % partitions, "k" + i, prefix + i));
      }
      p.flush();
    }
  }

  /** Polls both until each owns `each` partitions; fails if a partition is ever owned twice. */
  private static void waitSplit(KafkaConsumer<String, String> a, KafkaConsumer<String, String> b, int each) {
    long deadline = System.currentTimeMillis() + 60_000;
    while (System.currentTimeMillis() < deadline) {
      a.poll(Duration.ofMillis(100));
      if (b != null) {
        b.poll(Duration.ofMillis(100));
      }
      Set<TopicPartition> both = new HashSet<>(a.assignment());
      if (b != null) {
        both.retainAll(b.assignment());
        assertTrue(both.isEmpty(), "a partition owned by two members: " + both);
      }
      if (a.assignment().size() == each && (b == null || b.assignment().size() == each)) {
        return;
      }
    }
    throw new AssertionError("assignment did not settle: a=" + a.assignment() + (b == null ? "" : " b=" + b.assignment()));
  }

  @Test
  void membersSplitPartitionsAndTakeOverWithTheConsumerProtocol() throws Exception {
    String topic = Env.topic(admin, "kip848", 4);
    String group = Env.unique("g-kip848");
    produce(topic, 4, "v", 40);
    try (var a = Env.consumer(group, CONSUMER_PROTOCOL)) {
      a.subscribe(List.of(topic));
      assertEquals(40, Env.pollUntil(a, 40, Duration.ofSeconds(60)).size());
      a.commitSync();
      try (var b = Env.consumer(group, CONSUMER_PROTOCOL)) {
        b.subscribe(List.of(topic));
        waitSplit(a, b, 2);
        ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group))
            .all().get(30, TimeUnit.SECONDS).get(group);
        assertEquals(GroupType.CONSUMER, d.type());
        assertEquals(2, d.members().size());
        produce(topic, 4, "w", 40);
        List<String> got = new ArrayList<>();
        long deadline = System.currentTimeMillis() + 60_000;
        while (got.size() < 40 && System.currentTimeMillis() < deadline) {
          a.poll(Duration.ofMillis(100)).forEach(r -> got.add(r.value()));
          b.poll(Duration.ofMillis(100)).forEach(r -> got.add(r.value()));
        }
        assertEquals(40, got.size(), "every record once: " + got);
        assertEquals(40, new HashSet<>(got).size());
        a.commitSync();
        b.commitSync();
      }
      // b left on close: a owns all four and reads on from the committed offsets.
      waitSplit(a, null, 4);
      produce(topic, 4, "x", 20);
      var rest = Env.pollUntil(a, 20, Duration.ofSeconds(60));
      assertEquals(20, rest.size());
      assertTrue(rest.stream().allMatch(r -> r.value().startsWith("x")), "nothing read twice");
    }
  }

  /**
   * KIP-848's online migration: a consumer-protocol member joining a classic group with a member
   * upgrades it (the classic member stays, assigned by the broker through JoinGroup/SyncGroup);
   * when the consumer-protocol member leaves, the group is a classic group again.
   */
  @Test
  void aClassicGroupIsUpgradedAndDowngradedOnline() throws Exception {
    String topic = Env.topic(admin, "kip848-mixed", 4);
    String group = Env.unique("g-mixed");
    produce(topic, 4, "v", 40);
    Map<String, Object> classic = Map.of(
        ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic",
        ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 500);
    try (var a = Env.consumer(group, classic)) {
      a.subscribe(List.of(topic));
      waitSplit(a, null, 4);
      assertEquals(GroupType.CLASSIC, describe(group).type());
      try (var b = Env.consumer(group, CONSUMER_PROTOCOL)) {
        b.subscribe(List.of(topic));
        waitSplit(a, b, 2);
        ConsumerGroupDescription d = describe(group);
        assertEquals(GroupType.CONSUMER, d.type());
        assertEquals(2, d.members().size());
      }
      // The consumer-protocol member left: a classic group again, a owns everything.
      waitSplit(a, null, 4);
      assertEquals(GroupType.CLASSIC, describe(group).type());
    }
  }

  private static ConsumerGroupDescription describe(String group) throws Exception {
    return admin.describeConsumerGroups(List.of(group)).all().get(30, TimeUnit.SECONDS).get(group);
  }
}
