package dev.ringlet.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.CreatePartitionsOptions;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.DeleteTopicsOptions;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.NewPartitionReassignment;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.quota.ClientQuotaAlteration;
import org.apache.kafka.common.quota.ClientQuotaEntity;
import org.apache.kafka.common.quota.ClientQuotaFilter;
import org.apache.kafka.common.quota.ClientQuotaFilterComponent;
import org.apache.kafka.common.errors.GroupNotEmptyException;
import org.apache.kafka.common.errors.GroupIdNotFoundException;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.InvalidReplicaAssignmentException;
import org.apache.kafka.common.errors.InvalidRequestException;
import org.apache.kafka.common.errors.InvalidTopicException;
import org.apache.kafka.common.errors.ThrottlingQuotaExceededException;
import org.apache.kafka.common.errors.NoReassignmentInProgressException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** What an operator's or an application's AdminClient does, and the errors Kafka gives for it. */
class AdminTest {
  static Admin admin;

  @BeforeAll
  static void setUp() {
    admin = Env.admin();
  }

  @AfterAll
  static void tearDown() {
    admin.close();
  }

  private static Throwable cause(ThrowingRunnable r) {
    ExecutionException e = assertThrows(ExecutionException.class, r::run);
    return e.getCause();
  }

  interface ThrowingRunnable {
    void run() throws Exception;
  }

  @Test
  void createDescribeAlterDeleteTopicWithConfigs() throws Exception {
    String topic = Env.topic(admin, "admin", 3, Map.of("retention.ms", "3600000", "cleanup.policy", "delete"));
    var d = admin.describeTopics(Set.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS).get(topic);
    assertEquals(3, d.partitions().size());
    assertFalse(d.isInternal());
    assertNotNull(d.topicId());
    assertTrue(admin.listTopics().names().get(30, TimeUnit.SECONDS).contains(topic));

    ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
    var config = admin.describeConfigs(Set.of(res)).all().get(30, TimeUnit.SECONDS).get(res);
    ConfigEntry retention = config.get("retention.ms");
    assertEquals("3600000", retention.value());
    assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, retention.source());
    ConfigEntry segment = config.get("segment.bytes");
    assertEquals("1073741824", segment.value());
    assertEquals(ConfigEntry.ConfigSource.DEFAULT_CONFIG, segment.source());

    admin.incrementalAlterConfigs(Map.of(res, List.of(
        new AlterConfigOp(new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET))))
        .all().get(30, TimeUnit.SECONDS);
    config = admin.describeConfigs(Set.of(res)).all().get(30, TimeUnit.SECONDS).get(res);
    assertEquals("7200000", config.get("retention.ms").value());

    admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(5))).all().get(30, TimeUnit.SECONDS);
    long deadline = System.currentTimeMillis() + 30_000;
    int count = 0;
    while (System.currentTimeMillis() < deadline) {
      count = admin.describeTopics(Set.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS).get(topic).partitions().size();
      if (count == 5) {
        break;
      }
      Thread.sleep(100);
    }
    assertEquals(5, count);
    assertInstanceOf(InvalidPartitionsException.class,
        cause(() -> admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(2))).all().get(30, TimeUnit.SECONDS)));

    admin.deleteTopics(Set.of(topic)).all().get(30, TimeUnit.SECONDS);
    deadline = System.currentTimeMillis() + 30_000;
    while (System.currentTimeMillis() < deadline && admin.listTopics().names().get(30, TimeUnit.SECONDS).contains(topic)) {
      Thread.sleep(100);
    }
    assertInstanceOf(UnknownTopicOrPartitionException.class,
        cause(() -> admin.describeTopics(Set.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS)));
  }

  @Test
  void createTopicErrors() throws Exception {
    String topic = Env.topic(admin, "exists", 1);
    assertInstanceOf(TopicExistsException.class,
        cause(() -> admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get(30, TimeUnit.SECONDS)));
    assertInstanceOf(InvalidTopicException.class,
        cause(() -> admin.createTopics(List.of(new NewTopic("bad/name", 1, (short) 1))).all().get(30, TimeUnit.SECONDS)));
    assertInstanceOf(InvalidConfigurationException.class,
        cause(() -> admin.createTopics(List.of(new NewTopic(Env.unique("cfg"), 1, (short) 1)
            .configs(Map.of("no.such.config", "1")))).all().get(30, TimeUnit.SECONDS)));
    assertInstanceOf(UnknownTopicOrPartitionException.class,
        cause(() -> admin.deleteTopics(Set.of(Env.unique("missing"))).all().get(30, TimeUnit.SECONDS)));
  }

  @Test
  void describeCluster() throws Exception {
    var c = admin.describeCluster();
    var nodes = c.nodes().get(30, TimeUnit.SECONDS);
    assertEquals(1, nodes.size());
    assertNotNull(c.clusterId().get(30, TimeUnit.SECONDS));
    assertNotNull(c.controller().get(30, TimeUnit.SECONDS));
  }

  /** KIP-455 on one broker: its own id is the only target, and Kafka's errors for the rest. */
  @Test
  void partitionReassignmentsAndTheirErrors() throws Exception {
    int id = admin.describeCluster().nodes().get(30, TimeUnit.SECONDS).iterator().next().id();
    String t = Env.unique("reassign");
    admin.createTopics(List.of(new NewTopic(t, 1, (short) 1))).all().get(30, TimeUnit.SECONDS);
    TopicPartition tp = new TopicPartition(t, 0);
    admin.alterPartitionReassignments(Map.of(tp, Optional.of(new NewPartitionReassignment(List.of(id)))))
        .all().get(30, TimeUnit.SECONDS);
    assertTrue(admin.listPartitionReassignments().reassignments().get(30, TimeUnit.SECONDS).isEmpty());
    assertInstanceOf(InvalidReplicaAssignmentException.class, cause(() -> admin.alterPartitionReassignments(
        Map.of(tp, Optional.of(new NewPartitionReassignment(List.of(id + 100))))).all().get(30, TimeUnit.SECONDS)));
    assertInstanceOf(UnknownTopicOrPartitionException.class, cause(() -> admin.alterPartitionReassignments(
        Map.of(new TopicPartition(t, 5), Optional.of(new NewPartitionReassignment(List.of(id)))))
        .all().get(30, TimeUnit.SECONDS)));
    assertInstanceOf(NoReassignmentInProgressException.class, cause(() -> admin.alterPartitionReassignments(
        Map.of(tp, Optional.<NewPartitionReassignment>empty())).all().get(30, TimeUnit.SECONDS)));
  }

  /** KIP-546 client quotas: set, described by an exact filter, refused as Kafka refuses, removed. */
  @Test
  void clientQuotasAlterDescribeAndTheirErrors() throws Exception {
    String client = Env.unique("quota-client");
    ClientQuotaEntity entity = new ClientQuotaEntity(Map.of(ClientQuotaEntity.CLIENT_ID, client));
    ClientQuotaFilter filter = ClientQuotaFilter.containsOnly(
        List.of(ClientQuotaFilterComponent.ofEntity(ClientQuotaEntity.CLIENT_ID, client)));
    admin.alterClientQuotas(List.of(new ClientQuotaAlteration(entity, List.of(
        new ClientQuotaAlteration.Op("producer_byte_rate", 1024.0),
        new ClientQuotaAlteration.Op("request_percentage", 50.5))))).all().get(30, TimeUnit.SECONDS);
    // Kafka's brokers answer from their metadata cache, a moment behind the controller.
    Map<ClientQuotaEntity, Map<String, Double>> want =
        Map.of(entity, Map.of("producer_byte_rate", 1024.0, "request_percentage", 50.5));
    assertEquals(want, quotasSoon(filter, want));
    assertInstanceOf(InvalidRequestException.class, cause(() -> admin.alterClientQuotas(List.of(
        new ClientQuotaAlteration(entity, List.of(new ClientQuotaAlteration.Op("producer_byte_rate", 10.5)))))
        .all().get(30, TimeUnit.SECONDS)));
    assertInstanceOf(InvalidRequestException.class, cause(() -> admin.alterClientQuotas(List.of(
        new ClientQuotaAlteration(entity, List.of(new ClientQuotaAlteration.Op("no_such_quota", 1.0)))))
        .all().get(30, TimeUnit.SECONDS)));
    ClientQuotaEntity ip = new ClientQuotaEntity(Map.of(ClientQuotaEntity.IP, "10.9.8.7"));
    assertInstanceOf(InvalidRequestException.class, cause(() -> admin.alterClientQuotas(List.of(
        new ClientQuotaAlteration(ip, List.of(new ClientQuotaAlteration.Op("producer_byte_rate", 100.0)))))
        .all().get(30, TimeUnit.SECONDS)));
    admin.alterClientQuotas(List.of(new ClientQuotaAlteration(entity, List.of(
        new ClientQuotaAlteration.Op("producer_byte_rate", null),
        new ClientQuotaAlteration.Op("request_percentage", null))))).all().get(30, TimeUnit.SECONDS);
    assertEquals(Map.of(), quotasSoon(filter, Map.of()));
  }

  /**
   * KIP-599 controller_mutation_rate: a client over its rate gets THROTTLING_QUOTA_EXCEEDED with a
   * throttle time for the next topic it creates, deletes or grows (the request that passed the rate
   * was accepted); other clients are not limited.
   */
  @Test
  void controllerMutationRateRefusesTopicChangesOverIt() throws Exception {
    String client = Env.unique("mutations");
    ClientQuotaEntity entity = new ClientQuotaEntity(Map.of(ClientQuotaEntity.CLIENT_ID, client));
    admin.alterClientQuotas(List.of(new ClientQuotaAlteration(entity, List.of(
        new ClientQuotaAlteration.Op("controller_mutation_rate", 1.0))))).all().get(30, TimeUnit.SECONDS);
    quotasSoon(ClientQuotaFilter.containsOnly(List.of(ClientQuotaFilterComponent.ofEntity(
        ClientQuotaEntity.CLIENT_ID, client))), Map.of(entity, Map.of("controller_mutation_rate", 1.0)));
    Properties p = Env.base();
    p.put(AdminClientConfig.CLIENT_ID_CONFIG, client);
    p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
    String first = Env.unique("mutations-a");
    String second = Env.unique("mutations-b");
    // Each refusal from a new client (same client id): a throttled client waits its throttle time
    // out before its next request to the broker, by when the rate is back under the quota.
    try (Admin a = Admin.create(p); Admin b = Admin.create(p); Admin c = Admin.create(p)) {
      var noRetry = new CreateTopicsOptions().retryOnQuotaViolation(false);
      // 20 partitions at 1 a second: accepted (the rate was 0), and now far over it.
      a.createTopics(List.of(new NewTopic(first, 20, (short) 1)), noRetry).all().get(30, TimeUnit.SECONDS);
      var e = cause(() -> a.createTopics(List.of(new NewTopic(second, 1, (short) 1)), noRetry)
          .all().get(30, TimeUnit.SECONDS));
      assertInstanceOf(ThrottlingQuotaExceededException.class, e);
      assertTrue(((ThrottlingQuotaExceededException) e).throttleTimeMs() > 0, e.toString());
      assertInstanceOf(ThrottlingQuotaExceededException.class, cause(() -> b.deleteTopics(
          List.of(first), new DeleteTopicsOptions().retryOnQuotaViolation(false)).all().get(30, TimeUnit.SECONDS)));
      assertInstanceOf(ThrottlingQuotaExceededException.class, cause(() -> c.createPartitions(
          Map.of(first, NewPartitions.increaseTo(21)), new CreatePartitionsOptions().retryOnQuotaViolation(false))
          .all().get(30, TimeUnit.SECONDS)));
      // Another client is not limited.
      admin.createTopics(List.of(new NewTopic(second, 1, (short) 1))).all().get(30, TimeUnit.SECONDS);
      admin.deleteTopics(List.of(first, second)).all().get(30, TimeUnit.SECONDS);
    } finally {
      admin.alterClientQuotas(List.of(new ClientQuotaAlteration(entity, List.of(
          new ClientQuotaAlteration.Op("controller_mutation_rate", null))))).all().get(30, TimeUnit.SECONDS);
    }
  }

  private static Map<ClientQuotaEntity, Map<String, Double>> quotasSoon(
      ClientQuotaFilter filter, Map<ClientQuotaEntity, Map<String, Double>> want) throws Exception {
    Map<ClientQuotaEntity, Map<String, Double>> got = Map.of();
    for (int i = 0; i < 100; i++) {
      got = admin.describeClientQuotas(filter).entities().get(30, TimeUnit.SECONDS);
      if (got.equals(want)) {
        break;
      }
      Thread.sleep(100);
    }
    return got;
  }

  @Test
  void describeBrokerConfigs() throws Exception {
    String id = String.valueOf(admin.describeCluster().nodes().get(30, TimeUnit.SECONDS).iterator().next().id());
    ConfigResource res = new ConfigResource(ConfigResource.Type.BROKER, id);
    var config = admin.describeConfigs(Set.of(res)).all().get(30, TimeUnit.SECONDS).get(res);
    assertEquals("1048588", config.get("message.max.bytes").value());
    assertNotNull(config.get("log.retention.hours"));
  }

  @Test
  void listOffsets() throws Exception {
    String topic = Env.topic(admin, "listoffsets", 1);
    long base = System.currentTimeMillis() - 60_000;
    try (KafkaProducer<String, String> p = Env.producer(Map.of())) {
      for (int i = 0; i < 6; i++) {
        p.send(new ProducerRecord<>(topic, 0, base + i * 1000L, null, "v" + i));
      }
      p.flush();
    }
    TopicPartition tp = new TopicPartition(topic, 0);
    assertEquals(0, admin.listOffsets(Map.of(tp, OffsetSpec.earliest())).partitionResult(tp).get(30, TimeUnit.SECONDS).offset());
    assertEquals(6, admin.listOffsets(Map.of(tp, OffsetSpec.latest())).partitionResult(tp).get(30, TimeUnit.SECONDS).offset());
    assertEquals(3, admin.listOffsets(Map.of(tp, OffsetSpec.forTimestamp(base + 2500))).partitionResult(tp)
        .get(30, TimeUnit.SECONDS).offset());
    var max = admin.listOffsets(Map.of(tp, OffsetSpec.maxTimestamp())).partitionResult(tp).get(30, TimeUnit.SECONDS);
    assertEquals(5, max.offset());
    assertEquals(base + 5000, max.timestamp());
  }

  @Test
  void consumerGroupsDescribeAlterDeleteOffsets() throws Exception {
    String topic = Env.topic(admin, "groups", 2);
    try (KafkaProducer<String, String> p = Env.producer(Map.of())) {
      for (int i = 0; i < 10; i++) {
        p.send(new ProducerRecord<>(topic, i % 2, null, "v" + i));
      }
      p.flush();
    }
    String group = Env.unique("g-admin");
    TopicPartition p0 = new TopicPartition(topic, 0);
    TopicPartition p1 = new TopicPartition(topic, 1);
    try (var c = Env.consumer(group, Map.of())) {
      c.subscribe(List.of(topic));
      assertEquals(10, Env.pollUntil(c, 10, Duration.ofSeconds(60)).size());
      c.commitSync();
      ConsumerGroupDescription d = admin.describeConsumerGroups(Set.of(group)).describedGroups().get(group)
          .get(30, TimeUnit.SECONDS);
      assertEquals(GroupState.STABLE, d.groupState());
      assertEquals(1, d.members().size());
      assertEquals(Set.of(p0, p1), d.members().iterator().next().assignment().topicPartitions());
      Collection<GroupListing> groups = admin.listGroups().all().get(30, TimeUnit.SECONDS);
      assertTrue(groups.stream().anyMatch(g -> g.groupId().equals(group)), "listGroups has " + group);
      // A group with members refuses deletion.
      assertInstanceOf(GroupNotEmptyException.class,
          cause(() -> admin.deleteConsumerGroups(Set.of(group)).all().get(30, TimeUnit.SECONDS)));
    }
    var offsets = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
    assertEquals(5, offsets.get(p0).offset());
    assertEquals(5, offsets.get(p1).offset());

    admin.alterConsumerGroupOffsets(group, Map.of(p0, new OffsetAndMetadata(2))).all().get(30, TimeUnit.SECONDS);
    offsets = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
    assertEquals(2, offsets.get(p0).offset());

    admin.deleteConsumerGroupOffsets(group, Set.of(p1)).all().get(30, TimeUnit.SECONDS);
    offsets = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
    assertFalse(offsets.containsKey(p1));

    ConsumerGroupDescription empty = admin.describeConsumerGroups(Set.of(group)).describedGroups().get(group)
        .get(30, TimeUnit.SECONDS);
    assertEquals(GroupState.EMPTY, empty.groupState());
    admin.deleteConsumerGroups(Set.of(group)).all().get(30, TimeUnit.SECONDS);
    assertInstanceOf(GroupIdNotFoundException.class,
        cause(() -> admin.deleteConsumerGroups(Set.of(group)).all().get(30, TimeUnit.SECONDS)));
  }
}
