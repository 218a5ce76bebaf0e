//! DeleteTopics (by name).

use super::{decode, encode, HandlerResult};
use crate::broker::Broker;
use crate::error_code as ec;
use bytes::Bytes;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

pub async fn handle(broker: &Arc<Broker>, body: &mut Bytes, version: i16) -> HandlerResult {
    let req: DeleteTopicsRequest = decode(body, version, "DeleteTopics")?;
    let mut names: Vec<TopicName> = req.topic_names;
    names.extend(req.topics.into_iter().filter_map(|t| t.name));
    let mut results = Vec::new();
    for n in names {
        let mut r = DeletableTopicResult::default().with_name(Some(n.clone()));
        if let Err((code, msg)) = broker.delete_topic(&n.0).await {
            tracing::info!(topic = %n.0, error = ec::name(code), %msg, "delete topic refused");
            r.error_code = code;
            r.error_message = Some(StrBytes::from_string(msg));
        }
        results.push(r);
    }
    encode(
        &DeleteTopicsResponse::default().with_responses(results),
        version,
    )
    .map(Some)
}
