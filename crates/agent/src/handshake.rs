//! From a TCP connection to CONNACK: CONNECT with the device's
//! credentials, and the `LMQ-OTP-1` challenge round or the SCAC step 2 /
//! step 3 exchange on the way. Every wait is bounded by the response
//! timeout, so a silent or stalling broker cannot hold a device forever.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ledgermq_proto::{Auth as AuthPacket, ConnAck, Connect, Packet, Protocol};
use ledgermq_security::scac::{Channel, AUTH_ERROR};
use ledgermq_security::{totp, OtpKey, AUTH_METHOD};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::framed::PacketStream;
use crate::otp::OtpSigner;
use crate::scac::steps::{self, ScacStart};
use crate::{ClientError, ClientOptions};

/// The credentials of one CONNECT.
pub(crate) enum Login<'a> {
    None,
    Otp {
        signer: &'a OtpSigner,
        packet_number: u64,
    },
    Totp {
        /// The audience key for the broker node.
        key: &'a OtpKey,
        step_secs: u64,
        digits: u32,
    },
    /// Boxed: the handshake state holds the ephemeral keys and transcript.
    Scac(Box<ScacStart>),
}

/// An accepted connection: the stream, the CONNACK, and with SCAC the
/// payload channel the handshake produced.
pub(crate) struct Established {
    pub(crate) stream: PacketStream,
    pub(crate) connack: ConnAck,
    pub(crate) channel: Option<Channel>,
}

/// Connects, authenticates and returns the stream once CONNACK accepted.
pub(crate) async fn establish(
    opts: &ClientOptions,
    login: Login<'_>,
) -> Result<Established, ClientError> {
    let tcp = connect_tcp(&opts.addr, opts.response_timeout).await?;
    let mut stream = PacketStream::new(tcp, opts.protocol, opts.max_packet_size);
    stream
        .write_packet(&Packet::Connect(connect_packet(opts, &login)?))
        .await?;
    let limit = opts.response_timeout;
    let (connack, channel) = match login {
        Login::Otp {
            signer,
            packet_number,
        } => (
            otp_exchange(&mut stream, signer, packet_number, limit).await?,
            None,
        ),
        Login::Scac(start) => {
            let (connack, channel) = scac_exchange(&mut stream, *start, limit).await?;
            (connack, Some(channel))
        }
        Login::None | Login::Totp { .. } => (expect_connack(&mut stream, limit).await?, None),
    };
    Ok(Established {
        stream,
        connack,
        channel,
    })
}

async fn connect_tcp(addr: &str, limit: Duration) -> Result<TcpStream, ClientError> {
    let failed = |source: std::io::Error| ClientError::Connect {
        addr: addr.to_owned(),
        source: Arc::new(source),
    };
    let tcp = timeout(limit, TcpStream::connect(addr))
        .await
        .map_err(|_| {
            failed(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s", limit.as_secs_f32()),
            ))
        })?
        .map_err(failed)?;
    // Small control packets (AUTH, PUBACK) must not wait for Nagle.
    tcp.set_nodelay(true).map_err(failed)?;
    Ok(tcp)
}

