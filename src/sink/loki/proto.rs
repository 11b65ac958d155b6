//! Loki's push messages (`logproto.PushRequest` of Loki's `pkg/push/push.proto`), written out
//! as prost structs so that no `protoc` is needed at build time. Only the fields a client
//! sends are declared; field numbers and types are those of the published schema.

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    /// From nanoseconds since the epoch (negative values too).
    pub fn from_nanos(ns: i128) -> Self {
        Timestamp {
            seconds: ns.div_euclid(1_000_000_000) as i64,
            nanos: ns.rem_euclid(1_000_000_000) as i32,
        }
    }
    pub fn as_nanos(&self) -> i128 {
        self.seconds as i128 * 1_000_000_000 + self.nanos as i128
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    /// The label set in Prometheus text form: `{job="container-build", level="info"}`.
    #[prost(string, tag = "1")]
    pub labels: String,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    #[prost(string, tag = "2")]
    pub line: String,
    /// Loki 3's structured metadata: name/value pairs stored beside the line, not indexed.
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LabelPairAdapter {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn timestamps_split_into_seconds_and_nanos() {
        let t = Timestamp::from_nanos(1_763_321_440_364_000_007);
        assert_eq!((t.seconds, t.nanos), (1_763_321_440, 364_000_007));
        assert_eq!(t.as_nanos(), 1_763_321_440_364_000_007);
        let n = Timestamp::from_nanos(-1);
        assert_eq!((n.seconds, n.nanos), (-1, 999_999_999));
    }

    #[test]
    fn wire_bytes_match_the_schema() {
        // Hand-assembled from push.proto's field numbers: a change of tag or type shows here.
        let req = PushRequest {
            streams: vec![StreamAdapter {
                labels: "{a=\"b\"}".into(),
                entries: vec![EntryAdapter {
                    timestamp: Some(Timestamp {
                        seconds: 1,
                        nanos: 2,
                    }),
                    line: "hi".into(),
                    structured_metadata: vec![LabelPairAdapter {
                        name: "k".into(),
                        value: "v".into(),
                    }],
                }],
                hash: 0,
            }],
        };
        let bytes = req.encode_to_vec();
        let entry = [
            0x0a, 4, 0x08, 1, 0x10, 2, // timestamp {seconds:1, nanos:2}
            0x12, 2, b'h', b'i', // line
            0x1a, 6, 0x0a, 1, b'k', 0x12, 1, b'v', // structuredMetadata
        ];
        let mut stream = vec![0x0a, 7];
        stream.extend_from_slice(b"{a=\"b\"}");
        stream.push(0x12);
        stream.push(entry.len() as u8);
        stream.extend_from_slice(&entry);
        let mut want = vec![0x0a, stream.len() as u8];
        want.extend_from_slice(&stream);
        assert_eq!(bytes, want);
        assert_eq!(PushRequest::decode(&bytes[..]).unwrap(), req);
    }
}
