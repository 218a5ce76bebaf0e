//! Topic administration on this broker: creation (placement, directories, logs on their shards,
//! metadata), adoption of a cluster's topic, configs, more partitions, deletion.

use super::*;
use ringlet_engine::log_manager;
use ringlet_engine::TopicPartition;

impl Broker {
    /// Creates a topic: placement, directories, logs on their shards, then metadata.
    /// Returns a Kafka error code and message on failure.
    pub async fn create_topic(
        self: &Arc<Self>,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), (i16, String)> {
        self.create_topic_laid_out(
            name,
            Layout::Count {
                partitions,
                replication_factor,
            },
            configs,
            validate_only,
        )
        .await
    }

    /// Creates a topic with a manual replica assignment (CreateTopics `assignments`: partition
    /// index and broker ids), validated as Kafka's controller validates it. Returns the
    /// partition count and replication factor it created.
    pub async fn create_topic_assigned(
        self: &Arc<Self>,
        name: &str,
        assignments: &[(i32, Vec<i32>)],
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(i32, i16), (i16, String)> {
        let registered: Vec<i32> = match &self.cluster {
            Some(c) => c.view().brokers.keys().copied().collect(),
            None => vec![self.config.broker_id],
        };
        let replicas = validate_assignment(assignments, &registered)?;
        let shape = (replicas.len() as i32, replicas[0].len() as i16);
        self.create_topic_laid_out(name, Layout::Manual(replicas), configs, validate_only)
            .await?;
        Ok(shape)
    }

    async fn create_topic_laid_out(
        self: &Arc<Self>,
        name: &str,
        layout: Layout,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), (i16, String)> {
        validate_topic_name(name).map_err(|m| (ec::INVALID_TOPIC_EXCEPTION, m))?;
        let (partitions, replication_factor) = match &layout {
            Layout::Count {
                partitions,
                replication_factor,
            } => (*partitions, *replication_factor),
            Layout::Manual(r) => (r.len() as i32, r[0].len() as i16),
        };
        let partitions = if partitions == -1 {
            self.config.num_partitions
        } else {
            partitions
        };
        if partitions <= 0 || partitions > 100_000 {
            return Err((
                ec::INVALID_PARTITIONS,
                format!("number of partitions {partitions} must be in [1, 100000]"),
            ));
        }
        let rf = if replication_factor == -1 {
            self.config.default_replication_factor
        } else {
            replication_factor
        };
        if let Some(cluster) = self.cluster.clone() {
            self.log_config(&configs)
                .map_err(|m| (ec::INVALID_CONFIG, m))?;
            let replicas = match layout {
                Layout::Manual(r) => Some(r),
                Layout::Count { .. } => None,
            };
            return crate::cluster::topics::create(
                &cluster,
                name,
                partitions,
                rf,
                replicas,
                configs,
                validate_only,
            )
            .await;
        }
        if rf != 1 {
            return Err((
                ec::INVALID_REPLICATION_FACTOR,
                format!("replication factor {rf} is larger than the 1 available broker"),
            ));
        }
        let cfg = self
            .log_config(&configs)
            .map_err(|m| (ec::INVALID_CONFIG, m))?;
        let placements = {
            let _admin = self.admin.lock().expect("admin lock");
            let md = self.metadata.read().expect("metadata lock");
            let creating = self.creating.lock().expect("creating lock").contains(name);
            if md.topics.contains_key(name) || creating {
                return Err((
                    ec::TOPIC_ALREADY_EXISTS,
                    format!("topic '{name}' already exists"),
                ));
            }
            if validate_only {
                return Ok(());
            }
            self.creating
                .lock()
                .expect("creating lock")
                .insert(name.to_string());
            // Spread partitions over shards (round robin from a per-topic start) and over log
            // directories (the one holding fewest partitions first).
            let shards = runtime::shard_count();
            let mut per_dir = vec![0usize; self.config.log_dirs.len()];
            for t in md.topics.values() {
                for p in &t.partitions {
                    per_dir[p.log_dir] += 1;
                }
            }
            let start = md
                .topics
                .values()
                .map(|t| t.partitions.len())
                .sum::<usize>();
            (0..partitions as usize)
                .map(|i| {
                    let log_dir = (0..per_dir.len())
                        .min_by_key(|&d| per_dir[d])
                        .expect("a log dir");
                    per_dir[log_dir] += 1;
                    Placement {
                        shard: (start + i) % shards,
                        log_dir,
                        local: true,
                    }
                })
                .collect::<Vec<_>>()
        };
        let result = self.open_new_topic(name, placements, cfg, configs).await;
        self.creating.lock().expect("creating lock").remove(name);
        result?;
        tracing::info!(topic = name, partitions, "created topic");
        Ok(())
    }

    /// Makes a cluster topic known here: its metadata, and an open (replicated) log for each
    /// partition with a replica on this broker. Idempotent.
    pub async fn adopt_topic(
        self: &Arc<Self>,
        name: &str,
        info: &crate::cluster::TopicInfo,
    ) -> Result<(), (i16, String)> {
        let me = self.config.broker_id;
        let existing = self
            .metadata
            .read()
            .expect("metadata lock")
            .topics
            .get(name)
            .map(|t| t.id);
        match existing {
            Some(id) if id == info.id => return self.refresh_topic(name, info).await,
            Some(_) => {
                tracing::info!(
                    topic = name,
                    "topic was re-created in the cluster; dropping the old local copy"
                );
                self.drop_local_topic(name).await?;
            }
            None => {}
        }
        let cfg = self
            .log_config(&info.configs)
            .unwrap_or_else(|_| self.effective_config().log.clone());
        let shards = runtime::shard_count();
        let base = crc32c::crc32c(name.as_bytes()) as usize;
        let mut next_dir = self.dir_chooser();
        let placements: Vec<Placement> = info
            .replicas
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let local = r.contains(&me);
                Placement {
                    shard: (base + i) % shards,
                    log_dir: if local { next_dir() } else { 0 },
                    local,
                }
            })
            .collect();
        for (i, p) in placements.iter().enumerate() {
            if !p.local {
                continue;
            }
            self.open_partition_on(name, i as i32, p, cfg.clone(), true)
                .await?;
        }
        let _admin = self.admin.lock().expect("admin lock");
        let mut md = self.metadata.write().expect("metadata lock");
        md.topics.insert(
            name.to_string(),
            TopicMeta {
                id: info.id,
                partitions: placements,
                configs: info.configs.clone(),
            },
        );
        self.persist(&md)
            .map_err(|e| (ec::KAFKA_STORAGE_ERROR, e.to_string()))?;
        tracing::info!(topic = name, "topic adopted from the cluster");
        Ok(())
    }

    /// A topic this broker already hosts, after a new cluster view: partitions added since
    /// (CreatePartitions) or reassigned here are opened, those reassigned away dropped, and
    /// changed configs applied to every local partition.
    async fn refresh_topic(
        self: &Arc<Self>,
        name: &str,
        info: &crate::cluster::TopicInfo,
    ) -> Result<(), (i16, String)> {
        let me = self.config.broker_id;
        let (known, configs) = {
            let md = self.metadata.read().expect("metadata lock");
            let t = &md.topics[name];
            (t.partitions.clone(), t.configs.clone())
        };
        let moved = known
            .iter()
            .zip(&info.replicas)
            .any(|(p, r)| p.local != r.contains(&me));
        if known.len() >= info.replicas.len() && configs == info.configs && !moved {
            return Ok(());
        }
        let cfg = self
            .log_config(&info.configs)
            .unwrap_or_else(|_| self.effective_config().log.clone());
        let shards = runtime::shard_count();
        let base = crc32c::crc32c(name.as_bytes()) as usize;
        let mut next_dir = self.dir_chooser();
        let mut placements = known.clone();
        for (i, r) in info.replicas.iter().enumerate() {
            let local = r.contains(&me);
            match placements.get(i) {
                Some(p) if p.local == local => continue,
                Some(p) if p.local => {
                    // Reassigned away: the replica goes (its role first, then its log).
                    self.drop_partition(name, i as i32, p.shard).await;
                    placements[i].local = false;
                    continue;
                }
                _ => {}
            }
            let p = Placement {
                shard: (base + i) % shards,
                log_dir: if local { next_dir() } else { 0 },
                local,
            };
            if local {
                self.open_partition_on(name, i as i32, &p, cfg.clone(), true)
                    .await?;
                if i < known.len() {
                    tracing::info!(
                        topic = name,
                        partition = i,
                        "partition reassigned to this broker: replica opened"
                    );
                }
            }
            match placements.get_mut(i) {
                Some(slot) => *slot = p,
                None => placements.push(p),
            }
        }
        if configs != info.configs {
            for (i, p) in placements.iter().enumerate().filter(|(_, p)| p.local) {
                let (topic, cfg) = (name.to_string(), cfg.clone());
                let _ = runtime::call_on(p.shard, move || async move {
                    log_manager::reconfigure(&topic, i as i32, cfg);
                })
                .await;
            }
            tracing::info!(topic = name, configs = ?info.configs, "topic configs applied from the cluster");
        }
        if placements.len() > known.len() {
            tracing::info!(
                topic = name,
                partitions = placements.len(),
                "partitions added in the cluster opened"
            );
        }
        let _admin = self.admin.lock().expect("admin lock");
        let mut md = self.metadata.write().expect("metadata lock");
        if let Some(t) = md.topics.get_mut(name) {
            t.partitions = placements;
            t.configs = info.configs.clone();
        }
        self.persist(&md)
            .map_err(|e| (ec::KAFKA_STORAGE_ERROR, e.to_string()))
    }

    /// Drops one local replica that was reassigned away: its role (leadership hooks told), its
    /// log and directory.
    async fn drop_partition(&self, name: &str, partition: i32, shard: usize) {
        let topic = name.to_string();
        let _ = runtime::call_on(shard, move || async move {
            crate::cluster::replica::remove(&topic, partition);
            if let Err(e) = log_manager::delete(&topic, partition) {
                tracing::warn!(topic, partition, error = %e, "could not delete the partition directory");
            }
        })
        .await;
        tracing::info!(
            topic = name,
            partition,
            "partition reassigned away from this broker: replica deleted"
        );
    }

    /// Opens (or creates) one partition's log on its shard and registers it there; `replicated`
    /// logs hold their high watermark back for the in-sync replicas.
    async fn open_partition_on(
        &self,
        topic: &str,
        partition: i32,
        placement: &Placement,
        cfg: LogConfig,
        replicated: bool,
    ) -> Result<(), (i16, String)> {
        let dir = self.partition_dir(topic, partition, placement.log_dir);
        let tp = TopicPartition::new(topic, partition);
        let res = runtime::call_on(placement.shard, move || async move {
            let opts = log_manager::OpenOptions {
                clean: true,
                replicated,
            };
            log_manager::open(&tp, &dir, cfg, opts).map(drop)
        })
        .await;
        match res {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err((ec::KAFKA_STORAGE_ERROR, e.to_string())),
            Err(_) => Err((ec::UNKNOWN_SERVER_ERROR, "shard unavailable".into())),
        }
    }

    /// Opens a new topic's logs on their shards, then publishes it in the metadata.
    async fn open_new_topic(
        self: &Arc<Self>,
        name: &str,
        placements: Vec<Placement>,
        cfg: LogConfig,
        configs: BTreeMap<String, String>,
    ) -> Result<(), (i16, String)> {
        // Open the logs on their shards before the topic becomes visible.
        for (i, p) in placements.iter().enumerate() {
            self.open_partition_on(name, i as i32, p, cfg.clone(), false)
                .await?;
        }
        let _admin = self.admin.lock().expect("admin lock");
        let mut md = self.metadata.write().expect("metadata lock");
        if md.topics.contains_key(name) {
            return Err((
                ec::TOPIC_ALREADY_EXISTS,
                format!("topic '{name}' already exists"),
            ));
        }
        let id = crate::topic_id::new();
        md.topics.insert(
            name.to_string(),
            TopicMeta {
                id,
                partitions: placements,
                configs,
            },
        );
        self.persist(&md)
            .map_err(|e| (ec::KAFKA_STORAGE_ERROR, e.to_string()))?;
        Ok(())
    }

    /// The topic-level value of every topic config key: the topic's override, or the broker
    /// default. Each entry is (key, value, is_override).
    pub fn effective_topic_configs(
        &self,
        configs: &BTreeMap<String, String>,
    ) -> Vec<(String, String, bool)> {
        crate::config::topic::effective(&self.config, configs)
    }

    /// Replaces a topic's config overrides (validated first) and applies them to its live logs.
    pub async fn set_topic_configs(
        self: &Arc<Self>,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), (i16, String)> {
        let cfg = self
            .log_config(&configs)
            .map_err(|m| (ec::INVALID_CONFIG, m))?;
        if let Some(c) = &self.cluster {
            // Every broker applies it from ZooKeeper (`/config/topics/<t>`), this one included.
            if !c.view().topics.contains_key(name) {
                return Err((
                    ec::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("topic '{name}' does not exist"),
                ));
            }
            if validate_only {
                return Ok(());
            }
            return c
                .set_config("topics", name, configs)
                .await
                .map_err(|m| (ec::UNKNOWN_SERVER_ERROR, m));
        }
        let placements = {
            let _admin = self.admin.lock().expect("admin lock");
            let mut md = self.metadata.write().expect("metadata lock");
            let Some(t) = md.topics.get_mut(name) else {
                return Err((
                    ec::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("topic '{name}' does not exist"),
                ));
            };
            if validate_only {
                return Ok(());
            }
            t.configs = configs;
            let placements = t.partitions.clone();
            self.persist(&md)
                .map_err(|e| (ec::KAFKA_STORAGE_ERROR, e.to_string()))?;
            placements
        };
        for (i, p) in placements.iter().enumerate() {
            let topic = name.to_string();
            let cfg = cfg.clone();
            let _ = runtime::call_on(p.shard, move || async move {
                log_manager::reconfigure(&topic, i as i32, cfg);
            })
            .await;
        }
        tracing::info!(topic = name, "altered topic configs");
        Ok(())
    }

    /// Raises a topic's partition count to `count` (Kafka never lowers it).
    pub async fn create_partitions(
        self: &Arc<Self>,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), (i16, String)> {
        if self.cluster.is_some() {
            return Err((
                ec::INVALID_REQUEST,
                "adding partitions to a topic of a multi-broker cluster is not supported yet"
                    .into(),
            ));
        }
        let (existing, cfg) = {
            let md = self.metadata.read().expect("metadata lock");
            let Some(t) = md.topics.get(name) else {
                return Err((
                    ec::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("topic '{name}' does not exist"),
                ));
            };
            let cfg = self
                .log_config(&t.configs)
                .map_err(|m| (ec::INVALID_CONFIG, m))?;
            (t.partitions.len() as i32, cfg)
        };
        if count <= existing || count > 100_000 {
            return Err((ec::INVALID_PARTITIONS, format!("topic '{name}' has {existing} partitions; the new count {count} must be larger (and at most 100000)")));
        }
        if validate_only {
            return Ok(());
        }
        let shards = runtime::shard_count();
        let mut added = Vec::new();
        let mut next_dir = self.dir_chooser();
        for i in existing..count {
            let p = Placement {
                shard: (crc32c::crc32c(name.as_bytes()) as usize + i as usize) % shards,
                log_dir: next_dir(),
                local: true,
            };
            let dir = self.partition_dir(name, i, p.log_dir);
            let tp = TopicPartition::new(name, i);
            let cfg = cfg.clone();
            let res = runtime::call_on(p.shard, move || async move {
                let opts = log_manager::OpenOptions {
                    clean: true,
                    replicated: false,
                };
                log_manager::open(&tp, &dir, cfg, opts).map(drop)
            })
            .await;
            if let Ok(Err(e)) = res {
                return Err((ec::KAFKA_STORAGE_ERROR, e.to_string()));
            }
            added.push(p);
        }
        let _admin = self.admin.lock().expect("admin lock");
        let mut md = self.metadata.write().expect("metadata lock");
        let Some(t) = md.topics.get_mut(name) else {
            return Err((
                ec::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic '{name}' was deleted meanwhile"),
            ));
        };
        if t.partitions.len() as i32 != existing {
            return Err((ec::INVALID_PARTITIONS, "concurrent partition change".into()));
        }
        t.partitions.extend(added);
        self.persist(&md)
            .map_err(|e| (ec::KAFKA_STORAGE_ERROR, e.to_string()))?;
        tracing::info!(
            topic = name,
            from = existing,
            to = count,
            "added partitions"
        );
        Ok(())
    }

    /// A chooser of log directories for `n` new partitions: each goes to the directory holding
    /// fewest, counting the ones chosen before it.
    fn dir_chooser(&self) -> impl FnMut() -> usize {
        let md = self.metadata.read().expect("metadata lock");
        let mut per_dir = vec![0usize; self.config.log_dirs.len()];
        for t in md.topics.values() {
            for p in t.partitions.iter().filter(|p| p.local) {
                per_dir[p.log_dir] += 1;
            }
        }
        move || {
            let d = (0..per_dir.len())
                .min_by_key(|&d| per_dir[d])
                .expect("a log dir");
            per_dir[d] += 1;
            d
        }
    }

    pub async fn delete_topic(self: &Arc<Self>, name: &str) -> Result<(), (i16, String)> {
        if !self.config.delete_topic_enable {
            return Err((
                ec::TOPIC_DELETION_DISABLED,
                "delete.topic.enable is false".into(),
            ));
        }
        if let Some(cluster) = self.cluster.clone() {
            return crate::cluster::topics::delete(&cluster, name).await;
        }
        self.drop_local_topic(name).await
    }

    /// Removes a topic from this broker: metadata, then every local log and its directory.
    pub async fn drop_local_topic(self: &Arc<Self>, name: &str) -> Result<(), (i16, String)> {
        let topic = {
            let _admin = self.admin.lock().expect("admin lock");
            let mut md = self.metadata.write().expect("metadata lock");
            let Some(t) = md.topics.remove(name) else {
                return Err((
                    ec::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("topic '{name}' does not exist"),
                ));
            };
            self.persist(&md)
                .map_err(|e| (ec::KAFKA_STORAGE_ERROR, e.to_string()))?;
            t
        };
        for (i, p) in topic.partitions.iter().enumerate() {
            let topic = name.to_string();
            let _ = runtime::call_on(p.shard, move || async move {
                crate::cluster::replica::remove(&topic, i as i32);
                if let Err(e) = log_manager::delete(&topic, i as i32) {
                    tracing::warn!(topic, partition = i, error = %e, "could not delete partition directory");
                }
            })
            .await;
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(())
    }
}

