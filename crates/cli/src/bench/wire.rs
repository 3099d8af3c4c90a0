//! One benchmark client's connection: MQTT framing over a buffered socket.
//!
//! Each client is a single task, so [`Wire::pump`] waits on whichever comes
//! first — the socket taking part of the write buffer, bytes arriving, or a
//! timer. A publisher thereby keeps draining acknowledgements while it
//! writes, and packets queued between two pumps leave in one syscall: the
//! tool spends its CPU on the broker's behalf, not on system calls.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Buf, BytesMut};
use ledgermq_proto::{
    decode, encode, encode_outgoing_publish, Auth, ConnAck, Connect, Disconnect, OutgoingPublish,
    Packet, Properties, Protocol, QoS, ReasonCode, Subscribe, SubscriptionOptions, MAX_PACKET_SIZE,
};
use ledgermq_security::{OtpClient, OtpKey, AUTH_METHOD};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Socket reads go into at least this much free buffer space.
const READ_CHUNK: usize = 64 * 1024;
/// Producers stop queueing once this many bytes wait to be written.
pub const WRITE_HIGH_WATER: usize = 64 * 1024;
/// Bound on connecting, CONNACK and SUBACK.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What ended one [`Wire::pump`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Io {
    /// Bytes arrived; decode them with [`Wire::next_packet`].
    Read,
    /// Part of the write buffer left.
    Wrote,
    /// The wake-up time passed.
    Timer,
}

/// `LMQ-OTP-1` credentials of one connection; its client id is the device id.
pub struct OtpLogin<'a> {
    pub key: &'a OtpKey,
    /// Above every packet number the device used before.
    pub packet_number: u64,
}

pub struct Wire {
    stream: TcpStream,
    protocol: Protocol,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// When bytes last left, for the keep-alive.
    last_tx: Instant,
    /// Client id, to name the client in errors.
    name: String,
}

