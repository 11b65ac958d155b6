//! The protobuf wire form of Loki's push messages (`proto.rs`), written straight into a
//! buffer: an entry is encoded as it is batched, with no `EntryAdapter` and no `String` per
//! structured-metadata pair in between (those were most of `ship --loki`'s allocations).
//! The bytes are those prost writes for the same message (proto3: fields with default
//! values are left out, a present message is written even when empty); the encoder's tests
//! compare the two.

/// Appends `v` as a base-128 varint.
pub fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes of `v` as a varint.
pub fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Bytes of a length-delimited field (one-byte tag) with `n` bytes of content; a `string`
/// field that is empty is not written at all.
pub fn string_field_len(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        1 + varint_len(n as u64) + n
    }
}

/// A `string`/`bytes` field with a one-byte tag (left out when empty, as proto3 does).
pub fn string_field(out: &mut Vec<u8>, tag: u8, b: &[u8]) {
    if !b.is_empty() {
        out.push(tag);
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
}

/// A `LabelPairAdapter` (name, value) as a field with tag `tag` (3: an entry's structured
/// metadata). Names and values are short (an event id is 32 bytes), so every length fits
/// one varint byte: then the pair is four fixed bytes and two copies, instead of three
/// headers with a varint loop each (once per pair, seven pairs per event).
pub fn label_pair(out: &mut Vec<u8>, tag: u8, name: &[u8], value: &[u8]) {
    let len = string_field_len(name.len()) + string_field_len(value.len());
    if len < 0x80 && !name.is_empty() && !value.is_empty() {
        out.reserve(len + 2);
        out.extend_from_slice(&[tag, len as u8, 0x0a, name.len() as u8]);
        out.extend_from_slice(name);
        out.extend_from_slice(&[0x12, value.len() as u8]);
        out.extend_from_slice(value);
    } else {
        message_header(out, tag, len);
        string_field(out, 0x0a, name);
        string_field(out, 0x12, value);
    }
}

/// A message field's header: its tag and the length of its content.
pub fn message_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    varint(out, len as u64);
}

/// Bytes of a message field (one-byte tag) whose content is `len` bytes.
pub fn message_field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// Room left for a length written after its content (`open_len`, `close_len`): two varint
/// bytes hold up to 16,383, the length of nearly every entry and line.
const LEN_ROOM: usize = 2;

/// Starts a length-delimited field whose content is written next, straight into `out`, and
/// whose length is known only after: its tag and room for the length. Returns where the
/// content starts, for `close_len`.
pub fn open_len(out: &mut Vec<u8>, tag: u8) -> usize {
    out.push(tag);
    out.extend_from_slice(&[0; LEN_ROOM]);
    out.len()
}

/// Ends the field `open_len` started at `start`: writes the content's length into the room
/// before it, moving the content when the length takes one byte or more than two.
pub fn close_len(out: &mut Vec<u8>, start: usize) {
    let len = (out.len() - start) as u64;
    let room = start - LEN_ROOM..start;
    if varint_len(len) == LEN_ROOM {
        out[room.start] = len as u8 | 0x80;
        out[room.start + 1] = (len >> 7) as u8;
    } else {
        let mut v = Vec::with_capacity(10);
        varint(&mut v, len);
        out.splice(room, v);
    }
}

/// `google.protobuf.Timestamp { seconds = 1 (int64), nanos = 2 (int32) }`: its content.
pub fn timestamp_len(seconds: i64, nanos: i32) -> usize {
    let int = |v: i64| {
        if v == 0 {
            0
        } else {
            1 + varint_len(v as u64)
        }
    };
    int(seconds) + int(i64::from(nanos))
}

pub fn timestamp(out: &mut Vec<u8>, seconds: i64, nanos: i32) {
    if seconds != 0 {
        out.push(0x08);
        varint(out, seconds as u64);
    }
    if nanos != 0 {
        out.push(0x10);
        // int32 is sign-extended to 64 bits on the wire.
        varint(out, i64::from(nanos) as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_their_lengths_agree_with_prost() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut ours = Vec::new();
            varint(&mut ours, v);
            let mut theirs = Vec::new();
            prost::encoding::encode_varint(v, &mut theirs);
            assert_eq!(ours, theirs, "{v}");
            assert_eq!(varint_len(v), theirs.len(), "{v}");
            assert_eq!(varint_len(v), prost::encoding::encoded_len_varint(v));
        }
    }

    /// A label pair is the bytes prost writes, at every length around the one-byte fast
    /// path's limit, and with an empty name or value (left out, as proto3 does).
    #[test]
    fn label_pairs_are_the_bytes_prost_writes() {
        use prost::Message;
        for name_len in [0, 1, 21, 60, 64, 125, 126, 127, 128, 200] {
            for value_len in [0, 1, 32, 60, 62, 63, 64, 100, 127, 128, 300, 20_000] {
                let (name, value) = ("n".repeat(name_len), "v".repeat(value_len));
                let mut ours = vec![7u8];
                label_pair(&mut ours, 0x1a, name.as_bytes(), value.as_bytes());
                let entry = crate::sink::loki::proto::EntryAdapter {
                    timestamp: None,
                    line: String::new(),
                    structured_metadata: vec![crate::sink::loki::proto::LabelPairAdapter {
                        name,
                        value,
                    }],
                };
                let mut theirs = vec![7u8];
                entry.encode(&mut theirs).unwrap();
                assert_eq!(ours, theirs, "{name_len} {value_len}");
            }
        }
    }

    /// A field whose length is written after its content is the field written at once,
    /// whether the length takes the two bytes left for it, fewer or more.
    #[test]
    fn lengths_written_after_the_content_give_the_same_bytes() {
        for n in [0usize, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152] {
            let content: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let mut at_once = vec![7u8];
            message_header(&mut at_once, 0x12, n);
            at_once.extend_from_slice(&content);
            let mut after = vec![7u8];
            let start = open_len(&mut after, 0x12);
            after.extend_from_slice(&content);
            close_len(&mut after, start);
            assert!(after == at_once, "{n}");
        }
    }
}
