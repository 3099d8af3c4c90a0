//! ledgermq-proto: the MQTT 3.1.1 and 5.0 wire format.
//!
//! We own the codec because a security product must decode the MQTT 5 AUTH
//! packet and reject every malformed byte sequence precisely; no maintained
//! crate does both. This crate is sans-IO: bytes in, packets out, and the
//! reverse. It knows nothing of sockets, sessions or the ledger.
//!
//! Every decoding failure maps to the MQTT 5 reason code the receiver must
//! use when it closes the connection ([`DecodeError::reason_code`]), and no
//! byte sequence makes the decoder panic (see `fuzz/`).

mod decode;
mod encode;
mod packet;
mod properties;
mod reason;
pub mod topic;

pub use decode::{decode, DecodeError};
pub use encode::{
    encode, encode_outgoing_publish, encode_within, encoded_len, outgoing_publish_len, EncodeError,
    OutgoingPublish,
};
pub use packet::*;
pub use properties::Properties;
pub use reason::ReasonCode;

/// The largest packet MQTT can express: remaining length 268,435,455 plus
/// a 5-byte fixed header.
pub const MAX_PACKET_SIZE: usize = 268_435_455 + 5;
