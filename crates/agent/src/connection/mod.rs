//! The connection task: the one owner of the socket after CONNACK.
//!
//! A single task reads packets, runs the application's commands and sends
//! keep-alive pings, so everything that can arrive while a request is in
//! flight (deliveries during a publish, PUBLISHes in the middle of a
//! re-authentication, a DISCONNECT at any time) is handled in one place
//! and in order. The [`crate::Client`] talks to it through a command
//! channel and gets each answer on a oneshot channel. When the connection
//! ends, every waiting caller receives the reason, and it is kept in
//! [`Shared`] for later calls.

mod incoming;
mod outgoing;
mod protection;
mod reauth;

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ledgermq_proto::{
    encoded_len, ConnAck, Disconnect, Packet, Protocol, PubResp, Publish, QoS, ReasonCode,
    Subscribe, SubscriptionOptions,
};
use ledgermq_security::scac::{Channel, CRYPT_ERROR};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, timeout, Instant};

use crate::framed::PacketStream;
use crate::otp::OtpSigner;
use crate::scac::steps;
use crate::{ClientError, Message};
use incoming::Incoming;
pub use incoming::MAX_QUEUED_QOS0;
use outgoing::Outgoing;
use protection::{PayloadProtection, SealError};
use reauth::Reauth;

pub(crate) type Reply<T> = oneshot::Sender<Result<T, ClientError>>;

/// What the application asks of the connection.
pub(crate) enum Command {
    Publish {
        publish: Box<Publish>,
        reply: Reply<ReasonCode>,
    },
    Subscribe {
        filters: Vec<(String, SubscriptionOptions)>,
        reply: Reply<Vec<ReasonCode>>,
    },
    /// The application took a QoS 1/2 message.
    Taken {
        packet_id: u16,
        qos: QoS,
    },
    Reauthenticate {
        packet_number: u64,
        reply: Reply<()>,
    },
    /// PINGREQ, answered at PINGRESP: everything sent before has been
    /// processed by the broker (used to confirm a QoS 0 publish).
    Ping {
        reply: Reply<()>,
    },
    Disconnect {
        reply: Reply<()>,
    },
}

impl Command {
    fn fail(self, err: &ClientError) {
        match self {
            Command::Publish { reply, .. } => drop(reply.send(Err(err.clone()))),
            Command::Subscribe { reply, .. } => drop(reply.send(Err(err.clone()))),
            Command::Reauthenticate { reply, .. }
            | Command::Ping { reply }
            | Command::Disconnect { reply } => drop(reply.send(Err(err.clone()))),
            Command::Taken { .. } => {}
        }
    }
}

/// State the client reads without asking the task.
#[derive(Default)]
pub(crate) struct Shared {
    /// Why the connection ended; `None` while it is up.
    end: Mutex<Option<ClientError>>,
    /// QoS 0 messages queued for the application and not yet taken.
    pub(crate) queued_qos0: AtomicUsize,
}

impl Shared {
    /// Why the connection ended ([`ClientError::Closed`] if it is still
    /// ending).
    pub(crate) fn end(&self) -> ClientError {
        let end = self.end.lock().unwrap_or_else(PoisonError::into_inner);
        end.clone().unwrap_or(ClientError::Closed)
    }
}

/// The client's side of a running connection task.
pub(crate) struct Handle {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) messages: mpsc::UnboundedReceiver<Message>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

pub(crate) struct Connection {
    stream: PacketStream,
    protocol: Protocol,
    commands: mpsc::Receiver<Command>,
    shared: Arc<Shared>,
    outgoing: Outgoing,
    incoming: Incoming,
    /// Effective keep-alive: the broker's Server Keep Alive wins.
    keep_alive: Option<Duration>,
    last_sent: Instant,
    ping_sent: Option<Instant>,
    /// Callers of [`Command::Ping`] waiting for PINGRESP.
    ping_waiters: Vec<Reply<()>>,
    /// The broker's Maximum Packet Size, if it announced one.
    broker_max_packet: Option<usize>,
    response_timeout: Duration,
    signer: Option<OtpSigner>,
    reauth: Option<Reauth>,
    /// SCAC: the keys of QoS 2 payloads and PUBREL key updates.
    protection: Option<PayloadProtection>,
}

