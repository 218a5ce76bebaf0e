//! Request dispatch: frame header, version checks, one handler per Kafka API.

mod acls;
mod alter_configs;
mod api_versions;
mod consumer_group;
mod create_partitions;
mod create_topics;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_topic_partitions;
mod elect_leaders;
mod fetch;
mod fetch_response;
mod group_offsets;
mod groups;
mod init_producer_id;
mod list_config_resources;
mod list_offsets;
mod log_dirs;
mod metadata;
mod offset_for_leader_epoch;
mod produce;
mod quotas;
mod reassign;
pub mod sasl;
mod share;
mod share_offsets;
mod txn;

use crate::broker::Broker;
use crate::response::Part;
use crate::security::{code, Session};
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// APIs this broker serves and the versions it supports: Apache Kafka 4.1's ranges (measured with
/// its ApiVersions answer) wherever Ringlet has the API (see [`api_versions`] for Produce's
/// advertised minimum).
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::ListConfigResources, 0, 1),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::TxnOffsetCommit, 0, 5),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 2),
    (ApiKey::WriteTxnMarkers, 1, 1),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::ShareGroupHeartbeat, 1, 1),
    (ApiKey::ShareGroupDescribe, 1, 1),
    // v2 is Kafka 4.2's (RENEW, acquire modes): the protocol crate carries it as a local patch.
    (ApiKey::ShareFetch, 1, 2),
    (ApiKey::ShareAcknowledge, 1, 2),
    (ApiKey::DescribeShareGroupOffsets, 0, 0),
    (ApiKey::AlterShareGroupOffsets, 0, 0),
    (ApiKey::DeleteShareGroupOffsets, 0, 0),
    (ApiKey::ReadShareGroupState, 0, 0),
    (ApiKey::WriteShareGroupState, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
];

/// Whether the session may `op` the topic; a refusal is logged.
pub(crate) fn topic_allowed(broker: &Broker, session: &Session, op: i8, topic: &str) -> bool {
    !broker.authorizer.denied(session, op, code::TOPIC, topic)
}

/// Whether the session may `op` the group; a refusal is logged.
pub(crate) fn group_allowed(broker: &Broker, session: &Session, op: i8, group: &str) -> bool {
    !broker.authorizer.denied(session, op, code::GROUP, group)
}

/// Whether the session may `op` the cluster; a refusal is logged.
pub(crate) fn cluster_allowed(broker: &Broker, session: &Session, op: i8) -> bool {
    let allowed =
        !broker
            .authorizer
            .denied(session, op, code::CLUSTER, crate::security::CLUSTER_NAME);
    // Only inter-broker requests ask for ClusterAction: their connection is a broker's.
    if allowed && op == code::CLUSTER_ACTION {
        session.quota_exempt.set(true);
    }
    allowed
}

/// Authorizes a config operation on a topic (resource type 2) or the broker (4); the error code
/// and message of a refusal.
pub(crate) fn config_refusal(
    broker: &Broker,
    session: &Session,
    op: i8,
    resource_type: i8,
    name: &str,
) -> Option<(i16, String)> {
    use crate::error_code as ec;
    let what = crate::security::op_name(op);
    match resource_type {
        2 if !topic_allowed(broker, session, op, name) => Some((
            ec::TOPIC_AUTHORIZATION_FAILED,
            format!("{} may not {what} topic {name}", session.principal()),
        )),
        32 if !group_allowed(broker, session, op, name) => Some((
            ec::GROUP_AUTHORIZATION_FAILED,
            format!("{} may not {what} group {name}", session.principal()),
        )),
        4 if !cluster_allowed(broker, session, op) => Some((
            ec::CLUSTER_AUTHORIZATION_FAILED,
            format!("{} may not {what} the cluster", session.principal()),
        )),
        _ => None,
    }
}

