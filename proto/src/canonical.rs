//! The canonical bytes that are signed or hashed (protocol.md §2).
//!
//! Every string is `tag ‖ field ‖ field …`: the ASCII tag as it is, then each field as a
//! 4-byte big-endian length followed by its bytes. An integer field is its 8-byte big-endian
//! encoding, length-prefixed like any other field (so its prefix is always `00 00 00 08`).
//! A PeerId field is the PeerId's binary form (`PeerId::to_bytes`, an identity multihash of the
//! protobuf-encoded ed25519 public key). An outcome field is its ASCII name, `CANCELLED` or
//! `COMPLETED`. There is one function per domain tag, and nothing here ever reads a protobuf
//! encoding.
//!
//! ```
//! use valex_proto::canonical;
//! let bytes = canonical::s1_preimage(&[0u8; 32]);
//! assert!(bytes.starts_with(b"valex/s1"));
//! assert_eq!(bytes.len(), 8 + 4 + 32);
//! ```

use libp2p_identity::PeerId;

use crate::digest::Digest;
use crate::message::{Outcome, Terms};

/// Tag of a value's issue bytes.
pub const TAG_ISSUE: &str = "valex/issue/v1";
/// Tag of s1's preimage.
pub const TAG_S1: &str = "valex/s1";
/// Tag of s2's preimage.
pub const TAG_S2: &str = "valex/s2";
/// Tag of the terms hashed into h.
pub const TAG_TERMS: &str = "valex/terms/v1";
/// Tag of B's agreement signature Sa.
pub const TAG_AGREE: &str = "valex/agree/v1";
/// Tag of A's confirmation signature Se.
pub const TAG_CONFIRM: &str = "valex/confirm/v1";
/// Tag of B's cancel request signature Sab.
pub const TAG_CANCEL: &str = "valex/cancel/v1";
/// Tag of the arbiter's decision signature.
pub const TAG_DECISION: &str = "valex/decision/v1";
/// Tag of an arbiter's gossipsub announcement.
pub const TAG_ANNOUNCE: &str = "valex/announce/v1";

/// Builds one canonical byte string.
struct Canonical(Vec<u8>);

impl Canonical {
    fn new(tag: &str) -> Self {
        Self(tag.as_bytes().to_vec())
    }

    fn field(mut self, bytes: &[u8]) -> Self {
        // Every field we build is bounded far below 4 GiB (limits.rs), so the cast is lossless.
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(bytes);
        self
    }

    fn integer(self, value: u64) -> Self {
        self.field(&value.to_be_bytes())
    }

    fn peer(self, peer: &PeerId) -> Self {
        self.field(&peer.to_bytes())
    }

    fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// `valex/issue/v1 ‖ issuer ‖ kind ‖ amount ‖ payload ‖ serial`: signed by the issuer, and
/// hashed into the value's id.
pub fn issue_bytes(issuer: &PeerId, kind: &str, amount: u64, payload: &[u8], serial: &[u8; 16]) -> Vec<u8> {
    Canonical::new(TAG_ISSUE).peer(issuer).field(kind.as_bytes()).integer(amount).field(payload).field(serial).finish()
}

/// `valex/s1 ‖ r1`, hashed into s1.
pub fn s1_preimage(r1: &[u8; 32]) -> Vec<u8> {
    Canonical::new(TAG_S1).field(r1).finish()
}

/// `valex/s2 ‖ r2`, hashed into s2.
pub fn s2_preimage(r2: &[u8; 32]) -> Vec<u8> {
    Canonical::new(TAG_S2).field(r2).finish()
}

/// `valex/terms/v1 ‖ s1 ‖ A ‖ B ‖ T ‖ V1.id ‖ V2.id ‖ expires_at_ms`, hashed into h.
pub fn terms_bytes(terms: &Terms) -> Vec<u8> {
    Canonical::new(TAG_TERMS)
        .field(&terms.s1.0)
        .peer(&terms.initiator)
        .peer(&terms.responder)
        .peer(&terms.arbiter)
        .field(&terms.v1_id.0)
        .field(&terms.v2_id.0)
        .integer(terms.expires_at_ms)
        .finish()
}

/// `valex/agree/v1 ‖ h ‖ s2`, signed by B (Sa).
pub fn agree_bytes(h: &Digest, s2: &Digest) -> Vec<u8> {
    Canonical::new(TAG_AGREE).field(&h.0).field(&s2.0).finish()
}

/// `valex/confirm/v1 ‖ h ‖ s2`, signed by A (Se).
pub fn confirm_bytes(h: &Digest, s2: &Digest) -> Vec<u8> {
    Canonical::new(TAG_CONFIRM).field(&h.0).field(&s2.0).finish()
}

/// `valex/cancel/v1 ‖ h ‖ s2`, signed by B (Sab).
pub fn cancel_bytes(h: &Digest, s2: &Digest) -> Vec<u8> {
    Canonical::new(TAG_CANCEL).field(&h.0).field(&s2.0).finish()
}

/// `valex/decision/v1 ‖ h ‖ s2 ‖ outcome`, signed by the arbiter.
pub fn decision_bytes(h: &Digest, s2: &Digest, outcome: Outcome) -> Vec<u8> {
    Canonical::new(TAG_DECISION).field(&h.0).field(&s2.0).field(outcome.name().as_bytes()).finish()
}

/// `valex/announce/v1 ‖ peer ‖ n ‖ addr_1 … addr_n ‖ name ‖ version ‖ issued_at_ms`, signed by an
/// arbiter announcing itself.
pub fn announce_bytes(peer: &PeerId, addrs: &[String], name: &str, version: &str, issued_at_ms: u64) -> Vec<u8> {
    let mut canonical = Canonical::new(TAG_ANNOUNCE).peer(peer).integer(addrs.len() as u64);
    for addr in addrs {
        canonical = canonical.field(addr.as_bytes());
    }
    canonical.field(name.as_bytes()).field(version.as_bytes()).integer(issued_at_ms).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_length_prefixed_and_integers_are_eight_bytes() {
        let bytes = Canonical::new("t").field(b"ab").integer(1).finish();
        assert_eq!(bytes, [b't', 0, 0, 0, 2, b'a', b'b', 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn moving_bytes_between_fields_changes_the_string() {
        let a = Canonical::new("t").field(b"ab").field(b"c").finish();
        let b = Canonical::new("t").field(b"a").field(b"bc").finish();
        assert_ne!(a, b);
    }
}