/// How a new topic's partitions are laid out: a count (placed by the broker or the controller),
/// or a manual replica assignment, one broker list per partition.
enum Layout {
    Count {
        partitions: i32,
        replication_factor: i16,
    },
    Manual(Vec<Vec<i32>>),
}

/// Kafka's checks of a manual replica assignment (its controller's, with its messages): each
/// partition once, partitions numbered 0.., no empty list, only registered brokers, no broker
/// twice in a list, the same replication factor everywhere. Returns the lists by partition.
pub(crate) fn validate_assignment(
    assignments: &[(i32, Vec<i32>)],
    registered: &[i32],
) -> Result<Vec<Vec<i32>>, (i16, String)> {
    let bad = |m: String| (ec::INVALID_REPLICA_ASSIGNMENT, m);
    let mut by_partition: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    let mut rf: Option<usize> = None;
    for (index, brokers) in assignments {
        if by_partition.contains_key(index) {
            return Err(bad(format!(
                "Found multiple manual partition assignments for partition {index}"
            )));
        }
        if brokers.is_empty() {
            return Err(bad(
                "The manual partition assignment includes an empty replica list.".into(),
            ));
        }
        let mut sorted = brokers.clone();
        sorted.sort_unstable();
        for (i, b) in sorted.iter().enumerate() {
            if !registered.contains(b) {
                return Err(bad(format!(
                    "The manual partition assignment includes broker {b}, but no such broker is registered."
                )));
            }
            if i > 0 && sorted[i - 1] == *b {
                return Err(bad(format!(
                    "The manual partition assignment includes the broker {b} more than once."
                )));
            }
        }
        if let Some(rf) = rf.filter(|&rf| rf != brokers.len()) {
            return Err(bad(format!(
                "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {rf} replica(s).",
                brokers.len()
            )));
        }
        rf = Some(brokers.len());
        by_partition.insert(*index, brokers.clone());
    }
    if by_partition.is_empty()
        || by_partition
            .keys()
            .copied()
            .ne(0..by_partition.len() as i32)
    {
        return Err(bad(
            "partitions should be a consecutive 0-based integer sequence".into(),
        ));
    }
    Ok(by_partition.into_values().collect())
}

