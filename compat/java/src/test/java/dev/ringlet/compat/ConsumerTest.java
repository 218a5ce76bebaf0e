package dev.ringlet.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** What a consuming application does with the classic group protocol. */
class ConsumerTest {
  static Admin admin;

  @BeforeAll
  static void setUp() {
    admin = Env.admin();
  }

  @AfterAll
  static void tearDown() {
    admin.close();
  }

  private static void produce(String topic, int partition, int n, long timestampBase) throws Exception {
    try (KafkaProducer<String, String> p = Env.producer(Map.of())) {
      for (int i = 0; i < n; i++) {
        Long ts = timestampBase > 0 ? timestampBase + i * 1000L : null;
        p.send(new ProducerRecord<>(topic, partition, ts, "k" + i, "v" + i));
      }
      p.flush();
    }
  }

  @Test
  void assignSeekAndPosition() throws Exception {
    String topic = Env.topic(admin, "seek", 1);
    produce(topic, 0, 20, 0);
    TopicPartition tp = new TopicPartition(topic, 0);
    try (var c = Env.consumer(null, Map.of(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "100"))) {
      c.assign(List.of(tp));
      c.seek(tp, 15);
      var got = Env.pollUntil(c, 5, Duration.ofSeconds(30));
      assertEquals(5, got.size());
      assertEquals(15, got.get(0).offset());
      assertEquals("v15", got.get(0).value());
      assertEquals(20, c.position(tp));
      c.seekToBeginning(List.of(tp));
      assertEquals(0, c.position(tp));
      c.seekToEnd(List.of(tp));
      assertEquals(20, c.position(tp));
      assertEquals(Map.of(tp, 0L), c.beginningOffsets(List.of(tp)));
      assertEquals(Map.of(tp, 20L), c.endOffsets(List.of(tp)));
    }
  }

  @Test
  void subscribeAndCommitSync() throws Exception {
    String topic = Env.topic(admin, "commitsync", 2);
    produce(topic, 0, 10, 0);
    produce(topic, 1, 7, 0);
    String group = Env.unique("g-sync");
    try (var c = Env.consumer(group, Map.of())) {
      c.subscribe(List.of(topic));
      var got = Env.pollUntil(c, 17, Duration.ofSeconds(60));
      assertEquals(17, got.size());
      c.commitSync();
      var committed = c.committed(Set.of(new TopicPartition(topic, 0), new TopicPartition(topic, 1)));
      assertEquals(10, committed.get(new TopicPartition(topic, 0)).offset());
      assertEquals(7, committed.get(new TopicPartition(topic, 1)).offset());
    }
    // A new member of the same group starts from the committed offsets: nothing more to read.
    produce(topic, 0, 1, 0);
    try (var c = Env.consumer(group, Map.of())) {
      c.subscribe(List.of(topic));
      var got = Env.pollUntil(c, 1, Duration.ofSeconds(60));
      assertEquals(1, got.size());
      assertEquals(10, got.get(0).offset());
    }
  }

  @Test
  void commitAsyncWithMetadata() throws Exception {
    String topic = Env.topic(admin, "commitasync", 1);
    produce(topic, 0, 5, 0);
    String group = Env.unique("g-async");
    TopicPartition tp = new TopicPartition(topic, 0);
    try (var c = Env.consumer(group, Map.of())) {
      c.subscribe(List.of(topic));
      assertEquals(5, Env.pollUntil(c, 5, Duration.ofSeconds(60)).size());
      CompletableFuture<Exception> done = new CompletableFuture<>();
      c.commitAsync(Map.of(tp, new OffsetAndMetadata(3, "checkpoint-3")), (offsets, e) -> done.complete(e));
      long deadline = System.currentTimeMillis() + 30_000;
      while (!done.isDone() && System.currentTimeMillis() < deadline) {
        c.poll(Duration.ofMillis(100));
      }
      assertTrue(done.isDone(), "commitAsync callback ran");
      assertNull(done.get());
      OffsetAndMetadata om = c.committed(Set.of(tp)).get(tp);
      assertEquals(3, om.offset());
      assertEquals("checkpoint-3", om.metadata());
    }
  }

  @Test
  void committedIsNullWithoutCommit() throws Exception {
    String topic = Env.topic(admin, "nocommit", 1);
    TopicPartition tp = new TopicPartition(topic, 0);
    try (var c = Env.consumer(Env.unique("g-none"), Map.of())) {
      assertNull(c.committed(Set.of(tp)).get(tp));
    }
  }

