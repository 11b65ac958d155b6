//! Deterministic identifiers: event ids, W3C trace and span ids, derived correlation ids.
//! All come from xxh3 over the build's own bytes, so converting twice gives the same ids.

use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

/// Lower-case hex of the low `digits` (16 or 32) nibbles of `n`, zero-padded
/// (`format!("{n:0digits$x}")`): an id is made for every event.
fn hex(n: u128, digits: usize) -> String {
    debug_assert!(digits == 16 || digits == 32);
    let all = hex32(n);
    let buf = &all[32 - digits..];
    debug_assert!(buf.is_ascii());
    // SAFETY: every byte is an ASCII hex digit (`hex32`); checking it again (`from_utf8`)
    // was a quarter of this function, once per event.
    unsafe { std::str::from_utf8_unchecked(buf) }.to_owned()
}

/// The 32 hex digits of `n`, most significant first: its sixteen bytes split into nibbles
/// and turned into digits sixteen at a time (SSE2, part of the x86-64 baseline), a third of
/// the instructions of eight digits per word.
#[cfg(target_arch = "x86_64")]
fn hex32(n: u128) -> [u8; 32] {
    use std::arch::x86_64::{
        _mm_add_epi8, _mm_and_si128, _mm_cmpgt_epi8, _mm_loadu_si128, _mm_set1_epi8,
        _mm_srli_epi16, _mm_storeu_si128, _mm_unpackhi_epi8, _mm_unpacklo_epi8,
    };
    let bytes = n.to_be_bytes();
    let mut out = [0u8; 32];
    // SAFETY: SSE2 is part of the x86-64 baseline; the load reads the sixteen bytes of
    // `bytes`, the stores write the 32 of `out`.
    unsafe {
        let v = _mm_loadu_si128(bytes.as_ptr().cast());
        let nibble = _mm_set1_epi8(0x0f);
        let low = _mm_and_si128(v, nibble);
        let high = _mm_and_si128(_mm_srli_epi16(v, 4), nibble);
        // Each byte's high nibble first: the digits in order.
        let digits = |x| {
            // '0' + x, and 'a' - '0' - 10 more where x is 10 or more.
            let letter = _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8(9)), _mm_set1_epi8(39));
            _mm_add_epi8(_mm_add_epi8(x, _mm_set1_epi8(b'0' as i8)), letter)
        };
        _mm_storeu_si128(
            out.as_mut_ptr().cast(),
            digits(_mm_unpacklo_epi8(high, low)),
        );
        _mm_storeu_si128(
            out.as_mut_ptr().add(16).cast(),
            digits(_mm_unpackhi_epi8(high, low)),
        );
    }
    out
}

/// The 32 hex digits of `n`, eight at a time in the bytes of a word (where there is no SSE2,
/// and as its reference in tests).
#[cfg(any(test, not(target_arch = "x86_64")))]
fn hex32_portable(n: u128) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&hex8((n >> (96 - 32 * i)) as u32));
    }
    out
}

#[cfg(not(target_arch = "x86_64"))]
fn hex32(n: u128) -> [u8; 32] {
    hex32_portable(n)
}

/// The eight hex digits of `v`, most significant first.
#[cfg(any(test, not(target_arch = "x86_64")))]
fn hex8(v: u32) -> [u8; 8] {
    const LO: u64 = 0x0101_0101_0101_0101;
    // One nibble per byte, the lowest nibble in the lowest byte.
    let mut x = u64::from(v);
    x = (x | x << 16) & 0x0000_FFFF_0000_FFFF;
    x = (x | x << 8) & 0x00FF_00FF_00FF_00FF;
    x = (x | x << 4) & 0x0F0F_0F0F_0F0F_0F0F;
    // Digits from '0'; those of 10 or more (nibble + 6 reaches 16) moved on to 'a'.
    let letters = ((x + 6 * LO) >> 4) & LO;
    let ascii = x + u64::from(b'0') * LO + letters * u64::from(b'a' - b'0' - 10);
    ascii.to_be_bytes()
}

/// The W3C trace id (32 hex) of a build.
pub fn trace_id(correlation_id: &str) -> String {
    let mut h = xxh3_128(correlation_id.as_bytes());
    if h == 0 {
        h = 1; // all-zero ids are invalid in W3C Trace Context
    }
    hex(h, 32)
}

