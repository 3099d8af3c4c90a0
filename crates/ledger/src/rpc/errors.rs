//! Mapping of JSON-RPC and transport failures to [`LedgerError`].
//!
//! Nodes report reverts differently: anvil answers `eth_estimateGas` /
//! `eth_call` with `{code: 3, message: "execution reverted: <reason>", data:
//! "0x08c379a0…"}`, geth-style nodes put the ABI-encoded reason in `data`
//! (sometimes nested) and the text in `message`, Besu uses code -32000 with
//! the reason in `data`. We decode the data when there is some, and fall back
//! to the message text.

use alloy_json_rpc::RpcError;
use alloy_transport::TransportErrorKind;

use crate::contracts::decode_revert;
use crate::LedgerError;

/// What went wrong with a request, in ledger terms.
pub(crate) fn map_rpc_error(url: &str, err: RpcError<TransportErrorKind>) -> LedgerError {
    match err {
        RpcError::ErrorResp(payload) => {
            if let Some(data) = payload.as_revert_data() {
                if let Some(reason) = decode_revert(&data) {
                    return LedgerError::Reverted(reason);
                }
            }
            let message = payload.message.to_string();
            if let Some(reason) = revert_text(&message) {
                return LedgerError::Reverted(reason);
            }
            LedgerError::Rejected(format!("{message} (JSON-RPC error {})", payload.code))
        }
        RpcError::Transport(kind) => LedgerError::Unreachable {
            url: url.to_string(),
            message: transport_message(&kind),
        },
        RpcError::DeserError { err, .. } => LedgerError::Other(format!(
            "the endpoint at {url} did not answer like an Ethereum JSON-RPC node: {err}"
        )),
        RpcError::NullResp => LedgerError::Other(format!("the node at {url} returned null")),
        other => LedgerError::Other(other.to_string()),
    }
}

/// The reason in a message such as `execution reverted: unknown device d1`.
fn revert_text(message: &str) -> Option<String> {
    let lower = message.to_ascii_lowercase();
    let at = lower.find("execution reverted")?;
    let rest = message[at + "execution reverted".len()..].trim_start_matches([':', ' ']);
    if rest.is_empty() {
        Some("execution reverted without a reason".to_string())
    } else {
        // Some nodes append the raw data after the reason.
        Some(rest.split(", data: ").next().unwrap_or(rest).to_string())
    }
}

fn transport_message(kind: &TransportErrorKind) -> String {
    use std::error::Error as _;
    let mut text = kind.to_string();
    let mut source = kind.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
        source = cause.source();
    }
    if text.contains("Connection refused") || text.contains("connection refused") {
        "connection refused (is the node running and listening there?)".to_string()
    } else {
        text
    }
}

/// Whether a rejected submission is about the nonce, so that resynchronising
/// it from the node and retrying can help.
pub(crate) fn is_nonce_error(err: &LedgerError) -> bool {
    match err {
        LedgerError::Rejected(m) => {
            let m = m.to_ascii_lowercase();
            m.contains("nonce too low")
                || m.contains("nonce too high")
                || m.contains("already known")
                || m.contains("replacement transaction underpriced")
                || m.contains("invalid nonce")
                || m.contains("nonce")
        }
        _ => false,
    }
}

/// Whether the node does not implement a method.
pub(crate) fn is_method_missing(err: &LedgerError) -> bool {
    matches!(err, LedgerError::Rejected(m) if m.contains("-32601") || m.to_ascii_lowercase().contains("method not found"))
}

#[cfg(test)]
mod tests {
    use super::revert_text;

    #[test]
    fn revert_reason_is_taken_from_geth_style_messages() {
        assert_eq!(
            revert_text("execution reverted: unknown device d1").as_deref(),
            Some("unknown device d1")
        );
        assert_eq!(
            revert_text("execution reverted").as_deref(),
            Some("execution reverted without a reason")
        );
        assert_eq!(revert_text("insufficient funds"), None);
    }
}
