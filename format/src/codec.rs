//! Record batch compression as Kafka writes it, and the broker-side recompression a topic's
//! `compression.type` asks for (the records are re-framed, never re-encoded one by one: the
//! uncompressed records section is the same bytes whatever the codec).
//!
//! Codecs: gzip (RFC 1952), snappy in xerial's block framing (what the Java client writes),
//! LZ4 frames with independent 64 KiB blocks, zstd frames. Decompression is bounded by the caller's
//! limit, so a small batch that inflates without end (a compression bomb) is refused, not buffered.

use crate::batch::{self, BatchHeader, ATTR_COMPRESSION_MASK, HEADER_SIZE, LOG_OVERHEAD};
use crate::error::BatchError;
use std::io::{Read, Write};

/// A batch's compression codec (attributes bits 0-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

impl Codec {
    pub fn from_attributes(attributes: i16) -> Result<Codec, BatchError> {
        Ok(match attributes & ATTR_COMPRESSION_MASK {
            0 => Codec::None,
            1 => Codec::Gzip,
            2 => Codec::Snappy,
            3 => Codec::Lz4,
            4 => Codec::Zstd,
            codec => return Err(BatchError::UnknownCompression { codec }),
        })
    }

    /// Kafka's name (`compression.type`), `uncompressed` for none.
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "uncompressed",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

/// xerial snappy-java's stream header: magic, version 1, compatible version 1.
const SNAPPY_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
const SNAPPY_BLOCK: usize = 32 * 1024;
/// A codec and its level (`compression.gzip.level`, `compression.lz4.level`,
/// `compression.zstd.level`; ignored for snappy and none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub codec: Codec,
    pub level: i32,
}

impl Target {
    /// The codec at Kafka's default level: gzip -1 (zlib's 6), lz4 9, zstd 3.
    pub fn new(codec: Codec) -> Target {
        let level = match codec {
            Codec::Gzip => -1,
            Codec::Lz4 => 9,
            Codec::Zstd => 3,
            Codec::None | Codec::Snappy => 0,
        };
        Target { codec, level }
    }
}

fn corrupt(_: impl std::fmt::Debug) -> BatchError {
    BatchError::InvalidRecord {
        index: 0,
        reason: "compressed records cannot be decompressed",
    }
}

fn bomb() -> BatchError {
    BatchError::InvalidRecord {
        index: 0,
        reason: "decompressed records exceed socket.request.max.bytes",
    }
}

/// Reads all of `r`, refusing more than `limit` bytes.
fn read_bounded(r: impl Read, limit: usize) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    r.take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    if out.len() > limit {
        return Err(bomb());
    }
    Ok(out)
}

/// Decompresses a records section written with `codec`, at most `limit` bytes of output.
pub fn decompress(codec: Codec, data: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    match codec {
        Codec::None => Ok(data.to_vec()),
        Codec::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(data), limit),
        Codec::Lz4 => read_bounded(lz4::Decoder::new(data).map_err(corrupt)?, limit),
        Codec::Zstd => read_bounded(
            zstd::stream::read::Decoder::new(data).map_err(corrupt)?,
            limit,
        ),
        Codec::Snappy => {
            let mut dec = snap::raw::Decoder::new();
            let Some(mut rest) = data.strip_prefix(&SNAPPY_HEADER[..8]) else {
                // A bare snappy block (what some non-Java clients write).
                if snap::raw::decompress_len(data).map_err(corrupt)? > limit {
                    return Err(bomb());
                }
                return dec.decompress_vec(data).map_err(corrupt);
            };
            rest = rest.get(8..).ok_or_else(|| corrupt("snappy header"))?;
            let mut out = Vec::new();
            while !rest.is_empty() {
                let len = rest
                    .get(..4)
                    .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")) as usize)
                    .ok_or_else(|| corrupt("snappy block length"))?;
                let block = rest
                    .get(4..4 + len)
                    .ok_or_else(|| corrupt("snappy block"))?;
                rest = &rest[4 + len..];
                let n = snap::raw::decompress_len(block).map_err(corrupt)?;
                if out.len() + n > limit {
                    return Err(bomb());
                }
                let at = out.len();
                out.resize(at + n, 0);
                dec.decompress(block, &mut out[at..]).map_err(corrupt)?;
            }
            Ok(out)
        }
    }
}