/// `key` := the parts joined by U+001F (one byte in UTF-8), the separator of every id key.
fn join_into(key: &mut Vec<u8>, parts: &[&[u8]]) {
    key.clear();
    if let Some((first, rest)) = parts.split_first() {
        key.extend_from_slice(first);
        append_parts(key, rest);
    }
}

/// The parts appended to a key that already holds its first parts, each after the separator.
fn append_parts(key: &mut Vec<u8>, parts: &[&[u8]]) {
    key.reserve(parts.iter().map(|p| p.len() + 1).sum());
    for p in parts {
        key.push(0x1f);
        key.extend_from_slice(p);
    }
}

/// The parts joined, hashed.
fn span(parts: &[&[u8]]) -> String {
    let mut key = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    join_into(&mut key, parts);
    let mut h = xxh3_64(&key);
    if h == 0 {
        h = 1;
    }
    hex(h as u128, 16)
}

/// The span id of the build's root span.
pub fn build_span_id(correlation_id: &str) -> String {
    span(&[correlation_id.as_bytes(), b"build"])
}

/// The span id of a feature's span.
pub fn feature_span_id(correlation_id: &str, feature: &str) -> String {
    span(&[correlation_id.as_bytes(), b"feature", feature.as_bytes()])
}

/// The span id of a command's span.
pub fn command_span_id(correlation_id: &str, feature: &str, command_num: u32) -> String {
    let mut n = itoa::Buffer::new();
    span(&[
        correlation_id.as_bytes(),
        b"command",
        feature.as_bytes(),
        n.format(command_num).as_bytes(),
    ])
}

/// The event id: the build, the source file's base name (`python-install.log`, the same
/// whether the file is read alone, in its directory, in an archive or followed), the line,
/// the event's position among that line's events, and the event's content (type and
/// scrubbed message), so that the same event gets the same id whatever the import path and
/// two different events never share one.
pub fn event_id(
    correlation_id: &str,
    source_name: &str,
    line: u64,
    position: u32,
    event_type: &str,
    content: &str,
) -> String {
    EventIdKey::default().id(
        0,
        correlation_id,
        base_name(source_name),
        line,
        position,
        event_type,
        content,
    )
}

/// The part of a source's name that event ids are made from: the file's base name.
pub fn base_name(source_name: &str) -> &str {
    source_name.rsplit('/').next().unwrap_or(source_name)
}

/// Where the keys of event ids are built, kept from one event to the next: no allocation
/// but the id, and the key's first parts (the build and the source's base name), the same
/// for every event of a source, written once per run of its events instead of per event.
#[derive(Default)]
pub struct EventIdKey {
    key: Vec<u8>,
    /// The source whose parts begin `key`, and where they end.
    prefix: Option<(usize, usize)>,
}

impl EventIdKey {
    /// [`event_id`] of an event of source `source` (a number its caller gives each source of
    /// one build: the same number, the same `base`; `correlation_id` is the build's, the
    /// same at every call), given the source's base name.
    #[allow(clippy::too_many_arguments)]
    pub fn id(
        &mut self,
        source: usize,
        correlation_id: &str,
        base: &str,
        line: u64,
        position: u32,
        event_type: &str,
        content: &str,
    ) -> String {
        match self.prefix {
            Some((s, len)) if s == source => self.key.truncate(len),
            _ => {
                join_into(&mut self.key, &[correlation_id.as_bytes(), base.as_bytes()]);
                self.prefix = Some((source, self.key.len()));
            }
        }
        let (mut l, mut q) = (itoa::Buffer::new(), itoa::Buffer::new());
        append_parts(
            &mut self.key,
            &[
                l.format(line).as_bytes(),
                q.format(position).as_bytes(),
                event_type.as_bytes(),
                content.as_bytes(),
            ],
        );
        hex(xxh3_128(&self.key), 32)
    }
}