#[cfg(test)]
mod assignment_tests {
    use super::validate_assignment;

    fn check(a: &[(i32, &[i32])], brokers: &[i32]) -> Result<Vec<Vec<i32>>, String> {
        let a: Vec<(i32, Vec<i32>)> = a.iter().map(|(p, b)| (*p, b.to_vec())).collect();
        validate_assignment(&a, brokers).map_err(|(code, m)| {
            assert_eq!(code, 39, "INVALID_REPLICA_ASSIGNMENT");
            m
        })
    }

    #[test]
    fn kafkas_checks_of_a_manual_assignment() {
        assert_eq!(
            check(&[(1, &[2, 1]), (0, &[1, 2])], &[1, 2, 3]).unwrap(),
            vec![vec![1, 2], vec![2, 1]]
        );
        assert!(check(&[(0, &[1]), (0, &[1])], &[1])
            .unwrap_err()
            .contains("multiple"));
        assert!(check(&[(0, &[])], &[1])
            .unwrap_err()
            .contains("empty replica list"));
        assert!(check(&[(0, &[5])], &[1])
            .unwrap_err()
            .contains("broker 5, but no such broker"));
        assert!(check(&[(0, &[1, 1])], &[1])
            .unwrap_err()
            .contains("broker 1 more than once"));
        assert!(check(&[(0, &[1]), (1, &[1, 2])], &[1, 2])
            .unwrap_err()
            .contains(
            "with 2 replica(s), but this is not consistent with previous partitions, which have 1"
        ));
        assert!(check(&[(0, &[1]), (2, &[1])], &[1])
            .unwrap_err()
            .contains("consecutive"));
    }
}
