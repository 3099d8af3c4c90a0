//! The application's handle on one authenticated MQTT connection.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use ledgermq_proto::topic::{validate_filter, validate_name, TopicError};
use ledgermq_proto::{Properties, Protocol, Publish, QoS, ReasonCode, SubscriptionOptions};
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

use ledgermq_security::scac::{LocalKey, PeerKey, Suite};

use crate::connection::{Command, Connection, Handle, Reply, Shared};
use crate::handshake::{establish, Established, Login};
use crate::otp::OtpSigner;
use crate::scac::steps;
use crate::{Auth, ClientError, ClientOptions, OtpKey, PacketCounter};

/// What the broker said when it accepted the connection.
#[derive(Debug, Clone)]
pub struct ConnAckInfo {
    pub session_present: bool,
    /// 0x00 (3.1.1: return code 0).
    pub reason: ReasonCode,
    /// MQTT 5 CONNACK properties (Server Keep Alive, Receive Maximum…).
    pub properties: Properties,
}

/// A message delivered by the broker.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// MQTT 5 PUBLISH properties (user properties, content type…).
    pub properties: Properties,
    packet_id: u16,
}

impl Message {
    pub(crate) fn from_publish(p: Publish) -> Self {
        Self {
            topic: p.topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            properties: p.properties,
            packet_id: p.packet_id,
        }
    }
}

/// A connected, authenticated device.
///
/// Requests may be issued concurrently from several tasks (`&self`);
/// messages are read by one owner (`&mut self`). Dropping the client
/// closes the connection without DISCONNECT (so the broker publishes the
/// will, if any); call [`Client::disconnect`] to end it cleanly.
pub struct Client {
    commands: mpsc::Sender<Command>,
    messages: mpsc::UnboundedReceiver<Message>,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    device_id: String,
    protocol: Protocol,
    response_timeout: Duration,
    /// Present with `LMQ-OTP-1`: every re-authentication takes a number.
    counter: Option<Arc<Mutex<PacketCounter>>>,
    /// The SCAC method, if the connection was authenticated with it.
    scac: Option<Suite>,
}

impl Client {
    /// Connects and authenticates as `opts` says. A broker's refusal is
    /// [`ClientError::Refused`] with the CONNACK reason code; with SCAC, a
    /// broker whose step 2 does not verify is [`ClientError::Scac`].
    pub async fn connect(mut opts: ClientOptions) -> Result<(Client, ConnAckInfo), ClientError> {
        opts.validate()?;
        let auth = std::mem::replace(&mut opts.auth, Auth::None);
        let credential = Credential::new(auth, &opts.device_id);
        let login = credential.login(&opts.device_id).await?;
        let Established {
            stream,
            connack,
            channel,
        } = establish(&opts, login).await?;
        let scac = match &credential {
            Credential::Scac { suite, .. } => Some(*suite),
            _ => None,
        };
        let (signer, counter) = match credential {
            Credential::Otp { signer, counter } => (Some(signer), Some(counter)),
            _ => (None, None),
        };
        let Handle {
            commands,
            messages,
            shared,
            task,
        } = Connection::spawn(
            stream,
            &connack,
            opts.keep_alive,
            opts.response_timeout,
            signer,
            channel,
        );
        let info = ConnAckInfo {
            session_present: connack.session_present,
            reason: connack.reason,
            properties: connack.properties,
        };
        let client = Client {
            commands,
            messages,
            shared,
            task,
            device_id: opts.device_id,
            protocol: opts.protocol,
            response_timeout: opts.response_timeout,
            counter,
            scac,
        };
        Ok((client, info))
    }

    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Publishes and waits for the acknowledgement: PUBACK for QoS 1,
    /// PUBREC then PUBCOMP for QoS 2; QoS 0 returns once written. Returns
    /// the broker's code (0x00, or 0x10 No matching subscribers); a failure
    /// code is [`ClientError::Refused`]. With SCAC a QoS 2 payload is
    /// encrypted under the current publisher key and its PUBREL announces
    /// the next one; QoS 0/1 payloads travel as given.
    pub async fn publish(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
    ) -> Result<ReasonCode, ClientError> {
        validate_name(topic).map_err(|e| topic_error("topic name", topic, e))?;
        let publish = Box::new(Publish {
            qos,
            retain,
            topic: topic.to_owned(),
            payload: payload.into(),
            ..Publish::default()
        });
        let awaited = match qos {
            QoS::AtMostOnce => "the PUBLISH to be written",
            QoS::AtLeastOnce => "PUBACK",
            QoS::ExactlyOnce => "PUBREC and PUBCOMP",
        };
        self.request(awaited, self.response_timeout, |reply| Command::Publish {
            publish,
            reply,
        })
        .await
    }