impl Wire {
    /// Opens a TCP connection and completes CONNECT/CONNACK with a clean
    /// session, anonymously or, given `otp`, with an `LMQ-OTP-1` exchange
    /// (MQTT 5 only) in between. Fails with the broker's reason code if it
    /// refuses.
    pub async fn connect(
        host: &str,
        port: u16,
        client_id: String,
        protocol: Protocol,
        keep_alive: u16,
        otp: Option<OtpLogin<'_>>,
    ) -> Result<(Wire, ConnAck)> {
        let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect((host, port)))
            .await
            .map_err(|_| anyhow!("timed out connecting to {host}:{port}"))?
            .with_context(|| format!("cannot connect to {host}:{port}"))?;
        stream.set_nodelay(true)?;
        let mut wire = Wire {
            stream,
            protocol,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: BytesMut::with_capacity(WRITE_HIGH_WATER * 2),
            last_tx: Instant::now(),
            name: client_id.clone(),
        };
        let mut properties = Properties::default();
        if protocol == Protocol::V5 {
            // Acknowledgements are immediate, so let the broker stream.
            properties.receive_maximum = Some(u16::MAX);
        }
        if let Some(otp) = &otp {
            if protocol != Protocol::V5 {
                bail!("LMQ-OTP-1 needs MQTT 5 (--protocol 5)");
            }
            let data = OtpClient::connect_data(&client_id, otp.packet_number)
                .map_err(|e| anyhow!("{client_id}: {e}"))?;
            properties.authentication_method = Some(AUTH_METHOD.into());
            properties.authentication_data = Some(data.into());
        }
        wire.queue(&Packet::Connect(Connect {
            protocol,
            clean_start: true,
            keep_alive,
            client_id,
            will: None,
            username: None,
            password: None,
            properties,
        }))?;
        let ack = loop {
            let reply = wire
                .handshake_reply("CONNACK", |p| {
                    matches!(p, Packet::ConnAck(_) | Packet::Auth(_))
                })
                .await?;
            match (reply, &otp) {
                (Packet::ConnAck(ack), _) => break ack,
                (Packet::Auth(auth), Some(otp)) => wire.answer_challenge(auth, otp)?,
                (Packet::Auth(_), None) => {
                    bail!("{}: unexpected AUTH from the broker", wire.name)
                }
                _ => unreachable!("filtered above"),
            }
        };
        if ack.reason.is_error() {
            bail!(
                "broker refused the connection of {}: CONNACK reason {} ({})",
                wire.name,
                ack.reason,
                reason_name(ack.reason)
            );
        }
        Ok((wire, ack))
    }

    /// Step 3 of `LMQ-OTP-1`: the proof for the broker's challenge.
    fn answer_challenge(&mut self, auth: Auth, otp: &OtpLogin<'_>) -> Result<()> {
        let p = &auth.properties;
        if auth.reason != ReasonCode::CONTINUE_AUTHENTICATION
            || p.authentication_method.as_deref() != Some(AUTH_METHOD)
        {
            bail!(
                "{}: the broker sent AUTH {} with method {:?}, not an {AUTH_METHOD} challenge",
                self.name,
                auth.reason,
                p.authentication_method
            );
        }
        let challenge = p
            .authentication_data
            .as_deref()
            .and_then(OtpClient::challenge)
            .ok_or_else(|| anyhow!("{}: the {AUTH_METHOD} challenge is not 32 bytes", self.name))?;
        let proof = OtpClient::proof(otp.key, &challenge, &self.name, otp.packet_number);
        self.queue(&Packet::Auth(Auth {
            reason: ReasonCode::CONTINUE_AUTHENTICATION,
            properties: Properties {
                authentication_method: Some(AUTH_METHOD.into()),
                authentication_data: Some(proof.to_vec().into()),
                ..Default::default()
            },
        }))
    }

    /// Subscribes to one filter and waits for a successful SUBACK.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> Result<QoS> {
        self.queue(&Packet::Subscribe(Subscribe {
            packet_id: 1,
            properties: Properties::default(),
            filters: vec![(
                filter.to_owned(),
                SubscriptionOptions {
                    qos,
                    ..Default::default()
                },
            )],
        }))?;
        let reply = self
            .handshake_reply(
                "SUBACK",
                |p| matches!(p, Packet::SubAck(a) if a.packet_id == 1),
            )
            .await?;
        let Packet::SubAck(ack) = reply else {
            unreachable!("filtered above")
        };
        let Some(&granted) = ack.reasons.first() else {
            bail!("SUBACK for {} carries no reason code", self.name);
        };
        if granted.is_error() {
            bail!(
                "broker refused the subscription of {} to {filter}: SUBACK reason {granted} ({})",
                self.name,
                reason_name(granted)
            );
        }
        QoS::from_u8(granted.0).ok_or_else(|| anyhow!("SUBACK grants unknown QoS {granted}"))
    }

    /// The first packet `wanted` accepts (skipping others) within the
    /// handshake timeout.
    pub async fn first(&mut self, what: &str, wanted: impl Fn(&Packet) -> bool) -> Result<Packet> {
        self.handshake_reply(what, wanted).await
    }

    /// Flushes the write buffer and returns the first packet `wanted`
    /// accepts, skipping others, all within the handshake timeout.
    async fn handshake_reply(
        &mut self,
        what: &str,
        wanted: impl Fn(&Packet) -> bool,
    ) -> Result<Packet> {
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        loop {
            while let Some(packet) = self.next_packet()? {
                if wanted(&packet) {
                    return Ok(packet);
                }
                if let Packet::Disconnect(d) = packet {
                    bail!(
                        "broker sent DISCONNECT {} to {} while waiting for {what}",
                        d.reason,
                        self.name
                    );
                }
            }
            if self.pump(Some(deadline)).await? == Io::Timer {
                bail!("{} got no {what} within {HANDSHAKE_TIMEOUT:?}", self.name);
            }
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes waiting to be written.
    pub fn pending(&self) -> usize {
        self.wbuf.len()
    }

    pub fn last_tx(&self) -> Instant {
        self.last_tx
    }

    /// Encodes a packet at the end of the write buffer.
    pub fn queue(&mut self, packet: &Packet) -> Result<()> {
        encode(packet, self.protocol, &mut self.wbuf)
            .map_err(|e| anyhow!("cannot encode {}: {e}", packet.name()))
    }

    /// Encodes a PUBLISH from borrowed parts, without building a packet.
    pub fn queue_publish(&mut self, publish: &OutgoingPublish) -> Result<()> {
        encode_outgoing_publish(publish, self.protocol, &mut self.wbuf)
            .map_err(|e| anyhow!("cannot encode PUBLISH: {e}"))
    }

    /// Decodes the next complete packet already read, if any.
    pub fn next_packet(&mut self) -> Result<Option<Packet>> {
        decode(&mut self.rbuf, Some(self.protocol), MAX_PACKET_SIZE)
            .map_err(|e| anyhow!("{} received a bad packet from the broker: {e}", self.name))
    }

    /// Waits for one I/O event: part of the write buffer written, bytes
    /// read, or `wake_at` reached. A closed connection is an error.
    pub async fn pump(&mut self, wake_at: Option<Instant>) -> Result<Io> {
        if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
            self.rbuf.reserve(READ_CHUNK);
        }
        let (mut rd, mut wr) = self.stream.split();
        let sleep = async {
            match wake_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let wants_write = !self.wbuf.is_empty();
        let event = tokio::select! {
            r = wr.write(&self.wbuf), if wants_write => Event::Wrote(r),
            r = rd.read_buf(&mut self.rbuf) => Event::Read(r),
            () = sleep => Event::Timer,
        };
        match event {
            Event::Wrote(r) => {
                let n = r.with_context(|| format!("{}: write to broker failed", self.name))?;
                if n == 0 {
                    bail!("{}: the broker stopped accepting data", self.name);
                }
                self.wbuf.advance(n);
                self.last_tx = Instant::now();
                Ok(Io::Wrote)
            }
            Event::Read(r) => {
                let n = r.with_context(|| format!("{}: read from broker failed", self.name))?;
                if n == 0 {
                    bail!("{}: the broker closed the connection", self.name);
                }
                Ok(Io::Read)
            }
            Event::Timer => Ok(Io::Timer),
        }
    }

    /// Sends DISCONNECT after what is queued, giving up after `within`.
    /// Errors are ignored: the measurement is already complete.
    pub async fn close(mut self, within: Duration) {
        if self
            .queue(&Packet::Disconnect(Disconnect::default()))
            .is_err()
        {
            return;
        }
        let deadline = Instant::now() + within;
        while !self.wbuf.is_empty() {
            match self.pump(Some(deadline)).await {
                Ok(Io::Timer) | Err(_) => return,
                Ok(_) => self.rbuf.clear(),
            }
        }
        let _ = self.stream.shutdown().await;
    }
}

enum Event {
    Wrote(std::io::Result<usize>),
    Read(std::io::Result<usize>),
    Timer,
}

/// Human name of the reason codes a broker refuses a client with.
pub fn reason_name(code: ReasonCode) -> &'static str {
    match code.0 {
        0x80 => "unspecified error",
        0x81 => "malformed packet",
        0x82 => "protocol error",
        0x83 => "implementation specific error",
        0x84 => "unsupported protocol version",
        0x85 => "client identifier not valid",
        0x86 => "bad user name or password",
        0x87 => "not authorized",
        0x88 => "server unavailable",
        0x89 => "server busy",
        0x8A => "banned",
        0x8C => "bad authentication method",
        0x8F => "topic filter invalid",
        0x97 => "quota exceeded",
        0x9E => "shared subscriptions not supported",
        0x9F => "connection rate exceeded",
        0xA2 => "wildcard subscriptions not supported",
        _ => "see the MQTT 5 reason codes",
    }
}