/// `authorized_operations` of a topic, group or the cluster (KIP-430): bit `op` set for each
/// operation Kafka defines on that resource type that the session may perform.
pub(crate) fn authorized_operations(
    broker: &Broker,
    session: &Session,
    resource_type: i8,
    name: &str,
) -> i32 {
    let ops: &[i8] = match resource_type {
        code::TOPIC => &[
            code::READ,
            code::WRITE,
            code::CREATE,
            code::DELETE,
            code::ALTER,
            code::DESCRIBE,
            code::DESCRIBE_CONFIGS,
            code::ALTER_CONFIGS,
        ],
        code::GROUP => &[
            code::READ,
            code::DESCRIBE,
            code::DELETE,
            code::DESCRIBE_CONFIGS,
            code::ALTER_CONFIGS,
        ],
        _ => &[
            code::CREATE,
            code::CLUSTER_ACTION,
            code::DESCRIBE_CONFIGS,
            code::ALTER_CONFIGS,
            code::IDEMPOTENT_WRITE,
            code::ALTER,
            code::DESCRIBE,
        ],
    };
    ops.iter()
        .filter(|&&op| {
            broker
                .authorizer
                .authorize(session, op, resource_type, name)
        })
        .fold(0, |bits, &op| bits | (1 << op))
}

/// Whether the session may create the topic: Create on the cluster or on the topic.
pub(crate) fn may_create_topic(broker: &Broker, session: &Session, topic: &str) -> bool {
    broker.authorizer.authorize(
        session,
        code::CREATE,
        code::CLUSTER,
        crate::security::CLUSTER_NAME,
    ) || topic_allowed(broker, session, code::CREATE, topic)
}

pub fn supported_range(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED.iter().find(|s| s.0 == key).map(|s| (s.1, s.2))
}

/// What a handler hands back: the encoded response body, or nothing (acks=0).
pub type HandlerResult = Result<Option<BytesMut>, String>;

/// Decodes a request body, turning codec failures into a reason to close the connection.
pub fn decode<T: Decodable>(body: &mut Bytes, version: i16, what: &str) -> Result<T, String> {
    T::decode(body, version).map_err(|e| format!("malformed {what} v{version} request: {e}"))
}

/// Logs an admin request refused with Kafka error `code` and returns the message for the
/// response's `error_message`: the one place the refusal pattern lives.
pub fn refused(what: &str, resource: &str, code: i16, msg: String) -> Option<StrBytes> {
    tracing::info!(resource, error = crate::error_code::name(code), %msg, "{what} refused");
    Some(StrBytes::from_string(msg))
}

/// Encodes a response body and counts its error codes for metrics.
pub fn encode<T: Encodable + crate::metrics::ErrorCodes>(
    msg: &T,
    version: i16,
) -> Result<BytesMut, String> {
    crate::metrics::record_errors(msg);
    let mut b = BytesMut::new();
    msg.encode(&mut b, version)
        .map_err(|e| format!("cannot encode response v{version}: {e}"))?;
    Ok(b)
}

/// What one request frame comes to: `Ok(None)`: no response (acks=0). `Err`: close the
/// connection, as Kafka does for malformed frames, unknown APIs and unsupported versions.
pub type Handled = Result<Option<Vec<Part>>, String>;

/// The rest of a request's handling, started by [`start`].
pub type Pending = Pin<Box<dyn Future<Output = Handled>>>;

/// Handles one request frame (as an anonymous client of the first listener).
pub async fn dispatch(broker: &Arc<Broker>, frame: Bytes, peer: &str) -> Handled {
    let session = Session::new(0, peer.to_string());
    start(broker, frame, &session).await?.await
}

