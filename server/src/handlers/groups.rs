//! Consumer-group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, ListGroups, DescribeGroups, DeleteGroups, OffsetDelete. Each runs on
//! the shard that owns the group (see `coordinator.rs`).

use super::{decode, encode, HandlerResult};
use crate::broker::Broker;
use crate::coordinator::{self, Committed, JoinRequest};
use crate::error_code as ec;
use crate::security::{code as op, Session};
use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use ringlet_engine::runtime;
use std::sync::Arc;
use std::time::Duration;

pub(super) fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// Runs `f` on the group's shard; `Err(code)` when no coordinator is available yet.
pub(super) async fn on_owner<T, F, Fut>(broker: &Arc<Broker>, group: &str, f: F) -> Result<T, i16>
where
    T: Send + 'static,
    F: FnOnce(i32) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
{
    if group.is_empty() {
        return Err(ec::INVALID_GROUP_ID);
    }
    let Some((shard, partition)) = coordinator::owner(broker, group) else {
        return Err(if broker.cluster.is_some() {
            ec::NOT_COORDINATOR
        } else {
            ec::COORDINATOR_NOT_AVAILABLE
        });
    };
    if broker.cluster.is_some() {
        // In a cluster the group's coordinator is its offsets partition's leader.
        return runtime::call_on(shard, move || {
            let serving = coordinator::serving(partition);
            let fut = serving.is_ok().then(|| f(partition));
            async move {
                serving?;
                Ok(fut.expect("serving").await)
            }
        })
        .await
        .unwrap_or(Err(ec::COORDINATOR_NOT_AVAILABLE));
    }
    runtime::call_on(shard, move || f(partition))
        .await
        .map_err(|_| ec::COORDINATOR_NOT_AVAILABLE)
}

