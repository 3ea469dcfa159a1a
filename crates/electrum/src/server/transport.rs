//! Message framing over the four transports: newline-delimited JSON over TCP and TLS, and one
//! message per frame over WebSocket and secure WebSocket. Lines are bounded; an over-long line
//! is an error, not an allocation.

use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Why reading a message failed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("request line longer than {0} bytes")]
    TooLong(usize),
    #[error("request is not UTF-8")]
    NotUtf8,
    #[error("connection error: {0}")]
    Io(String),
}

/// A bidirectional message stream. `recv` is cancel-safe: a partly received line is kept in
/// `partial`, so a `select!` that prefers a notification loses nothing.
pub enum Framed<S> {
    Lines {
        reader: BufReader<tokio::io::ReadHalf<S>>,
        writer: tokio::io::WriteHalf<S>,
        max: usize,
        partial: Vec<u8>,
        /// When the line in `partial` (or still in `reader`) began.
        begun: Option<Instant>,
    },
    Ws {
        ws: WebSocketStream<S>,
        max: usize,
    },
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Framed<S> {
    pub fn lines(stream: S, max: usize) -> Framed<S> {
        let (r, w) = tokio::io::split(stream);
        Framed::Lines {
            reader: BufReader::with_capacity(16 * 1024, r),
            writer: w,
            max,
            partial: Vec::new(),
            begun: None,
        }
    }

    /// When the request line being received began, if one has (line transports only).
    pub fn line_begun(&self) -> Option<Instant> {
        match self {
            Framed::Lines { begun, .. } => *begun,
            Framed::Ws { .. } => None,
        }
    }

    pub fn websocket(ws: WebSocketStream<S>, max: usize) -> Framed<S> {
        Framed::Ws { ws, max }
    }

    /// The next message; `None` when the peer closed.
    pub async fn recv(&mut self) -> Option<Result<String, FrameError>> {
        match self {
            Framed::Lines {
                reader,
                max,
                partial,
                begun,
                ..
            } => {
                loop {
                    // Only `fill_buf` awaits, and bytes move out of the reader only after it
                    // returns, into `partial`, which outlives this future.
                    let available = match reader.fill_buf().await {
                        Ok(b) => b,
                        Err(e) => return Some(Err(FrameError::Io(e.to_string()))),
                    };
                    if available.is_empty() {
                        *begun = None;
                        return if partial.is_empty() {
                            None
                        } else {
                            Some(decode(std::mem::take(partial)))
                        };
                    }
                    match available.iter().position(|b| *b == b'\n') {
                        Some(i) => {
                            if partial.len() + i > *max {
                                partial.clear();
                                return Some(Err(FrameError::TooLong(*max)));
                            }
                            partial.extend_from_slice(&available[..i]);
                            reader.consume(i + 1);
                            *begun = None;
                            if partial.iter().all(u8::is_ascii_whitespace) {
                                partial.clear();
                                continue; // blank lines are not requests
                            }
                            return Some(decode(std::mem::take(partial)));
                        }
                        None => {
                            let n = available.len();
                            if partial.len() + n > *max {
                                partial.clear();
                                return Some(Err(FrameError::TooLong(*max)));
                            }
                            partial.extend_from_slice(available);
                            reader.consume(n);
                            begun.get_or_insert_with(Instant::now);
                        }
                    }
                }
            }
            Framed::Ws { ws, max } => loop {
                match ws.next().await? {
                    Ok(Message::Text(text)) => {
                        if text.len() > *max {
                            return Some(Err(FrameError::TooLong(*max)));
                        }
                        return Some(Ok(text.to_string()));
                    }
                    Ok(Message::Binary(bytes)) => {
                        if bytes.len() > *max {
                            return Some(Err(FrameError::TooLong(*max)));
                        }
                        return Some(decode(bytes.to_vec()));
                    }
                    Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
                    Ok(Message::Close(_)) => return None,
                    Err(tokio_tungstenite::tungstenite::Error::Capacity(_)) => {
                        return Some(Err(FrameError::TooLong(*max)))
                    }
                    Err(e) => return Some(Err(FrameError::Io(e.to_string()))),
                }
            },
        }
    }

    /// Sends one message (a newline is added on line transports).
    pub async fn send(&mut self, text: String) -> Result<(), FrameError> {
        match self {
            Framed::Lines { writer, .. } => {
                let mut bytes = text.into_bytes();
                bytes.push(b'\n');
                writer
                    .write_all(&bytes)
                    .await
                    .map_err(|e| FrameError::Io(e.to_string()))?;
                writer
                    .flush()
                    .await
                    .map_err(|e| FrameError::Io(e.to_string()))
            }
            Framed::Ws { ws, .. } => ws
                .send(Message::text(text))
                .await
                .map_err(|e| FrameError::Io(e.to_string())),
        }
    }

    /// Closes the stream politely.
    pub async fn close(&mut self) {
        match self {
            Framed::Lines { writer, .. } => {
                let _ = writer.shutdown().await;
            }
            Framed::Ws { ws, .. } => {
                let _ = ws.close(None).await;
            }
        }
    }
}

fn decode(bytes: Vec<u8>) -> Result<String, FrameError> {
    String::from_utf8(bytes).map_err(|_| FrameError::NotUtf8)
}