    /// Subscribes to each `(filter, maximum QoS)` and returns the SUBACK
    /// codes in the same order: the granted QoS, or a failure code (≥ 0x80)
    /// for a filter the broker refused.
    pub async fn subscribe(&self, filters: &[(&str, QoS)]) -> Result<Vec<ReasonCode>, ClientError> {
        if filters.is_empty() {
            return Err(ClientError::Request(
                "SUBSCRIBE needs a topic filter".into(),
            ));
        }
        let mut list = Vec::with_capacity(filters.len());
        for &(filter, qos) in filters {
            validate_filter(filter).map_err(|e| topic_error("topic filter", filter, e))?;
            let options = SubscriptionOptions {
                qos,
                ..SubscriptionOptions::default()
            };
            list.push((filter.to_owned(), options));
        }
        self.request("SUBACK", self.response_timeout, |reply| {
            Command::Subscribe {
                filters: list,
                reply,
            }
        })
        .await
    }

    /// The next message, or `None` if none arrives within `wait`. Taking a
    /// QoS 1/2 message acknowledges it to the broker. With SCAC, QoS 2
    /// payloads arrive already decrypted and checked. Once the connection
    /// has ended and every message received before is taken, returns why
    /// it ended. Safe to cancel while waiting (e.g. in `select!`); a
    /// message is only lost if cancelled in the instant after it was taken,
    /// and then it is not acknowledged either.
    pub async fn next_message(&mut self, wait: Duration) -> Result<Option<Message>, ClientError> {
        let message = match timeout(wait, self.messages.recv()).await {
            Err(_) => return Ok(None),
            Ok(None) => return Err(self.shared.end()),
            Ok(Some(message)) => message,
        };
        if message.qos == QoS::AtMostOnce {
            let queued = &self.shared.queued_qos0;
            queued.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        } else {
            let taken = Command::Taken {
                packet_id: message.packet_id,
                qos: message.qos,
            };
            // If the connection is gone the broker will redeliver; the
            // message itself is still good.
            let _ = self.commands.send(taken).await;
        }
        Ok(Some(message))
    }

    /// `LMQ-OTP-1` re-authentication with a new packet number, while the
    /// connection stays in use. A refusal arrives as a DISCONNECT, so it
    /// is [`ClientError::Disconnected`] and the connection is over. SCAC
    /// has none (a [`ClientError::Request`]): reconnect for a new
    /// handshake and fresh keys.
    pub async fn reauthenticate(&self) -> Result<(), ClientError> {
        if let Some(suite) = self.scac {
            return Err(ClientError::Request(format!(
                "{suite} has no re-authentication: reconnect for a new handshake"
            )));
        }
        let Some(counter) = &self.counter else {
            return Err(ClientError::Request(
                "re-authentication needs LMQ-OTP-1 authentication".into(),
            ));
        };
        let packet_number = next_packet_number(counter).await?;
        // The task times out each of the two broker answers itself.
        let limit = self.response_timeout.saturating_mul(2) + Duration::from_secs(1);
        self.request("AUTH during re-authentication", limit, |reply| {
            Command::Reauthenticate {
                packet_number,
                reply,
            }
        })
        .await
    }