  @Test
  void rebalanceWhenAMemberLeaves() throws Exception {
    String topic = Env.topic(admin, "rebalance", 2);
    String group = Env.unique("g-rebalance");
    Set<TopicPartition> both = Set.of(new TopicPartition(topic, 0), new TopicPartition(topic, 1));
    Map<String, Object> cfg = Map.of(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "10000",
        ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "500",
        ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG,
        "org.apache.kafka.clients.consumer.RangeAssignor");
    try (var a = Env.consumer(group, cfg)) {
      List<Collection<TopicPartition>> aAssigned = new ArrayList<>();
      a.subscribe(List.of(topic), new ConsumerRebalanceListener() {
        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> partitions) {}

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
          aAssigned.add(new HashSet<>(partitions));
        }
      });
      waitForAssignment(a, null, both.size(), 0);
      assertEquals(both, a.assignment());
      try (var b = Env.consumer(group, cfg)) {
        b.subscribe(List.of(topic));
        // Both members poll until the group settles with one partition each.
        waitForAssignment(a, b, 1, 1);
        Set<TopicPartition> union = new HashSet<>(a.assignment());
        union.addAll(b.assignment());
        assertEquals(both, union);
      }
      // b left the group on close: a gets both partitions back.
      waitForAssignment(a, null, 2, 0);
      assertEquals(both, a.assignment());
      assertTrue(aAssigned.size() >= 3, "a was assigned three times: " + aAssigned);
    }
  }

  private static void waitForAssignment(KafkaConsumer<String, String> a, KafkaConsumer<String, String> b, int na, int nb) {
    long deadline = System.currentTimeMillis() + 60_000;
    while (System.currentTimeMillis() < deadline) {
      a.poll(Duration.ofMillis(100));
      if (b != null) {
        b.poll(Duration.ofMillis(100));
      }
      if (a.assignment().size() == na && (b == null || b.assignment().size() == nb)) {
        return;
      }
    }
    throw new AssertionError("assignment did not settle: a=" + a.assignment() + (b == null ? "" : " b=" + b.assignment()));
  }

  @Test
  void offsetsForTimes() throws Exception {
    String topic = Env.topic(admin, "times", 1);
    long base = System.currentTimeMillis() - 100_000;
    produce(topic, 0, 10, base);
    TopicPartition tp = new TopicPartition(topic, 0);
    try (var c = Env.consumer(null, Map.of())) {
      var r = c.offsetsForTimes(Map.of(tp, base + 4500));
      assertNotNull(r.get(tp));
      assertEquals(5, r.get(tp).offset());
      assertEquals(base + 5000, r.get(tp).timestamp());
      assertEquals(0, c.offsetsForTimes(Map.of(tp, 0L)).get(tp).offset());
      assertNull(c.offsetsForTimes(Map.of(tp, base + 1_000_000)).get(tp));
    }
  }

  @Test
  void pauseAndResume() throws Exception {
    String topic = Env.topic(admin, "pause", 2);
    produce(topic, 0, 5, 0);
    produce(topic, 1, 5, 0);
    TopicPartition p0 = new TopicPartition(topic, 0);
    TopicPartition p1 = new TopicPartition(topic, 1);
    try (var c = Env.consumer(null, Map.of())) {
      c.assign(List.of(p0, p1));
      c.seekToBeginning(List.of(p0, p1));
      c.pause(List.of(p1));
      var got = Env.pollUntil(c, 5, Duration.ofSeconds(30));
      assertEquals(5, got.size());
      assertTrue(got.stream().allMatch(r -> r.partition() == 0));
      assertTrue(Env.pollUntil(c, 1, Duration.ofSeconds(1)).isEmpty(), "nothing from a paused partition");
      assertEquals(Set.of(p1), c.paused());
      c.resume(List.of(p1));
      got = Env.pollUntil(c, 5, Duration.ofSeconds(30));
      assertEquals(5, got.size());
      assertTrue(got.stream().allMatch(r -> r.partition() == 1));
    }
  }

  @Test
  void autoCommitOnClose() throws Exception {
    String topic = Env.topic(admin, "autocommit", 1);
    produce(topic, 0, 4, 0);
    String group = Env.unique("g-auto");
    try (var c = Env.consumer(group, Map.of(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "true",
        ConsumerConfig.AUTO_COMMIT_INTERVAL_MS_CONFIG, "100"))) {
      c.subscribe(List.of(topic));
      assertEquals(4, Env.pollUntil(c, 4, Duration.ofSeconds(60)).size());
    }
    var offsets = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
    assertEquals(4, offsets.get(new TopicPartition(topic, 0)).offset());
  }
}
