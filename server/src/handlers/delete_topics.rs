//! DeleteTopics (by name).

use super::{decode, encode, HandlerResult};
use crate::broker::Broker;
use bytes::Bytes;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use std::sync::Arc;

pub async fn handle(
    broker: &Arc<Broker>,
    session: &crate::security::Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: DeleteTopicsRequest = decode(body, version, "DeleteTopics")?;
    let mut names: Vec<TopicName> = req.topic_names;
    names.extend(req.topics.into_iter().filter_map(|t| t.name));
    let mut results = Vec::new();
    let mut quota = super::quotas::MutationQuota::new(broker, session, version >= 5);
    for n in names {
        let mut r = DeletableTopicResult::default().with_name(Some(n.clone()));
        let outcome = if super::topic_allowed(broker, session, crate::security::code::DELETE, &n.0)
        {
            let partitions = broker.topic_partition_counts().get(n.0.as_str()).copied();
            match quota.check() {
                Err(e) => Err(e),
                Ok(()) => {
                    let r = broker.delete_topic(&n.0).await;
                    if r.is_ok() {
                        quota.record(partitions.unwrap_or(0));
                    }
                    r
                }
            }
        } else {
            Err((
                crate::error_code::TOPIC_AUTHORIZATION_FAILED,
                format!(
                    "{} may not delete topic {}",
                    session.principal(),
                    n.0.as_str()
                ),
            ))
        };
        if let Err((code, msg)) = outcome {
            r.error_code = code;
            r.error_message = super::refused("delete topic", &n.0, code, msg);
        }
        results.push(r);
    }
    let mut resp = DeleteTopicsResponse::default().with_responses(results);
    if version >= 1 {
        resp.throttle_time_ms = quota.throttle_ms;
    }
    encode(&resp, version).map(Some)
}
