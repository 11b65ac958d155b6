//! Events to forward-protocol messages (MessagePack), per the Fluent forward protocol v1:
//! an entry is `[EventTime, record]`, EventTime being ext type 0 with 4 bytes of seconds and
//! 4 bytes of nanoseconds (big-endian); the record is the event's JSON object as a map.

use super::ForwardMode;
use crate::event::{Event, Timestamp};
use std::sync::Arc;

/// Appends `EventTime` (ext type 0) for `ts`.
pub fn write_event_time(out: &mut Vec<u8>, ts: Timestamp) {
    let secs = ts.seconds();
    let nanos = (ts.millis().rem_euclid(1000) * 1_000_000) as u32;
    // Seconds are an unsigned 32-bit field: times before 1970 or after 2106 are clamped.
    let secs = secs.clamp(0, u32::MAX as i64) as u32;
    out.extend_from_slice(&[0xd7, 0x00]); // fixext 8, type 0
    out.extend_from_slice(&secs.to_be_bytes());
    out.extend_from_slice(&nanos.to_be_bytes());
}

/// Appends one `[EventTime, record]` entry.
pub fn write_entry(out: &mut Vec<u8>, event: &Event) -> Result<(), rmp_serde::encode::Error> {
    rmp::encode::write_array_len(out, 2)?;
    write_event_time(out, event.timestamp);
    rmp_serde::encode::write_named(out, event)
}

/// Encodes `events` as one message with tag `tag`; with `chunk`, the `chunk` option asks
/// the server for an ack.
pub fn encode_message(
    mode: ForwardMode,
    tag: &str,
    events: &[Arc<Event>],
    chunk: Option<&str>,
) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    let mut out = Vec::with_capacity(256 * events.len() + 64);
    rmp::encode::write_array_len(&mut out, 3)?;
    rmp::encode::write_str(&mut out, tag)?;
    match mode {
        ForwardMode::Forward => {
            rmp::encode::write_array_len(&mut out, events.len() as u32)?;
            for e in events {
                write_entry(&mut out, e)?;
            }
        }
        ForwardMode::PackedForward => {
            let mut entries = Vec::with_capacity(256 * events.len());
            for e in events {
                write_entry(&mut entries, e)?;
            }
            rmp::encode::write_bin_len(&mut out, entries.len() as u32)?;
            out.extend_from_slice(&entries);
        }
    }
    let n = 1 + chunk.is_some() as u32;
    rmp::encode::write_map_len(&mut out, n)?;
    rmp::encode::write_str(&mut out, "size")?;
    rmp::encode::write_uint(&mut out, events.len() as u64)?;
    if let Some(c) = chunk {
        rmp::encode::write_str(&mut out, "chunk")?;
        rmp::encode::write_str(&mut out, c)?;
    }
    Ok(out)
}

/// The `chunk` id in an ack response `{"ack": chunk}`, once `buf` holds a whole response.
/// `Ok(None)`: more bytes are needed. `Err`: not an ack response.
pub fn decode_ack(buf: &[u8]) -> Result<Option<String>, String> {
    #[derive(serde::Deserialize)]
    struct Ack {
        ack: String,
    }
    match rmp_serde::from_slice::<Ack>(buf) {
        Ok(a) => Ok(Some(a.ack)),
        Err(rmp_serde::decode::Error::InvalidMarkerRead(e))
        | Err(rmp_serde::decode::Error::InvalidDataRead(e))
            if e.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            Ok(None)
        }
        Err(e) => Err(format!("not an ack response: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventType, Level};

    fn event(ms: i64) -> Arc<Event> {
        let mut e = Event::new(EventType::Output, Level::Info, "Python", "hello");
        e.timestamp = Timestamp(ms);
        Arc::new(e.with_meta("exit_code", 0))
    }

    #[test]
    fn event_time_is_ext0_with_nanoseconds() {
        let mut b = Vec::new();
        write_event_time(&mut b, Timestamp(1_763_321_445_123));
        assert_eq!(
            b,
            [0xd7, 0, 0x69, 0x1a, 0x26, 0x65, 0x07, 0x54, 0xd4, 0xc0],
            "{b:02x?}"
        );
        assert_eq!(
            u32::from_be_bytes(b[2..6].try_into().unwrap()),
            1_763_321_445
        );
        assert_eq!(
            u32::from_be_bytes(b[6..10].try_into().unwrap()),
            123_000_000
        );
    }

    #[test]
    fn packed_forward_wraps_the_same_entries_in_bin() {
        let evs = [event(1_000), event(2_500)];
        let fwd = encode_message(ForwardMode::Forward, "t", &evs, Some("c1")).unwrap();
        let packed = encode_message(ForwardMode::PackedForward, "t", &evs, Some("c1")).unwrap();
        let mut entries = Vec::new();
        for e in &evs {
            write_entry(&mut entries, e).unwrap();
        }
        // [fixarray 3, fixstr "t"] then the entries, as an array or as bin 32/16/8.
        assert_eq!(&fwd[..3], &[0x93, 0xa1, b't']);
        assert_eq!(fwd[3], 0x92);
        assert_eq!(&fwd[4..4 + entries.len()], &entries[..]);
        let (hdr, len) = (packed[3], entries.len());
        assert!(hdr == 0xc4 || hdr == 0xc5, "{hdr:x}");
        let start = if hdr == 0xc4 { 5 } else { 6 };
        assert_eq!(&packed[start..start + len], &entries[..]);
        // Both end with {"size": 2, "chunk": "c1"}.
        let tail = [
            0x82, 0xa4, b's', b'i', b'z', b'e', 2, 0xa5, b'c', b'h', b'u', b'n', b'k', 0xa2, b'c',
            b'1',
        ];
        assert!(fwd.ends_with(&tail) && packed.ends_with(&tail));
    }

    #[test]
    fn acks_decode_incrementally() {
        let full = rmp_serde::to_vec_named(&serde_json::json!({"ack": "abc"})).unwrap();
        assert_eq!(decode_ack(&full[..3]), Ok(None));
        assert_eq!(decode_ack(&full), Ok(Some("abc".into())));
        assert!(decode_ack(&[0x01]).is_err());
    }
}
