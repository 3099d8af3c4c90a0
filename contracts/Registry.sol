// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IConsortium} from "./IConsortium.sol";
import {TopicFilter} from "./TopicFilter.sol";

/// @title ledgermq Registry
/// @notice Devices, topics, access rights, per-broker OTP key envelopes and
///         blacklist entries (encryption groups and their key epochs: Groups).
/// @dev Access: only an admin (per `Consortium`) of a device's organisation may
///      register, change or revoke the device, grant its rights and store its
///      OTP envelopes. Topics belong to the organisation that created them.
///      Cross-organisation rule: a device may be granted `subscribe` on a topic
///      of another organisation only if that topic is `subscribeOpen` (the
///      default for topics created by `grantRight`), and `publish` only if the
///      topic is `publishOpen` (off by default). Admins of the topic's
///      organisation set those flags and may revoke any right on their topics.
///      Devices and topics are keyed by `keccak256(bytes(id))`. Reverts carry
///      plain `Error(string)` reason strings.
contract Registry {
    // ------------------------------------------------------------------ types

    /// @notice Device status; `Revoked` is final (the id is never reused).
    enum DeviceStatus {
        None,
        Active,
        Revoked
    }

    struct Device {
        string id;
        string org;
        bytes32 signingKey;
        bytes32 agreementKey;
        uint64 registeredAt;
        DeviceStatus status;
    }

    struct Topic {
        string name;
        string org;
        uint64 createdAt;
        bool sensitive;
        bool publishOpen;
        bool subscribeOpen;
        bool exists;
    }

    struct BlacklistEntry {
        uint64 until;
        uint64 since;
        uint8 reason;
        address by;
        bytes32 evidence;
    }

    // -------------------------------------------------------------- constants

    uint8 private constant PUBLISH = 1;
    uint8 private constant SUBSCRIBE = 2;
    /// @notice Longest device id, in bytes.
    uint256 public constant MAX_DEVICE_ID = 128;
    /// @notice Longest topic name or filter, in bytes.
    uint256 public constant MAX_TOPIC = TopicFilter.MAX_TOPIC;
    /// @notice Longest OTP envelope, in bytes.
    uint256 public constant MAX_ENVELOPE = 1024;

    // ------------------------------------------------------------------ state

    /// @notice The Consortium contract that defines organisations, admins and brokers.
    IConsortium public immutable consortium;

    bytes32[] private deviceKeys;
    mapping(bytes32 => Device) private devices;

    bytes32[] private topicKeys;
    mapping(bytes32 => Topic) private topics;

    mapping(bytes32 => mapping(bytes32 => uint8)) private rightBits;
    mapping(bytes32 => bytes32[]) private rightTopics;
    mapping(bytes32 => mapping(bytes32 => uint256)) private rightPos; // index + 1

    mapping(bytes32 => mapping(address => bytes)) private envelopes;
    mapping(bytes32 => address[]) private envelopeBrokers;

    mapping(bytes32 => BlacklistEntry) private blacklist;

    // ----------------------------------------------------------------- events

    /// @notice A device was registered by an admin of `org`.
    event DeviceRegistered(
        bytes32 indexed deviceKey,
        string deviceId,
        string org,
        bytes32 signingKey,
        bytes32 agreementKey,
        uint64 registeredAt
    );
    /// @notice A device's public keys were replaced.
    event DeviceKeysUpdated(
        bytes32 indexed deviceKey, string deviceId, string org, bytes32 signingKey, bytes32 agreementKey
    );
    /// @notice A device was revoked (final); its rights and envelopes are void.
    event DeviceRevoked(bytes32 indexed deviceKey, string deviceId, string org, address by);
    /// @notice A topic (name or filter) was created, owned by `org`.
    event TopicCreated(
        bytes32 indexed topicKey, string topic, string org, bool sensitive, bool publishOpen, bool subscribeOpen
    );
    /// @notice A topic's flags changed.
    event TopicUpdated(
        bytes32 indexed topicKey, string topic, string org, bool sensitive, bool publishOpen, bool subscribeOpen
    );
    /// @notice The device's rights on the topic are now exactly (`publish`, `subscribe`).
    event RightGranted(
        bytes32 indexed deviceKey, bytes32 indexed topicKey, string deviceId, string topic, bool publish, bool subscribe
    );
    /// @notice The device has no right on the topic any more.
    event RightRevoked(bytes32 indexed deviceKey, bytes32 indexed topicKey, string deviceId, string topic, address by);
    /// @notice The device's OTP key, HPKE-sealed to broker node `broker`, is `envelope`.
    event OtpEnvelopeSet(bytes32 indexed deviceKey, address indexed broker, string deviceId, bytes envelope);
    /// @notice The device's OTP envelope for `broker` was deleted.
    event OtpEnvelopeCleared(bytes32 indexed deviceKey, address indexed broker, string deviceId, address by);
    /// @notice The device is banned until `until` (unix seconds); `evidence`
    ///         commits to the reporter's evidence record (zero: none given).
    event Blacklisted(
        bytes32 indexed deviceKey, string deviceId, uint64 until, uint8 reason, bytes32 evidence, address by
    );
    /// @notice The device's blacklist entry was lifted by an admin.
    event BlacklistLifted(bytes32 indexed deviceKey, string deviceId, address by);

    // ------------------------------------------------------------ constructor

    /// @param consortium_ address of the deployed Consortium contract
    constructor(IConsortium consortium_) {
        require(address(consortium_).code.length > 0, "consortium address has no code");
        consortium = consortium_;
    }

    // ---------------------------------------------------------------- checks

    function _onlyAdmin(string memory org) private view {
        if (!consortium.isAdmin(org, msg.sender)) {
            revert(string.concat("caller is not an admin of organisation ", org));
        }
    }

    function _device(string memory deviceId) private view returns (bytes32 key, Device storage d) {
        key = keccak256(bytes(deviceId));
        d = devices[key];
        if (d.status == DeviceStatus.None) revert(string.concat("unknown device ", deviceId));
    }

    function _activeDevice(string memory deviceId) private view returns (bytes32 key, Device storage d) {
        (key, d) = _device(deviceId);
        if (d.status != DeviceStatus.Active) revert(string.concat("device ", deviceId, " is revoked"));
    }

    function _topic(string memory name) private view returns (bytes32 key, Topic storage t) {
        key = keccak256(bytes(name));
        t = topics[key];
        if (!t.exists) revert(string.concat("unknown topic ", name));
    }

    function _checkKeys(bytes32 signingKey, bytes32 agreementKey) private pure {
        require(signingKey != bytes32(0) && agreementKey != bytes32(0), "device keys must not be zero");
    }

    // --------------------------------------------------------------- devices

    /// @notice Registers device `deviceId` for organisation `orgId`; caller must
    ///         be an admin of `orgId`. Device ids are unique network-wide, forever.
    /// @param orgId owning organisation
    /// @param deviceId 1-128 bytes of printable ASCII without spaces (the MQTT client id)
    /// @param signingKey the device's Ed25519 public key
    /// @param agreementKey the device's X25519 public key
    function registerDevice(string calldata orgId, string calldata deviceId, bytes32 signingKey, bytes32 agreementKey)
        external
    {
        _onlyAdmin(orgId);
        bytes memory b = bytes(deviceId);
        require(b.length > 0 && b.length <= MAX_DEVICE_ID, "device id must be 1-128 bytes");
        for (uint256 i = 0; i < b.length; i++) {
            require(b[i] > 0x20 && b[i] < 0x7f, "device id must be printable ASCII without spaces");
        }
        _checkKeys(signingKey, agreementKey);
        bytes32 key = keccak256(b);
        if (devices[key].status != DeviceStatus.None) {
            revert(string.concat("device ", deviceId, " is already registered"));
        }
        devices[key] = Device(deviceId, orgId, signingKey, agreementKey, uint64(block.timestamp), DeviceStatus.Active);
        deviceKeys.push(key);
        emit DeviceRegistered(key, deviceId, orgId, signingKey, agreementKey, uint64(block.timestamp));
    }

    /// @notice Replaces an active device's public keys; caller must be an admin of its organisation.
    /// @param deviceId the device
    /// @param signingKey new Ed25519 public key
    /// @param agreementKey new X25519 public key
    function updateDeviceKeys(string calldata deviceId, bytes32 signingKey, bytes32 agreementKey) external {
        (bytes32 key, Device storage d) = _activeDevice(deviceId);
        _onlyAdmin(d.org);
        _checkKeys(signingKey, agreementKey);
        d.signingKey = signingKey;
        d.agreementKey = agreementKey;
        emit DeviceKeysUpdated(key, deviceId, d.org, signingKey, agreementKey);
    }

    /// @notice Revokes a device for good; caller must be an admin of its organisation.
    /// @param deviceId the device
    function revokeDevice(string calldata deviceId) external {
        (bytes32 key, Device storage d) = _activeDevice(deviceId);
        _onlyAdmin(d.org);
        d.status = DeviceStatus.Revoked;
        emit DeviceRevoked(key, deviceId, d.org, msg.sender);
    }

    // ---------------------------------------------------------------- topics

    /// @notice Creates topic (name or filter) `topic` owned by `orgId`; caller
    ///         must be an admin of `orgId`.
    /// @param orgId owning organisation
    /// @param topic MQTT topic name or filter (1-256 bytes, not starting with '$')
    /// @param sensitive whether access to it is summarised in the audit trail
    /// @param publishOpen whether other organisations' devices may be granted publish
    /// @param subscribeOpen whether other organisations' devices may be granted subscribe
    function createTopic(
        string calldata orgId,
        string calldata topic,
        bool sensitive,
        bool publishOpen,
        bool subscribeOpen
    ) external {
        _onlyAdmin(orgId);
        _createTopic(orgId, topic, sensitive, publishOpen, subscribeOpen);
    }

    function _createTopic(string memory org, string memory name, bool sensitive, bool publishOpen, bool subscribeOpen)
        private
        returns (bytes32 key, Topic storage t)
    {
        TopicFilter.check(name);
        key = keccak256(bytes(name));
        t = topics[key];
        if (t.exists) revert(string.concat("topic ", name, " already exists"));
        topics[key] = Topic(name, org, uint64(block.timestamp), sensitive, publishOpen, subscribeOpen, true);
        topicKeys.push(key);
        emit TopicCreated(key, name, org, sensitive, publishOpen, subscribeOpen);
    }

    /// @notice Changes a topic's flags; caller must be an admin of the topic's
    ///         organisation. Closing a topic does not remove rights already
    ///         granted: use `revokeRight` for those.
    /// @param topic the topic
    /// @param sensitive whether access to it is summarised in the audit trail
    /// @param publishOpen whether other organisations' devices may be granted publish
    /// @param subscribeOpen whether other organisations' devices may be granted subscribe
    function setTopicFlags(string calldata topic, bool sensitive, bool publishOpen, bool subscribeOpen) external {
        (bytes32 key, Topic storage t) = _topic(topic);
        _onlyAdmin(t.org);
        t.sensitive = sensitive;
        t.publishOpen = publishOpen;
        t.subscribeOpen = subscribeOpen;
        emit TopicUpdated(key, topic, t.org, sensitive, publishOpen, subscribeOpen);
    }

    // ---------------------------------------------------------------- rights

    /// @notice Sets the rights of an active device on `topic` to exactly
    ///         (`canPublish`, `canSubscribe`); caller must be an admin of the
    ///         device's organisation. A missing topic is created, owned by the
    ///         device's organisation (not sensitive, publishOpen false,
    ///         subscribeOpen true). On a topic of another organisation publish
    ///         needs `publishOpen` and subscribe needs `subscribeOpen`.
    /// @param deviceId the device
    /// @param topic MQTT topic name or filter
    /// @param canPublish publish right
    /// @param canSubscribe subscribe right
    function grantRight(string calldata deviceId, string calldata topic, bool canPublish, bool canSubscribe)
        external
    {
        (bytes32 dKey, Device storage d) = _activeDevice(deviceId);
        _onlyAdmin(d.org);
        require(canPublish || canSubscribe, "grant at least one of publish and subscribe (use revokeRight)");
        bytes32 tKey = keccak256(bytes(topic));
        Topic storage t = topics[tKey];
        if (!t.exists) {
            (tKey, t) = _createTopic(d.org, topic, false, false, true);
        } else if (keccak256(bytes(t.org)) != keccak256(bytes(d.org))) {
            if (canPublish && !t.publishOpen) {
                revert(string.concat("topic ", topic, " is owned by organisation ", t.org, " and not open for publish"));
            }
            if (canSubscribe && !t.subscribeOpen) {
                revert(string.concat("topic ", topic, " is owned by organisation ", t.org, " and not open for subscribe"));
            }
        }
        uint8 bits = (canPublish ? PUBLISH : 0) | (canSubscribe ? SUBSCRIBE : 0);
        rightBits[dKey][tKey] = bits;
        if (rightPos[dKey][tKey] == 0) {
            rightTopics[dKey].push(tKey);
            rightPos[dKey][tKey] = rightTopics[dKey].length;
        }
        emit RightGranted(dKey, tKey, deviceId, topic, canPublish, canSubscribe);
    }

    /// @notice Removes a device's rights on `topic`; caller must be an admin of
    ///         the device's organisation or of the topic's organisation.
    /// @param deviceId the device
    /// @param topic the topic
    function revokeRight(string calldata deviceId, string calldata topic) external {
        (bytes32 dKey, Device storage d) = _device(deviceId);
        (bytes32 tKey, Topic storage t) = _topic(topic);
        if (!consortium.isAdmin(d.org, msg.sender) && !consortium.isAdmin(t.org, msg.sender)) {
            revert(string.concat("caller is not an admin of organisation ", d.org, " or ", t.org));
        }
        uint256 pos = rightPos[dKey][tKey];
        if (pos == 0) revert(string.concat("device ", deviceId, " has no right on topic ", topic));
        bytes32[] storage list = rightTopics[dKey];
        bytes32 last = list[list.length - 1];
        list[pos - 1] = last;
        rightPos[dKey][last] = pos;
        list.pop();
        delete rightPos[dKey][tKey];
        delete rightBits[dKey][tKey];
        emit RightRevoked(dKey, tKey, deviceId, topic, msg.sender);
    }

    // ------------------------------------------------------------- envelopes

    /// @notice Stores the device's OTP key sealed (HPKE) to broker node
    ///         `brokerAccount` of the device's own organisation; caller must be
    ///         an admin of that organisation. A node of another organisation
    ///         never gets the symmetric key (it could act as the device): there
    ///         the device authenticates with its signing key. The contract
    ///         never sees the key in clear.
    /// @param deviceId an active device
    /// @param brokerAccount a registered broker node of the device's organisation
    /// @param envelope opaque HPKE envelope (1-1024 bytes); replaces any previous one
    function setOtpEnvelope(string calldata deviceId, address brokerAccount, bytes calldata envelope) external {
        (bytes32 key, Device storage d) = _activeDevice(deviceId);
        _onlyAdmin(d.org);
        require(consortium.isBroker(brokerAccount), "account is not a registered broker");
        require(
            keccak256(bytes(consortium.orgOfBroker(brokerAccount))) == keccak256(bytes(d.org)),
            "broker node belongs to another organisation"
        );
        require(envelope.length > 0 && envelope.length <= MAX_ENVELOPE, "envelope must be 1-1024 bytes");
        if (envelopes[key][brokerAccount].length == 0) envelopeBrokers[key].push(brokerAccount);
        envelopes[key][brokerAccount] = envelope;
        emit OtpEnvelopeSet(key, brokerAccount, deviceId, envelope);
    }

    /// @notice Deletes the device's OTP envelope for `brokerAccount` (a node
    ///         that was removed, or one of another organisation from before
    ///         envelopes were restricted); caller must be an admin of the
    ///         device's organisation.
    /// @param deviceId a registered device (active or revoked)
    /// @param brokerAccount the node whose envelope goes
    function clearOtpEnvelope(string calldata deviceId, address brokerAccount) external {
        (bytes32 key, Device storage d) = _device(deviceId);
        _onlyAdmin(d.org);
        require(envelopes[key][brokerAccount].length != 0, "no OTP envelope for this broker");
        delete envelopes[key][brokerAccount];
        address[] storage list = envelopeBrokers[key];
        for (uint256 i = 0; i < list.length; i++) {
            if (list[i] == brokerAccount) {
                list[i] = list[list.length - 1];
                list.pop();
                break;
            }
        }
        emit OtpEnvelopeCleared(key, brokerAccount, deviceId, msg.sender);
    }

    // ------------------------------------------------------------- blacklist

    /// @notice Bans a device until `until`; caller must be a broker node or an
    ///         admin of the device's organisation. A broker may not shorten an
    ///         active ban (admins may, or lift it), and must commit to its
    ///         evidence: a broker's ban follows only from evidence a third
    ///         party cannot forge, recorded off-ledger and committed to here.
    /// @param deviceId the device
    /// @param until unix seconds, in the future (type(uint64).max: indefinitely)
    /// @param reason reason code (see contracts/README.md)
    /// @param evidence SHA-256 digest of the evidence record (never personal
    ///        data in clear); non-zero for a broker, zero allowed for an admin
    function blacklistDevice(string calldata deviceId, uint64 until, uint8 reason, bytes32 evidence) external {
        (bytes32 key, Device storage d) = _device(deviceId);
        bool admin = consortium.isAdmin(d.org, msg.sender);
        if (!admin && !consortium.isBroker(msg.sender)) {
            revert(string.concat("caller is neither a broker node nor an admin of organisation ", d.org));
        }
        require(until > block.timestamp, "blacklist end must be in the future");
        require(admin || evidence != bytes32(0), "a broker node must give the digest of its evidence");
        BlacklistEntry storage e = blacklist[key];
        require(admin || until >= e.until, "a broker may not shorten an active blacklist entry");
        blacklist[key] = BlacklistEntry(until, uint64(block.timestamp), reason, msg.sender, evidence);
        emit Blacklisted(key, deviceId, until, reason, evidence, msg.sender);
    }

    /// @notice Lifts a device's blacklist entry; caller must be an admin of its organisation.
    /// @param deviceId the device
    function liftBlacklist(string calldata deviceId) external {
        (bytes32 key, Device storage d) = _device(deviceId);
        _onlyAdmin(d.org);
        require(blacklist[key].until > block.timestamp, "device is not blacklisted");
        delete blacklist[key];
        emit BlacklistLifted(key, deviceId, msg.sender);
    }

    // ----------------------------------------------------------------- views

    /// @notice Number of devices ever registered (revoked ones included).
    function deviceCount() external view returns (uint256) {
        return deviceKeys.length;
    }

    /// @notice Id of the device at `index` (0 <= index < deviceCount()).
    function deviceIdAt(uint256 index) external view returns (string memory) {
        require(index < deviceKeys.length, "index out of range");
        return devices[deviceKeys[index]].id;
    }

    /// @notice Device record (reverts if unknown).
    /// @return org owning organisation
    /// @return signingKey Ed25519 public key
    /// @return agreementKey X25519 public key
    /// @return registeredAt unix time of registration
    /// @return status Active or Revoked
    function getDevice(string calldata deviceId)
        external
        view
        returns (string memory org, bytes32 signingKey, bytes32 agreementKey, uint64 registeredAt, DeviceStatus status)
    {
        (, Device storage d) = _device(deviceId);
        return (d.org, d.signingKey, d.agreementKey, d.registeredAt, d.status);
    }

    /// @notice Number of topics.
    function topicCount() external view returns (uint256) {
        return topicKeys.length;
    }

    /// @notice Name of the topic at `index` (0 <= index < topicCount()).
    function topicAt(uint256 index) external view returns (string memory) {
        require(index < topicKeys.length, "index out of range");
        return topics[topicKeys[index]].name;
    }

    /// @notice Whether topic (name or filter) `topic` exists.
    function isTopic(string calldata topic) external view returns (bool) {
        return topics[keccak256(bytes(topic))].exists;
    }

    /// @notice Topic record (reverts if unknown).
    function getTopic(string calldata topic)
        external
        view
        returns (string memory org, bool sensitive, bool publishOpen, bool subscribeOpen, uint64 createdAt)
    {
        (, Topic storage t) = _topic(topic);
        return (t.org, t.sensitive, t.publishOpen, t.subscribeOpen, t.createdAt);
    }

    /// @notice Number of topics on which the device has a right.
    function rightCount(string calldata deviceId) external view returns (uint256) {
        return rightTopics[keccak256(bytes(deviceId))].length;
    }

    /// @notice The device's right at `index` (0 <= index < rightCount(deviceId)).
    function rightAt(string calldata deviceId, uint256 index)
        external
        view
        returns (string memory topic, bool canPublish, bool canSubscribe)
    {
        bytes32 dKey = keccak256(bytes(deviceId));
        require(index < rightTopics[dKey].length, "index out of range");
        bytes32 tKey = rightTopics[dKey][index];
        uint8 bits = rightBits[dKey][tKey];
        return (topics[tKey].name, bits & PUBLISH != 0, bits & SUBSCRIBE != 0);
    }

    /// @notice The device's right on `topic` (false, false if none). Does not
    ///         look at the device's status or blacklist.
    function getRight(string calldata deviceId, string calldata topic)
        external
        view
        returns (bool canPublish, bool canSubscribe)
    {
        uint8 bits = rightBits[keccak256(bytes(deviceId))][keccak256(bytes(topic))];
        return (bits & PUBLISH != 0, bits & SUBSCRIBE != 0);
    }

    /// @notice Broker nodes for which the device has an OTP envelope.
    function otpEnvelopeBrokers(string calldata deviceId) external view returns (address[] memory) {
        return envelopeBrokers[keccak256(bytes(deviceId))];
    }

    /// @notice The device's OTP envelope for `brokerAccount` (empty if none).
    function otpEnvelope(string calldata deviceId, address brokerAccount) external view returns (bytes memory) {
        return envelopes[keccak256(bytes(deviceId))][brokerAccount];
    }

    /// @notice The device's blacklist entry (all zero if none or lifted).
    /// @return until unix seconds the ban lasts until
    /// @return reason reason code
    /// @return by reporting broker node or admin
    /// @return since unix time of the entry
    /// @return active whether the ban is in force now
    /// @return evidence digest of the reporter's evidence record (zero: none given)
    function getBlacklist(string calldata deviceId)
        external
        view
        returns (uint64 until, uint8 reason, address by, uint64 since, bool active, bytes32 evidence)
    {
        BlacklistEntry storage e = blacklist[keccak256(bytes(deviceId))];
        return (e.until, e.reason, e.by, e.since, e.until > block.timestamp, e.evidence);
    }

    /// @notice Whether the device is banned now.
    function isBlacklisted(string calldata deviceId) external view returns (bool) {
        return blacklist[keccak256(bytes(deviceId))].until > block.timestamp;
    }
}
