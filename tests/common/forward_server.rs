//! A test server for the Fluent forward protocol: accepts Message, Forward and PackedForward
//! messages, decodes their MessagePack (EventTime ext type 0 included), stores every entry,
//! and answers `{"ack": chunk}` when a message carries the `chunk` option. It can be told to
//! swallow acks or to close the connection on a message without storing it.
#![allow(dead_code)]

use rmpv::Value;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub tag: String,
    pub mode: &'static str,
    /// Seconds and nanoseconds of the EventTime (or of an integer time, nanoseconds 0).
    pub secs: u64,
    pub nanos: u32,
    pub record: serde_json::Value,
    pub chunk: Option<String>,
}

#[derive(Default)]
pub struct State {
    pub entries: Mutex<Vec<Entry>>,
    /// Messages received (stored or not).
    pub messages: AtomicUsize,
    /// Acks still to be swallowed (the message is stored, the ack never sent).
    pub drop_acks: AtomicUsize,
    /// Messages still to be refused by closing the connection (nothing stored).
    pub close_on_message: AtomicUsize,
    /// Protocol errors seen (undecodable messages): the tests assert there are none.
    pub errors: Mutex<Vec<String>>,
}

pub struct ForwardServer {
    pub addr: String,
    pub state: Arc<State>,
}

impl ForwardServer {
    pub fn start() -> ForwardServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(State::default());
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || serve(conn, &st));
            }
        });
        ForwardServer { addr, state }
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.state.entries.lock().unwrap().clone()
    }
}

fn take_one(n: &AtomicUsize) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
        .is_ok()
}

fn serve(conn: TcpStream, st: &State) {
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    loop {
        let msg = match rmpv::decode::read_value(&mut reader) {
            Ok(v) => v,
            Err(_) => return, // EOF or garbage: the connection ends
        };
        st.messages.fetch_add(1, Ordering::SeqCst);
        if take_one(&st.close_on_message) {
            return;
        }
        match decode_message(&msg) {
            Ok((entries, chunk)) => {
                st.entries.lock().unwrap().extend(entries);
                if let Some(c) = chunk {
                    if take_one(&st.drop_acks) {
                        continue;
                    }
                    let mut ack = Vec::new();
                    rmpv::encode::write_value(
                        &mut ack,
                        &Value::Map(vec![("ack".into(), c.as_str().into())]),
                    )
                    .unwrap();
                    if writer.write_all(&ack).is_err() {
                        return;
                    }
                }
            }
            Err(e) => st.errors.lock().unwrap().push(e),
        }
    }
}

fn decode_time(v: &Value) -> Result<(u64, u32), String> {
    match v {
        Value::Ext(0, b) if b.len() == 8 => Ok((
            u32::from_be_bytes(b[0..4].try_into().unwrap()) as u64,
            u32::from_be_bytes(b[4..8].try_into().unwrap()),
        )),
        Value::Integer(i) => Ok((i.as_u64().ok_or("negative time")?, 0)),
        other => Err(format!("bad time {other:?}")),
    }
}

fn option_chunk(opt: Option<&Value>) -> Result<Option<String>, String> {
    let Some(opt) = opt else { return Ok(None) };
    let Value::Map(m) = opt else {
        return Err(format!("options are not a map: {opt:?}"));
    };
    Ok(m.iter()
        .find(|(k, _)| k.as_str() == Some("chunk"))
        .and_then(|(_, v)| v.as_str().map(String::from)))
}

fn decode_entry(
    tag: &str,
    mode: &'static str,
    entry: &Value,
    chunk: &Option<String>,
) -> Result<Entry, String> {
    let Value::Array(pair) = entry else {
        return Err(format!("entry is not an array: {entry:?}"));
    };
    if pair.len() != 2 {
        return Err(format!("entry of {} items", pair.len()));
    }
    let (secs, nanos) = decode_time(&pair[0])?;
    Ok(Entry {
        tag: tag.into(),
        mode,
        secs,
        nanos,
        record: to_json(&pair[1]),
        chunk: chunk.clone(),
    })
}

/// Decodes one message in any of the three modes.
pub fn decode_message(msg: &Value) -> Result<(Vec<Entry>, Option<String>), String> {
    let Value::Array(items) = msg else {
        return Err("message is not an array".into());
    };
    let tag = items
        .first()
        .and_then(|t| t.as_str())
        .ok_or("no tag")?
        .to_string();
    match items.get(1) {
        Some(Value::Array(entries)) => {
            let chunk = option_chunk(items.get(2))?;
            let out = entries
                .iter()
                .map(|e| decode_entry(&tag, "forward", e, &chunk))
                .collect::<Result<_, _>>()?;
            Ok((out, chunk))
        }
        Some(Value::Binary(bin)) => {
            let chunk = option_chunk(items.get(2))?;
            let mut cur = &bin[..];
            let mut out = Vec::new();
            while !cur.is_empty() {
                let e = rmpv::decode::read_value(&mut cur).map_err(|e| e.to_string())?;
                out.push(decode_entry(&tag, "packed_forward", &e, &chunk)?);
            }
            Ok((out, chunk))
        }
        Some(t @ (Value::Ext(..) | Value::Integer(_))) => {
            let chunk = option_chunk(items.get(3))?;
            let pair = Value::Array(vec![t.clone(), items.get(2).ok_or("no record")?.clone()]);
            Ok((vec![decode_entry(&tag, "message", &pair, &chunk)?], chunk))
        }
        other => Err(format!("unknown message shape: {other:?}")),
    }
}

pub fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Nil => J::Null,
        Value::Boolean(b) => J::Bool(*b),
        Value::Integer(i) => i
            .as_u64()
            .map(J::from)
            .or(i.as_i64().map(J::from))
            .unwrap_or(J::Null),
        Value::F32(f) => J::from(*f as f64),
        Value::F64(f) => J::from(*f),
        Value::String(s) => J::String(s.as_str().unwrap_or_default().to_string()),
        Value::Binary(b) => J::String(String::from_utf8_lossy(b).into_owned()),
        Value::Array(a) => J::Array(a.iter().map(to_json).collect()),
        Value::Map(m) => J::Object(
            m.iter()
                .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), to_json(v)))
                .collect(),
        ),
        Value::Ext(t, b) => J::String(format!("ext{t}:{b:02x?}")),
    }
}
