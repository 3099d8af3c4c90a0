// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Consortium view used by Registry and Audit
/// @notice The subset of `Consortium` that the other ledgermq contracts call.
interface IConsortium {
    /// @notice Whether organisation `orgId` exists.
    function isOrg(string calldata orgId) external view returns (bool);

    /// @notice Whether `account` is an admin of organisation `orgId`.
    function isAdmin(string calldata orgId, address account) external view returns (bool);

    /// @notice Organisation administered by `account`, or "" if none.
    function orgOfAdmin(address account) external view returns (string memory);

    /// @notice Whether `account` is a registered broker node.
    function isBroker(address account) external view returns (bool);

    /// @notice Organisation operating broker node `account`, or "" if it is not a broker.
    function orgOfBroker(address account) external view returns (string memory);
}
