//! The client against a real plain broker (`plain_broker`), against a
//! scripted broker that runs the reference `LMQ-OTP-1`/TOTP verifiers of
//! `ledgermq-security` and misbehaves on purpose (`scripted_broker`), and
//! against a scripted SCAC broker built on the reference `scac` state
//! machine (`scac_broker`). End-to-end tests against the ledger-mode
//! broker live with the CLI.

mod peer;
mod plain_broker;
mod scac_broker;
mod scripted_broker;
