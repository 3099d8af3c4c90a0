// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IConsortium} from "./IConsortium.sol";
import {IRegistry} from "./IRegistry.sol";
import {TopicFilter} from "./TopicFilter.sol";

/// @title ledgermq Groups
/// @notice End-to-end encryption groups: which topic filters a group protects,
///         how (policy), who its members are, each organisation's key service,
///         and every key epoch with a commitment to its wraps and a
///         key-exchange event per member.
/// @dev Access: a group belongs to the organisation that created it; only
///      its admins change it. Members may be devices of any organisation
///      (reading another organisation's data is the point of a group); a
///      member must be an active device of the Registry. Key epochs are
///      committed by the owning organisation's key service account or an
///      admin, never by a broker. A key exchange may be recorded only for a
///      current, active member, so the ledger shows that a removed member got
///      no wrap of a later epoch. Reverts carry plain `Error(string)` reasons.
contract Groups {
    // ------------------------------------------------------------------ types

    struct Group {
        string name;
        string org;
        string[] filters;
        uint8 protection;
        uint8 verify;
        uint32 graceSeconds;
        uint64 createdAt;
        bool exists;
    }

    struct KeyEpoch {
        uint64 epoch;
        uint64 committedAt;
        bytes32 commitment;
        uint32 memberCount;
        uint32 recorded;
    }

    struct KeyService {
        address account;
        bytes32 signingKey;
    }

    // -------------------------------------------------------------- constants

    /// @notice Protection: plain payloads allowed, envelopes checked when present.
    uint8 public constant OPTIONAL = 0;
    /// @notice Protection: every payload must be an envelope (signed-only or sealed).
    uint8 public constant SIGNED = 1;
    /// @notice Protection: every payload must be a sealed envelope of this group.
    uint8 public constant SEALED = 2;
    /// @notice Verification: the broker checks form, sender, sequence and epoch; subscribers verify signatures.
    uint8 public constant VERIFY_SUBSCRIBERS = 0;
    /// @notice Verification: the broker also verifies a sample of signatures.
    uint8 public constant VERIFY_SAMPLE = 1;
    /// @notice Verification: the broker verifies every signature.
    uint8 public constant VERIFY_EVERY = 2;
    /// @notice Longest group name, in bytes.
    uint256 public constant MAX_NAME = 64;
    /// @notice Most topic filters per group.
    uint256 public constant MAX_FILTERS = 16;
    /// @notice Longest grace period of a previous epoch, in seconds (one day).
    uint32 public constant MAX_GRACE = 86400;

    // ------------------------------------------------------------------ state

    /// @notice The Consortium contract that defines organisations and admins.
    IConsortium public immutable consortium;
    /// @notice The Registry contract whose devices may be members.
    IRegistry public immutable registry;

    bytes32[] private groupKeys;
    mapping(bytes32 => Group) private groups;

    mapping(bytes32 => string[]) private memberIds;
    mapping(bytes32 => mapping(bytes32 => uint256)) private memberPos; // index + 1

    mapping(bytes32 => KeyEpoch[]) private epochs;

    mapping(bytes32 => KeyService) private keyServices;
    /// Key service account → the organisation (key) it serves; zero for none.
    mapping(address => bytes32) private keyServiceOrg;

    // ----------------------------------------------------------------- events

    /// @notice A group was created by an admin of `org`.
    event GroupCreated(
        bytes32 indexed groupKey,
        string group,
        string org,
        string[] filters,
        uint8 protection,
        uint8 verify,
        uint32 graceSeconds
    );
    /// @notice A group's filters or policy changed.
    event GroupUpdated(
        bytes32 indexed groupKey,
        string group,
        string[] filters,
        uint8 protection,
        uint8 verify,
        uint32 graceSeconds,
        address by
    );
    /// @notice `deviceId` became a member of the group.
    event MemberAdded(bytes32 indexed groupKey, bytes32 indexed deviceKey, string group, string deviceId, address by);
    /// @notice `deviceId` is no longer a member of the group.
    event MemberRemoved(bytes32 indexed groupKey, bytes32 indexed deviceKey, string group, string deviceId, address by);
    /// @notice The key service of `org` is `account`, signing key bundles with `signingKey`.
    event KeyServiceSet(bytes32 indexed orgKey, string org, address account, bytes32 signingKey, address by);
    /// @notice Key epoch `epoch` of the group was committed for `memberCount` members.
    event KeyEpochCommitted(
        bytes32 indexed groupKey,
        string group,
        uint64 epoch,
        bytes32 commitment,
        uint32 memberCount,
        uint64 committedAt,
        address by
    );
    /// @notice `deviceId` was given a wrap of epoch `epoch`; `exchange` is its member commitment.
    event KeyExchanged(
        bytes32 indexed groupKey, bytes32 indexed deviceKey, string group, string deviceId, uint64 epoch, bytes32 exchange
    );

    // ------------------------------------------------------------ constructor

    /// @param consortium_ address of the deployed Consortium contract
    /// @param registry_ address of the deployed Registry contract
    constructor(IConsortium consortium_, IRegistry registry_) {
        require(address(consortium_).code.length > 0, "consortium address has no code");
        require(address(registry_).code.length > 0, "registry address has no code");
        consortium = consortium_;
        registry = registry_;
    }

    // ---------------------------------------------------------------- checks

    function _onlyAdmin(string memory org) private view {
        if (!consortium.isAdmin(org, msg.sender)) {
            revert(string.concat("caller is not an admin of organisation ", org));
        }
    }

    function _group(string memory name) private view returns (bytes32 key, Group storage g) {
        key = keccak256(bytes(name));
        g = groups[key];
        if (!g.exists) revert(string.concat("unknown group ", name));
    }

    function _checkName(string memory name) private pure {
        bytes memory b = bytes(name);
        require(b.length > 0 && b.length <= MAX_NAME, "group name must be 1-64 bytes");
        for (uint256 i = 0; i < b.length; i++) {
            bytes1 c = b[i];
            bool ok = (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "."
                || c == "_" || c == "-" || c == "/";
            require(ok, "group name may only contain letters, digits, '.', '_', '-' and '/'");
        }
    }

    function _checkPolicy(string[] calldata filters, uint8 protection, uint8 verify, uint32 graceSeconds)
        private
        pure
    {
        require(filters.length > 0 && filters.length <= MAX_FILTERS, "a group has 1-16 topic filters");
        for (uint256 i = 0; i < filters.length; i++) {
            TopicFilter.check(filters[i]);
            for (uint256 j = 0; j < i; j++) {
                require(keccak256(bytes(filters[i])) != keccak256(bytes(filters[j])), "duplicate topic filter");
            }
        }
        require(protection <= SEALED, "protection must be 0 (optional), 1 (signed) or 2 (sealed)");
        require(verify <= VERIFY_EVERY, "verify must be 0 (subscribers), 1 (sample) or 2 (every)");
        require(graceSeconds <= MAX_GRACE, "grace must be at most 86400 seconds");
    }

    function _activeDevice(string calldata deviceId) private view returns (bytes32) {
        (,,,, IRegistry.DeviceStatus status) = registry.getDevice(deviceId);
        if (status != IRegistry.DeviceStatus.Active) revert(string.concat("device ", deviceId, " is revoked"));
        return keccak256(bytes(deviceId));
    }

    // ---------------------------------------------------------------- groups

    function _setFilters(Group storage g, string[] calldata filters) private {
        delete g.filters;
        for (uint256 i = 0; i < filters.length; i++) {
            g.filters.push(filters[i]);
        }
    }

    /// @notice Creates group `name` owned by `orgId`; caller must be an admin of `orgId`.
    /// @param orgId owning organisation
    /// @param name 1-64 bytes of letters, digits, '.', '_', '-', '/'; unique network-wide
    /// @param filters 1-16 MQTT topic filters; a broker applies the group only to
    ///        topics owned by `orgId` (docs/e2e.md), so a filter reaching into
    ///        another organisation's topics protects nothing there
    /// @param protection OPTIONAL, SIGNED or SEALED
    /// @param verify VERIFY_SUBSCRIBERS, VERIFY_SAMPLE or VERIFY_EVERY
    /// @param graceSeconds how long the previous epoch stays acceptable after a new one
    function createGroup(
        string calldata orgId,
        string calldata name,
        string[] calldata filters,
        uint8 protection,
        uint8 verify,
        uint32 graceSeconds
    ) external {
        _onlyAdmin(orgId);
        _checkName(name);
        _checkPolicy(filters, protection, verify, graceSeconds);
        bytes32 key = keccak256(bytes(name));
        if (groups[key].exists) revert(string.concat("group ", name, " already exists"));
        Group storage g = groups[key];
        g.name = name;
        g.org = orgId;
        _setFilters(g, filters);
        g.protection = protection;
        g.verify = verify;
        g.graceSeconds = graceSeconds;
        g.createdAt = uint64(block.timestamp);
        g.exists = true;
        groupKeys.push(key);
        emit GroupCreated(key, name, orgId, filters, protection, verify, graceSeconds);
    }

    /// @notice Replaces the group's filters and policy; caller must be an admin of its organisation.
    function updateGroup(
        string calldata name,
        string[] calldata filters,
        uint8 protection,
        uint8 verify,
        uint32 graceSeconds
    ) external {
        (bytes32 key, Group storage g) = _group(name);
        _onlyAdmin(g.org);
        _checkPolicy(filters, protection, verify, graceSeconds);
        _setFilters(g, filters);
        g.protection = protection;
        g.verify = verify;
        g.graceSeconds = graceSeconds;
        emit GroupUpdated(key, name, filters, protection, verify, graceSeconds, msg.sender);
    }

    /// @notice Adds active device `deviceId` (of any organisation) to the group;
    ///         caller must be an admin of the group's organisation.
    function addMember(string calldata name, string calldata deviceId) external {
        (bytes32 key, Group storage g) = _group(name);
        _onlyAdmin(g.org);
        bytes32 deviceKey = _activeDevice(deviceId);
        if (memberPos[key][deviceKey] != 0) revert(string.concat(deviceId, " is already a member of ", name));
        string[] storage list = memberIds[key];
        list.push(deviceId);
        memberPos[key][deviceKey] = list.length;
        emit MemberAdded(key, deviceKey, name, deviceId, msg.sender);
    }

    /// @notice Removes `deviceId` from the group; caller must be an admin of the
    ///         group's organisation. The key service then rotates the key.
    function removeMember(string calldata name, string calldata deviceId) external {
        (bytes32 key, Group storage g) = _group(name);
        _onlyAdmin(g.org);
        bytes32 deviceKey = keccak256(bytes(deviceId));
        uint256 pos = memberPos[key][deviceKey];
        if (pos == 0) revert(string.concat(deviceId, " is not a member of ", name));
        string[] storage list = memberIds[key];
        uint256 last = list.length;
        if (pos != last) {
            string memory moved = list[last - 1];
            list[pos - 1] = moved;
            memberPos[key][keccak256(bytes(moved))] = pos;
        }
        list.pop();
        delete memberPos[key][deviceKey];
        emit MemberRemoved(key, deviceKey, name, deviceId, msg.sender);
    }

    // ------------------------------------------------------------ key service

    /// @notice Sets the key service of `orgId`: the account that may commit key
    ///         epochs of the organisation's groups (besides its admins) and the
    ///         Ed25519 key that signs its key bundles. Caller must be an admin of `orgId`.
    function setKeyService(string calldata orgId, address account, bytes32 signingKey) external {
        _onlyAdmin(orgId);
        require(signingKey != bytes32(0), "key service signing key must not be zero");
        require(account != address(0), "key service account must not be zero");
        require(!consortium.isBroker(account), "a broker node cannot be a key service");
        bytes32 orgKey = keccak256(bytes(orgId));
        bytes32 serving = keyServiceOrg[account];
        require(serving == bytes32(0) || serving == orgKey, "account is the key service of another organisation");
        address previous = keyServices[orgKey].account;
        if (previous != address(0) && previous != account) delete keyServiceOrg[previous];
        keyServiceOrg[account] = orgKey;
        keyServices[orgKey] = KeyService(account, signingKey);
        emit KeyServiceSet(orgKey, orgId, account, signingKey, msg.sender);
    }

    // ------------------------------------------------------------ key epochs

    function _onlyKeyService(string memory org) private view {
        KeyService storage ks = keyServices[keccak256(bytes(org))];
        if (ks.signingKey == bytes32(0)) revert(string.concat("organisation ", org, " has no key service"));
        require(!consortium.isBroker(msg.sender), "a broker node cannot be a key service");
        if (msg.sender != ks.account && !consortium.isAdmin(org, msg.sender)) {
            revert(string.concat("caller is not the key service of organisation ", org));
        }
    }

    /// @notice Commits key epoch `epoch` of group `name` for `memberCount`
    ///         members and records the key exchanges given (the rest follow with
    ///         `recordExchanges`). Caller: the key service or an admin of the
    ///         group's organisation. Epochs start at 1 and strictly increase.
    /// @param commitment epoch commitment (never the key; docs/e2e-format.md)
    /// @param deviceIds members given a wrap, each a current active member
    /// @param exchanges their member commitments, in the same order
    function commitEpoch(
        string calldata name,
        uint64 epoch,
        bytes32 commitment,
        uint32 memberCount,
        string[] calldata deviceIds,
        bytes32[] calldata exchanges
    ) external {
        (bytes32 key, Group storage g) = _group(name);
        _onlyKeyService(g.org);
        KeyEpoch[] storage list = epochs[key];
        uint64 latest = list.length == 0 ? 0 : list[list.length - 1].epoch;
        require(epoch > latest, "key epoch must be greater than the latest one");
        require(commitment != bytes32(0), "commitment must not be zero");
        require(memberCount <= memberIds[key].length, "member count exceeds the group's members");
        list.push(KeyEpoch(epoch, uint64(block.timestamp), commitment, memberCount, 0));
        emit KeyEpochCommitted(key, name, epoch, commitment, memberCount, uint64(block.timestamp), msg.sender);
        _record(key, name, list[list.length - 1], deviceIds, exchanges);
    }

    /// @notice Records further key exchanges of the latest epoch of group `name`.
    function recordExchanges(
        string calldata name,
        uint64 epoch,
        string[] calldata deviceIds,
        bytes32[] calldata exchanges
    ) external {
        (bytes32 key, Group storage g) = _group(name);
        _onlyKeyService(g.org);
        KeyEpoch[] storage list = epochs[key];
        require(list.length > 0 && list[list.length - 1].epoch == epoch, "exchanges only for the latest epoch");
        _record(key, name, list[list.length - 1], deviceIds, exchanges);
    }

    function _record(
        bytes32 key,
        string calldata name,
        KeyEpoch storage e,
        string[] calldata deviceIds,
        bytes32[] calldata exchanges
    ) private {
        require(deviceIds.length == exchanges.length, "one exchange commitment per device");
        uint256 total = uint256(e.recorded) + deviceIds.length;
        require(total <= e.memberCount, "more exchanges than the epoch's member count");
        for (uint256 i = 0; i < deviceIds.length; i++) {
            bytes32 deviceKey = _activeDevice(deviceIds[i]);
            if (memberPos[key][deviceKey] == 0) {
                revert(string.concat(deviceIds[i], " is not a member of ", name));
            }
            require(exchanges[i] != bytes32(0), "exchange commitment must not be zero");
            emit KeyExchanged(key, deviceKey, name, deviceIds[i], e.epoch, exchanges[i]);
        }
        e.recorded = uint32(total);
    }

    // ----------------------------------------------------------------- views

    /// @notice Number of groups.
    function groupCount() external view returns (uint256) {
        return groupKeys.length;
    }

    /// @notice Name of the group at `index` (0 <= index < groupCount()).
    function groupAt(uint256 index) external view returns (string memory) {
        require(index < groupKeys.length, "index out of range");
        return groups[groupKeys[index]].name;
    }

    /// @notice Group `name`: owner, filters, policy, creation time.
    function getGroup(string calldata name)
        external
        view
        returns (
            string memory org,
            string[] memory filters,
            uint8 protection,
            uint8 verify,
            uint32 graceSeconds,
            uint64 createdAt
        )
    {
        (, Group storage g) = _group(name);
        return (g.org, g.filters, g.protection, g.verify, g.graceSeconds, g.createdAt);
    }

    /// @notice Current members of group `name` (order changes on removal).
    function members(string calldata name) external view returns (string[] memory) {
        (bytes32 key,) = _group(name);
        return memberIds[key];
    }

    /// @notice Whether `deviceId` is a current member of group `name`.
    function isMember(string calldata name, string calldata deviceId) external view returns (bool) {
        return memberPos[keccak256(bytes(name))][keccak256(bytes(deviceId))] != 0;
    }

    /// @notice Key service of `orgId` (zero if none).
    /// @notice Whether `account` is the key service of an organisation (a
    ///         ledger node admits its transactions).
    function isKeyService(address account) external view returns (bool) {
        return keyServiceOrg[account] != bytes32(0);
    }

    function keyService(string calldata orgId) external view returns (address account, bytes32 signingKey) {
        KeyService storage ks = keyServices[keccak256(bytes(orgId))];
        return (ks.account, ks.signingKey);
    }

    /// @notice Number of key epochs of group `name`.
    function epochCount(string calldata name) external view returns (uint256) {
        return epochs[keccak256(bytes(name))].length;
    }

    /// @notice Key epoch at `index` of group `name` (0 <= index < epochCount(name)).
    function epochAt(string calldata name, uint256 index)
        external
        view
        returns (uint64 epoch, bytes32 commitment, uint64 committedAt, uint32 memberCount, uint32 recorded)
    {
        KeyEpoch[] storage list = epochs[keccak256(bytes(name))];
        require(index < list.length, "index out of range");
        KeyEpoch storage e = list[index];
        return (e.epoch, e.commitment, e.committedAt, e.memberCount, e.recorded);
    }
}
