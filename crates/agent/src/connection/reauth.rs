//! `LMQ-OTP-1` re-authentication on a live connection (MQTT 5 §4.12.1):
//! AUTH 0x19 with a fresh step 1 → the broker's AUTH 0x18 challenge →
//! our AUTH 0x18 proof → AUTH 0x00, or a DISCONNECT that ends the
//! connection. The exchange runs inside the connection task, so
//! deliveries and acknowledgements arriving in between are handled as
//! usual.

use ledgermq_proto::{Auth as AuthPacket, ReasonCode};
use tokio::time::Instant;

use super::{Connection, Reply};
use crate::ClientError;

/// A re-authentication in progress.
pub(super) struct Reauth {
    packet_number: u64,
    /// Step 3 sent; only AUTH 0x00 (or DISCONNECT) may follow.
    answered: bool,
    deadline: Instant,
    reply: Reply<()>,
}

impl Reauth {
    pub(super) fn deadline(&self) -> Instant {
        self.deadline
    }

    pub(super) fn fail(self, err: &ClientError) {
        let _ = self.reply.send(Err(err.clone()));
    }
}

impl Connection {
    pub(super) async fn start_reauth(
        &mut self,
        packet_number: u64,
        reply: Reply<()>,
    ) -> Result<(), ClientError> {
        if self.reauth.is_some() {
            let _ = reply.send(Err(ClientError::Request(
                "a re-authentication is already in progress".into(),
            )));
            return Ok(());
        }
        let start = match &self.signer {
            Some(signer) => signer.reauth_start(packet_number),
            None => Err(ClientError::Request(
                "re-authentication needs LMQ-OTP-1 authentication".into(),
            )),
        };
        let start = match start {
            Ok(packet) => packet,
            Err(e) => {
                let _ = reply.send(Err(e));
                return Ok(());
            }
        };
        self.reauth = Some(Reauth {
            packet_number,
            answered: false,
            deadline: Instant::now() + self.response_timeout,
            reply,
        });
        self.send(&start).await
    }

    /// AUTH from the broker: only valid inside a re-authentication.
    pub(super) async fn on_auth(&mut self, auth: AuthPacket) -> Result<(), ClientError> {
        let (Some(reauth), Some(signer)) = (self.reauth.as_mut(), self.signer.as_ref()) else {
            return Err(ClientError::Protocol(
                "AUTH without a re-authentication in progress".into(),
            ));
        };
        if !reauth.answered {
            let proof = signer.answer(&auth, reauth.packet_number)?;
            reauth.answered = true;
            reauth.deadline = Instant::now() + self.response_timeout;
            return self.send(&proof).await;
        }
        if auth.reason != ReasonCode::SUCCESS {
            return Err(ClientError::Protocol(format!(
                "expected AUTH 0x00 after the proof, got AUTH 0x{:02x}",
                auth.reason.0
            )));
        }
        if let Some(done) = self.reauth.take() {
            let _ = done.reply.send(Ok(()));
        }
        Ok(())
    }
}
