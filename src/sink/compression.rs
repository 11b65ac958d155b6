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
    thread_local! {
        static SNAPPY: std::cell::RefCell<(snap::raw::Encoder, Vec<u8>)> =
            std::cell::RefCell::new((snap::raw::Encoder::new(), Vec::new()));
    }
    let need = snap::raw::max_compress_len(raw.len());
    if need == 0 {
        // Too big for snappy: the encoder says so.
        return snap::raw::Encoder::new()
            .compress_vec(raw)
            .map_err(std::io::Error::other);
    }
    SNAPPY.with_borrow_mut(|(encoder, out)| {
        if out.len() < need {
            out.resize(need, 0);
        }
        let n = encoder.compress(raw, out).map_err(std::io::Error::other)?;
        let compressed = out[..n].to_vec();
        if out.len() > KEEP_BUFFERS_UP_TO {
            *out = Vec::new();
        }
        Ok(compressed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
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
