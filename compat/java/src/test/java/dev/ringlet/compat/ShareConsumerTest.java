package dev.ringlet.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ListGroupsOptions;
import org.apache.kafka.clients.admin.ListShareGroupOffsetsSpec;
import org.apache.kafka.clients.admin.ShareGroupDescription;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * KIP-932 share groups with the Java client's {@code KafkaShareConsumer}: members of one share
 * group share one partition's records (each delivered to one member), explicit acknowledgements
 * release a record for redelivery (its delivery count rising) or reject it for good, and the
 * Admin client describes and lists the share group; {@code share.auto.offset.reset} is a group
 * config set with incrementalAlterConfigs.
 */
class ShareConsumerTest {
  static Admin admin;

  @BeforeAll
  static void setUp() {
    admin = Env.admin();
  }

  @AfterAll
  static void tearDown() {
    admin.close();
  }

  private static String shareGroup() throws Exception {
    String group = Env.unique("sg");
    ConfigResource r = new ConfigResource(ConfigResource.Type.GROUP, group);
    admin.incrementalAlterConfigs(Map.of(r, List.of(new AlterConfigOp(
        new ConfigEntry("share.auto.offset.reset", "earliest"), AlterConfigOp.OpType.SET))))
        .all().get(30, TimeUnit.SECONDS);
    return group;
  }

  private static KafkaShareConsumer<String, String> member(String group, Map<String, Object> extra) {
    Properties p = Env.base();
    p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    p.putAll(extra);
    return new KafkaShareConsumer<>(p);
  }

  private static void produce(String topic, String prefix, int n) {
    try (KafkaProducer<String, String> p = Env.producer(Map.of())) {
      for (int i = 0; i < n; i++) {
        p.send(new ProducerRecord<>(topic, 0, "k" + i, prefix + i));
      }
      p.flush();
    }
  }

  @Test
  void twoMembersShareOnePartitionEachRecordOnce() throws Exception {
    String topic = Env.topic(admin, "share", 1);
    String group = shareGroup();
    produce(topic, "v", 200);
    Map<String, Object> small = Map.of(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 10);
    try (var a = member(group, small); var b = member(group, small)) {
      a.subscribe(List.of(topic));
      b.subscribe(List.of(topic));
      List<String> fromA = new ArrayList<>();
      List<String> fromB = new ArrayList<>();
      long deadline = System.currentTimeMillis() + 60_000;
      while (fromA.size() + fromB.size() < 200 && System.currentTimeMillis() < deadline) {
        a.poll(Duration.ofMillis(100)).forEach(r -> fromA.add(r.value()));
        b.poll(Duration.ofMillis(100)).forEach(r -> fromB.add(r.value()));
      }
      List<String> all = new ArrayList<>(fromA);
      all.addAll(fromB);
      assertEquals(200, all.size(), "records: a=" + fromA.size() + " b=" + fromB.size());
      assertEquals(200, new HashSet<>(all).size(), "a record delivered twice");
      assertTrue(!fromA.isEmpty() && !fromB.isEmpty(), "one member took everything");
      a.commitSync();
      b.commitSync();

      ShareGroupDescription d = admin.describeShareGroups(List.of(group))
          .all().get(30, TimeUnit.SECONDS).get(group);
      assertEquals(2, d.members().size());
      d.members().forEach(m -> assertEquals(1, m.assignment().topicPartitions().size(), m.toString()));
      var listed = admin.listGroups(new ListGroupsOptions().withTypes(java.util.Set.of(GroupType.SHARE)))
          .all().get(30, TimeUnit.SECONDS);
      assertTrue(listed.stream().anyMatch(g -> g.groupId().equals(group)), listed.toString());
    }
  }

  @Test
  void releasedRecordsComeBackAndRejectedOnesDoNot() throws Exception {
    String topic = Env.topic(admin, "share-ack", 1);
    String group = shareGroup();
    produce(topic, "r", 3);
    try (var c = member(group, Map.of("share.acknowledgement.mode", "explicit"))) {
      c.subscribe(List.of(topic));
      Map<String, List<Short>> deliveries = new java.util.TreeMap<>();
      long deadline = System.currentTimeMillis() + 60_000;
      while (deliveries.getOrDefault("r0", List.of()).size() < 2 && System.currentTimeMillis() < deadline) {
        for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
          deliveries.computeIfAbsent(r.value(), k -> new ArrayList<>()).add(r.deliveryCount().orElse((short) -1));
          // r0 is released once (then accepted), r1 rejected, r2 accepted.
          AcknowledgeType t = switch (r.value()) {
            case "r0" -> deliveries.get("r0").size() == 1 ? AcknowledgeType.RELEASE : AcknowledgeType.ACCEPT;
            case "r1" -> AcknowledgeType.REJECT;
            default -> AcknowledgeType.ACCEPT;
          };
          c.acknowledge(r, t);
        }
        c.commitSync();
      }
      // Nothing more comes: r1 was rejected, the others accepted.
      long quiet = System.currentTimeMillis() + 2_000;
      while (System.currentTimeMillis() < quiet) {
        for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
          deliveries.computeIfAbsent(r.value(), k -> new ArrayList<>()).add(r.deliveryCount().orElse((short) -1));
          c.acknowledge(r, AcknowledgeType.ACCEPT);
        }
        c.commitSync();
      }
      assertEquals(List.of((short) 1, (short) 2), deliveries.get("r0"), deliveries.toString());
      assertEquals(List.of((short) 1), deliveries.get("r1"), deliveries.toString());
      assertEquals(List.of((short) 1), deliveries.get("r2"), deliveries.toString());
    }
    // The group is empty now: its start offset is past all three; moved back to 0, the records
    // are delivered again, as new (delivery count 1).
    TopicPartition tp = new TopicPartition(topic, 0);
    var offsets = admin.listShareGroupOffsets(Map.of(group, new ListShareGroupOffsetsSpec()))
        .partitionsToOffsetAndMetadata(group).get(30, TimeUnit.SECONDS);
    assertEquals(3L, offsets.get(tp).offset(), offsets.toString());
    admin.alterShareGroupOffsets(group, Map.of(tp, 0L)).all().get(30, TimeUnit.SECONDS);
    try (var c = member(group, Map.of())) {
      c.subscribe(List.of(topic));
      List<String> again = new ArrayList<>();
      long deadline = System.currentTimeMillis() + 30_000;
      while (again.size() < 3 && System.currentTimeMillis() < deadline) {
        for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
          again.add(r.value() + "/" + r.deliveryCount().orElse((short) -1));
        }
      }
      assertEquals(List.of("r0/1", "r1/1", "r2/1"), again);
      c.commitSync();
    }
    admin.deleteShareGroupOffsets(group, java.util.Set.of(topic)).all().get(30, TimeUnit.SECONDS);
  }
}
