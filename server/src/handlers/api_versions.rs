//! ApiVersions: what this broker speaks, and the features (KIP-584) it finalizes.

use super::{encode, HandlerResult, SUPPORTED};
use crate::error_code as ec;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;

/// `metadata.version` levels: 7 is 3.3-IV3, the oldest Kafka 4 accepts; 27 is 4.1-IV1, whose
/// request versions [`SUPPORTED`] follows. Only features that change what a client may send are
/// worth advertising, and only once Ringlet has them: `transaction.version` (issue 23),
/// `group.version` and `share.version` (issue 24) are left out until then, so clients keep to
/// classic groups and to version 1 transactions, as they do with a Kafka that has not enabled them.
const METADATA_VERSION_MIN: i16 = 7;
const METADATA_VERSION: i16 = 27;
/// The finalized features never change while a broker runs (nor across a cluster, whose brokers
/// run the same build), so their epoch is a constant.
const FEATURES_EPOCH: i64 = 1;

fn response(error_code: i16) -> ApiVersionsResponse {
    let api_keys = SUPPORTED
        .iter()
        .map(|&(k, min, max)| {
            let valid = k.valid_versions();
            // Kafka 4 still advertises Produce from v0 though it refuses v0-v2, because
            // librdkafka infers its message-format features from Produce v0-v2 being listed
            // (KAFKA-18659); Ringlet does the same and closes a connection sending v0-v2.
            let min = if k == ApiKey::Produce {
                0
            } else {
                min.max(valid.min)
            };
            ApiVersion::default()
                .with_api_key(k as i16)
                .with_min_version(min)
                .with_max_version(max.min(valid.max))
        })
        .collect();
    let name = StrBytes::from_static_str("metadata.version");
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
        .with_supported_features(vec![SupportedFeatureKey::default()
            .with_name(name.clone())
            .with_min_version(METADATA_VERSION_MIN)
            .with_max_version(METADATA_VERSION)])
        .with_finalized_features_epoch(FEATURES_EPOCH)
        .with_finalized_features(vec![FinalizedFeatureKey::default()
            .with_name(name)
            .with_min_version_level(METADATA_VERSION)
            .with_max_version_level(METADATA_VERSION)])
}

pub fn handle(_body: &mut Bytes, version: i16) -> HandlerResult {
    // The request body (client software name and version) is informational only.
    encode(&response(ec::NONE), version).map(Some)
}

pub fn unsupported() -> Result<BytesMut, String> {
    encode(&response(ec::UNSUPPORTED_VERSION), 0)
}
