// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title MQTT topic name or filter check shared by Registry and Groups
library TopicFilter {
    /// @notice Longest topic name or filter, in bytes.
    uint256 internal constant MAX_TOPIC = 256;

    /// @dev MQTT topic name or filter: 1..MAX_TOPIC bytes, no NUL, not starting
    ///      with '$', '+' only as a whole level, '#' only as the whole last level.
    function check(string memory name) internal pure {
        bytes memory b = bytes(name);
        uint256 n = b.length;
        require(n > 0 && n <= MAX_TOPIC, "topic must be 1-256 bytes");
        require(b[0] != "$", "topics starting with '$' are reserved");
        for (uint256 i = 0; i < n; i++) {
            bytes1 c = b[i];
            require(c != 0, "topic must not contain NUL");
            if (c == "+" || c == "#") {
                bool levelStart = i == 0 || b[i - 1] == "/";
                bool levelEnd = i + 1 == n || b[i + 1] == "/";
                require(levelStart && levelEnd, "wildcard must occupy a whole topic level");
                require(c == "+" || i + 1 == n, "'#' must be the last topic level");
            }
        }
    }
}