/// Compresses a records section as Kafka's broker does, at the target's level.
pub fn compress(target: Target, data: &[u8]) -> Vec<u8> {
    let io = "compressing into memory cannot fail";
    match target.codec {
        Codec::None => data.to_vec(),
        Codec::Gzip => {
            let mut e = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 2),
                // -1 is zlib's default, 6.
                flate2::Compression::new(u32::try_from(target.level).unwrap_or(6).min(9)),
            );
            e.write_all(data).expect(io);
            e.finish().expect(io)
        }
        Codec::Lz4 => {
            let mut e = lz4::EncoderBuilder::new()
                .level(u32::try_from(target.level).unwrap_or(9))
                .block_size(lz4::BlockSize::Max64KB)
                .block_mode(lz4::BlockMode::Independent)
                .build(Vec::with_capacity(data.len() / 2))
                .expect(io);
            e.write_all(data).expect(io);
            let (out, res) = e.finish();
            res.expect(io);
            out
        }
        Codec::Zstd => zstd::bulk::compress(data, target.level).expect(io),
        Codec::Snappy => {
            let mut enc = snap::raw::Encoder::new();
            let mut out = Vec::with_capacity(SNAPPY_HEADER.len() + data.len() / 2);
            out.extend_from_slice(SNAPPY_HEADER);
            for block in data.chunks(SNAPPY_BLOCK) {
                let at = out.len();
                out.extend_from_slice(&[0; 4]);
                out.resize(at + 4 + snap::raw::max_compress_len(block.len()), 0);
                let n = enc.compress(block, &mut out[at + 4..]).expect(io);
                out.truncate(at + 4 + n);
                out[at..at + 4].copy_from_slice(&(n as u32).to_be_bytes());
            }
            out
        }
    }
}

/// A batch with its records section replaced: same header fields but the codec, new length and
/// CRC.
fn reframe(header: &[u8], codec: Codec, records: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_SIZE + records.len());
    out.extend_from_slice(&header[..HEADER_SIZE]);
    out.extend_from_slice(records);
    let length = (out.len() - LOG_OVERHEAD) as i32;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    let attributes =
        (i16::from_be_bytes([out[21], out[22]]) & !ATTR_COMPRESSION_MASK) | codec as i16;
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = batch::compute_crc(&out);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

