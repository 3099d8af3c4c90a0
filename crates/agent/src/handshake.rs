//! From a TCP connection to CONNACK: CONNECT with the device's
//! credentials, and the `LMQ-OTP-1` challenge round if the broker asks for
//! it. Every wait is bounded by the response timeout, so a silent or
//! stalling broker cannot hold a device forever.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ledgermq_proto::{ConnAck, Connect, Packet, Protocol};
use ledgermq_security::{totp, OtpKey, AUTH_METHOD};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::framed::PacketStream;
use crate::otp::OtpSigner;
use crate::{ClientError, ClientOptions};

/// The credentials of one CONNECT.
pub(crate) enum Login<'a> {
    None,
    Otp {
        signer: &'a OtpSigner,
        packet_number: u64,
    },
    Totp {
        key: &'a OtpKey,
        step_secs: u64,
        digits: u32,
    },
}

/// Connects, authenticates and returns the stream once CONNACK accepted.
pub(crate) async fn establish(
    opts: &ClientOptions,
    login: Login<'_>,
) -> Result<(PacketStream, ConnAck), ClientError> {
    let tcp = connect_tcp(&opts.addr, opts.response_timeout).await?;
    let mut stream = PacketStream::new(tcp, opts.protocol, opts.max_packet_size);
    stream
        .write_packet(&Packet::Connect(connect_packet(opts, &login)?))
        .await?;
    let connack = await_connack(&mut stream, &login, opts.response_timeout).await?;
    Ok((stream, connack))
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
    }
    Ok(connect)
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Reads until CONNACK, answering one `LMQ-OTP-1` challenge on the way.
async fn await_connack(
    stream: &mut PacketStream,
    login: &Login<'_>,
    limit: Duration,
) -> Result<ConnAck, ClientError> {
    let mut answered = false;
    loop {
        let awaited = match login {
            Login::Otp { .. } if !answered => "the LMQ-OTP-1 challenge (AUTH) or CONNACK",
            _ => "CONNACK",
        };
        let packet = timeout(limit, stream.read_packet())
            .await
            .map_err(|_| ClientError::Timeout(awaited))??;
        match (packet, login) {
            (Packet::ConnAck(c), _) if c.reason.is_error() => {
                return Err(ClientError::Refused {
                    packet: "CONNACK",
                    reason: c.reason,
                    protocol: stream.protocol(),
                })
            }
            (Packet::ConnAck(c), _) => return Ok(c),
            (
                Packet::Auth(challenge),
                Login::Otp {
                    signer,
                    packet_number,
                },
            ) if !answered => {
                let proof = signer.answer(&challenge, *packet_number)?;
                stream.write_packet(&proof).await?;
                answered = true;
            }
            (Packet::Disconnect(d), _) => {
                return Err(ClientError::Disconnected {
                    reason: d.reason,
                    reason_string: d.properties.reason_string,
                })
            }
            (other, _) => {
                return Err(ClientError::Protocol(format!(
                    "expected {awaited}, got {}",
                    other.name()
                )))
            }
        }
    }
}
