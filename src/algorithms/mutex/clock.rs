//! The two clocks every mutual-exclusion message and report carries.

/// A Lamport timestamp.
pub type Lamport = u64;

/// A vector clock: entry `i - 1` counts the events of process `i`.
pub type VectorClock = Vec<u64>;
