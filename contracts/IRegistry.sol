// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Registry view used by Groups
/// @notice The subset of `Registry` that the Groups contract calls.
interface IRegistry {
    /// @notice Device status; `Revoked` is final.
    enum DeviceStatus {
        None,
        Active,
        Revoked
    }

    /// @notice The device's organisation, keys, registration time and status;
    ///         reverts with "unknown device <id>" for an unknown id.
    function getDevice(string calldata deviceId)
        external
        view
        returns (string memory org, bytes32 signingKey, bytes32 agreementKey, uint64 registeredAt, DeviceStatus status);
}