/// FindCoordinator. A single broker coordinates every group once its offsets topic exists; in a
/// cluster the coordinator is the leader of the group's offsets partition, and the offsets topic
/// is created on first use, as Kafka does, with `offsets.topic.replication.factor` replicas
/// (fewer when fewer brokers are up).
pub fn find_coordinator(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: FindCoordinatorRequest = decode(body, version, "FindCoordinator")?;
    let view = broker.cluster.as_ref().map(|c| c.view());
    if let (Some(cluster), Some(view)) = (&broker.cluster, &view) {
        if view.loaded && !view.topics.contains_key(coordinator::OFFSETS_TOPIC) {
            create_offsets_topic(broker, cluster, view);
        }
    }
    // Key type 1: a transaction coordinator, on `__transaction_state` (created on first use).
    let txn = req.key_type == 1;
    if txn {
        super::txn::ensure_topic(broker, view.as_deref());
    }
    let topic = if txn {
        crate::txn::TXN_TOPIC
    } else {
        coordinator::OFFSETS_TOPIC
    };
    let single_ready = view.is_none() && broker.owner(topic, 0).is_some();
    let listener = &broker.config.listeners[sess.listener];
    // (node id, host, port) of the key's coordinator, or the error code.
    let lookup = |key_type: i8, key: &str| -> Result<(i32, String, i32), i16> {
        match key_type {
            0 if !super::group_allowed(broker, sess, op::DESCRIBE, key) => {
                return Err(ec::GROUP_AUTHORIZATION_FAILED)
            }
            1 if broker
                .authorizer
                .denied(sess, op::DESCRIBE, op::TRANSACTIONAL_ID, key) =>
            {
                return Err(ec::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
            }
            0 | 1 => {}
            _ => return Err(ec::INVALID_REQUEST),
        }
        let Some(view) = &view else {
            return if single_ready {
                let a = &listener.advertised;
                Ok((broker.config.broker_id, a.host.clone(), i32::from(a.port)))
            } else {
                Err(ec::COORDINATOR_NOT_AVAILABLE)
            };
        };
        let t = view
            .topics
            .get(topic)
            .ok_or(ec::COORDINATOR_NOT_AVAILABLE)?;
        let p = coordinator::partition_for(key, t.replicas.len() as i32);
        let leader = t
            .states
            .get(p as usize)
            .and_then(Option::as_ref)
            .map_or(-1, |s| s.leader);
        let (host, port) = view
            .brokers
            .get(&leader)
            .and_then(|b| b.endpoint(Some(&listener.name)))
            .ok_or(ec::COORDINATOR_NOT_AVAILABLE)?;
        Ok((leader, host, i32::from(port)))
    };
    // Errors carry no node, as Kafka answers them.
    let answer = |key: &str| match lookup(req.key_type, key) {
        Ok((id, host, port)) => (ec::NONE, id, host, port),
        Err(code) => (code, -1, String::new(), -1),
    };
    let mut resp = FindCoordinatorResponse::default();
    if version >= 4 {
        resp.coordinators = req
            .coordinator_keys
            .iter()
            .map(|k| {
                let (code, id, host, port) = answer(k.as_str());
                find_coordinator_response::Coordinator::default()
                    .with_key(k.clone())
                    .with_node_id(BrokerId(id))
                    .with_host(s(host))
                    .with_port(port)
                    .with_error_code(code)
            })
            .collect();
    } else {
        let (code, id, host, port) = answer(req.key.as_str());
        resp.error_code = code;
        resp.node_id = BrokerId(id);
        resp.host = s(host);
        resp.port = port;
    }
    encode(&resp, version).map(Some)
}

/// Starts creating `__consumer_offsets` in the cluster (in the background; FindCoordinator
/// answers COORDINATOR_NOT_AVAILABLE until its leaders are up).
fn create_offsets_topic(
    broker: &Arc<Broker>,
    cluster: &crate::cluster::Cluster,
    view: &crate::cluster::ClusterView,
) {
    let b = broker.clone();
    let rf = cluster
        .config
        .offsets_topic_replication_factor
        .min(view.brokers.len().max(1) as i16);
    runtime::spawn(async move {
        let n = b.config.offsets_topic_num_partitions;
        match b
            .create_topic(
                coordinator::OFFSETS_TOPIC,
                n,
                rf,
                coordinator::offsets_topic_configs(),
                false,
            )
            .await
        {
            Ok(()) | Err((ec::TOPIC_ALREADY_EXISTS, _)) => {}
            Err((code, msg)) => tracing::warn!(
                error = ec::name(code),
                msg,
                "cannot create the offsets topic"
            ),
        }
    })
    .detach();
}

pub async fn join_group(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
    client_id: &str,
) -> HandlerResult {
    let peer = sess.peer.as_str();
    let req: JoinGroupRequest = decode(body, version, "JoinGroup")?;
    let group = req.group_id.0.to_string();
    let session = req.session_timeout_ms;
    let mut resp = JoinGroupResponse::default()
        .with_generation_id(-1)
        .with_member_id(req.member_id.clone());
    if !super::group_allowed(broker, sess, op::READ, &group) {
        resp.error_code = ec::GROUP_AUTHORIZATION_FAILED;
        return encode(&resp, version).map(Some);
    }
    if session < broker.config.group_min_session_timeout_ms
        || session > broker.config.group_max_session_timeout_ms
    {
        resp.error_code = ec::INVALID_SESSION_TIMEOUT;
        return encode(&resp, version).map(Some);
    }
    let rebalance = if version >= 1 {
        req.rebalance_timeout_ms
    } else {
        session
    };
    let jr = JoinRequest {
        group: group.clone(),
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: client_id.to_string(),
        client_host: format!("/{}", peer.rsplit_once(':').map_or(peer, |p| p.0)),
        session_timeout: Duration::from_millis(session.max(1) as u64),
        rebalance_timeout: Duration::from_millis(rebalance.max(1) as u64),
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= 4,
        initial_delay: Duration::from_millis(broker.config.group_initial_rebalance_delay_ms),
        topics: super::consumer_group::topic_layout(broker),
        consumer_settings: super::consumer_group::settings(broker),
    };
    let (b, g) = (broker.clone(), group.clone());
    let joined = on_owner(broker, &group, move |_| async move {
        let r = coordinator::join(jr).await;
        // A classic member joining a consumer group changes its KIP-848 state; an empty
        // consumer group going back to classic leaves tombstones.
        match coordinator::persist_group(&b, &g).await {
            ec::NONE => r,
            code => coordinator::JoinResult {
                error_code: code,
                ..Default::default()
            },
        }
    })
    .await;
    match joined {
        Err(code) => resp.error_code = code,
        Ok(r) => {
            resp.error_code = r.error_code;
            resp.generation_id = if r.error_code == 0 {
                r.generation_id
            } else {
                -1
            };
            resp.protocol_type = r.protocol_type.map(s);
            resp.protocol_name = r.protocol_name.clone().map(s);
            if version < 7 {
                // Before v7 the protocol name is a non-null string.
                resp.protocol_name = Some(s(r.protocol_name.unwrap_or_default()));
            }
            resp.leader = s(r.leader);
            if !r.member_id.is_empty() {
                resp.member_id = s(r.member_id);
            }
            resp.members = r
                .members
                .into_iter()
                .map(|(id, iid, meta)| {
                    join_group_response::JoinGroupResponseMember::default()
                        .with_member_id(s(id))
                        .with_group_instance_id(iid.map(s))
                        .with_metadata(meta)
                })
                .collect();
        }
    }
    encode(&resp, version).map(Some)
}

pub async fn sync_group(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: SyncGroupRequest = decode(body, version, "SyncGroup")?;
    let group = req.group_id.0.to_string();
    let assignments: Vec<(String, Bytes)> = req
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    let (g, gen, member) = (group.clone(), req.generation_id, req.member_id.to_string());
    let mut resp = SyncGroupResponse::default();
    if !super::group_allowed(broker, sess, op::READ, &group) {
        resp.error_code = ec::GROUP_AUTHORIZATION_FAILED;
        return encode(&resp, version).map(Some);
    }
    match on_owner(broker, &group, move |_| {
        coordinator::sync(g, gen, member, assignments)
    })
    .await
    {
        Err(code) => resp.error_code = code,
        Ok(r) => {
            resp.error_code = r.error_code;
            resp.protocol_type = r.protocol_type.map(s);
            resp.protocol_name = r.protocol_name.map(s);
            resp.assignment = r.assignment;
        }
    }
    encode(&resp, version).map(Some)
}

pub async fn heartbeat(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: HeartbeatRequest = decode(body, version, "Heartbeat")?;
    let group = req.group_id.0.to_string();
    let (g, gen, member) = (group.clone(), req.generation_id, req.member_id.to_string());
    let code = if !super::group_allowed(broker, sess, op::READ, &group) {
        ec::GROUP_AUTHORIZATION_FAILED
    } else {
        on_owner(broker, &group, move |_| async move {
            coordinator::heartbeat(&g, gen, &member)
        })
        .await
        .unwrap_or_else(|c| c)
    };
    encode(&HeartbeatResponse::default().with_error_code(code), version).map(Some)
}

pub async fn leave_group(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: LeaveGroupRequest = decode(body, version, "LeaveGroup")?;
    let group = req.group_id.0.to_string();
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let delay = Duration::from_millis(broker.config.group_initial_rebalance_delay_ms);
    let (g, ms) = (group.clone(), members.clone());
    let mut resp = LeaveGroupResponse::default();
    if !super::group_allowed(broker, sess, op::READ, &group) {
        resp.error_code = ec::GROUP_AUTHORIZATION_FAILED;
        return encode(&resp, version).map(Some);
    }
    let b = broker.clone();
    match on_owner(broker, &group, move |_| async move {
        let codes = coordinator::leave(&g, &ms, delay);
        match coordinator::persist_group(&b, &g).await {
            ec::NONE => codes,
            code => vec![code; codes.len()],
        }
    })
    .await
    {
        Err(code) => resp.error_code = code,
        Ok(codes) => {
            if version >= 3 {
                resp.members = members
                    .iter()
                    .zip(&codes)
                    .map(|((id, iid), c)| {
                        leave_group_response::MemberResponse::default()
                            .with_member_id(s(id.clone()))
                            .with_group_instance_id(iid.clone().map(s))
                            .with_error_code(*c)
                    })
                    .collect();
            } else {
                resp.error_code = codes.first().copied().unwrap_or(ec::NONE);
            }
        }
    }
    encode(&resp, version).map(Some)
}

pub async fn offset_commit(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: OffsetCommitRequest = decode(body, version, "OffsetCommit")?;
    let group = req.group_id.0.to_string();
    let now = ringlet_engine::config::now_ms();
    let group_ok = super::group_allowed(broker, sess, op::READ, &group);
    let topic_ok: std::collections::HashSet<String> = req
        .topics
        .iter()
        .map(|t| t.name.0.to_string())
        .filter(|t| group_ok && super::topic_allowed(broker, sess, op::READ, t))
        .collect();
    // Per-partition refusals, as Kafka's: metadata longer than offset.metadata.max.bytes, or a
    // partition that does not exist. The other partitions of the request are still committed.
    let max_meta = broker.config.offset_metadata_max_bytes;
    let refusal = |topic: &str, p: &offset_commit_request::OffsetCommitRequestPartition| {
        if !topic_ok.contains(topic) {
            Some(ec::TOPIC_AUTHORIZATION_FAILED)
        } else if p
            .committed_metadata
            .as_ref()
            .is_some_and(|m| m.len() > max_meta)
        {
            Some(ec::OFFSET_METADATA_TOO_LARGE)
        } else if !broker.partition_exists(topic, p.partition_index) {
            Some(ec::UNKNOWN_TOPIC_OR_PARTITION)
        } else {
            None
        }
    };
    let commits: Vec<(String, i32, Committed)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|p| refusal(t.name.0.as_str(), p).is_none())
                .map(move |p| {
                    (
                        t.name.0.to_string(),
                        p.partition_index,
                        Committed {
                            offset: p.committed_offset,
                            leader_epoch: p.committed_leader_epoch,
                            metadata: p
                                .committed_metadata
                                .as_ref()
                                .map(|m| m.to_string())
                                .unwrap_or_default(),
                            commit_ms: now,
                        },
                    )
                })
        })
        .collect();
    let (g, gen, member) = (
        group.clone(),
        if version >= 1 {
            req.generation_id_or_member_epoch
        } else {
            -1
        },
        req.member_id.to_string(),
    );
    let code = if !group_ok {
        ec::GROUP_AUTHORIZATION_FAILED
    } else {
        on_owner(broker, &group, move |partition| async move {
            let code = coordinator::check_commit(&g, gen, &member);
            if code != ec::NONE || commits.is_empty() {
                // Every partition refused on its own (or none asked for): nothing to write.
                return code;
            }
            coordinator::commit(&g, partition, commits).await
        })
        .await
        .unwrap_or_else(|c| c)
    };
    if code != ec::NONE {
        tracing::debug!(group = %group, error = ec::name(code), "offset commit refused");
    }
    let topics = req
        .topics
        .iter()
        .map(|t| {
            offset_commit_response::OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            offset_commit_response::OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(match refusal(t.name.0.as_str(), p) {
                                    Some(refused) if code == ec::NONE => refused,
                                    _ => code,
                                })
                        })
                        .collect(),
                )
        })
        .collect();
    encode(
        &OffsetCommitResponse::default().with_topics(topics),
        version,
    )
    .map(Some)
}

