//! A sink that speaks just enough Kafka to take the generator's load and throw it away: it
//! measures the generator's own ceiling (no broker can be faster than a sink), and with `stall`
//! it freezes once, so tests can check that coordinated omission is corrected.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct SinkConfig {
    pub partitions: i32,
    /// Stall once: the first produce after `.0` waits `.1` before being answered.
    pub stall: Option<(Duration, Duration)>,
}

pub struct Sink {
    pub port: u16,
}

struct Shared {
    config: SinkConfig,
    port: u16,
    started: Instant,
    stalled: AtomicBool,
    next_offset: AtomicI64,
}

/// Starts a sink on 127.0.0.1 (`port` 0 picks a free one) in background threads.
pub fn start(port: u16, config: SinkConfig) -> std::io::Result<Sink> {
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    let port = listener.local_addr()?.port();
    let shared = Arc::new(Shared {
        config,
        port,
        started: Instant::now(),
        stalled: AtomicBool::new(false),
        next_offset: AtomicI64::new(0),
    });
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let _ = serve(s, &shared);
            });
        }
    });
    Ok(Sink { port })
}

fn respond<T: Encodable>(
    out: &mut TcpStream,
    key: ApiKey,
    version: i16,
    corr: i32,
    body: &T,
) -> std::io::Result<()> {
    let mut b = BytesMut::new();
    b.extend_from_slice(&[0; 4]);
    ResponseHeader::default()
        .with_correlation_id(corr)
        .encode(&mut b, key.response_header_version(version))
        .map_err(std::io::Error::other)?;
    body.encode(&mut b, version)
        .map_err(std::io::Error::other)?;
    let len = (b.len() - 4) as i32;
    b[0..4].copy_from_slice(&len.to_be_bytes());
    out.write_all(&b)
}

/// The APIs the sink answers.
fn api_versions() -> ApiVersionsResponse {
    let keys = [
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::ListOffsets,
        ApiKey::Metadata,
        ApiKey::ApiVersions,
        ApiKey::CreateTopics,
    ]
    .iter()
    .map(|k| {
        ApiVersion::default()
            .with_api_key(*k as i16)
            .with_min_version(k.valid_versions().min)
            .with_max_version(k.valid_versions().max)
    })
    .collect();
    ApiVersionsResponse::default().with_api_keys(keys)
}

/// Every asked topic exists with the configured partitions, all led by the sink itself.
fn metadata(req: MetadataRequest, shared: &Shared) -> MetadataResponse {
    let topics = req
        .topics
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| t.name)
        .map(|n| {
            MetadataResponseTopic::default()
                .with_name(Some(n))
                .with_partitions(
                    (0..shared.config.partitions)
                        .map(|p| {
                            MetadataResponsePartition::default()
                                .with_partition_index(p)
                                .with_leader_id(BrokerId(0))
                                .with_replica_nodes(vec![BrokerId(0)])
                                .with_isr_nodes(vec![BrokerId(0)])
                        })
                        .collect(),
                )
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(0))
            .with_host(StrBytes::from_static_str("127.0.0.1"))
            .with_port(i32::from(shared.port))])
        .with_topics(topics)
}

fn serve(mut s: TcpStream, shared: &Shared) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    let mut w = s.try_clone()?;
    loop {
        let mut size = [0u8; 4];
        s.read_exact(&mut size)?;
        let mut frame = vec![0u8; i32::from_be_bytes(size).max(0) as usize];
        s.read_exact(&mut frame)?;
        let mut frame = Bytes::from(frame);
        let key = ApiKey::try_from(i16::from_be_bytes([frame[0], frame[1]]))
            .map_err(|_| std::io::Error::other("api key"))?;
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let header = RequestHeader::decode(&mut frame, key.request_header_version(version))
            .map_err(std::io::Error::other)?;
        let corr = header.correlation_id;
        let bad = |e: anyhow::Error| std::io::Error::other(e.to_string());
        match key {
            ApiKey::ApiVersions => {
                respond(&mut w, key, version.min(3), corr, &api_versions())?;
            }
            ApiKey::Metadata => {
                let req = MetadataRequest::decode(&mut frame, version).map_err(bad)?;
                respond(&mut w, key, version, corr, &metadata(req, shared))?;
            }
            ApiKey::CreateTopics => {
                let req = CreateTopicsRequest::decode(&mut frame, version).map_err(bad)?;
                let topics = req
                    .topics
                    .into_iter()
                    .map(|t| CreatableTopicResult::default().with_name(t.name))
                    .collect();
                respond(
                    &mut w,
                    key,
                    version,
                    corr,
                    &CreateTopicsResponse::default().with_topics(topics),
                )?;
            }
            ApiKey::ListOffsets => {
                let req = ListOffsetsRequest::decode(&mut frame, version).map_err(bad)?;
                let topics = req
                    .topics
                    .into_iter()
                    .map(|t| {
                        let parts = t
                            .partitions
                            .iter()
                            .map(|p| {
                                ListOffsetsPartitionResponse::default()
                                    .with_partition_index(p.partition_index)
                                    .with_offset(0)
                            })
                            .collect();
                        ListOffsetsTopicResponse::default()
                            .with_name(t.name)
                            .with_partitions(parts)
                    })
                    .collect();
                respond(
                    &mut w,
                    key,
                    version,
                    corr,
                    &ListOffsetsResponse::default().with_topics(topics),
                )?;
            }
            ApiKey::Produce => {
                let req = ProduceRequest::decode(&mut frame, version).map_err(bad)?;
                if let Some((after, stall)) = shared.config.stall {
                    if shared.started.elapsed() >= after
                        && !shared.stalled.swap(true, Ordering::AcqRel)
                    {
                        std::thread::sleep(stall);
                    }
                }
                if req.acks == 0 {
                    continue;
                }
                let topics = req
                    .topic_data
                    .into_iter()
                    .map(|t| {
                        let parts = t
                            .partition_data
                            .iter()
                            .map(|p| {
                                PartitionProduceResponse::default()
                                    .with_index(p.index)
                                    .with_base_offset(
                                        shared.next_offset.fetch_add(1, Ordering::Relaxed),
                                    )
                            })
                            .collect();
                        TopicProduceResponse::default()
                            .with_name(t.name)
                            .with_partition_responses(parts)
                    })
                    .collect();
                respond(
                    &mut w,
                    key,
                    version,
                    corr,
                    &ProduceResponse::default().with_responses(topics),
                )?;
            }
            ApiKey::Fetch => {
                let req = FetchRequest::decode(&mut frame, version).map_err(bad)?;
                std::thread::sleep(Duration::from_millis(req.max_wait_ms.clamp(0, 1000) as u64));
                respond(&mut w, key, version, corr, &FetchResponse::default())?;
            }
            _ => return Ok(()),
        }
    }
}
