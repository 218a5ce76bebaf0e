//! Every broker key Ringlet reads, with its default and meaning.

/// Every key Ringlet reads, with its default (as Kafka writes it) and meaning. The order is the
/// order of `docs/configuration.md`.
pub const KEYS: &[(&str, &str, &str)] = &[
    ("broker.id", "0", "Unique id of this broker."),
    ("listeners", "PLAINTEXT://:9092", "Where to listen: comma-separated NAME://host:port (empty host = all interfaces); each NAME's security protocol comes from `listener.security.protocol.map`."),
    ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL", "Listener name to security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL). Any ssl.*/sasl.* key below may be set for one listener as `listener.name.<name lower-case>.<key>`. See docs/security.md."),
    ("port", "9092", "Old form of the listener port; used when `listeners` is not set."),
    ("advertised.listeners", "(listeners)", "NAME://host:port per listener: the address given in Metadata to clients that connected on that listener; defaults to the listener's, with `localhost` when its host is empty or 0.0.0.0."),
    ("ssl.keystore.type", "PEM", "Only PEM (rustls; JKS and PKCS12 stores must be converted with openssl/keytool)."),
    ("ssl.keystore.location", "(unset)", "PEM file holding the broker's private key and certificate chain (SSL and SASL_SSL listeners)."),
    ("ssl.keystore.certificate.chain", "(unset)", "The certificate chain as PEM text (Kafka's form), or a path to a PEM file; with `ssl.keystore.key`, instead of `ssl.keystore.location`."),
    ("ssl.keystore.key", "(unset)", "The private key (PKCS#8, PKCS#1 or SEC1) as PEM text or a path to a PEM file. Encrypted keys are refused: `ssl.key.password` is not supported."),
    ("ssl.truststore.type", "PEM", "Only PEM."),
    ("ssl.truststore.location", "(unset)", "PEM file of the CA certificates that client certificates must chain to (`ssl.client.auth`)."),
    ("ssl.truststore.certificates", "(unset)", "The trusted CA certificates as PEM text, instead of `ssl.truststore.location`."),
    ("ssl.client.auth", "none", "none, requested (verify a certificate when the client sends one) or required; the certificate's subject (RFC 2253, e.g. `CN=alice,O=acme`) becomes the principal `User:CN=alice,O=acme`."),
    ("ssl.principal.mapping.rules", "DEFAULT", "Kafka's rules from a client certificate's subject to a user name: `RULE:^CN=(.*?),O=acme$/$1/L,DEFAULT` (a rule's regex must match the whole subject; $1... are its groups; /L lower-cases, /U upper-cases; DEFAULT keeps the subject). A certificate no rule matches is refused."),
    ("ssl.enabled.protocols", "TLSv1.2,TLSv1.3", "TLS versions accepted; only TLSv1.2 and TLSv1.3 exist here (older ones are refused)."),
    ("sasl.enabled.mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512", "SASL mechanisms of SASL_* listeners: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (Kafka's default GSSAPI is not supported)."),
    ("sasl.jaas.config", "(unset)", "For PLAIN: `org.apache.kafka.common.security.plain.PlainLoginModule required user_alice=\"alice-secret\";` lists users and passwords (Kafka reads it as `listener.name.<l>.plain.sasl.jaas.config`, accepted too). PLAIN also accepts a user's SCRAM credential (`ringlet users`), so passwords need not live in this file."),
    ("security.inter.broker.protocol", "PLAINTEXT", "Protocol brokers use between themselves (replication, transaction markers, share state) when `inter.broker.listener.name` is not set: the first listener with it carries that traffic. SSL and SASL_SSL verify the other broker with the listener's truststore."),
    ("sasl.mechanism.inter.broker.protocol", "(the listener's first enabled mechanism)", "SASL mechanism of inter-broker connections (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512); the user is the `username`/`password` of the listener's JAAS configuration (`listener.name.<l>.<mechanism>.sasl.jaas.config`). Kafka's default GSSAPI is not supported."),
    ("ssl.endpoint.identification.algorithm", "https", "`https`: a broker connecting to another over TLS checks that the certificate names the advertised host (IP or DNS SAN); empty: it only checks the chain."),
    ("connections.max.reauth.ms", "0", "KIP-368: SASL sessions last this long; the client must re-authenticate before then or its next request closes the connection. 0: sessions never expire."),
    ("connection.failed.authentication.delay.ms", "100", "Delay before answering a failed authentication, doubled for each further failure from the same IP address within a minute (up to 5 s), so that password guessing is slow."),
    ("authorizer.class.name", "", "Non-empty turns on ACL authorization of every request (Kafka's class names, e.g. `kafka.security.authorizer.AclAuthorizer`, are accepted; ACLs are kept in `<first log dir>/__security/acls.json`, in a cluster in ZooKeeper)."),
    ("super.users", "", "Principals allowed everything, `User:admin;User:CN=ops`."),
    ("allow.everyone.if.no.acl.found", "false", "With the authorizer on: allow an operation on a resource that no ACL matches at all."),
    ("log.dirs", "./ringlet-data", "Comma-separated data directories; a new partition goes to the one holding fewest partitions."),
    ("log.dir", "./ringlet-data", "Single data directory, used when `log.dirs` is not set."),
    ("num.io.threads", "(number of cores)", "Number of shards: one thread per core, each with its own io_uring."),
    ("ringlet.io.backend", "auto", "I/O backend: auto (io_uring when the kernel allows it), uring, or portable."),
    ("ringlet.io.inline.file.writes", "true", "On io_uring, write log data inline (RWF_NOWAIT first) instead of through the ring; faster where the filesystem lacks async buffered writes (see docs/adr/0001-runtime.md)."),
    ("ringlet.io.fault.injection", "", "For tests only: inject storage faults through the portable backend (which it forces), e.g. `write.error.ppm=1000,fsync.error.ppm=0,metadata.error.ppm=0,errno=ENOSPC,torn.writes=true,seed=7` (metadata: every file operation but segment writes and fdatasyncs: create, truncate, index and checkpoint files, rename, delete); empty: off."),
    ("ringlet.metrics.listener", "", "host:port of the Prometheus metrics endpoint (GET /metrics over HTTP); empty: off. See docs/operations.md."),
    ("ringlet.fetch.send.zc", "false", "With ringlet.fetch.zero.copy=false: send fetched record buffers with io_uring SEND_ZC (MSG_ZEROCOPY) instead of a copying send. Measured slower than splice and than a plain send here (docs/adr/0005-fetch-send-path.md); kept for NICs where it may pay."),
    ("ringlet.fetch.zero.copy", "true", "Send fetched records from segment files to sockets with splice (no copy through user space); false reads them into a buffer and sends it (see docs/benchmarks.md)."),
    ("message.max.bytes", "1048588", "Largest record batch the broker accepts."),
    ("compression.gzip.level", "-1", "Default of every topic's `compression.gzip.level` (1-9, or -1 for zlib's default, 6)."),
    ("compression.lz4.level", "9", "Default of every topic's `compression.lz4.level` (1-17)."),
    ("compression.zstd.level", "3", "Default of every topic's `compression.zstd.level` (-131072 to 22)."),
    ("compression.type", "producer", "Default of every topic's `compression.type`: `producer` stores batches as produced; a codec (`uncompressed`, `gzip`, `snappy`, `lz4`, `zstd`) makes the broker recompress batches that differ."),
    ("socket.send.buffer.bytes", "102400", "SO_SNDBUF of client sockets (-1: the OS default)."),
    ("socket.receive.buffer.bytes", "-1", "SO_RCVBUF of client sockets (-1: the OS default, with receive autotuning; Kafka's default is 102400, which caps produce throughput: see docs/adr/0004-socket-buffers.md)."),
    ("socket.request.max.bytes", "104857600", "Largest request frame; a larger frame closes the connection."),
    ("queued.max.requests", "500", "Requests being processed across the broker before connections stop reading."),
    ("max.connections", "2147483647", "Connections accepted at once; more are closed at accept."),
    ("max.connections.per.ip", "2147483647", "Connections accepted at once from one IP address; more are closed at accept."),
    ("quota.window.num", "11", "Client quotas (producer_byte_rate, consumer_byte_rate, connection_creation_rate; set with kafka-configs --entity-type users/clients/ips) are measured over this many windows."),
    ("quota.window.size.seconds", "1", "The length of one client-quota window."),
    ("max.connections.per.ip.overrides", "", "Per-IP exceptions to `max.connections.per.ip`, as `IP:count,IP:count` (IP literals)."),
    ("connections.max.idle.ms", "600000", "Close a connection idle this long between requests, or that takes this long to send one request (slow clients, slow-loris)."),
    ("fetch.max.bytes", "57671680", "Most record bytes one Fetch response carries, whatever the request asks (the first batch always goes whole)."),
    ("num.partitions", "1", "Partitions of an auto-created topic or one created without a count."),
    ("default.replication.factor", "1", "Replication factor of auto-created topics and of CreateTopics without one (above 1 needs a cluster: `zookeeper.connect`)."),
    ("auto.create.topics.enable", "true", "Create a topic when a client asks for metadata of or produces to an unknown one."),
    ("delete.topic.enable", "true", "Allow DeleteTopics."),
    ("log.segment.bytes", "1073741824", "Roll a segment when it would exceed this size."),
    ("log.roll.ms", "604800000", "Roll a non-empty segment this old (also `log.roll.hours`, default 168)."),
    ("log.roll.hours", "168", "See `log.roll.ms`."),
    ("log.index.interval.bytes", "4096", "Bytes of log between offset index entries."),
    ("log.index.size.max.bytes", "10485760", "Roll when a segment's offset index reaches this size."),
    ("log.retention.ms", "604800000", "Delete segments whose newest record is older than this; -1 keeps forever (also `log.retention.minutes`, `log.retention.hours`)."),
    ("log.retention.minutes", "(unset)", "See `log.retention.ms`."),
    ("log.retention.hours", "168", "See `log.retention.ms`."),
    ("log.retention.bytes", "-1", "Per-partition size above which the oldest segments are deleted; -1 is unlimited."),
    ("log.retention.check.interval.ms", "300000", "How often retention runs."),
    ("log.flush.interval.messages", "9223372036854775807", "fdatasync once this many messages are unflushed; 1 makes every acknowledged append durable."),
    ("log.flush.interval.ms", "(unset: page cache)", "fdatasync data older than this."),
    ("log.flush.scheduler.interval.ms", "1000", "How often the time-based flush is checked."),
    ("log.preallocate", "false", "Reserve log.segment.bytes of disk for each new segment (fallocate with FALLOC_FL_KEEP_SIZE: the file's size stays its batches', so recovery and the format are unchanged); the unused reservation is released when the segment rolls or the log closes. Off by default, as in Kafka; measured in docs/adr/0010-direct-io.md."),
    ("ringlet.log.direct.io", "true", "Write log segments with O_DIRECT: each group commit is one block-aligned write straight to the device (the partial last block rewritten in front of it), and fetches of recent data are served from the shard's tail cache. false writes through the page cache, as Kafka does. Where the file system refuses O_DIRECT the log writes through the page cache. Durability is the flush settings' business either way."),
    ("ringlet.log.read.ahead.bytes", "1048576", "Direct mode: fetches that miss the tail cache read the segment with O_DIRECT in windows of this size (rounded up to 4 KiB), the next window read ahead while the current one is sent; at most 64 windows per shard are kept. 0 reads through the page cache (splice), as buffered mode does."),
    ("ringlet.log.tail.cache.bytes", "67108864", "Memory per shard for the tail cache of direct mode: the buffers of the most recent group writes of every partition on the shard, oldest evicted first; fetches that miss it read the segment file."),
    ("ringlet.log.writeback.bytes", "1048576", "Start writeback of log data (sync_file_range, not a durability point) every this many written bytes per partition, so dirty pages never reach the kernel's writer throttling; 0 turns it off."),
    ("log.cleanup.policy", "delete", "Default of every topic's `cleanup.policy`: `delete`, `compact` or `compact,delete`."),
    ("log.cleaner.enable", "true", "Run the log cleaner, which compacts topics whose `cleanup.policy` holds `compact` (including `__consumer_offsets`)."),
    ("log.cleaner.threads", "1", "How many shards may clean a log at the same time (each shard cleans its own partitions, on its own thread)."),
    ("log.cleaner.dedupe.buffer.size", "134217728", "Memory for the cleaners' maps of latest offsets per key, divided between `log.cleaner.threads`; a cleaning whose keys fill its share ends its section after the segment that filled it."),
    ("log.cleaner.io.buffer.size", "524288", "Bytes per read and per write of the cleaner."),
    ("log.cleaner.io.max.bytes.per.second", "1.7976931348623157E308", "Cap on the bytes a cleaning reads and writes per second."),
    ("log.cleaner.backoff.ms", "15000", "Pause between the cleaner's checks for logs to compact."),
    ("log.cleaner.min.cleanable.ratio", "0.5", "Default of every topic's `min.cleanable.dirty.ratio`."),
    ("log.cleaner.delete.retention.ms", "86400000", "Default of every topic's `delete.retention.ms`."),
    ("log.cleaner.min.compaction.lag.ms", "0", "Default of every topic's `min.compaction.lag.ms`."),
    ("log.cleaner.max.compaction.lag.ms", "9223372036854775807", "Default of every topic's `max.compaction.lag.ms`."),
    ("log.message.timestamp.type", "CreateTime", "CreateTime or LogAppendTime."),
    ("log.message.timestamp.before.max.ms", "9223372036854775807", "CreateTime topics: a record whose timestamp is further than this behind the broker's clock is refused with INVALID_TIMESTAMP and a per-record error (KIP-937, KIP-467)."),
    ("log.message.timestamp.after.max.ms", "3600000", "CreateTime topics: a record whose timestamp is further than this ahead of the broker's clock is refused with INVALID_TIMESTAMP and a per-record error (KIP-937; Kafka 4's default, one hour)."),
    ("offsets.topic.num.partitions", "50", "Partitions of the internal `__consumer_offsets` topic; a group lives on partition abs(hash(group.id)) % this."),
    ("offsets.retention.minutes", "10080", "Committed offsets of an empty group older than this are deleted."),
    ("transaction.state.log.num.partitions", "50", "Partitions of the internal `__transaction_state` topic (created on first use); a transactional id lives on partition abs(hash(transactional.id)) % this, led by its coordinator."),
    ("transaction.state.log.replication.factor", "3", "Replicas of `__transaction_state` in a cluster (fewer when fewer brokers are up); 1 on a single broker."),
    ("transaction.state.log.min.isr", "2", "`min.insync.replicas` of `__transaction_state` (never more than its replicas)."),
    ("transaction.state.log.segment.bytes", "104857600", "`segment.bytes` of `__transaction_state` (compacted)."),
    ("transaction.max.timeout.ms", "900000", "Longest `transaction.timeout.ms` a producer may ask for (longer: INVALID_TRANSACTION_TIMEOUT)."),
    ("transactional.id.expiration.ms", "604800000", "A transactional id with no transaction for this long is forgotten (a tombstone in `__transaction_state`)."),
    ("transaction.abort.timed.out.transaction.cleanup.interval.ms", "10000", "How often the coordinator aborts (and fences) transactions open past their timeout and finishes transactions whose markers were interrupted."),
    ("transaction.remove.expired.transaction.cleanup.interval.ms", "3600000", "Accepted for Kafka's configs; expired ids are removed at every check of the key above."),
    ("transaction.version", "2", "The `transaction.version` feature level ApiVersions finalizes (Kafka sets it with kafka-features.sh). 2: KIP-890 part 2 (partitions join a transaction when produced to, every EndTxn bumps the epoch); 1 or 0: clients keep to version 1 transactions."),
    ("transaction.partition.verification.enable", "true", "A partition leader asks the coordinator whether a version 1 transaction's first batch to a partition belongs to an open transaction (KIP-890 part 1), refusing a late batch that would open a transaction nobody ends."),
    ("offset.metadata.max.bytes", "4096", "Longest metadata string an offset commit may carry (longer: OFFSET_METADATA_TOO_LARGE)."),
    ("group.coordinator.rebalance.protocols", "classic,consumer", "Group protocols the coordinator serves: `consumer` enables KIP-848 consumer groups (ConsumerGroupHeartbeat, ConsumerGroupDescribe); `classic` is always on."),
    ("group.consumer.session.timeout.ms", "45000", "KIP-848 consumer groups: a member with no heartbeat for this long is removed and its partitions reassigned."),
    ("group.consumer.min.session.timeout.ms", "45000", "Lower bound of `group.consumer.session.timeout.ms`."),
    ("group.consumer.max.session.timeout.ms", "60000", "Upper bound of `group.consumer.session.timeout.ms`."),
    ("group.consumer.heartbeat.interval.ms", "5000", "KIP-848 consumer groups: how often members heartbeat (told to them in every answer)."),
    ("group.consumer.min.heartbeat.interval.ms", "5000", "Lower bound of `group.consumer.heartbeat.interval.ms`."),
    ("group.consumer.max.heartbeat.interval.ms", "15000", "Upper bound of `group.consumer.heartbeat.interval.ms`."),
    ("group.consumer.assignors", "uniform,range", "Server-side assignors of KIP-848 consumer groups (short names or Kafka's class names); the first is the default, a member may ask for another with `group.remote.assignor`."),
    ("group.consumer.max.size", "2147483647", "Most members a KIP-848 consumer group takes (more: GROUP_MAX_SIZE_REACHED)."),
    ("group.consumer.migration.policy", "bidirectional", "Online conversion between classic and consumer groups with members (KIP-848): disabled, upgrade, downgrade or bidirectional. Empty groups always convert."),
    ("share.version", "1", "The `share.version` feature level ApiVersions finalizes (Kafka sets it with kafka-features.sh): 1 serves KIP-932 share groups (ShareGroupHeartbeat, ShareGroupDescribe, ShareFetch, ShareAcknowledge); 0 leaves them out, as a Kafka that has not enabled them."),
    ("group.share.session.timeout.ms", "45000", "Share groups: a member with no heartbeat for this long is removed and the partitions reassigned."),
    ("group.share.min.session.timeout.ms", "45000", "Lower bound of `group.share.session.timeout.ms`."),
    ("group.share.max.session.timeout.ms", "60000", "Upper bound of `group.share.session.timeout.ms`."),
    ("group.share.heartbeat.interval.ms", "5000", "Share groups: how often members heartbeat (told to them in every answer)."),
    ("group.share.min.heartbeat.interval.ms", "5000", "Lower bound of `group.share.heartbeat.interval.ms`."),
    ("group.share.max.heartbeat.interval.ms", "15000", "Upper bound of `group.share.heartbeat.interval.ms`."),
    ("group.share.record.lock.duration.ms", "30000", "Share groups: how long a member holds the records a ShareFetch acquired for it; unacknowledged when it ends, they are delivered again."),
    ("group.share.min.record.lock.duration.ms", "15000", "Lower bound of `group.share.record.lock.duration.ms`."),
    ("group.share.max.record.lock.duration.ms", "60000", "Upper bound of `group.share.record.lock.duration.ms`."),
    ("group.share.delivery.count.limit", "5", "Share groups: deliveries of one record (acquisitions) before a release or lock expiry archives it instead of delivering it again."),
    ("group.share.partition.max.record.locks", "2000", "Share groups: records in flight (acquired, or released and waiting) per share partition; no new records are acquired past it."),
    ("group.share.max.size", "200", "Most members a share group takes (more: GROUP_MAX_SIZE_REACHED)."),
    ("group.share.max.share.sessions", "2000", "Share sessions (ShareFetch sessions) one broker keeps; a new one past it gets SHARE_SESSION_LIMIT_REACHED."),
    ("group.initial.rebalance.delay.ms", "3000", "How long the first rebalance of an empty group waits for more members to join."),
    ("group.min.session.timeout.ms", "6000", "Smallest session.timeout.ms a consumer may ask for (INVALID_SESSION_TIMEOUT below it)."),
    ("group.max.session.timeout.ms", "1800000", "Largest session.timeout.ms a consumer may ask for."),
    ("max.request.partition.size.limit", "2000", "Most partitions one DescribeTopicPartitions answer describes (KIP-966); the admin client pages through the rest with its cursor."),
    ("zookeeper.connect", "(unset)", "ZooKeeper ensemble `host:port[,host:port...][/chroot]` holding cluster metadata; unset runs a single broker on its embedded metadata. See docs/operations.md."),
    ("zookeeper.session.timeout.ms", "18000", "ZooKeeper session timeout: a broker silent this long loses its registration (and its leaderships) and is fenced."),
    ("zookeeper.connection.timeout.ms", "(zookeeper.session.timeout.ms)", "How long to wait for a ZooKeeper connection at start-up."),
    ("broker.rack", "(unset)", "Rack of this broker; replicas of a partition are spread over racks first."),
    ("min.insync.replicas", "1", "Fewest in-sync replicas for an acks=all produce: below it produce fails with NOT_ENOUGH_REPLICAS and the high watermark stands still."),
    ("unclean.leader.election.enable", "false", "When every in-sync replica of a partition is gone, elect a live out-of-sync one (records only the ISR had are lost) instead of leaving the partition offline. Topic config of the same name; dynamic."),
    ("replica.lag.time.max.ms", "30000", "A follower that has not caught up to the leader's log end for this long leaves the ISR."),
    ("replica.socket.timeout.ms", "30000", "Socket timeout of a follower's fetch from its leader (at least replica.fetch.wait.max.ms)."),
    ("replica.fetch.wait.max.ms", "500", "Longest a follower's fetch waits at the leader for new data."),
    ("replica.fetch.min.bytes", "1", "Bytes a follower's fetch waits for."),
    ("replica.fetch.max.bytes", "1048576", "Bytes a follower asks for per partition per fetch (the first batch always comes whole)."),
    ("replica.fetch.backoff.ms", "1000", "Pause after a failed follower fetch."),
    ("num.replica.fetchers", "1", "Accepted; Ringlet runs one fetcher per shard per leader broker (thread-per-core)."),
    ("replica.high.watermark.checkpoint.interval.ms", "5000", "How often each replica writes its high watermark to disk."),
    ("controlled.shutdown.enable", "true", "On SIGTERM, ask the controller to move leadership away before exiting."),
    ("auto.leader.rebalance.enable", "true", "The controller moves leadership back to each partition's preferred replica (the first of its assignment) when a broker's imbalance passes leader.imbalance.per.broker.percentage."),
    ("leader.imbalance.per.broker.percentage", "10", "The share of a broker's preferred partitions led by other brokers above which the controller rebalances leadership."),
    ("leader.imbalance.check.interval.seconds", "300", "How often the controller checks leadership imbalance."),
    ("leader.replication.throttled.rate", "9223372036854775807", "Bytes/s a leader serves to out-of-sync followers of the partitions `leader.replication.throttled.replicas` names for it (KIP-73); dynamic, set per broker by `kafka-reassign-partitions --throttle`."),
    ("follower.replication.throttled.rate", "9223372036854775807", "Bytes/s a follower fetches, while out of sync, for the partitions `follower.replication.throttled.replicas` names for it (KIP-73); dynamic."),
    ("controlled.shutdown.max.retries", "3", "Attempts at a controlled shutdown before exiting anyway."),
    ("controlled.shutdown.retry.backoff.ms", "5000", "Wait between controlled-shutdown attempts."),
    ("inter.broker.listener.name", "(the first PLAINTEXT listener)", "Listener whose advertised address followers fetch from."),
    ("offsets.topic.replication.factor", "3", "Replication factor of `__consumer_offsets` in a cluster (capped at the live brokers when it is created)."),
];