pub async fn list_groups(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: ListGroupsRequest = decode(body, version, "ListGroups")?;
    // Describe on the cluster lists every group; otherwise those the principal may describe.
    let all = broker.authorizer.authorize(
        sess,
        op::DESCRIBE,
        op::CLUSTER,
        crate::security::CLUSTER_NAME,
    );
    let mut groups = Vec::new();
    for shard in 0..runtime::shard_count() {
        if let Ok(list) = runtime::call_on(shard, || async { coordinator::list_local() }).await {
            groups.extend(list);
        }
    }
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    // v5's types filter (KIP-848): classic and consumer groups.
    let types: Vec<String> = req.types_filter.iter().map(|t| t.to_lowercase()).collect();
    groups.retain(|(_, _, _, kind)| types.is_empty() || types.iter().any(|t| t == kind));
    let resp = ListGroupsResponse::default().with_groups(
        groups
            .into_iter()
            .filter(|(_, _, st, _)| states.is_empty() || states.contains(&st.to_lowercase()))
            .filter(|(id, _, _, _)| {
                all || broker
                    .authorizer
                    .authorize(sess, op::DESCRIBE, op::GROUP, id)
            })
            .map(|(id, ptype, st, kind)| {
                list_groups_response::ListedGroup::default()
                    .with_group_id(GroupId(s(id)))
                    .with_protocol_type(s(ptype))
                    .with_group_state(s(st))
                    .with_group_type(s(kind))
            })
            .collect(),
    );
    encode(&resp, version).map(Some)
}

