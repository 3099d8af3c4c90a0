//! Retained key topics: the key service of a group's organisation
//! publishes each member's signed key bundle (docs/e2e-format.md "Key
//! bundle") as a retained message on `$lmq/keys/<group>/<member>`, so no
//! key holder has to stay online for a member to get its key.
//!
//! The whole `$lmq/` namespace is reserved in the ledger security mode:
//! - publish to `$lmq/keys/<group>/<member>` only as the key service of
//!   the group's organisation — an active device of that organisation
//!   whose registered Ed25519 key is the one `Groups.setKeyService`
//!   registered for it (the key its bundles are signed with), so nobody
//!   else can overwrite a member's bundle;
//! - subscribe only to one's own key topics, `$lmq/keys/<group>/<self>` or
//!   `$lmq/keys/+/<self>`.
//!
//! A bundle is HPKE-wrapped to the member and signed, so neither the
//! broker nor its retained store can read or forge a key; these rules
//! keep others from replacing or collecting bundles.

use ledgermq_ledger::contracts::DeviceStatus;
use ledgermq_ledger::view::Snapshot;

use crate::status::usable_id;

/// The reserved namespace.
pub const RESERVED: &str = "$lmq";
/// Prefix of the key topics.
pub const PREFIX: &str = "$lmq/keys/";

/// Whether a topic name or filter is in the reserved `$lmq/` namespace.
pub fn is_reserved(topic: &str) -> bool {
    topic
        .strip_prefix(RESERVED)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The key topic of `member` in `group`, if the member id can be a topic
/// level (no `/`, `+`, `#`).
pub fn key_topic(group: &str, member: &str) -> Option<String> {
    (usable_id(group) && usable_id(member)).then(|| format!("{PREFIX}{group}/{member}"))
}

/// `(group, member)` of a key topic name.
pub fn parse_key_topic(topic: &str) -> Option<(&str, &str)> {
    let (group, member) = topic.strip_prefix(PREFIX)?.split_once('/')?;
    (usable_id(group) && usable_id(member)).then_some((group, member))
}

/// Whether `device` may publish to reserved topic `topic`: only a key
/// topic of an existing group, only as that group's organisation's
/// registered key service.
pub fn may_publish(s: &Snapshot, device: &str, topic: &str) -> bool {
    let Some((group, _member)) = parse_key_topic(topic) else {
        return false;
    };
    let (Some(g), Some(d)) = (s.groups.get(group), s.devices.get(device)) else {
        return false;
    };
    let Some(ks) = s.key_services.get(&g.org) else {
        return false;
    };
    d.status == DeviceStatus::Active
        && d.org == g.org
        && !ks.signing_key.is_zero()
        && d.signing_key == ks.signing_key
}

/// Whether every topic `filter` matches is one of `device`'s own key
/// topics: `$lmq/keys/<group>/<device>` or `$lmq/keys/+/<device>`.
pub fn is_own_key_filter(device: &str, filter: &str) -> bool {
    let Some((group, member)) = filter
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once('/'))
    else {
        return false;
    };
    usable_id(device) && member == device && (group == "+" || usable_id(group))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserved_namespace_is_exactly_dollar_lmq() {
        assert!(is_reserved("$lmq"));
        assert!(is_reserved("$lmq/keys/g/m"));
        assert!(is_reserved("$lmq/#"));
        assert!(!is_reserved("$lmqx/keys"));
        assert!(!is_reserved("lmq/keys/g/m"));
        assert!(!is_reserved("#"));
    }

    #[test]
    fn key_topics_name_one_group_and_one_member() {
        assert_eq!(
            key_topic("hsu0001", "1112").unwrap(),
            "$lmq/keys/hsu0001/1112"
        );
        assert_eq!(
            parse_key_topic("$lmq/keys/hsu0001/1112"),
            Some(("hsu0001", "1112"))
        );
        assert_eq!(key_topic("g", "a/b"), None, "an id that is not one level");
        assert_eq!(parse_key_topic("$lmq/keys/g/a/b"), None);
        assert_eq!(parse_key_topic("$lmq/keys/g"), None);
        assert_eq!(
            parse_key_topic("$lmq/keys/+/m"),
            None,
            "a filter is no topic"
        );
    }

    #[test]
    fn a_device_subscribes_to_its_own_key_topics_only() {
        assert!(is_own_key_filter("1112", "$lmq/keys/hsu0001/1112"));
        assert!(is_own_key_filter("1112", "$lmq/keys/+/1112"));
        assert!(!is_own_key_filter("1112", "$lmq/keys/+/1113"));
        assert!(!is_own_key_filter("1112", "$lmq/keys/#"));
        assert!(!is_own_key_filter("1112", "$lmq/keys/+/+"));
        assert!(!is_own_key_filter("1112", "$lmq/keys/hsu0001/#"));
        assert!(!is_own_key_filter("1112", "$lmq/keys/hsu0001/1112/#"));
        assert!(!is_own_key_filter("a/b", "$lmq/keys/+/a/b"));
        assert!(!is_own_key_filter("+", "$lmq/keys/g/+"));
    }
}
