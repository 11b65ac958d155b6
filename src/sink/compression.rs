//! Request-body compression, one module for every sink: `--<sink>-compression
//! gzip|snappy|none`. Which of the three a sink's server accepts is the sink's config's
//! business (Loki's protobuf push is snappy, Elasticsearch and OTLP take gzip or none).

use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Compression {
    #[default]
    Gzip,
    /// Snappy's block format (what Loki and Prometheus remote write expect).
    Snappy,
    None,
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::None => "none",
        }
    }

    /// The `Content-Encoding` header for an HTTP body (snappy bodies of Loki and remote
    /// write are declared by their content type, not by this header).
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            Compression::Gzip => Some("gzip"),
            Compression::Snappy | Compression::None => None,
        }
    }

    /// Compresses `raw` (returned as it is for `None`).
    pub fn apply(self, raw: Vec<u8>) -> std::io::Result<Vec<u8>> {
        match self {
            Compression::None => Ok(raw),
            Compression::Gzip => gzip(&raw),
            Compression::Snappy => snappy(&raw),
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Gzip at level 1: request bodies are repetitive JSON or protobuf; higher levels cost CPU
/// for little gain.
pub fn gzip(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(raw.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    enc.write_all(raw)?;
    enc.finish()
}

/// Buffers kept per thread for request bodies are dropped after use above this size, so a
/// rare huge body does not pin its memory.
pub const KEEP_BUFFERS_UP_TO: usize = 8 << 20;

/// Snappy's block (raw) format.
///
/// The encoder and its worst-case output buffer are kept per thread and reused, and only the
/// compressed bytes are copied out: a fresh zeroed buffer per request (what `compress_vec`
/// allocates) made jemalloc hand its pages back to the kernel to zero them, so every request
/// faulted its 1.3 MB in again, a tenth of the CPU of `ship --loki`.
pub fn snappy(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    with_snappy(raw, <[u8]>::to_vec)
}

/// `use_it` of `raw` compressed (snappy's block format) in the thread's kept buffer.
fn with_snappy<R>(raw: &[u8], use_it: impl FnOnce(&[u8]) -> R) -> std::io::Result<R> {
    thread_local! {
        static SNAPPY: std::cell::RefCell<(snap::raw::Encoder, Vec<u8>)> =
            std::cell::RefCell::new((snap::raw::Encoder::new(), Vec::new()));
    }
    let need = snap::raw::max_compress_len(raw.len());
    if need == 0 {
        // Too big for snappy: the encoder says so.
        return snap::raw::Encoder::new()
            .compress_vec(raw)
            .map(|c| use_it(&c))
            .map_err(std::io::Error::other);
    }
    SNAPPY.with_borrow_mut(|(encoder, out)| {
        if out.len() < need {
            out.resize(need, 0);
        }
        let n = encoder.compress(raw, out).map_err(std::io::Error::other)?;
        let used = use_it(&out[..n]);
        if out.len() > KEEP_BUFFERS_UP_TO {
            *out = Vec::new();
        }
        Ok(used)
    })
}

/// [`snappy`] of the concatenation of `parts`, without first copying them into one buffer.
///
/// Snappy's block format is the input's length (a varint) and then elements, each a literal
/// or a copy of earlier output at an offset back from where it is written. The encoder
/// compresses its input in independent pieces of 64 KiB (no copy reaches into an earlier
/// piece); compressing each part on its own is the same kind of cut, elsewhere. So the
/// elements of the parts, each compressed alone and stripped of its own length, joined
/// under the length of the whole, decompress to the parts joined. A Loki push body is a
/// megabyte of entries already encoded per stream: this spares copying it into one body
/// for the compressor to read once.
pub fn snappy_parts(parts: &[&[u8]]) -> std::io::Result<Vec<u8>> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    if snap::raw::max_compress_len(total) == 0 {
        return Err(std::io::Error::other(format!(
            "{total} bytes are too many for snappy"
        )));
    }
    let mut body = Vec::with_capacity(total / 4 + 16);
    crate::sink::loki::wire::varint(&mut body, total as u64);
    for part in parts.iter().filter(|p| !p.is_empty()) {
        let header = crate::sink::loki::wire::varint_len(part.len() as u64);
        with_snappy(part, |compressed| {
            body.extend_from_slice(&compressed[header..])
        })?;
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parts of every size around snappy's 64 KiB pieces and the one-byte varint limit, empty
    /// ones, repetitive and random ones, and text that repeats across parts: the body
    /// decompresses to the parts joined, and with the length of the whole.
    #[test]
    fn snappy_parts_decompress_to_the_parts_joined() {
        let mut seed = 7u64;
        let mut random = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (seed >> 56) as u8
                })
                .collect()
        };
        let line = br#"{"message":"Installing Python 3.12","feature":"Python"}"#;
        let cases: Vec<Vec<Vec<u8>>> = vec![
            vec![],
            vec![vec![]],
            vec![b"a".to_vec()],
            vec![vec![], b"abc".to_vec(), vec![]],
            vec![line.repeat(3), line.repeat(3)],
            vec![random(127), random(128), random(129)],
            vec![
                line.repeat(2000),
                random(65_536),
                line.to_vec(),
                random(65_537),
            ],
            vec![random(200_000), line.repeat(5000)],
        ];
        for parts in &cases {
            let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            let body = snappy_parts(&refs).unwrap();
            let joined = parts.concat();
            assert_eq!(
                snap::raw::decompress_len(&body).unwrap(),
                joined.len(),
                "{:?}",
                parts.iter().map(Vec::len).collect::<Vec<_>>()
            );
            let back = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
            assert!(
                back == joined,
                "{:?}",
                parts.iter().map(Vec::len).collect::<Vec<_>>()
            );
        }
    }
    use std::io::Read;

    #[test]
    fn round_trips() {
        let raw = br#"{"message":"Installing Python 3.12"}"#.repeat(50);
        let gz = Compression::Gzip.apply(raw.clone()).unwrap();
        assert!(gz.len() < raw.len() / 4, "{}", gz.len());
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, raw);
        let sn = Compression::Snappy.apply(raw.clone()).unwrap();
        assert_eq!(snap::raw::Decoder::new().decompress_vec(&sn).unwrap(), raw);
        assert_eq!(Compression::None.apply(raw.clone()).unwrap(), raw);
        assert_eq!(Compression::Gzip.content_encoding(), Some("gzip"));
        assert_eq!(Compression::Snappy.content_encoding(), None);
    }
}
