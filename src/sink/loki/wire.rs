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
///
/// The pieces are stored straight into the room reserved once (`put_short`): two library
/// copies, four length checks and a varint length per pair were 130 instructions, 8% of
/// `ship --loki`'s.
pub fn label_pair(out: &mut Vec<u8>, tag: u8, name: &[u8], value: &[u8]) {
    let (n, v) = (name.len(), value.len());
    // Both lengths, and the pair's, fit one varint byte.
    if n != 0 && v != 0 && n + v + 4 < 0x80 {
        let len = n + v + 4;
        out.reserve(len + 2);
        let at = out.len();
        // SAFETY: the reserve leaves `len + 2` bytes of room at `at`: the four header bytes,
        // the name, two bytes, the value; every one of them is written before the length
        // takes them in.
        unsafe {
            let p = out.as_mut_ptr().add(at);
            p.cast::<[u8; 4]>()
                .write_unaligned([tag, len as u8, 0x0a, n as u8]);
            put_short(p.add(4), name);
            p.add(4 + n)
                .cast::<[u8; 2]>()
                .write_unaligned([0x12, v as u8]);
            put_short(p.add(6 + n), value);
            out.set_len(at + len + 2);
        }
    } else {
        let len = string_field_len(n) + string_field_len(v);
        message_header(out, tag, len);
        string_field(out, 0x0a, name);
        string_field(out, 0x12, value);
    }
}

/// Copies `b` to `dst`: up to 32 bytes (names, ids) with two overlapping loads and stores of
/// one width, no call; longer ones with `copy_nonoverlapping`.
///
/// # Safety
/// `dst` is valid for `b.len()` bytes of writes and does not overlap `b`.
#[inline(always)]
unsafe fn put_short(dst: *mut u8, b: &[u8]) {
    let (src, n) = (b.as_ptr(), b.len());
    // SAFETY: every load is inside `b` (`n` bytes at `src`) and every store inside the `n`
    // bytes at `dst`, by the width chosen for `n`; the caller promises `dst`.
    unsafe {
        macro_rules! two {
            ($w:ty) => {{
                let w = std::mem::size_of::<$w>();
                let first = src.cast::<$w>().read_unaligned();
                let last = src.add(n - w).cast::<$w>().read_unaligned();
                dst.cast::<$w>().write_unaligned(first);
                dst.add(n - w).cast::<$w>().write_unaligned(last);
            }};
        }
        match n {
            0 => {}
            1..=3 => {
                *dst = *src;
                *dst.add(n / 2) = *src.add(n / 2);
                *dst.add(n - 1) = *src.add(n - 1);
            }
            4..=7 => two!(u32),
            8..=15 => two!(u64),
            16..=32 => two!([u8; 16]),
            _ => std::ptr::copy_nonoverlapping(src, dst, n),
        }
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

    /// `label_pair` into a buffer whose room past `before` bytes holds garbage (so that a
    /// byte left unwritten shows), against prost's encoding of the same pair.
    fn ours_and_prosts(name: &str, value: &str, before: usize) -> (Vec<u8>, Vec<u8>) {
        use prost::Message;
        let mut ours = vec![0xee; 64 * 1024];
        ours.truncate(before);
        ours.iter_mut().for_each(|b| *b = 7);
        label_pair(&mut ours, 0x1a, name.as_bytes(), value.as_bytes());
        let entry = crate::sink::loki::proto::EntryAdapter {
            timestamp: None,
            line: String::new(),
            structured_metadata: vec![crate::sink::loki::proto::LabelPairAdapter {
                name: name.to_string(),
                value: value.to_string(),
            }],
        };
        let mut theirs = vec![7u8; before];
        entry.encode(&mut theirs).unwrap();
        (ours, theirs)
    }

    /// Text of `n` bytes, each different from its neighbours.
    fn text(n: usize, first: u8) -> String {
        (0..n).map(|i| (first + (i % 26) as u8) as char).collect()
    }

    /// A label pair is the bytes prost writes at every name length up to past the one-byte
    /// limit, against values of every width `put_short` takes and around the limit, and with
    /// an empty name or value (left out, as proto3 does).
    #[test]
    fn label_pairs_are_the_bytes_prost_writes() {
        let values = [
            0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 60, 62, 63, 64, 100, 127, 128, 300,
            20_000,
        ];
        for name_len in (0..=130).chain([200]) {
            for value_len in values {
                let (name, value) = (text(name_len, b'a'), text(value_len, b'A'));
                let (ours, theirs) = ours_and_prosts(&name, &value, 1);
                assert_eq!(ours, theirs, "{name_len} {value_len}");
            }
        }
    }

    proptest::proptest! {
        /// The same at any pair of lengths and contents, after any bytes already written.
        #[test]
        fn label_pairs_of_any_lengths_are_prosts(
            name in "[ -~]{0,140}",
            value in "[ -~]{0,140}",
            before in 0usize..40,
        ) {
            let (ours, theirs) = ours_and_prosts(&name, &value, before);
            proptest::prop_assert_eq!(ours, theirs);
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
