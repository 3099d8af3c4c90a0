//! MQTT topic matching for rights held on topic filters.
//!
//! A right on a filter grants publishing to every topic name the filter
//! matches and subscribing to every filter it covers (a filter whose
//! matches are all matched by the right's filter). The rules themselves,
//! including the `$` rule, live in `ledgermq_proto::topic`: the broker's
//! router, its ACL file and the ledger's rights all call the same code.

pub use ledgermq_proto::topic::{covers as filter_covers, is_filter, matches as filter_matches};
