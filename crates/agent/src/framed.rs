//! Whole MQTT packets over a TCP stream.
//!
//! Reading keeps its partial packet in `read_buf`, so `read_packet` can be
//! a branch of `tokio::select!` and be cancelled without losing bytes.
//! Writing is not cancel-safe and is only done outside `select!` branches.

use bytes::BytesMut;
use ledgermq_proto::{decode, encode, EncodeError, Packet, Protocol, ReasonCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::ClientError;

pub(crate) struct PacketStream {
    stream: TcpStream,
    protocol: Protocol,
    max_packet_size: usize,
    read_buf: BytesMut,
    write_buf: BytesMut,
    /// Reason code of the last decoding failure, for our DISCONNECT.
    decode_failure: Option<ReasonCode>,
}

impl PacketStream {
    pub(crate) fn new(stream: TcpStream, protocol: Protocol, max_packet_size: u32) -> Self {
        Self {
            stream,
            protocol,
            max_packet_size: max_packet_size as usize,
            read_buf: BytesMut::with_capacity(4096),
            write_buf: BytesMut::with_capacity(4096),
            decode_failure: None,
        }
    }

    pub(crate) fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The next packet from the broker. A clean end of stream is
    /// [`ClientError::Closed`]; undecodable bytes are a protocol error
    /// whose reason code [`Self::decode_failure`] reports.
    pub(crate) async fn read_packet(&mut self) -> Result<Packet, ClientError> {
        loop {
            match decode(
                &mut self.read_buf,
                Some(self.protocol),
                self.max_packet_size,
            ) {
                Ok(Some(packet)) => return Ok(packet),
                Ok(None) => {}
                Err(e) => {
                    self.decode_failure = Some(e.reason_code());
                    return Err(ClientError::Protocol(format!("from the broker: {e}")));
                }
            }
            let n = self
                .stream
                .read_buf(&mut self.read_buf)
                .await
                .map_err(ClientError::io)?;
            if n == 0 {
                return Err(ClientError::Closed);
            }
        }
    }

    /// The reason code for a DISCONNECT after [`Self::read_packet`]
    /// failed to decode, if that is what happened.
    pub(crate) fn decode_failure(&self) -> Option<ReasonCode> {
        self.decode_failure
    }

    /// Appends `packet` to the write buffer; on error nothing is appended,
    /// so a request the codec cannot express fails alone.
    pub(crate) fn encode(&mut self, packet: &Packet) -> Result<(), EncodeError> {
        encode(packet, self.protocol, &mut self.write_buf)
    }

    /// Writes out everything encoded so far; `false` if there was nothing.
    pub(crate) async fn flush(&mut self) -> Result<bool, ClientError> {
        if self.write_buf.is_empty() {
            return Ok(false);
        }
        let result = self.stream.write_all(&self.write_buf).await;
        self.write_buf.clear();
        result.map(|()| true).map_err(ClientError::io)
    }

    /// Encodes and writes one packet the client itself built (CONNECT,
    /// acknowledgements, AUTH, PINGREQ, DISCONNECT), which always encode.
    pub(crate) async fn write_packet(&mut self, packet: &Packet) -> Result<(), ClientError> {
        self.encode(packet)
            .map_err(|e| ClientError::Request(format!("cannot encode {}: {e}", packet.name())))?;
        self.flush().await.map(drop)
    }

    /// Best effort: the connection is ending anyway.
    pub(crate) async fn shutdown(&mut self) {
        let _ = self.stream.shutdown().await;
    }
}
