//! InitProducerId: a producer id for an idempotent producer, or (with a transactional id) a
//! producer id and epoch from the transaction coordinator (see `txn.rs`).

use super::{decode, encode, HandlerResult};
use crate::broker::Broker;
use crate::error_code as ec;
use bytes::Bytes;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use std::sync::Arc;

pub async fn handle(
    broker: &Arc<Broker>,
    session: &crate::security::Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: InitProducerIdRequest = decode(body, version, "InitProducerId")?;
    let mut resp = InitProducerIdResponse::default();
    if req.transactional_id.is_some() {
        match super::txn::init_producer_id(broker, session, &req, version).await {
            Ok((pid, epoch)) => {
                resp.producer_id = ProducerId(pid);
                resp.producer_epoch = epoch;
            }
            Err(code) => {
                resp.error_code = code;
                resp.producer_id = ProducerId(-1);
                resp.producer_epoch = -1;
            }
        }
    } else if !idempotent_write_allowed(broker, session) {
        resp.error_code = ec::CLUSTER_AUTHORIZATION_FAILED;
        resp.producer_id = ProducerId(-1);
        resp.producer_epoch = -1;
    } else {
        resp.producer_id = ProducerId(broker.allocate_producer_id());
        resp.producer_epoch = 0;
    }
    encode(&resp, version).map(Some)
}

/// IdempotentWrite on the cluster, or (as since Kafka 2.8, KIP-679) Write on some topic.
fn idempotent_write_allowed(broker: &Broker, session: &crate::security::Session) -> bool {
    use crate::security::code;
    let a = &broker.authorizer;
    if a.authorize(
        session,
        code::IDEMPOTENT_WRITE,
        code::CLUSTER,
        crate::security::CLUSTER_NAME,
    ) {
        return true;
    }
    let md = broker.metadata.read().expect("metadata lock");
    let any = md
        .topics
        .keys()
        .any(|t| a.authorize(session, code::WRITE, code::TOPIC, t));
    if !any {
        tracing::info!(principal = %session.principal(), "authorization denied: InitProducerId needs IdempotentWrite on the cluster or Write on a topic");
    }
    any
}
