//! Fluent Bit's record chunks: a sequence of MessagePack records, each either
//! `[time, body]` (older encoding) or `[[time, metadata], body]` (Fluent Bit 2.1+), `time`
//! being EventTime (ext type 0: seconds and nanoseconds, big-endian), an integer or a float.

use rmpv::Value;

/// The part of a record the plugin uses: which file the line came from, and the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub path: String,
    pub line: Vec<u8>,
}

/// Decoded records, in chunk order, and a description of every record that was unusable.
#[derive(Debug, Default)]
pub struct Decoded {
    pub records: Vec<Record>,
    pub bad: Vec<String>,
}

fn key<'a>(body: &'a [(Value, Value)], name: &str) -> Option<&'a Value> {
    body.iter()
        .find(|(k, _)| k.as_str() == Some(name))
        .map(|(_, v)| v)
}

fn bytes_of(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Binary(b) => Some(b.clone()),
        _ => None,
    }
}

fn is_time(v: &Value) -> bool {
    matches!(v, Value::Ext(0, b) if b.len() == 8)
        || matches!(v, Value::Integer(_) | Value::F64(_) | Value::F32(_))
}

/// The body map of one record, in either encoding.
fn body_of(record: &Value) -> Result<&[(Value, Value)], String> {
    let Value::Array(items) = record else {
        return Err("record is not an array".into());
    };
    if items.len() != 2 {
        return Err(format!("record of {} items", items.len()));
    }
    let header_ok = match &items[0] {
        Value::Array(h) => h.len() == 2 && is_time(&h[0]) && h[1].is_map(),
        t => is_time(t),
    };
    if !header_ok {
        return Err("record without a valid time header".into());
    }
    match &items[1] {
        Value::Map(m) => Ok(m),
        _ => Err("record body is not a map".into()),
    }
}

/// Decodes a chunk. Never fails: what cannot be read is described in `bad`; an undecodable
/// tail ends the chunk (MessagePack has no resynchronisation point).
pub fn decode(chunk: &[u8], path_key: &str, log_key: &str) -> Decoded {
    let mut out = Decoded::default();
    let mut cur = chunk;
    let mut n = 0usize;
    while !cur.is_empty() {
        n += 1;
        let value = match rmpv::decode::read_value(&mut cur) {
            Ok(v) => v,
            Err(e) => {
                out.bad.push(format!(
                    "record {n}: undecodable MessagePack ({e}); {} bytes skipped",
                    cur.len()
                ));
                break;
            }
        };
        let body = match body_of(&value) {
            Ok(b) => b,
            Err(e) => {
                out.bad.push(format!("record {n}: {e}"));
                continue;
            }
        };
        let Some(line) = key(body, log_key).and_then(bytes_of) else {
            out.bad.push(format!("record {n}: no string `{log_key}`"));
            continue;
        };
        let Some(path) = key(body, path_key).and_then(bytes_of) else {
            out.bad.push(format!(
                "record {n}: no string `{path_key}` (set Path_Key on the tail input)"
            ));
            continue;
        };
        out.records.push(Record {
            path: String::from_utf8_lossy(&path).into_owned(),
            line,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(path: &str, log: &str) -> Value {
        Value::Map(vec![
            ("path".into(), path.into()),
            ("log".into(), log.into()),
        ])
    }

    fn time() -> Value {
        Value::Ext(0, vec![0x69, 0x1a, 0x26, 0x65, 0, 0, 0, 1])
    }

    fn encode(values: &[Value]) -> Vec<u8> {
        let mut b = Vec::new();
        for v in values {
            rmpv::encode::write_value(&mut b, v).unwrap();
        }
        b
    }

    #[test]
    fn both_encodings_and_bad_records() {
        let chunk = encode(&[
            Value::Array(vec![time(), body("/l/a-install.log", "one")]),
            Value::Array(vec![
                Value::Array(vec![time(), Value::Map(vec![])]),
                body("/l/b-install.log", "two"),
            ]),
            Value::Array(vec![
                Value::from(1_763_321_445u64),
                body("/l/a-install.log", "three"),
            ]),
            Value::from("not a record"),
            Value::Array(vec![time(), Value::Map(vec![("log".into(), "x".into())])]),
            Value::Array(vec![Value::from("t"), body("/l/a", "y")]),
        ]);
        let d = decode(&chunk, "path", "log");
        let got: Vec<_> = d
            .records
            .iter()
            .map(|r| {
                (
                    r.path.as_str(),
                    String::from_utf8_lossy(&r.line).into_owned(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("/l/a-install.log", "one".to_string()),
                ("/l/b-install.log", "two".into()),
                ("/l/a-install.log", "three".into())
            ]
        );
        assert_eq!(d.bad.len(), 3, "{:?}", d.bad);
        assert!(d.bad[0].starts_with("record 4: record is not an array"));
        assert!(d.bad[1].contains("no string `path`"));
        assert!(d.bad[2].contains("time header"));
    }

    #[test]
    fn a_truncated_chunk_keeps_the_records_before_the_cut() {
        let chunk = encode(&[
            Value::Array(vec![time(), body("/l/a-install.log", "one")]),
            Value::Array(vec![time(), body("/l/a-install.log", "two")]),
        ]);
        let d = decode(&chunk[..chunk.len() - 3], "path", "log");
        assert_eq!(d.records.len(), 1);
        assert_eq!(d.bad.len(), 1);
        assert!(d.bad[0].starts_with("record 2: undecodable"));
    }
}
