//! Record-batch compression codecs (Kafka's attribute bits 0-2), through `kafka-protocol`.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    pub fn parse(s: &str) -> Result<Codec, String> {
        match s {
            "none" => Ok(Codec::None),
            "gzip" => Ok(Codec::Gzip),
            "snappy" => Ok(Codec::Snappy),
            "lz4" => Ok(Codec::Lz4),
            "zstd" => Ok(Codec::Zstd),
            _ => Err(format!(
                "--compression {s}: expected none, gzip, snappy, lz4 or zstd"
            )),
        }
    }

    /// The attribute bits Kafka uses for this codec.
    pub fn attribute(self) -> i16 {
        match self {
            Codec::None => 0,
            Codec::Gzip => 1,
            Codec::Snappy => 2,
            Codec::Lz4 => 3,
            Codec::Zstd => 4,
        }
    }

    pub fn from_attribute(a: i16) -> Option<Codec> {
        match a & 0x07 {
            0 => Some(Codec::None),
            1 => Some(Codec::Gzip),
            2 => Some(Codec::Snappy),
            3 => Some(Codec::Lz4),
            4 => Some(Codec::Zstd),
            _ => None,
        }
    }

    /// Compresses a batch's records section into `out`.
    pub fn compress(self, records: &[u8], out: &mut BytesMut) -> anyhow::Result<()> {
        let fill = |tmp: &mut BytesMut| -> anyhow::Result<()> {
            tmp.put_slice(records);
            Ok(())
        };
        match self {
            Codec::None => {
                out.put_slice(records);
                Ok(())
            }
            Codec::Gzip => Gzip::compress(out, fill),
            Codec::Snappy => Snappy::compress(out, fill),
            Codec::Lz4 => Lz4::compress(out, fill),
            Codec::Zstd => Zstd::compress(out, fill),
        }
    }

    /// Decompresses a batch's records section.
    pub fn decompress(self, data: &[u8]) -> anyhow::Result<Bytes> {
        let mut src = Bytes::copy_from_slice(data);
        let take = |b: &mut Bytes| -> anyhow::Result<Bytes> { Ok(b.clone()) };
        match self {
            Codec::None => Ok(src),
            Codec::Gzip => Gzip::decompress(&mut src, take),
            Codec::Snappy => Snappy::decompress(&mut src, take),
            Codec::Lz4 => Lz4::decompress(&mut src, take),
            Codec::Zstd => Zstd::decompress(&mut src, take),
        }
    }
}
