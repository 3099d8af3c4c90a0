// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IConsortium} from "./IConsortium.sol";

/// @title ledgermq Audit
/// @notice Append-only audit records (security decisions) and Merkle anchors
///         (RFC 6962 roots of batches of accepted publishes), written by broker
///         nodes only.
/// @dev Only accounts registered as broker nodes in `Consortium` may append;
///      anyone may read. Records hold no personal data in clear: `subject` is a
///      device id or pseudonym and the details are only committed to by `digest`.
///      Reverts carry plain `Error(string)` reason strings.
contract Audit {
    // ------------------------------------------------------------------ types

    /// @notice One audit record, as appended by a broker node.
    struct AuditRecord {
        uint8 kind;
        string subject;
        string topic;
        uint64 time;
        bytes32 digest;
    }

    struct StoredRecord {
        uint8 kind;
        uint64 time;
        address broker;
        uint64 recordedAt;
        bytes32 digest;
        string subject;
        string topic;
    }

    struct Anchor {
        bytes32 root;
        uint64 leafCount;
        uint64 firstSeq;
        uint64 lastSeq;
        uint64 anchoredAt;
        address broker;
    }

    // -------------------------------------------------------------- constants

    /// @notice Longest subject or topic of a record, in bytes.
    uint256 public constant MAX_FIELD = 256;
    /// @notice Most records in one `recordBatch` call.
    uint256 public constant MAX_BATCH = 64;

    // ------------------------------------------------------------------ state

    /// @notice The Consortium contract that defines broker nodes.
    IConsortium public immutable consortium;

    StoredRecord[] private records;
    Anchor[] private anchors;
    mapping(bytes32 => uint256) private anchorPosByRoot; // index + 1
    mapping(address => uint256[]) private anchorsByBroker;

    // ----------------------------------------------------------------- events

    /// @notice Audit record number `index` was appended by broker node `broker`.
    event AuditRecorded(
        uint256 indexed index,
        address indexed broker,
        uint8 indexed kind,
        string subject,
        string topic,
        uint64 time,
        bytes32 digest
    );
    /// @notice Anchor number `index` (a Merkle root of `leafCount` leaves with
    ///         sequence numbers `firstSeq`..`lastSeq`) was appended by `broker`.
    event Anchored(
        uint256 indexed index,
        address indexed broker,
        bytes32 indexed root,
        uint64 leafCount,
        uint64 firstSeq,
        uint64 lastSeq,
        uint64 anchoredAt
    );

    // ------------------------------------------------------------ constructor

    /// @param consortium_ address of the deployed Consortium contract
    constructor(IConsortium consortium_) {
        require(address(consortium_).code.length > 0, "consortium address has no code");
        consortium = consortium_;
    }

    function _onlyBroker() private view {
        require(consortium.isBroker(msg.sender), "caller is not a registered broker node");
    }

    // --------------------------------------------------------------- records

    /// @notice Appends one audit record; caller must be a broker node.
    /// @param kind event kind code (see contracts/README.md)
    /// @param subject device id or pseudonym the record is about (0-256 bytes)
    /// @param topic topic concerned, or "" (0-256 bytes)
    /// @param time unix seconds at which the broker observed the event
    /// @param digest hash of the record's details (kept off-ledger)
    /// @return index the record's index
    function record(uint8 kind, string calldata subject, string calldata topic, uint64 time, bytes32 digest)
        external
        returns (uint256 index)
    {
        _onlyBroker();
        return _record(kind, subject, topic, time, digest);
    }

    /// @notice Appends up to MAX_BATCH audit records; caller must be a broker node.
    /// @param batch the records, appended in order
    /// @return firstIndex index of the first appended record
    function recordBatch(AuditRecord[] calldata batch) external returns (uint256 firstIndex) {
        _onlyBroker();
        require(batch.length > 0 && batch.length <= MAX_BATCH, "batch must hold 1-64 records");
        firstIndex = records.length;
        for (uint256 i = 0; i < batch.length; i++) {
            AuditRecord calldata r = batch[i];
            _record(r.kind, r.subject, r.topic, r.time, r.digest);
        }
    }

    function _record(uint8 kind, string calldata subject, string calldata topic, uint64 time, bytes32 digest)
        private
        returns (uint256 index)
    {
        require(bytes(subject).length <= MAX_FIELD, "record subject exceeds 256 bytes");
        require(bytes(topic).length <= MAX_FIELD, "record topic exceeds 256 bytes");
        index = records.length;
        records.push(StoredRecord(kind, time, msg.sender, uint64(block.timestamp), digest, subject, topic));
        emit AuditRecorded(index, msg.sender, kind, subject, topic, time, digest);
    }

    // --------------------------------------------------------------- anchors

    /// @notice Appends a Merkle anchor; caller must be a broker node. A root
    ///         can be anchored only once (a retry after a lost receipt reverts
    ///         with "root already anchored").
    /// @param root RFC 6962 Merkle tree root of the batch
    /// @param leafCount number of leaves (> 0)
    /// @param firstSeq sequence number of the first leaf
    /// @param lastSeq sequence number of the last leaf (>= firstSeq)
    /// @return index the anchor's index
    function anchor(bytes32 root, uint64 leafCount, uint64 firstSeq, uint64 lastSeq)
        external
        returns (uint256 index)
    {
        _onlyBroker();
        require(root != bytes32(0), "root must not be zero");
        require(leafCount > 0, "leaf count must be positive");
        require(lastSeq >= firstSeq, "last sequence number is below the first");
        require(anchorPosByRoot[root] == 0, "root already anchored");
        index = anchors.length;
        anchors.push(Anchor(root, leafCount, firstSeq, lastSeq, uint64(block.timestamp), msg.sender));
        anchorPosByRoot[root] = index + 1;
        anchorsByBroker[msg.sender].push(index);
        emit Anchored(index, msg.sender, root, leafCount, firstSeq, lastSeq, uint64(block.timestamp));
    }

    // ----------------------------------------------------------------- views

    /// @notice Number of audit records.
    function recordCount() external view returns (uint256) {
        return records.length;
    }

    /// @notice Audit record at `index` (0 <= index < recordCount()).
    /// @return kind event kind code
    /// @return subject device id or pseudonym
    /// @return topic topic concerned, or ""
    /// @return time unix seconds reported by the broker
    /// @return digest hash of the details
    /// @return broker appending broker node
    /// @return recordedAt block time of the append
    function getRecord(uint256 index)
        external
        view
        returns (
            uint8 kind,
            string memory subject,
            string memory topic,
            uint64 time,
            bytes32 digest,
            address broker,
            uint64 recordedAt
        )
    {
        require(index < records.length, "index out of range");
        StoredRecord storage r = records[index];
        return (r.kind, r.subject, r.topic, r.time, r.digest, r.broker, r.recordedAt);
    }

    /// @notice Number of anchors.
    function anchorCount() external view returns (uint256) {
        return anchors.length;
    }

    /// @notice Anchor at `index` (0 <= index < anchorCount()).
    /// @return root Merkle root
    /// @return leafCount number of leaves
    /// @return firstSeq first leaf sequence number
    /// @return lastSeq last leaf sequence number
    /// @return broker appending broker node
    /// @return anchoredAt block time of the append
    function getAnchor(uint256 index)
        external
        view
        returns (bytes32 root, uint64 leafCount, uint64 firstSeq, uint64 lastSeq, address broker, uint64 anchoredAt)
    {
        require(index < anchors.length, "index out of range");
        Anchor storage a = anchors[index];
        return (a.root, a.leafCount, a.firstSeq, a.lastSeq, a.broker, a.anchoredAt);
    }

    /// @notice Index of the anchor holding `root`, if any (for `ledgermq verify`).
    /// @return found whether `root` was anchored
    /// @return index its anchor index (0 if not found)
    function findAnchor(bytes32 root) external view returns (bool found, uint256 index) {
        uint256 pos = anchorPosByRoot[root];
        if (pos == 0) return (false, 0);
        return (true, pos - 1);
    }

    /// @notice Number of anchors appended by broker node `broker`.
    function anchorCountOf(address broker) external view returns (uint256) {
        return anchorsByBroker[broker].length;
    }

    /// @notice Global index of the `i`-th anchor appended by `broker` (0 <= i < anchorCountOf(broker)).
    function anchorIndexOf(address broker, uint256 i) external view returns (uint256) {
        require(i < anchorsByBroker[broker].length, "index out of range");
        return anchorsByBroker[broker][i];
    }
}
