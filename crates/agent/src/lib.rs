//! ledgermq-agent: the device side of ledgermq.
//!
//! An async (tokio) MQTT 3.1.1 / 5.0 client over TCP that authenticates a
//! provisioned device the two ways a ledgermq broker accepts:
//!
//! * `LMQ-OTP-1` MQTT 5 enhanced authentication, including
//!   re-authentication on a live connection ([`Auth::Otp`]); packet
//!   numbers come from a [`PacketCounter`] that never repeats one, across
//!   restarts too;
//! * TOTP passwords for MQTT 3.1.1 ([`Auth::Totp`]), each code made for
//!   the one broker node it logs in to;
//! * `SCACAuth-*` mutual authentication over MQTT 5 ([`Auth::Scac`],
//!   docs/scac.md): the broker proves its identity too, and every QoS 2
//!   payload is then encrypted under per-direction keys that change with
//!   each message (the next key is announced in the PUBREL). Keys come
//!   from a file, a PKCS#11 token or the provisioning bundle ([`scac`]).
//!   QoS 0/1 payloads are not protected; there is no re-authentication.
//!
//! The protocol logic (byte layouts, HMAC, TOTP, SCAC) is `ledgermq-security`'s
//! and the wire format `ledgermq-proto`'s; this crate is the I/O around
//! them: one task per connection owns the socket (see `connection/`), and
//! [`Client`] sends it requests. It knows nothing of broker internals.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ledgermq_agent::ClientError> {
//! use std::path::Path;
//! use std::time::Duration;
//! use ledgermq_agent::{Auth, Client, ClientOptions, DeviceCredentials, PacketCounter, QoS};
//!
//! let bundle = Path::new("sensor-42.json");
//! let creds = DeviceCredentials::from_bundle(bundle)?;
//! let counter = PacketCounter::open(PacketCounter::default_path(bundle))?;
//! let mut opts = ClientOptions::new("broker.example:1883", creds.device_id.clone());
//! opts.auth = Auth::otp(&creds, counter);
//! let (mut client, _connack) = Client::connect(opts).await?;
//! client.subscribe(&[("plant/cmd/#", QoS::AtLeastOnce)]).await?;
//! client.publish("plant/temp", "21.5", QoS::AtLeastOnce, false).await?;
//! if let Some(msg) = client.next_message(Duration::from_secs(5)).await? {
//!     println!("{}: {}", msg.topic, String::from_utf8_lossy(&msg.payload));
//! }
//! client.reauthenticate().await?;
//! client.disconnect().await
//! # }
//! ```
#![forbid(unsafe_code)]

mod client;
mod connection;
mod counter;
mod credentials;
pub mod e2e;
mod error;
mod framed;
mod handshake;
mod options;
mod otp;
mod reason;
pub mod scac;

pub use client::{Client, ConnAckInfo, Message};
pub use connection::MAX_QUEUED_QOS0;
pub use counter::PacketCounter;
pub use credentials::DeviceCredentials;
pub use error::ClientError;
pub use options::{Auth, ClientOptions};
pub use reason::{describe_reason, reason_name, v311_connack_name};

pub use ledgermq_proto::{Properties, Protocol, QoS, ReasonCode};
pub use ledgermq_security::OtpKey;
