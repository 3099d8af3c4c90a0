// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title ledgermq Consortium
/// @notice Organisations, their admin accounts and their broker nodes. Adding an
///         organisation to a running consortium needs a strict majority of the
///         current organisations (proposal / approve flow).
/// @dev Every account administers at most one organisation and every broker
///      account belongs to exactly one organisation. Reverts carry plain
///      `Error(string)` reason strings. Organisations are keyed by
///      `keccak256(bytes(orgId))` ("org key").
contract Consortium {
    // ------------------------------------------------------------------ types

    struct Org {
        string id;
        string name;
        address[] admins;
        address[] brokers;
        uint64 addedAt;
        bool exists;
    }

    struct Broker {
        bytes32 orgKey;
        bytes32 signingKey;
        bytes32 agreementKey;
        uint64 addedAt;
        bool exists;
    }

    /// @notice Status of an organisation proposal. `Expired` is never stored:
    ///         a `Pending` proposal past its expiry is reported as `Expired`.
    enum ProposalStatus {
        None,
        Pending,
        Executed,
        Cancelled,
        Expired
    }

    struct Proposal {
        string orgId;
        string name;
        address[] admins;
        address proposer;
        bytes32 proposerOrgKey;
        uint64 createdAt;
        uint64 expiresAt;
        uint32 approvals;
        ProposalStatus status;
    }

    // -------------------------------------------------------------- constants

    /// @notice Lifetime of a proposal when `propose` is called with ttl 0.
    uint64 public constant DEFAULT_PROPOSAL_TTL = 7 days;
    /// @notice Longest lifetime a proposal may be given.
    uint64 public constant MAX_PROPOSAL_TTL = 90 days;
    /// @notice Most admins an organisation may have.
    uint256 public constant MAX_ADMINS = 16;

    // ------------------------------------------------------------------ state

    bytes32[] private orgKeys;
    mapping(bytes32 => Org) private orgs;
    mapping(address => bytes32) private adminOrgKey;

    address[] private brokerList;
    mapping(address => Broker) private brokers;

    Proposal[] private proposals;
    mapping(uint256 => mapping(bytes32 => bool)) private approvedBy;

    // ----------------------------------------------------------------- events

    /// @notice An organisation joined (bootstrap or executed proposal).
    event OrganisationAdded(bytes32 indexed orgKey, string orgId, string name, address[] admins);
    /// @notice `account` became an admin of `orgId` (by an existing admin `by`).
    event AdminAdded(bytes32 indexed orgKey, string orgId, address indexed account, address by);
    /// @notice `account` is no longer an admin of `orgId`.
    event AdminRemoved(bytes32 indexed orgKey, string orgId, address indexed account, address by);
    /// @notice A broker node of `orgId` was registered (replacement = removed + added).
    event BrokerAdded(
        bytes32 indexed orgKey, string orgId, address indexed account, bytes32 signingKey, bytes32 agreementKey
    );
    /// @notice A broker node of `orgId` was removed.
    event BrokerRemoved(bytes32 indexed orgKey, string orgId, address indexed account, address by);
    /// @notice A new organisation was proposed; the proposer's organisation has approved it.
    event OrganisationProposed(
        uint256 indexed proposalId,
        string orgId,
        string name,
        address[] admins,
        address proposer,
        string proposerOrg,
        uint64 expiresAt
    );
    /// @notice `approverOrg` approved the proposal; `approvals` of `needed` reached so far.
    event ProposalApproved(
        uint256 indexed proposalId, string orgId, string approverOrg, address by, uint32 approvals, uint32 needed
    );
    /// @notice The proposal reached the majority and the organisation was added.
    event ProposalExecuted(uint256 indexed proposalId, string orgId);
    /// @notice The proposer cancelled the proposal.
    event ProposalCancelled(uint256 indexed proposalId, string orgId, address by);

    // ------------------------------------------------------------ constructor

    /// @notice Bootstraps the founding organisations.
    /// @param orgIds short ids ("supplier", ...): 1-32 bytes of [a-z0-9._-], unique
    /// @param names display names (1-64 bytes), same length as `orgIds`
    /// @param admins admin accounts per organisation (at least one each)
    constructor(string[] memory orgIds, string[] memory names, address[][] memory admins) {
        require(orgIds.length > 0, "at least one founding organisation is required");
        require(
            orgIds.length == names.length && orgIds.length == admins.length,
            "orgIds, names and admins must have the same length"
        );
        for (uint256 i = 0; i < orgIds.length; i++) {
            _checkNewOrg(orgIds[i], names[i], admins[i]);
            _addOrg(orgIds[i], names[i], admins[i]);
        }
    }

    // ------------------------------------------------------------- modifiers

    function _onlyAdminOf(bytes32 orgKey) private view {
        Org storage o = orgs[orgKey];
        if (adminOrgKey[msg.sender] != orgKey || !o.exists) {
            revert(string.concat("caller is not an admin of organisation ", o.id));
        }
    }

    function _existingOrg(string memory orgId) private view returns (bytes32 key) {
        key = keccak256(bytes(orgId));
        if (!orgs[key].exists) revert(string.concat("unknown organisation ", orgId));
    }

    // --------------------------------------------------------- organisations

    /// @notice Proposes adding organisation `orgId`; counts as the approval of
    ///         the caller's organisation (and executes at once if that is already
    ///         a majority, e.g. in a one-organisation consortium).
    /// @param orgId new organisation id (1-32 bytes of [a-z0-9._-], not in use)
    /// @param name display name (1-64 bytes)
    /// @param admins its admin accounts (1-16, not admins elsewhere)
    /// @param ttlSeconds lifetime of the proposal; 0 means DEFAULT_PROPOSAL_TTL
    /// @return proposalId index of the proposal
    function propose(string calldata orgId, string calldata name, address[] calldata admins, uint64 ttlSeconds)
        external
        returns (uint256 proposalId)
    {
        bytes32 proposerOrg = adminOrgKey[msg.sender];
        require(proposerOrg != bytes32(0), "caller is not an admin of any organisation");
        _checkNewOrg(orgId, name, admins);
        if (ttlSeconds == 0) ttlSeconds = DEFAULT_PROPOSAL_TTL;
        require(ttlSeconds <= MAX_PROPOSAL_TTL, "proposal ttl exceeds MAX_PROPOSAL_TTL");

        proposalId = proposals.length;
        Proposal storage p = proposals.push();
        p.orgId = orgId;
        p.name = name;
        p.admins = admins;
        p.proposer = msg.sender;
        p.proposerOrgKey = proposerOrg;
        p.createdAt = uint64(block.timestamp);
        p.expiresAt = uint64(block.timestamp) + ttlSeconds;
        p.status = ProposalStatus.Pending;
        emit OrganisationProposed(proposalId, orgId, name, admins, msg.sender, orgs[proposerOrg].id, p.expiresAt);
        _approve(proposalId, proposerOrg);
    }

    /// @notice Approves a pending proposal on behalf of the caller's organisation
    ///         (once per organisation); executes it when strictly more than half
    ///         of the current organisations have approved.
    /// @param proposalId the proposal
    function approve(uint256 proposalId) external {
        bytes32 orgKey = adminOrgKey[msg.sender];
        require(orgKey != bytes32(0), "caller is not an admin of any organisation");
        _pending(proposalId);
        if (approvedBy[proposalId][orgKey]) {
            revert(string.concat("organisation ", orgs[orgKey].id, " has already approved this proposal"));
        }
        _approve(proposalId, orgKey);
    }

    /// @notice Cancels a pending proposal; only its proposer may.
    /// @param proposalId the proposal
    function cancel(uint256 proposalId) external {
        Proposal storage p = _pending(proposalId);
        require(p.proposer == msg.sender, "only the proposer may cancel a proposal");
        p.status = ProposalStatus.Cancelled;
        emit ProposalCancelled(proposalId, p.orgId, msg.sender);
    }

    function _pending(uint256 proposalId) private view returns (Proposal storage p) {
        require(proposalId < proposals.length, "unknown proposal");
        p = proposals[proposalId];
        require(p.status == ProposalStatus.Pending, "proposal is not pending");
        require(block.timestamp <= p.expiresAt, "proposal has expired");
    }

    function _approve(uint256 proposalId, bytes32 orgKey) private {
        Proposal storage p = proposals[proposalId];
        approvedBy[proposalId][orgKey] = true;
        p.approvals += 1;
        uint32 needed = uint32(orgKeys.length / 2 + 1);
        emit ProposalApproved(proposalId, p.orgId, orgs[orgKey].id, msg.sender, p.approvals, needed);
        if (p.approvals >= needed) {
            _checkNewOrg(p.orgId, p.name, p.admins);
            p.status = ProposalStatus.Executed;
            _addOrg(p.orgId, p.name, p.admins);
            emit ProposalExecuted(proposalId, p.orgId);
        }
    }

    function _checkNewOrg(string memory orgId, string memory name, address[] memory admins) private view {
        bytes memory b = bytes(orgId);
        require(b.length > 0 && b.length <= 32, "organisation id must be 1-32 bytes");
        for (uint256 i = 0; i < b.length; i++) {
            bytes1 c = b[i];
            bool ok = (c >= "a" && c <= "z") || (c >= "0" && c <= "9") || c == "-" || c == "_" || c == ".";
            require(ok, "organisation id may only contain a-z, 0-9, '.', '_' and '-'");
        }
        if (orgs[keccak256(b)].exists) revert(string.concat("organisation ", orgId, " already exists"));
        require(bytes(name).length > 0 && bytes(name).length <= 64, "organisation name must be 1-64 bytes");
        require(admins.length > 0, "an organisation needs at least one admin");
        require(admins.length <= MAX_ADMINS, "too many admins");
        for (uint256 i = 0; i < admins.length; i++) {
            require(admins[i] != address(0), "admin account is the zero address");
            require(adminOrgKey[admins[i]] == bytes32(0), "account is already an admin of an organisation");
            for (uint256 j = 0; j < i; j++) {
                require(admins[i] != admins[j], "duplicate admin account");
            }
        }
    }

    function _addOrg(string memory orgId, string memory name, address[] memory admins) private {
        bytes32 key = keccak256(bytes(orgId));
        Org storage o = orgs[key];
        o.id = orgId;
        o.name = name;
        o.addedAt = uint64(block.timestamp);
        o.exists = true;
        for (uint256 i = 0; i < admins.length; i++) {
            o.admins.push(admins[i]);
            adminOrgKey[admins[i]] = key;
        }
        orgKeys.push(key);
        emit OrganisationAdded(key, orgId, name, admins);
    }

    // ---------------------------------------------------------------- admins

    /// @notice Adds `account` as an admin of `orgId`; caller must be an admin of `orgId`.
    /// @param orgId the organisation
    /// @param account the new admin (not an admin of any organisation yet)
    function addAdmin(string calldata orgId, address account) external {
        bytes32 key = _existingOrg(orgId);
        _onlyAdminOf(key);
        require(account != address(0), "admin account is the zero address");
        require(adminOrgKey[account] == bytes32(0), "account is already an admin of an organisation");
        Org storage o = orgs[key];
        require(o.admins.length < MAX_ADMINS, "too many admins");
        o.admins.push(account);
        adminOrgKey[account] = key;
        emit AdminAdded(key, o.id, account, msg.sender);
    }

    /// @notice Removes `account` from the admins of `orgId` (never the last
    ///         one); caller must be an admin of `orgId` (may remove itself).
    /// @param orgId the organisation
    /// @param account the admin to remove
    function removeAdmin(string calldata orgId, address account) external {
        bytes32 key = _existingOrg(orgId);
        _onlyAdminOf(key);
        require(adminOrgKey[account] == key, "account is not an admin of this organisation");
        Org storage o = orgs[key];
        require(o.admins.length > 1, "cannot remove the last admin of an organisation");
        _removeAddress(o.admins, account);
        delete adminOrgKey[account];
        emit AdminRemoved(key, o.id, account, msg.sender);
    }

    // --------------------------------------------------------------- brokers

    /// @notice Registers a broker node of `orgId`; caller must be an admin of `orgId`.
    /// @param orgId the organisation operating the node
    /// @param account the node's ledger account (signs its transactions)
    /// @param signingKey the node's Ed25519 public key
    /// @param agreementKey the node's X25519 (HPKE) public key
    function addBroker(string calldata orgId, address account, bytes32 signingKey, bytes32 agreementKey) external {
        bytes32 key = _existingOrg(orgId);
        _onlyAdminOf(key);
        _addBroker(key, account, signingKey, agreementKey);
    }

    /// @notice Removes a broker node; caller must be an admin of the node's organisation.
    /// @param account the node's account
    function removeBroker(address account) external {
        bytes32 key = _brokerOrg(account);
        _onlyAdminOf(key);
        _removeBroker(key, account);
    }

    /// @notice Replaces a broker node by another account and/or keys (key
    ///         rotation: `newAccount == oldAccount`); caller must be an admin of
    ///         the node's organisation. Emits BrokerRemoved then BrokerAdded.
    /// @param oldAccount the node being replaced
    /// @param newAccount the replacement's account
    /// @param signingKey the replacement's Ed25519 public key
    /// @param agreementKey the replacement's X25519 (HPKE) public key
    function replaceBroker(address oldAccount, address newAccount, bytes32 signingKey, bytes32 agreementKey)
        external
    {
        bytes32 key = _brokerOrg(oldAccount);
        _onlyAdminOf(key);
        _removeBroker(key, oldAccount);
        _addBroker(key, newAccount, signingKey, agreementKey);
    }

    function _brokerOrg(address account) private view returns (bytes32) {
        require(brokers[account].exists, "account is not a registered broker");
        return brokers[account].orgKey;
    }

    function _addBroker(bytes32 key, address account, bytes32 signingKey, bytes32 agreementKey) private {
        require(account != address(0), "broker account is the zero address");
        require(!brokers[account].exists, "account is already a registered broker");
        require(signingKey != bytes32(0) && agreementKey != bytes32(0), "broker keys must not be zero");
        brokers[account] = Broker(key, signingKey, agreementKey, uint64(block.timestamp), true);
        brokerList.push(account);
        orgs[key].brokers.push(account);
        emit BrokerAdded(key, orgs[key].id, account, signingKey, agreementKey);
    }

    function _removeBroker(bytes32 key, address account) private {
        delete brokers[account];
        _removeAddress(brokerList, account);
        _removeAddress(orgs[key].brokers, account);
        emit BrokerRemoved(key, orgs[key].id, account, msg.sender);
    }

    /// @dev Swap-and-pop; order of the array is not preserved.
    function _removeAddress(address[] storage list, address account) private {
        uint256 n = list.length;
        for (uint256 i = 0; i < n; i++) {
            if (list[i] == account) {
                list[i] = list[n - 1];
                list.pop();
                return;
            }
        }
    }

    // ----------------------------------------------------------------- views

    /// @notice Number of organisations.
    function orgCount() external view returns (uint256) {
        return orgKeys.length;
    }

    /// @notice Id of the organisation at `index` (0 <= index < orgCount()).
    function orgIdAt(uint256 index) external view returns (string memory) {
        require(index < orgKeys.length, "index out of range");
        return orgs[orgKeys[index]].id;
    }

    /// @notice Whether organisation `orgId` exists.
    function isOrg(string calldata orgId) external view returns (bool) {
        return orgs[keccak256(bytes(orgId))].exists;
    }

    /// @notice Full record of organisation `orgId` (reverts if unknown).
    /// @return name display name
    /// @return admins admin accounts
    /// @return brokerAccounts broker node accounts
    /// @return addedAt unix time it joined
    function getOrg(string calldata orgId)
        external
        view
        returns (string memory name, address[] memory admins, address[] memory brokerAccounts, uint64 addedAt)
    {
        Org storage o = orgs[_existingOrg(orgId)];
        return (o.name, o.admins, o.brokers, o.addedAt);
    }

    /// @notice Whether `account` is an admin of organisation `orgId`.
    function isAdmin(string calldata orgId, address account) external view returns (bool) {
        bytes32 key = keccak256(bytes(orgId));
        return orgs[key].exists && adminOrgKey[account] == key;
    }

    /// @notice Organisation administered by `account`, or "" if none.
    function orgOfAdmin(address account) external view returns (string memory) {
        return orgs[adminOrgKey[account]].id;
    }

    /// @notice Whether `account` is a registered broker node.
    function isBroker(address account) external view returns (bool) {
        return brokers[account].exists;
    }

    /// @notice Organisation operating broker node `account`, or "" if it is not a broker.
    function orgOfBroker(address account) external view returns (string memory) {
        if (!brokers[account].exists) return "";
        return orgs[brokers[account].orgKey].id;
    }

    /// @notice Number of broker nodes (all organisations).
    function brokerCount() external view returns (uint256) {
        return brokerList.length;
    }

    /// @notice Account of the broker node at `index` (0 <= index < brokerCount()).
    function brokerAt(uint256 index) external view returns (address) {
        require(index < brokerList.length, "index out of range");
        return brokerList[index];
    }

    /// @notice Broker node record (reverts if `account` is not a broker).
    /// @return orgId operating organisation
    /// @return signingKey Ed25519 public key
    /// @return agreementKey X25519 (HPKE) public key
    /// @return addedAt unix time of registration
    function getBroker(address account)
        external
        view
        returns (string memory orgId, bytes32 signingKey, bytes32 agreementKey, uint64 addedAt)
    {
        require(brokers[account].exists, "account is not a registered broker");
        Broker storage b = brokers[account];
        return (orgs[b.orgKey].id, b.signingKey, b.agreementKey, b.addedAt);
    }

    /// @notice Number of proposals ever made.
    function proposalCount() external view returns (uint256) {
        return proposals.length;
    }

    /// @notice A proposal (status `Expired` for a pending proposal past its expiry).
    function getProposal(uint256 proposalId)
        external
        view
        returns (
            string memory orgId,
            string memory name,
            address[] memory admins,
            address proposer,
            string memory proposerOrg,
            uint64 createdAt,
            uint64 expiresAt,
            uint32 approvals,
            ProposalStatus status
        )
    {
        require(proposalId < proposals.length, "unknown proposal");
        Proposal storage p = proposals[proposalId];
        status = p.status;
        if (status == ProposalStatus.Pending && block.timestamp > p.expiresAt) status = ProposalStatus.Expired;
        return (
            p.orgId,
            p.name,
            p.admins,
            p.proposer,
            orgs[p.proposerOrgKey].id,
            p.createdAt,
            p.expiresAt,
            p.approvals,
            status
        );
    }

    /// @notice Whether organisation `orgId` has approved proposal `proposalId`.
    function hasApproved(uint256 proposalId, string calldata orgId) external view returns (bool) {
        return approvedBy[proposalId][keccak256(bytes(orgId))];
    }

    /// @notice Approvals a proposal needs now: strictly more than half of the organisations.
    function approvalsNeeded() external view returns (uint256) {
        return orgKeys.length / 2 + 1;
    }
}