    /// PINGREQ → PINGRESP. The broker handles packets in order, so a
    /// successful ping means it has processed everything sent before: a
    /// QoS 0 publish it refused shows up here as the DISCONNECT it sent.
    pub async fn ping(&self) -> Result<(), ClientError> {
        self.request("PINGRESP", self.response_timeout, |reply| Command::Ping {
            reply,
        })
        .await
    }

    /// Sends DISCONNECT (normal disconnection) and closes the connection.
    pub async fn disconnect(self) -> Result<(), ClientError> {
        let result = self
            .request("DISCONNECT", self.response_timeout, |reply| {
                Command::Disconnect { reply }
            })
            .await;
        let _ = timeout(self.response_timeout, self.task).await;
        result
    }

    async fn request<T>(
        &self,
        awaited: &'static str,
        limit: Duration,
        command: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, ClientError> {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(command(reply)).await.is_err() {
            return Err(self.shared.end());
        }
        match timeout(limit, answer).await {
            Err(_) => Err(ClientError::Timeout(awaited)),
            Ok(Err(_)) => Err(self.shared.end()),
            Ok(Ok(result)) => result,
        }
    }
}

/// The credentials a client holds; the OTP ones stay for re-authentication.
enum Credential {
    Scac {
        suite: Suite,
        device_key: LocalKey,
        broker_key: PeerKey,
    },
    None,
    Otp {
        signer: OtpSigner,
        counter: Arc<Mutex<PacketCounter>>,
    },
    Totp {
        /// The audience key for the broker node (computed once).
        key: OtpKey,
        step_secs: u64,
        digits: u32,
    },
}

impl Credential {
    fn new(auth: Auth, device_id: &str) -> Self {
        match auth {
            Auth::None => Credential::None,
            Auth::Otp { key, counter } => Credential::Otp {
                signer: OtpSigner::new(device_id.to_owned(), key),
                counter: Arc::new(Mutex::new(counter)),
            },
            Auth::Totp {
                key,
                audience,
                step_secs,
                digits,
            } => Credential::Totp {
                key: ledgermq_security::audience_key(&key, &audience),
                step_secs,
                digits,
            },
            Auth::Scac {
                suite,
                device_key,
                broker_key,
            } => Credential::Scac {
                suite,
                device_key,
                broker_key,
            },
        }
    }

    /// What one CONNECT carries; OTP takes a fresh packet number, SCAC
    /// starts a handshake with fresh nonces and ephemeral keys.
    async fn login(&self, device_id: &str) -> Result<Login<'_>, ClientError> {
        Ok(match self {
            Credential::Scac {
                suite,
                device_key,
                broker_key,
            } => Login::Scac(Box::new(
                steps::start(*suite, device_id, device_key, broker_key).await?,
            )),
            Credential::None => Login::None,
            Credential::Otp { signer, counter } => Login::Otp {
                signer,
                packet_number: next_packet_number(counter).await?,
            },
            Credential::Totp {
                key,
                step_secs,
                digits,
            } => Login::Totp {
                key,
                step_secs: *step_secs,
                digits: *digits,
            },
        })
    }
}

fn topic_error(what: &str, topic: &str, e: TopicError) -> ClientError {
    let why = match e {
        TopicError::Empty => "is empty",
        TopicError::WildcardInName => "contains a wildcard (+ or #)",
        TopicError::MisplacedWildcard => "has a misplaced wildcard",
        TopicError::Nul => "contains a NUL character",
        TopicError::BadShare => "is not a valid shared subscription",
        TopicError::TooManyLevels => "has too many levels",
        TopicError::TooLong => "is too long",
    };
    ClientError::Request(format!("{what} {topic:?} {why}"))
}

/// The packet counter writes and fsyncs its state file: off the runtime.
async fn next_packet_number(counter: &Arc<Mutex<PacketCounter>>) -> Result<u64, ClientError> {
    let counter = counter.clone();
    tokio::task::spawn_blocking(move || {
        counter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_number()
    })
    .await
    .map_err(|e| ClientError::io(std::io::Error::other(e)))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_can_be_shared_between_tasks() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Client>();
        shareable::<ClientError>();
    }
}