pub async fn describe_groups(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: DescribeGroupsRequest = decode(body, version, "DescribeGroups")?;
    let mut out = Vec::new();
    for gid in req.groups {
        let group = gid.0.to_string();
        let g = group.clone();
        let mut d = describe_groups_response::DescribedGroup::default().with_group_id(gid);
        if !super::group_allowed(broker, sess, op::DESCRIBE, &group) {
            d.error_code = ec::GROUP_AUTHORIZATION_FAILED;
            out.push(d);
            continue;
        }
        match on_owner(
            broker,
            &group,
            move |_| async move { coordinator::describe(&g) },
        )
        .await
        {
            Err(code) => d.error_code = code,
            // From v6 (KIP-1043) a group that does not exist is an error, as in Kafka 4.
            Ok(None) => {
                d.group_state = s("Dead");
                if version >= 6 {
                    d.error_code = ec::GROUP_ID_NOT_FOUND;
                    d.error_message = Some(s(format!("Group {group} not found.")));
                }
            }
            Ok(Some(desc)) => {
                if req.include_authorized_operations {
                    d.authorized_operations =
                        super::authorized_operations(broker, sess, op::GROUP, &group);
                }
                d.group_state = s(desc.state);
                d.protocol_type = s(desc.protocol_type);
                d.protocol_data = s(desc.protocol);
                d.members = desc
                    .members
                    .into_iter()
                    .map(|(id, iid, cid, host, meta, assignment)| {
                        describe_groups_response::DescribedGroupMember::default()
                            .with_member_id(s(id))
                            .with_group_instance_id(iid.map(s))
                            .with_client_id(s(cid))
                            .with_client_host(s(host))
                            .with_member_metadata(meta)
                            .with_member_assignment(assignment)
                    })
                    .collect();
            }
        }
        out.push(d);
    }
    encode(&DescribeGroupsResponse::default().with_groups(out), version).map(Some)
}