/// The batch as a topic with `target` codec stores it: `None` when it already is (the no-copy
/// path: same codec, or a control batch, which Kafka never recompresses). A batch to rewrite is
/// validated first (a corrupt batch is never given a fresh CRC), and its records are checked once
/// decompressed; decompression stops at `limit` bytes.
pub fn recompress(
    batch: &[u8],
    target: Target,
    limit: usize,
) -> Result<Option<Vec<u8>>, BatchError> {
    let h: BatchHeader = BatchHeader::parse(batch)?;
    let source = Codec::from_attributes(h.attributes)?;
    if source == target.codec || h.is_control() {
        // Kept: the log validates it on append, as any batch.
        return Ok(None);
    }
    batch::validate(batch)?;
    let plain = decompress(source, &batch[HEADER_SIZE..], limit)?;
    let uncompressed = reframe(batch, Codec::None, &plain);
    // The records must be framed exactly, as in any uncompressed batch.
    batch::validate(&uncompressed)?;
    if target.codec == Codec::None {
        return Ok(Some(uncompressed));
    }
    Ok(Some(reframe(
        batch,
        target.codec,
        &compress(target, &plain),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let values: Vec<Vec<u8>> = (0..200)
            .map(|i| format!("value {i} {}", "x".repeat(i % 50)).into_bytes())
            .collect();
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        batch::build_batch(&refs, 1_700_000_000_000)
    }

    fn values(b: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        batch::walk_records(b, |r| {
            out.push(r.value.unwrap_or_default().to_vec());
            true
        })
        .unwrap();
        out
    }

    #[test]
    fn every_codec_round_trips_through_the_broker_rewrite() {
        let plain = sample();
        let want = values(&plain);
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let packed = recompress(&plain, Target::new(codec), 1 << 20)
                .unwrap()
                .unwrap();
            let h = batch::validate(&packed).unwrap();
            assert_eq!(Codec::from_attributes(h.attributes).unwrap(), codec);
            assert!(
                packed.len() < plain.len(),
                "{codec:?} did not shrink the batch"
            );
            // Same header fields but the codec, length and CRC.
            assert_eq!(packed[23..61], plain[23..61]);
            // Same codec again: kept as is.
            assert!(recompress(&packed, Target::new(codec), 1 << 20)
                .unwrap()
                .is_none());
            // From this codec to another and back to none gives the records back.
            let other = if codec == Codec::Zstd {
                Codec::Gzip
            } else {
                Codec::Zstd
            };
            let hop = recompress(&packed, Target::new(other), 1 << 20)
                .unwrap()
                .unwrap();
            let back = recompress(&hop, Target::new(Codec::None), 1 << 20)
                .unwrap()
                .unwrap();
            assert_eq!(back, plain, "{codec:?} -> {other:?} -> none");
            assert_eq!(values(&back), want);
        }
    }

    #[test]
    fn levels_change_the_output_and_every_level_reads_back() {
        let plain = sample();
        for (codec, levels) in [
            (Codec::Gzip, vec![-1, 1, 9]),
            (Codec::Lz4, vec![1, 9, 17]),
            (Codec::Zstd, vec![-131072, 1, 3, 22]),
        ] {
            let outs: Vec<Vec<u8>> = levels
                .iter()
                .map(|&level| {
                    recompress(&plain, Target { codec, level }, 1 << 20)
                        .unwrap()
                        .unwrap()
                })
                .collect();
            for out in &outs {
                let back = recompress(out, Target::new(Codec::None), 1 << 20)
                    .unwrap()
                    .unwrap();
                assert_eq!(back, plain, "{codec:?}");
            }
            assert!(
                outs.windows(2).any(|w| w[0] != w[1]),
                "{codec:?} levels made no difference"
            );
        }
    }

    #[test]
    fn a_compression_bomb_is_refused_at_the_limit() {
        let plain = sample();
        let packed = recompress(&plain, Target::new(Codec::Gzip), 1 << 20)
            .unwrap()
            .unwrap();
        let limit = plain.len() - HEADER_SIZE - 1;
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let packed = recompress(&plain, Target::new(codec), 1 << 20)
                .unwrap()
                .unwrap();
            assert_eq!(
                recompress(&packed, Target::new(Codec::None), limit),
                Err(bomb()),
                "{codec:?}"
            );
        }
        assert!(recompress(&packed, Target::new(Codec::None), limit + 1).is_ok());
    }

    #[test]
    fn corrupt_input_is_refused_not_given_a_fresh_crc() {
        let mut packed = recompress(&sample(), Target::new(Codec::Lz4), 1 << 20)
            .unwrap()
            .unwrap();
        let n = packed.len();
        packed[n - 10] ^= 0xff;
        assert!(matches!(
            recompress(&packed, Target::new(Codec::Gzip), 1 << 20),
            Err(BatchError::CrcMismatch { .. })
        ));
        // Garbage under a valid CRC: refused at decompression.
        let mut garbage = sample();
        garbage.truncate(HEADER_SIZE);
        garbage.extend_from_slice(b"not lz4 at all");
        let garbage = reframe(&garbage, Codec::Lz4, b"not lz4 at all");
        assert!(recompress(&garbage, Target::new(Codec::None), 1 << 20).is_err());
    }
}