fn connect_packet(opts: &ClientOptions, login: &Login<'_>) -> Result<Connect, ClientError> {
    let mut connect = Connect {
        protocol: opts.protocol,
        clean_start: opts.clean_start,
        keep_alive: opts.keep_alive,
        client_id: opts.device_id.clone(),
        ..Connect::default()
    };
    if opts.protocol == Protocol::V5 {
        connect.properties.session_expiry_interval = opts.session_expiry;
        connect.properties.maximum_packet_size = Some(opts.max_packet_size);
    }
    match login {
        Login::None => {}
        Login::Otp {
            signer,
            packet_number,
        } => {
            connect.properties.authentication_method = Some(AUTH_METHOD.into());
            connect.properties.authentication_data = Some(signer.step1(*packet_number)?);
        }
        Login::Totp {
            key,
            step_secs,
            digits,
        } => {
            connect.username = Some(opts.device_id.clone());
            let code = totp(key, unix_secs(), *step_secs, *digits);
            connect.password = Some(Bytes::from(code));
        }
        Login::Scac(start) => {
            let method = start.handshake.suite().method();
            connect.properties.authentication_method = Some(method.into());
            connect.properties.authentication_data = Some(start.step1.clone());
        }
    }
    Ok(connect)
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What the broker may answer a CONNECT with, short of a refusal.
enum Answer {
    Auth(AuthPacket),
    ConnAck(ConnAck),
}

/// The broker's next packet during the handshake: a CONNACK failure code
/// is [`ClientError::Refused`], a DISCONNECT [`ClientError::Disconnected`].
async fn next_answer(
    stream: &mut PacketStream,
    limit: Duration,
    awaited: &'static str,
) -> Result<Answer, ClientError> {
    let packet = timeout(limit, stream.read_packet())
        .await
        .map_err(|_| ClientError::Timeout(awaited))??;
    match packet {
        Packet::ConnAck(c) if c.reason.is_error() => Err(ClientError::Refused {
            packet: "CONNACK",
            reason: c.reason,
            protocol: stream.protocol(),
        }),
        Packet::ConnAck(c) => Ok(Answer::ConnAck(c)),
        Packet::Auth(a) => Ok(Answer::Auth(a)),
        Packet::Disconnect(d) => Err(ClientError::Disconnected {
            reason: d.reason,
            reason_string: d.properties.reason_string,
        }),
        other => Err(unexpected(awaited, other.name())),
    }
}

fn unexpected(awaited: &str, got: &str) -> ClientError {
    ClientError::Protocol(format!("expected {awaited}, got {got}"))
}

async fn expect_connack(
    stream: &mut PacketStream,
    limit: Duration,
) -> Result<ConnAck, ClientError> {
    match next_answer(stream, limit, "CONNACK").await? {
        Answer::ConnAck(c) => Ok(c),
        Answer::Auth(_) => Err(unexpected("CONNACK", "AUTH")),
    }
}

/// Answers one `LMQ-OTP-1` challenge, if the broker sends one, then CONNACK.
async fn otp_exchange(
    stream: &mut PacketStream,
    signer: &OtpSigner,
    packet_number: u64,
    limit: Duration,
) -> Result<ConnAck, ClientError> {
    let awaited = "the LMQ-OTP-1 challenge (AUTH) or CONNACK";
    let challenge = match next_answer(stream, limit, awaited).await? {
        Answer::ConnAck(c) => return Ok(c),
        Answer::Auth(challenge) => challenge,
    };
    let proof = signer.answer(&challenge, packet_number)?;
    stream.write_packet(&proof).await?;
    expect_connack(stream, limit).await
}

/// SCAC: step 2 must come before CONNACK 0x00 — the broker proves who it
/// is before the device trusts the connection. A step 2 that does not
/// verify (or is skipped) gets DISCONNECT 0x80 "Auth Error".
async fn scac_exchange(
    stream: &mut PacketStream,
    start: ScacStart,
    limit: Duration,
) -> Result<(ConnAck, Channel), ClientError> {
    let step2 = match next_answer(stream, limit, "SCAC step 2 (AUTH)").await? {
        Answer::Auth(step2) => step2,
        Answer::ConnAck(_) => return Err(refuse_broker(stream, steps::skipped_step2()).await),
    };
    let (step3, channel) = match steps::answer_step2(start.handshake, &step2).await {
        Ok(answer) => answer,
        Err(e @ ClientError::Scac(_)) => return Err(refuse_broker(stream, e).await),
        Err(e) => return Err(e),
    };
    stream.write_packet(&step3).await?;
    Ok((expect_connack(stream, limit).await?, channel))
}

/// Best effort: the connection is over whether or not the broker hears it.
async fn refuse_broker(stream: &mut PacketStream, err: ClientError) -> ClientError {
    let refusal = steps::refusal(AUTH_ERROR);
    let _ = timeout(Duration::from_secs(1), stream.write_packet(&refusal)).await;
    let _ = timeout(Duration::from_secs(1), stream.shutdown()).await;
    err
}