/// Starts handling one request frame. A produce request returns as soon as its appends are
/// queued on their partitions (in request order), the returned future then waits for them; every
/// other request is handled completely before this returns.
pub async fn start(
    broker: &Arc<Broker>,
    mut frame: Bytes,
    session: &Session,
) -> Result<Pending, String> {
    let (header, api_key, version) = match request_header(&mut frame) {
        Ok(h) => h,
        Err(HeaderError::ApiVersionsUnsupported { correlation_id }) => {
            // KIP-511: answer with v0 and UNSUPPORTED_VERSION so the client can pick a version.
            let body = api_versions::unsupported(api_versions::Features::of(&broker.config));
            return Ok(ready(Ok(Some(frame_response(correlation_id, 0, body?)))));
        }
        Err(HeaderError::Close(reason)) => return Err(reason),
    };
    if let Some(id) = header.client_id.as_deref() {
        if *session.client_id.borrow() != id {
            *session.client_id.borrow_mut() = id.to_string();
        }
    }
    let response_header_version = api_key.response_header_version(version);
    if api_key == ApiKey::Produce {
        let rest = produce::start(broker, session, &mut frame, version).await?;
        trailing_bytes(&frame, api_key, version);
        let correlation_id = header.correlation_id;
        return Ok(Box::pin(async move {
            let body = rest.await?;
            Ok(body.map(|b| frame_response(correlation_id, response_header_version, b)))
        }));
    }
    let handled = handle(broker, frame, &header, api_key, version, session).await;
    Ok(ready(handled))
}

/// Why a request header cannot be served.
pub(crate) enum HeaderError {
    /// Close the connection (short frame, unknown API, unsupported version, bad header).
    Close(String),
    /// ApiVersions at a version this broker does not know: answered per KIP-511.
    ApiVersionsUnsupported { correlation_id: i32 },
}

/// Checks a frame's API key and version against [`SUPPORTED`] and decodes its header, leaving
/// `frame` at the request body.
pub(crate) fn request_header(
    frame: &mut Bytes,
) -> Result<(RequestHeader, ApiKey, i16), HeaderError> {
    if frame.len() < 8 {
        return Err(HeaderError::Close(format!(
            "request frame of {} bytes is too short for a header",
            frame.len()
        )));
    }
    let api_key_raw = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Ok(api_key) = ApiKey::try_from(api_key_raw) else {
        return Err(HeaderError::Close(format!("unknown api key {api_key_raw}")));
    };
    let Some((min, max)) = supported_range(api_key) else {
        return Err(HeaderError::Close(format!("unsupported api {api_key:?}")));
    };
    if version < min || version > max {
        if api_key == ApiKey::ApiVersions {
            return Err(HeaderError::ApiVersionsUnsupported { correlation_id });
        }
        return Err(HeaderError::Close(format!(
            "unsupported version {version} of {api_key:?} (supported {min}..={max})"
        )));
    }
    let header = RequestHeader::decode(frame, api_key.request_header_version(version))
        .map_err(|e| HeaderError::Close(format!("malformed request header: {e}")))?;
    Ok((header, api_key, version))
}

fn ready(handled: Handled) -> Pending {
    Box::pin(std::future::ready(handled))
}

fn trailing_bytes(frame: &Bytes, api_key: ApiKey, version: i16) {
    if frame.has_remaining() && api_key != ApiKey::ApiVersions {
        tracing::debug!(
            ?api_key,
            version,
            left = frame.remaining(),
            "request had trailing bytes"
        );
    }
}

