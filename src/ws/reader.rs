//! The charge point's messages, decoded one frame at a time from the upgraded connection.
//!
//! actix-ws's `MessageStream` decodes every frame in its buffer as soon as it is polled: a
//! peer that sends a few hundred kilobytes of small CALLs in one go makes it decode thousands of
//! frames in one poll, which holds the worker thread (and every other charge point on it) for
//! milliseconds, and queues them all in memory. This reader decodes a frame only when the
//! session asks for the next message, so a flooder costs one frame per turn, and what it sent
//! ahead waits in actix-http's bounded payload buffer (32 KiB, then the kernel, then TCP flow
//! control) rather than in this process.

use actix_codec::Decoder;
use actix_http::ws::{Codec, Frame, Item, ProtocolError};
use actix_web::web::{Bytes, BytesMut, Payload};
use futures_util::StreamExt;

/// One message from the charge point, continuations put together.
#[derive(Debug)]
pub(super) enum Message {
    /// A text message (valid UTF-8).
    Text(String),
    /// A binary message.
    Binary(Bytes),
    /// A ping, to be answered with a pong of the same payload.
    Ping(Bytes),
    /// A pong (an answer to the server's ping, or a heartbeat).
    Pong,
    /// The peer closes.
    Close,
}

/// Why no message could be read.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
    /// A frame or a fragmented message over `limits.max_frame_bytes` (close with 1009).
    #[error("message over limits.max_frame_bytes")]
    TooBig,
    /// Not valid WebSocket, or the connection failed (close with 1002).
    #[error("{0}")]
    Protocol(String),
}

/// Reads the messages of one connection.
pub(super) struct MessageReader {
    /// The request body of the upgraded connection: the raw WebSocket bytes.
    payload: Payload,
    /// Bytes received and not yet decoded; released whenever it is empty and the reader waits.
    buf: BytesMut,
    /// Server-side WebSocket codec, with the frame size limit.
    codec: Codec,
    /// A fragmented message being put together: whether it is text, and its bytes so far.
    partial: Option<(bool, BytesMut)>,
    /// Largest message, whole or fragmented.
    max_bytes: usize,
    /// The payload has ended; what is left in `buf` is all there is.
    ended: bool,
}

impl MessageReader {
    /// A reader of `payload` accepting messages up to `max_bytes`.
    pub(super) fn new(payload: Payload, max_bytes: usize) -> MessageReader {
        MessageReader {
            payload,
            buf: BytesMut::new(),
            codec: Codec::new().max_size(max_bytes),
            partial: None,
            max_bytes,
            ended: false,
        }
    }

    /// The next message; `None` when the connection has ended. Cancel-safe (what was read
    /// stays in the buffer), so the session can `select!` on it.
    pub(super) async fn next(&mut self) -> Option<Result<Message, ReadError>> {
        loop {
            match self.codec.decode(&mut self.buf) {
                Ok(Some(frame)) => match self.message(frame) {
                    Ok(Some(message)) => return Some(Ok(message)),
                    Ok(None) => continue,
                    Err(error) => return Some(Err(error)),
                },
                Ok(None) => {}
                Err(ProtocolError::Overflow) => return Some(Err(ReadError::TooBig)),
                Err(error) => return Some(Err(ReadError::Protocol(error.to_string()))),
            }
            if self.ended {
                return None;
            }
            if self.buf.is_empty() {
                // Nothing left to decode: free the buffer rather than keep a frame's worth of
                // capacity for as long as the charge point stays silent (issue 13: memory per
                // idle connection). The next chunk allocates what it needs.
                self.buf = BytesMut::new();
            }
            match self.payload.next().await {
                Some(Ok(bytes)) => self.buf.extend_from_slice(&bytes),
                Some(Err(error)) => return Some(Err(ReadError::Protocol(error.to_string()))),
                None => self.ended = true,
            }
        }
    }

    /// The message a frame completes, `None` for a fragment that does not.
    fn message(&mut self, frame: Frame) -> Result<Option<Message>, ReadError> {
        let (text, bytes) = match frame {
            Frame::Text(bytes) => (true, bytes),
            Frame::Binary(bytes) => (false, bytes),
            Frame::Ping(bytes) => return Ok(Some(Message::Ping(bytes))),
            Frame::Pong(_) => return Ok(Some(Message::Pong)),
            Frame::Close(_) => return Ok(Some(Message::Close)),
            Frame::Continuation(Item::FirstText(bytes)) => return self.first(true, &bytes),
            Frame::Continuation(Item::FirstBinary(bytes)) => return self.first(false, &bytes),
            Frame::Continuation(Item::Continue(bytes)) => {
                self.append(&bytes)?;
                return Ok(None);
            }
            Frame::Continuation(Item::Last(bytes)) => {
                self.append(&bytes)?;
                let Some((text, whole)) = self.partial.take() else {
                    return Err(protocol("a continuation ended that never started"));
                };
                (text, whole.freeze())
            }
        };
        if self.partial.is_some() {
            return Err(protocol("a new message started inside a fragmented one"));
        }
        if text {
            String::from_utf8(bytes.to_vec())
                .map(|text| Some(Message::Text(text)))
                .map_err(|_| protocol("a text message is not UTF-8"))
        } else {
            Ok(Some(Message::Binary(bytes)))
        }
    }

    /// Starts a fragmented message.
    fn first(&mut self, text: bool, bytes: &[u8]) -> Result<Option<Message>, ReadError> {
        if self.partial.is_some() {
            return Err(protocol("a fragmented message started inside another"));
        }
        self.partial = Some((text, BytesMut::from(bytes)));
        Ok(None)
    }

    /// Adds a fragment to the message being put together.
    fn append(&mut self, bytes: &[u8]) -> Result<(), ReadError> {
        let Some((_, whole)) = self.partial.as_mut() else {
            return Err(protocol("a continuation without its first frame"));
        };
        if whole.len() + bytes.len() > self.max_bytes {
            return Err(ReadError::TooBig);
        }
        whole.extend_from_slice(bytes);
        Ok(())
    }
}

/// A protocol error with this description.
fn protocol(description: &str) -> ReadError {
    ReadError::Protocol(description.to_owned())
}