/// Kafka's config types (`DescribeConfigsResponse` `config_type`, KIP-569).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigType {
    Unknown = 0,
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
    Class = 8,
    Password = 9,
}

/// The type Kafka gives a broker key (Ringlet's own `ringlet.*` keys get the type of their
/// values); every other key in [`KEYS`] is a STRING.
pub fn key_type(key: &str) -> ConfigType {
    match key {
        "broker.id"
        | "compression.gzip.level"
        | "compression.lz4.level"
        | "compression.zstd.level"
        | "port"
        | "connection.failed.authentication.delay.ms"
        | "num.io.threads"
        | "message.max.bytes"
        | "socket.send.buffer.bytes"
        | "socket.receive.buffer.bytes"
        | "socket.request.max.bytes"
        | "queued.max.requests"
        | "max.connections"
        | "max.connections.per.ip"
        | "quota.window.num"
        | "quota.window.size.seconds"
        | "fetch.max.bytes"
        | "num.partitions"
        | "default.replication.factor"
        | "log.segment.bytes"
        | "log.roll.hours"
        | "log.index.interval.bytes"
        | "log.index.size.max.bytes"
        | "log.retention.minutes"
        | "log.retention.hours"
        | "offsets.topic.num.partitions"
        | "offsets.retention.minutes"
        | "transaction.state.log.num.partitions"
        | "transaction.state.log.segment.bytes"
        | "transaction.max.timeout.ms"
        | "transactional.id.expiration.ms"
        | "transaction.abort.timed.out.transaction.cleanup.interval.ms"
        | "transaction.remove.expired.transaction.cleanup.interval.ms"
        | "transaction.version"
        | "offset.metadata.max.bytes"
        | "group.initial.rebalance.delay.ms"
        | "group.min.session.timeout.ms"
        | "group.max.session.timeout.ms"
        | "group.consumer.session.timeout.ms"
        | "group.consumer.min.session.timeout.ms"
        | "group.consumer.max.session.timeout.ms"
        | "group.consumer.heartbeat.interval.ms"
        | "group.consumer.min.heartbeat.interval.ms"
        | "group.consumer.max.heartbeat.interval.ms"
        | "group.consumer.max.size"
        | "share.version"
        | "group.share.session.timeout.ms"
        | "group.share.min.session.timeout.ms"
        | "group.share.max.session.timeout.ms"
        | "group.share.heartbeat.interval.ms"
        | "group.share.min.heartbeat.interval.ms"
        | "group.share.max.heartbeat.interval.ms"
        | "group.share.record.lock.duration.ms"
        | "group.share.min.record.lock.duration.ms"
        | "group.share.max.record.lock.duration.ms"
        | "group.share.delivery.count.limit"
        | "group.share.partition.max.record.locks"
        | "group.share.max.size"
        | "group.share.max.share.sessions"
        | "max.request.partition.size.limit"
        | "zookeeper.session.timeout.ms"
        | "zookeeper.connection.timeout.ms"
        | "min.insync.replicas"
        | "replica.socket.timeout.ms"
        | "replica.fetch.wait.max.ms"
        | "replica.fetch.min.bytes"
        | "replica.fetch.max.bytes"
        | "replica.fetch.backoff.ms"
        | "num.replica.fetchers"
        | "log.cleaner.threads"
        | "log.cleaner.io.buffer.size"
        | "controlled.shutdown.max.retries"
        | "leader.imbalance.per.broker.percentage" => ConfigType::Int,
        "connections.max.reauth.ms"
        | "connections.max.idle.ms"
        | "log.roll.ms"
        | "log.retention.ms"
        | "log.retention.bytes"
        | "log.retention.check.interval.ms"
        | "log.flush.interval.messages"
        | "log.flush.interval.ms"
        | "log.flush.scheduler.interval.ms"
        | "log.message.timestamp.before.max.ms"
        | "log.message.timestamp.after.max.ms"
        | "replica.lag.time.max.ms"
        | "replica.high.watermark.checkpoint.interval.ms"
        | "controlled.shutdown.retry.backoff.ms"
        | "ringlet.log.read.ahead.bytes"
        | "ringlet.log.tail.cache.bytes"
        | "ringlet.log.writeback.bytes"
        | "log.cleaner.dedupe.buffer.size"
        | "log.cleaner.backoff.ms"
        | "log.cleaner.delete.retention.ms"
        | "log.cleaner.min.compaction.lag.ms"
        | "log.cleaner.max.compaction.lag.ms"
        | "leader.imbalance.check.interval.seconds"
        | "leader.replication.throttled.rate"
        | "follower.replication.throttled.rate" => ConfigType::Long,
        "log.cleaner.io.max.bytes.per.second" | "log.cleaner.min.cleanable.ratio" => {
            ConfigType::Double
        }
        "offsets.topic.replication.factor"
        | "transaction.state.log.replication.factor"
        | "transaction.state.log.min.isr" => ConfigType::Short,
        "allow.everyone.if.no.acl.found"
        | "auto.create.topics.enable"
        | "delete.topic.enable"
        | "log.preallocate"
        | "unclean.leader.election.enable"
        | "controlled.shutdown.enable"
        | "auto.leader.rebalance.enable"
        | "ringlet.io.inline.file.writes"
        | "ringlet.fetch.send.zc"
        | "ringlet.fetch.zero.copy"
        | "ringlet.log.direct.io"
        | "log.cleaner.enable"
        | "transaction.partition.verification.enable" => ConfigType::Boolean,
        "ssl.enabled.protocols"
        | "sasl.enabled.mechanisms"
        | "log.cleanup.policy"
        | "group.coordinator.rebalance.protocols"
        | "group.consumer.assignors" => ConfigType::List,
        "ssl.keystore.certificate.chain"
        | "ssl.keystore.key"
        | "ssl.truststore.certificates"
        | "sasl.jaas.config" => ConfigType::Password,
        _ => ConfigType::String,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each key's default agrees with its type, so a type typed here by mistake shows up.
    #[test]
    fn defaults_parse_as_their_types() {
        for (k, default, _) in KEYS {
            if default.starts_with('(') || default.is_empty() {
                continue;
            }
            let ok = match key_type(k) {
                ConfigType::Boolean => matches!(*default, "true" | "false"),
                ConfigType::Int => default.parse::<i32>().is_ok(),
                ConfigType::Short => default.parse::<i16>().is_ok(),
                ConfigType::Long => default.parse::<i64>().is_ok(),
                ConfigType::Double => default.parse::<f64>().is_ok(),
                ConfigType::String | ConfigType::List | ConfigType::Password => {
                    default.parse::<f64>().is_err() && !matches!(*default, "true" | "false")
                }
                _ => false,
            };
            assert!(ok, "{k}: default {default} is not a {:?}", key_type(k));
        }
    }
}
