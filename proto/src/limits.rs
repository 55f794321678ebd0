//! Size limits from protocol.md, checked on every decoded input before it is used.

/// Longest value kind, in bytes of UTF-8 (protocol.md §3).
pub const MAX_KIND_BYTES: usize = 64;
/// Largest value payload (protocol.md §3).
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;
/// Length of a value serial.
pub const SERIAL_BYTES: usize = 16;
/// Largest encoded PeerId we accept (an ed25519 identity multihash is 38 bytes).
pub const MAX_PEER_ID_BYTES: usize = 64;
/// Largest error message carried in an [`crate::wire::ErrorReply`].
pub const MAX_ERROR_MESSAGE_BYTES: usize = 512;
/// Largest frame of the exchange and arbiter protocols: one value plus fixed-size fields.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Most addresses an arbiter announcement may carry.
pub const MAX_ANNOUNCED_ADDRS: usize = 16;
/// Longest announced address, name or version string.
pub const MAX_ANNOUNCED_STRING_BYTES: usize = 256;
