//! InitProducerId for idempotent producers (no transactions yet).

use super::{decode, encode, HandlerResult};
use crate::broker::Broker;
use crate::error_code as ec;
use bytes::Bytes;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, body: &mut Bytes, version: i16) -> HandlerResult {
    let req: InitProducerIdRequest = decode(body, version, "InitProducerId")?;
    let mut resp = InitProducerIdResponse::default();
    if req.transactional_id.is_some() {
        resp.error_code = ec::COORDINATOR_NOT_AVAILABLE;
        resp.producer_id = ProducerId(-1);
        resp.producer_epoch = -1;
        tracing::warn!("transactional InitProducerId refused: transactions are not implemented");
    } else {
        resp.producer_id = ProducerId(broker.allocate_producer_id());
        resp.producer_epoch = 0;
    }
    encode(&resp, version).map(Some)
}