pub async fn delete_groups(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: DeleteGroupsRequest = decode(body, version, "DeleteGroups")?;
    let mut results = Vec::new();
    for gid in req.groups_names {
        let group = gid.0.to_string();
        let (b, g) = (broker.clone(), group.clone());
        let code = if !super::group_allowed(broker, sess, op::DELETE, &group) {
            ec::GROUP_AUTHORIZATION_FAILED
        } else {
            on_owner(broker, &group, move |_| async move {
                coordinator::delete_group(&b, &g).await
            })
            .await
            .unwrap_or_else(|c| c)
        };
        if code == ec::NONE {
            // A share group's partitions in memory on this broker's shards go too.
            for shard in 0..runtime::shard_count() {
                let g = group.clone();
                let _ =
                    runtime::call_on(shard, move || async move { crate::share::forget_group(&g) })
                        .await;
            }
        }
        results.push(
            delete_groups_response::DeletableGroupResult::default()
                .with_group_id(gid)
                .with_error_code(code),
        );
    }
    encode(
        &DeleteGroupsResponse::default().with_results(results),
        version,
    )
    .map(Some)
}

pub async fn offset_delete(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: OffsetDeleteRequest = decode(body, version, "OffsetDelete")?;
    let group = req.group_id.0.to_string();
    if !super::group_allowed(broker, sess, op::DELETE, &group) {
        let resp = OffsetDeleteResponse::default().with_error_code(ec::GROUP_AUTHORIZATION_FAILED);
        return encode(&resp, version).map(Some);
    }
    let topic_ok: std::collections::HashSet<String> = req
        .topics
        .iter()
        .map(|t| t.name.0.to_string())
        .filter(|t| super::topic_allowed(broker, sess, op::READ, t))
        .collect();
    let parts: Vec<(String, i32)> = req
        .topics
        .iter()
        .filter(|t| topic_ok.contains(t.name.0.as_str()))
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    let (b, g, ps) = (broker.clone(), group.clone(), parts);
    // Offsets of a topic the group's members are subscribed to stay, each answered
    // GROUP_SUBSCRIBED_TO_TOPIC; a group whose members use another protocol is NON_EMPTY_GROUP.
    let (code, subscribed) = on_owner(broker, &group, move |_| async move {
        let Some(desc) = coordinator::describe(&g) else {
            return (ec::GROUP_ID_NOT_FOUND, Default::default());
        };
        let subscribed = match coordinator::subscribed_topics(&desc) {
            Ok(topics) => topics,
            Err(code) => return (code, Default::default()),
        };
        let ps: Vec<_> = ps
            .into_iter()
            .filter(|(t, _)| !subscribed.contains(t))
            .collect();
        (coordinator::delete_offsets(&b, &g, &ps).await, subscribed)
    })
    .await
    .unwrap_or_else(|c| (c, Default::default()));
    let mut resp = OffsetDeleteResponse::default().with_error_code(
        if code == ec::GROUP_ID_NOT_FOUND || code == ec::NON_EMPTY_GROUP {
            code
        } else {
            ec::NONE
        },
    );
    resp.topics = req
        .topics
        .iter()
        .map(|t| {
            offset_delete_response::OffsetDeleteResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            offset_delete_response::OffsetDeleteResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(if !topic_ok.contains(t.name.0.as_str()) {
                                    ec::TOPIC_AUTHORIZATION_FAILED
                                } else if code == ec::GROUP_ID_NOT_FOUND
                                    || code == ec::NON_EMPTY_GROUP
                                {
                                    ec::NONE
                                } else if subscribed.contains(t.name.0.as_str()) {
                                    ec::GROUP_SUBSCRIBED_TO_TOPIC
                                } else {
                                    code
                                })
                        })
                        .collect(),
                )
        })
        .collect();
    encode(&resp, version).map(Some)
}
