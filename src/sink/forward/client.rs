//! The forward client: one TCP connection, messages of `batch` events, and with `ack` the
//! wait for `{"ack": chunk}`. A connection error, a timeout or a wrong ack drops the
//! connection and resends the whole message after a backoff (at-least-once: the server may
//! see a message twice when only its ack was lost). A message still undelivered after the
//! last retry goes to the dead-letter file.

use super::encoder::{decode_ack, encode_message};
use super::ForwardConfig;
use crate::event::Event;
use crate::sink::dead_letter::DeadLetter;
use crate::sink::{Sink, SinkFuture, SinkReport};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;

pub struct ForwardSink {
    config: ForwardConfig,
    dead_letter: DeadLetter,
    conn: Option<TcpStream>,
    /// Distinguishes the chunk ids of this run from another run's.
    run_id: u64,
    next_chunk: u64,
}

const NAME: &str = "forward";

impl ForwardSink {
    pub fn new(config: ForwardConfig, dead_letter: DeadLetter) -> Self {
        ForwardSink {
            config,
            dead_letter,
            conn: None,
            run_id: fastrand::u64(..),
            next_chunk: 0,
        }
    }

    /// Sends one message, with retries. Ok: delivered; Err: the last failure.
    async fn deliver(
        &mut self,
        events: &[Arc<Event>],
        report: &mut SinkReport,
    ) -> Result<(), String> {
        let chunk = self.config.ack.then(|| {
            self.next_chunk += 1;
            format!("{:016x}{:016x}", self.run_id, self.next_chunk)
        });
        let msg = encode_message(self.config.mode, &self.config.tag, events, chunk.as_deref())
            .map_err(|e| format!("encoding: {e}"))?;
        let backoff = self.config.backoff;
        let mut retries = crate::sink::retry::Retries::new(&backoff, NAME);
        loop {
            match self.send_once(&msg, chunk.as_deref()).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    // Every failure closes the connection: the next try starts afresh.
                    self.conn = None;
                    retries.wait(&e, None).await?;
                    report.retried += 1;
                }
            }
        }
    }

    async fn send_once(&mut self, msg: &[u8], chunk: Option<&str>) -> Result<(), String> {
        let t = self.config.timeout;
        if self.conn.is_none() {
            let c = timeout(t, TcpStream::connect(&self.config.address))
                .await
                .map_err(|_| format!("connecting to {}: timed out", self.config.address))?
                .map_err(|e| format!("connecting to {}: {e}", self.config.address))?;
            let _ = c.set_nodelay(true);
            self.conn = Some(c);
        }
        let conn = self.conn.as_mut().expect("connected above");
        timeout(t, conn.write_all(msg))
            .await
            .map_err(|_| "writing: timed out".to_string())?
            .map_err(|e| format!("writing: {e}"))?;
        let Some(chunk) = chunk else {
            return Ok(());
        };
        let mut buf = Vec::new();
        let mut tmp = [0u8; 512];
        loop {
            let n = timeout(t, conn.read(&mut tmp))
                .await
                .map_err(|_| format!("no ack for chunk {chunk} within {t:?}"))?
                .map_err(|e| format!("reading the ack: {e}"))?;
            if n == 0 {
                return Err(format!("connection closed before the ack of chunk {chunk}"));
            }
            buf.extend_from_slice(&tmp[..n]);
            match decode_ack(&buf)? {
                Some(ack) if ack == chunk => return Ok(()),
                Some(other) => return Err(format!("ack for chunk {other}, expected {chunk}")),
                None if buf.len() > 64 * 1024 => return Err("oversized ack response".into()),
                None => {}
            }
        }
    }
}

impl Sink for ForwardSink {
    fn name(&self) -> String {
        NAME.into()
    }

    fn run(mut self: Box<Self>, mut events: mpsc::Receiver<Arc<Event>>) -> SinkFuture {
        Box::pin(async move {
            let mut report = SinkReport::new(NAME);
            let mut batch: Vec<Arc<Event>> = Vec::with_capacity(self.config.batch);
            loop {
                // Wait for one event, then take what is already queued, up to a batch.
                let open =
                    crate::sink::take_events(&mut events, &mut batch, self.config.batch).await > 0;
                if !batch.is_empty() {
                    report.received += batch.len() as u64;
                    match self.deliver(&batch, &mut report).await {
                        Ok(()) => report.delivered += batch.len() as u64,
                        Err(reason) => {
                            tracing::error!(target: "buildlog::forward", "{} events undelivered: {reason}", batch.len());
                            report.dead_lettered += batch.len() as u64;
                            self.dead_letter.write(NAME, &reason, &batch)?;
                        }
                    }
                    batch.clear();
                }
                if !open {
                    break;
                }
            }
            if let Some(mut c) = self.conn.take() {
                let _ = c.shutdown().await;
            }
            Ok(report)
        })
    }
}