/// A correlation id in the logger's format, `build-<unix seconds>-<6 of [a-z0-9]>`, derived
/// from the build's own content (`seed`).
pub fn derived_correlation_id(start_seconds: i64, seed: &[u8]) -> String {
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut h = xxh3_64(seed);
    let mut suffix = String::with_capacity(6);
    for _ in 0..6 {
        suffix.push(ALPHABET[(h % 36) as usize] as char);
        h /= 36;
    }
    format!("build-{start_seconds}-{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ids as first defined (with `format!`): the fast forms must not change one id.
    #[test]
    fn ids_equal_their_first_definition() {
        let c = "build-1791958321-g88d8k";
        let span = |parts: &[&str]| format!("{:016x}", xxh3_64(parts.join("\u{1f}").as_bytes()));
        assert_eq!(trace_id(c), format!("{:032x}", xxh3_128(c.as_bytes())));
        assert_eq!(build_span_id(c), span(&[c, "build"]));
        assert_eq!(
            feature_span_id(c, "Node.js"),
            span(&[c, "feature", "Node.js"])
        );
        assert_eq!(
            command_span_id(c, "Node.js", 12),
            span(&[c, "command", "Node.js", "12"])
        );
        for (line, pos) in [(0u64, 0u32), (1, 7), (u64::MAX, u32::MAX)] {
            let key =
                format!("{c}\u{1f}python-install.log\u{1f}{line}\u{1f}{pos}\u{1f}output\u{1f}x y");
            assert_eq!(
                event_id(c, "python-install.log", line, pos, "output", "x y"),
                format!("{:032x}", xxh3_128(key.as_bytes()))
            );
            // The base name only: the same file read alone or in its directory.
            assert_eq!(
                event_id(
                    c,
                    "/var/log/b/python-install.log",
                    line,
                    pos,
                    "output",
                    "x y"
                ),
                event_id(c, "python-install.log", line, pos, "output", "x y"),
            );
        }
        assert_eq!(hex(0xab, 16), "00000000000000ab");
    }

    /// A kept key gives every event the id `event_id` gives it alone, as events of two
    /// sources come in any order (the first parts written again at each change of source).
    #[test]
    fn a_kept_key_gives_each_event_its_own_id() {
        let c = "build-1791958321-g88d8k";
        let names = ["python-install.log", "json/python.jsonl"];
        let mut key = EventIdKey::default();
        for (i, source) in [0, 0, 1, 0, 1, 1, 0].into_iter().enumerate() {
            let line = i as u64 * 7;
            let content = "x".repeat(i * 40);
            assert_eq!(
                key.id(
                    source,
                    c,
                    base_name(names[source]),
                    line,
                    1,
                    "output",
                    &content
                ),
                event_id(c, names[source], line, 1, "output", &content),
                "event {i}"
            );
        }
    }

    proptest::proptest! {
        /// The digits written sixteen (or eight) at a time are those of `format!`, for any
        /// number.
        #[test]
        fn hex_digits_are_those_of_format(n: u128) {
            proptest::prop_assert_eq!(hex(n, 32), format!("{n:032x}"));
            proptest::prop_assert_eq!(hex32_portable(n).to_vec(), format!("{n:032x}").into_bytes());
            let low = n as u64;
            proptest::prop_assert_eq!(hex(u128::from(low), 16), format!("{low:016x}"));
        }
    }

    #[test]
    fn ids_are_stable_and_well_formed() {
        let c = derived_correlation_id(1_763_321_440, b"Python\x1f2025-11-16 19:30:40");
        assert_eq!(
            c,
            derived_correlation_id(1_763_321_440, b"Python\x1f2025-11-16 19:30:40")
        );
        assert_ne!(
            c,
            derived_correlation_id(1_763_321_440, b"Rust\x1f2025-11-16 19:30:40")
        );
        let re = regex::Regex::new(r"^build-1763321440-[a-z0-9]{6}$").unwrap();
        assert!(re.is_match(&c), "{c}");
        assert_eq!(trace_id(&c).len(), 32);
        assert_eq!(feature_span_id(&c, "Python").len(), 16);
        assert_ne!(
            feature_span_id(&c, "Python"),
            command_span_id(&c, "Python", 1)
        );
        assert_ne!(
            event_id(&c, "a", 1, 0, "output", "m"),
            event_id(&c, "a", 1, 1, "output", "m")
        );
        assert_ne!(
            event_id(&c, "a", 1, 0, "output", "m"),
            event_id(&c, "a", 1, 0, "output", "n")
        );
    }
}