/// Handles a request other than produce, whose header is decoded.
async fn handle(
    broker: &Arc<Broker>,
    mut frame: Bytes,
    header: &RequestHeader,
    api_key: ApiKey,
    version: i16,
    session: &Session,
) -> Handled {
    let response_header_version = api_key.response_header_version(version);
    if api_key == ApiKey::Fetch {
        let parts = fetch::handle(broker, session, &mut frame, version).await?;
        return Ok(parts.map(|p| frame_parts(header.correlation_id, response_header_version, p)));
    }
    let body = match api_key {
        ApiKey::ApiVersions => api_versions::handle(
            &mut frame,
            version,
            api_versions::Features::of(&broker.config),
        ),
        ApiKey::Metadata => metadata::handle(broker, session, &mut frame, version).await,
        ApiKey::ListOffsets => list_offsets::handle(broker, session, &mut frame, version).await,
        ApiKey::OffsetForLeaderEpoch => {
            offset_for_leader_epoch::handle(broker, session, &mut frame, version).await
        }
        ApiKey::CreateTopics => create_topics::handle(broker, session, &mut frame, version).await,
        ApiKey::DeleteTopics => delete_topics::handle(broker, session, &mut frame, version).await,
        ApiKey::InitProducerId => {
            init_producer_id::handle(broker, session, &mut frame, version).await
        }
        ApiKey::AddPartitionsToTxn => {
            txn::add_partitions_to_txn(broker, session, &mut frame, version).await
        }
        ApiKey::AddOffsetsToTxn => {
            txn::add_offsets_to_txn(broker, session, &mut frame, version).await
        }
        ApiKey::EndTxn => txn::end_txn(broker, session, &mut frame, version).await,
        ApiKey::TxnOffsetCommit => {
            txn::txn_offset_commit(broker, session, &mut frame, version).await
        }
        ApiKey::DescribeTransactions => {
            txn::describe_transactions(broker, session, &mut frame, version).await
        }
        ApiKey::ListTransactions => {
            txn::list_transactions(broker, session, &mut frame, version).await
        }
        ApiKey::DescribeProducers => {
            txn::describe_producers(broker, session, &mut frame, version).await
        }
        ApiKey::WriteTxnMarkers => {
            txn::write_txn_markers(broker, session, &mut frame, version).await
        }
        ApiKey::DescribeConfigs => {
            describe_configs::handle(broker, session, &mut frame, version).await
        }
        ApiKey::AlterConfigs => alter_configs::handle(broker, session, &mut frame, version).await,
        ApiKey::IncrementalAlterConfigs => {
            alter_configs::handle_incremental(broker, session, &mut frame, version).await
        }
        ApiKey::CreatePartitions => {
            create_partitions::handle(broker, session, &mut frame, version).await
        }
        ApiKey::DescribeCluster => describe_cluster::handle(broker, session, &mut frame, version),
        ApiKey::ElectLeaders => elect_leaders::handle(broker, session, &mut frame, version).await,
        ApiKey::AlterPartitionReassignments => {
            reassign::alter(broker, session, &mut frame, version).await
        }
        ApiKey::ListPartitionReassignments => {
            reassign::list(broker, session, &mut frame, version).await
        }
        ApiKey::DescribeClientQuotas => {
            quotas::describe(broker, session, &mut frame, version).await
        }
        ApiKey::AlterClientQuotas => quotas::alter(broker, session, &mut frame, version).await,
        ApiKey::ListConfigResources => {
            list_config_resources::handle(broker, session, &mut frame, version)
        }
        ApiKey::DescribeTopicPartitions => {
            describe_topic_partitions::handle(broker, session, &mut frame, version)
        }
        ApiKey::DeleteRecords => {
            log_dirs::delete_records(broker, session, &mut frame, version).await
        }
        ApiKey::DescribeLogDirs => {
            log_dirs::describe_log_dirs(broker, session, &mut frame, version).await
        }
        ApiKey::FindCoordinator => groups::find_coordinator(broker, session, &mut frame, version),
        ApiKey::JoinGroup => {
            let client_id = header.client_id.as_ref().map_or("", |c| c.as_str());
            groups::join_group(broker, session, &mut frame, version, client_id).await
        }
        ApiKey::ConsumerGroupHeartbeat => {
            let client_id = header.client_id.as_ref().map_or("", |c| c.as_str());
            consumer_group::heartbeat(broker, session, &mut frame, version, client_id).await
        }
        ApiKey::ConsumerGroupDescribe => {
            consumer_group::describe(broker, session, &mut frame, version).await
        }
        ApiKey::ShareGroupHeartbeat => {
            let client_id = header.client_id.as_ref().map_or("", |c| c.as_str());
            share::heartbeat(broker, session, &mut frame, version, client_id).await
        }
        ApiKey::ShareGroupDescribe => share::describe(broker, session, &mut frame, version).await,
        ApiKey::ShareFetch => share::fetch(broker, session, &mut frame, version).await,
        ApiKey::ShareAcknowledge => share::acknowledge(broker, session, &mut frame, version).await,
        ApiKey::DescribeShareGroupOffsets => {
            share_offsets::describe(broker, session, &mut frame, version).await
        }
        ApiKey::AlterShareGroupOffsets => {
            share_offsets::alter(broker, session, &mut frame, version).await
        }
        ApiKey::DeleteShareGroupOffsets => {
            share_offsets::delete(broker, session, &mut frame, version).await
        }
        ApiKey::ReadShareGroupState => {
            share_offsets::read_state(broker, session, &mut frame, version).await
        }
        ApiKey::WriteShareGroupState => {
            share_offsets::write_state(broker, session, &mut frame, version).await
        }
        ApiKey::SyncGroup => groups::sync_group(broker, session, &mut frame, version).await,
        ApiKey::Heartbeat => groups::heartbeat(broker, session, &mut frame, version).await,
        ApiKey::LeaveGroup => groups::leave_group(broker, session, &mut frame, version).await,
        ApiKey::OffsetCommit => groups::offset_commit(broker, session, &mut frame, version).await,
        ApiKey::OffsetFetch => {
            group_offsets::offset_fetch(broker, session, &mut frame, version).await
        }
        ApiKey::ListGroups => groups::list_groups(broker, session, &mut frame, version).await,
        ApiKey::DescribeGroups => {
            groups::describe_groups(broker, session, &mut frame, version).await
        }
        ApiKey::DeleteGroups => groups::delete_groups(broker, session, &mut frame, version).await,
        ApiKey::OffsetDelete => groups::offset_delete(broker, session, &mut frame, version).await,
        ApiKey::SaslHandshake | ApiKey::SaslAuthenticate => {
            sasl::not_sasl(api_key, &mut frame, version)
        }
        ApiKey::CreateAcls => acls::create(broker, session, &mut frame, version).await,
        ApiKey::DescribeAcls => acls::describe(broker, session, &mut frame, version),
        ApiKey::DeleteAcls => acls::delete(broker, session, &mut frame, version).await,
        ApiKey::DescribeUserScramCredentials => {
            acls::describe_scram(broker, session, &mut frame, version)
        }
        ApiKey::AlterUserScramCredentials => {
            acls::alter_scram(broker, session, &mut frame, version).await
        }
        _ => Err(format!("unsupported api {api_key:?}")),
    }?;
    trailing_bytes(&frame, api_key, version);
    Ok(body.map(|b| frame_response(header.correlation_id, response_header_version, b)))
}

pub(crate) fn frame_response(
    correlation_id: i32,
    header_version: i16,
    body: BytesMut,
) -> Vec<Part> {
    frame_parts(
        correlation_id,
        header_version,
        vec![Part::Bytes(body.freeze())],
    )
}

/// Prefixes the size and the response header to a body made of parts.
fn frame_parts(correlation_id: i32, header_version: i16, body: Vec<Part>) -> Vec<Part> {
    let mut head = BytesMut::with_capacity(16);
    head.extend_from_slice(&[0, 0, 0, 0]);
    let h = ResponseHeader::default().with_correlation_id(correlation_id);
    h.encode(&mut head, header_version)
        .expect("response header encodes");
    let len = head.len() - 4 + body.iter().map(Part::len).sum::<usize>();
    head[0..4].copy_from_slice(&(len as i32).to_be_bytes());
    let mut parts = Vec::with_capacity(body.len() + 1);
    parts.push(Part::Bytes(head.freeze()));
    parts.extend(body);
    parts
}
