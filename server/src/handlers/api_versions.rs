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
/// worth advertising, and only once Ringlet has them: `transaction.version` (0-2, finalized at
/// the broker's `transaction.version`, 2 by default as in a new Kafka 4 cluster) and
/// `group.version` (0-1, finalized at 1 while `group.coordinator.rebalance.protocols` has
/// `consumer`: KIP-848 consumer groups, whose APIs are listed only then) and `share.version`
/// (0-1, finalized at the broker's `share.version`, 1 by default as in a new Kafka 4.2 cluster:
/// KIP-932 share groups, whose APIs are listed only then).
const METADATA_VERSION_MIN: i16 = 7;
const METADATA_VERSION: i16 = 27;
/// The finalized features never change while a broker runs (nor across a cluster, whose brokers
/// run the same build), so their epoch is a constant.
const FEATURES_EPOCH: i64 = 1;

/// The highest `transaction.version` Ringlet has: 2 (KIP-890 part 2).
const TRANSACTION_VERSION_MAX: i16 = 2;

/// The feature levels a broker finalizes (from its config).
#[derive(Clone, Copy)]
pub struct Features {
    pub transaction_version: i16,
    /// 1: KIP-848 consumer groups are served.
    pub group_version: i16,
    /// 1: KIP-932 share groups are served.
    pub share_version: i16,
}

impl Features {
    pub fn of(config: &crate::config::BrokerConfig) -> Features {
        Features {
            transaction_version: config.transactions.version,
            group_version: i16::from(config.consumer_groups.consumer_protocol_enabled),
            share_version: config.share_groups.version,
        }
    }
}

fn response(error_code: i16, f: Features) -> ApiVersionsResponse {
    let transaction_version = f.transaction_version;
    let api_keys = SUPPORTED
        .iter()
        .filter(|(k, _, _)| {
            f.group_version > 0
                || !matches!(
                    k,
                    ApiKey::ConsumerGroupHeartbeat | ApiKey::ConsumerGroupDescribe
                )
        })
        .filter(|(k, _, _)| {
            f.share_version > 0
                || !matches!(
                    k,
                    ApiKey::ShareGroupHeartbeat
                        | ApiKey::ShareGroupDescribe
                        | ApiKey::ShareFetch
                        | ApiKey::ShareAcknowledge
                        | ApiKey::DescribeShareGroupOffsets
                        | ApiKey::AlterShareGroupOffsets
                        | ApiKey::DeleteShareGroupOffsets
                        | ApiKey::ReadShareGroupState
                        | ApiKey::WriteShareGroupState
                )
        })
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
    let features = [
        (
            "metadata.version",
            METADATA_VERSION_MIN,
            METADATA_VERSION,
            METADATA_VERSION,
        ),
        (
            "transaction.version",
            0,
            TRANSACTION_VERSION_MAX,
            transaction_version.clamp(0, TRANSACTION_VERSION_MAX),
        ),
        ("group.version", 0, 1, f.group_version.clamp(0, 1)),
        ("share.version", 0, 1, f.share_version.clamp(0, 1)),
    ];
    let supported = features
        .iter()
        .map(|&(name, min, max, _)| {
            SupportedFeatureKey::default()
                .with_name(StrBytes::from_static_str(name))
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
    // A feature at level 0 is off, and Kafka leaves it out of the finalized list.
    let finalized = features
        .iter()
        .filter(|f| f.3 > 0)
        .map(|&(name, _, _, level)| {
            FinalizedFeatureKey::default()
                .with_name(StrBytes::from_static_str(name))
                .with_min_version_level(level)
                .with_max_version_level(level)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
        .with_supported_features(supported)
        .with_finalized_features_epoch(FEATURES_EPOCH)
        .with_finalized_features(finalized)
}

pub fn handle(_body: &mut Bytes, version: i16, features: Features) -> HandlerResult {
    // The request body (client software name and version) is informational only.
    encode(&response(ec::NONE, features), version).map(Some)
}

pub fn unsupported(features: Features) -> Result<BytesMut, String> {
    encode(&response(ec::UNSUPPORTED_VERSION, features), 0)
}