impl Connection {
    /// Starts the task for an accepted connection.
    pub(crate) fn spawn(
        stream: PacketStream,
        connack: &ConnAck,
        keep_alive: u16,
        response_timeout: Duration,
        signer: Option<OtpSigner>,
        scac: Option<Channel>,
    ) -> Handle {
        let protocol = stream.protocol();
        let (commands_tx, commands) = mpsc::channel(64);
        let (messages_tx, messages) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::default());
        let props = &connack.properties;
        let keep_alive = props.server_keep_alive.unwrap_or(keep_alive);
        let connection = Connection {
            stream,
            protocol,
            commands,
            shared: shared.clone(),
            outgoing: Outgoing::new(protocol, props.receive_maximum),
            incoming: Incoming::new(protocol, messages_tx, shared.clone()),
            keep_alive: (keep_alive > 0).then(|| Duration::from_secs(keep_alive.into())),
            last_sent: Instant::now(),
            ping_sent: None,
            ping_waiters: Vec::new(),
            broker_max_packet: props.maximum_packet_size.map(|m| m as usize),
            response_timeout,
            signer,
            reauth: None,
            protection: scac.map(PayloadProtection::new),
        };
        Handle {
            commands: commands_tx,
            messages,
            shared,
            task: tokio::spawn(connection.run()),
        }
    }

    async fn run(mut self) {
        let end = self.serve().await;
        self.stop(end).await;
    }

    /// Runs until the connection ends; returns why.
    async fn serve(&mut self) -> ClientError {
        loop {
            let deadline = self.next_deadline();
            let step = tokio::select! {
                packet = self.stream.read_packet() => match packet {
                    Ok(packet) => self.on_packet(packet).await,
                    Err(e) => Err(e),
                },
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command).await,
                    // The Client was dropped without disconnect().
                    None => Err(ClientError::Closed),
                },
                () = sleep_until(deadline) => self.on_deadline().await,
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// Tells the broker about its own protocol violation or a payload or
    /// key update that does not verify, then answers everyone still waiting.
    async fn stop(mut self, end: ClientError) {
        tracing::debug!("connection ended: {end}");
        let disconnect = match &end {
            ClientError::Protocol(_) if self.protocol == Protocol::V5 => {
                let reason = self
                    .stream
                    .decode_failure()
                    .unwrap_or(ReasonCode::PROTOCOL_ERROR);
                Some(Packet::Disconnect(Disconnect {
                    reason,
                    ..Disconnect::default()
                }))
            }
            ClientError::Crypt(_) => Some(steps::refusal(CRYPT_ERROR)),
            _ => None,
        };
        if let Some(disconnect) = disconnect {
            let _ = timeout(
                Duration::from_secs(1),
                self.stream.write_packet(&disconnect),
            )
            .await;
        }
        let _ = timeout(Duration::from_secs(1), self.stream.shutdown()).await;
        *self
            .shared
            .end
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(end.clone());
        self.outgoing.fail_all(&end);
        if let Some(reauth) = self.reauth.take() {
            reauth.fail(&end);
        }
        for waiter in self.ping_waiters.drain(..) {
            let _ = waiter.send(Err(end.clone()));
        }
        self.commands.close();
        while let Ok(command) = self.commands.try_recv() {
            command.fail(&end);
        }
    }

    async fn on_packet(&mut self, packet: Packet) -> Result<(), ClientError> {
        match packet {
            Packet::Publish(publish) => {
                let protection = self.protection.as_mut();
                match self.incoming.on_publish(publish, protection)? {
                    Some(pubrec) => self.send(&pubrec).await,
                    None => Ok(()),
                }
            }
            Packet::PubAck(ack) => {
                self.outgoing.on_puback(ack)?;
                self.send_ready_publishes().await
            }
            Packet::PubRec(rec) => {
                if let Some(pubrel) = self.outgoing.on_pubrec(rec)? {
                    self.send_pubrel(pubrel).await?;
                }
                self.send_ready_publishes().await
            }
            Packet::PubComp(comp) => {
                self.outgoing.on_pubcomp(comp)?;
                self.send_ready_publishes().await
            }
            Packet::PubRel(rel) => {
                let pubcomp = self.incoming.on_pubrel(rel, self.protection.as_mut())?;
                self.send(&pubcomp).await
            }
            Packet::SubAck(ack) => self.outgoing.on_suback(ack),
            Packet::PingResp => {
                self.ping_sent = None;
                for waiter in self.ping_waiters.drain(..) {
                    let _ = waiter.send(Ok(()));
                }
                Ok(())
            }
            Packet::Auth(auth) => self.on_auth(auth).await,
            Packet::Disconnect(d) => Err(ClientError::Disconnected {
                reason: d.reason,
                reason_string: d.properties.reason_string,
            }),
            other => Err(ClientError::Protocol(format!(
                "unexpected {} from the broker",
                other.name()
            ))),
        }
    }

    async fn on_command(&mut self, command: Command) -> Result<(), ClientError> {
        match command {
            Command::Publish { publish, reply } if publish.qos == QoS::AtMostOnce => {
                self.publish_qos0(*publish, reply).await
            }
            Command::Publish { publish, reply } => {
                self.outgoing.enqueue_publish(*publish, reply);
                self.send_ready_publishes().await
            }
            Command::Subscribe { filters, reply } => self.subscribe(filters, reply).await,
            Command::Taken { packet_id, qos } => match self.incoming.on_taken(packet_id, qos) {
                Some(ack) => self.send(&ack).await,
                None => Ok(()),
            },
            Command::Reauthenticate {
                packet_number,
                reply,
            } => self.start_reauth(packet_number, reply).await,
            Command::Ping { reply } => {
                self.ping_waiters.push(reply);
                self.ping().await
            }
            Command::Disconnect { reply } => {
                let sent = self.send(&Packet::Disconnect(Disconnect::default())).await;
                let _ = reply.send(sent.clone());
                sent.and(Err(ClientError::Closed))
            }
        }
    }

    async fn publish_qos0(
        &mut self,
        publish: Publish,
        reply: Reply<ReasonCode>,
    ) -> Result<(), ClientError> {
        if let Err(e) = self.encode_request(&Packet::Publish(publish)) {
            let _ = reply.send(Err(e));
            return Ok(());
        }
        let sent = self.flush().await;
        let _ = reply.send(sent.clone().map(|()| ReasonCode::SUCCESS));
        sent
    }

    /// Sends every queued publish Receive Maximum allows; with SCAC, QoS 2
    /// payloads are sealed now, in the order they go on the wire.
    async fn send_ready_publishes(&mut self) -> Result<(), ClientError> {
        while let Some(mut publish) = self.outgoing.start_ready() {
            let id = publish.packet_id;
            if let Some(protection) = &mut self.protection {
                match protection.seal(&mut publish) {
                    Ok(()) => {}
                    Err(SealError::Request(e)) => {
                        self.outgoing.abandon(id, e);
                        continue;
                    }
                    Err(SealError::Connection(e)) => return Err(e),
                }
            }
            if let Err(e) = self.encode_request(&Packet::Publish(publish)) {
                self.outgoing.abandon(id, e);
            }
        }
        self.flush().await
    }

    /// With SCAC the PUBREL announces the next publisher key, computed
    /// here, as it is written.
    async fn send_pubrel(&mut self, mut pubrel: PubResp) -> Result<(), ClientError> {
        if let Some(protection) = &mut self.protection {
            protection.announce_key_update(&mut pubrel)?;
        }
        self.send(&Packet::PubRel(pubrel)).await
    }

    async fn subscribe(
        &mut self,
        filters: Vec<(String, SubscriptionOptions)>,
        reply: Reply<Vec<ReasonCode>>,
    ) -> Result<(), ClientError> {
        let Some(packet_id) = self.outgoing.start_subscribe(filters.len(), reply) else {
            return Ok(());
        };
        let subscribe = Packet::Subscribe(Subscribe {
            packet_id,
            filters,
            ..Subscribe::default()
        });
        if let Err(e) = self.encode_request(&subscribe) {
            self.outgoing.abandon(packet_id, e);
        }
        self.flush().await
    }

    /// Encodes a packet built from the application's input. A packet the
    /// codec cannot express or the broker would refuse as too large fails
    /// only that request, never the connection.
    fn encode_request(&mut self, packet: &Packet) -> Result<(), ClientError> {
        let size = encoded_len(packet, self.protocol);
        if let Some(max) = self.broker_max_packet.filter(|&max| size > max) {
            return Err(ClientError::Request(format!(
                "{} of {size} bytes exceeds the broker's maximum packet size of {max} bytes",
                packet.name()
            )));
        }
        self.stream
            .encode(packet)
            .map_err(|e| ClientError::Request(format!("cannot encode {}: {e}", packet.name())))
    }

    async fn flush(&mut self) -> Result<(), ClientError> {
        if self.stream.flush().await? {
            self.last_sent = Instant::now();
        }
        Ok(())
    }

    async fn send(&mut self, packet: &Packet) -> Result<(), ClientError> {
        self.stream.write_packet(packet).await?;
        self.last_sent = Instant::now();
        Ok(())
    }

    /// The earliest of: next PINGREQ, PINGRESP overdue, re-auth answer overdue.
    fn next_deadline(&self) -> Instant {
        let ping = self.keep_alive.map(|period| match self.ping_sent {
            Some(sent) => sent + period,
            None => self.last_sent + period,
        });
        let reauth = self.reauth.as_ref().map(Reauth::deadline);
        ping.into_iter()
            .chain(reauth)
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    async fn on_deadline(&mut self) -> Result<(), ClientError> {
        let now = Instant::now();
        if self.reauth.as_ref().is_some_and(|r| now >= r.deadline()) {
            // The exchange's state is unknown; only a new connection is sure.
            return Err(ClientError::Timeout("AUTH during re-authentication"));
        }
        let Some(period) = self.keep_alive else {
            return Ok(());
        };
        match self.ping_sent {
            Some(sent) if now >= sent + period => Err(ClientError::Timeout("PINGRESP")),
            None if now >= self.last_sent + period => self.ping().await,
            _ => Ok(()),
        }
    }

    /// One PINGREQ at a time: its PINGRESP answers every waiter.
    async fn ping(&mut self) -> Result<(), ClientError> {
        if self.ping_sent.is_none() {
            self.send(&Packet::PingReq).await?;
            self.ping_sent = Some(Instant::now());
        }
        Ok(())
    }
}
