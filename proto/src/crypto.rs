//! Signing with a node's ed25519 identity and strict verification against a [`PeerId`].
//!
//! A PeerId is a node's signing identity: ed25519 PeerIds inline the public key, so a verifier
//! recovers the key from the PeerId alone (protocol.md §2). Verification is ed25519-dalek's
//! `verify_strict`, which also refuses small-order keys and non-canonical signatures.
//!
//! ```
//! use valex_proto::crypto::{Keypair, verify};
//! let key = Keypair::from_seed([1; 32]);
//! let sig = key.sign(b"hello");
//! assert!(verify(&key.peer_id(), b"hello", &sig).is_ok());
//! assert!(verify(&key.peer_id(), b"bye", &sig).is_err());
//! ```

use libp2p_identity::{PeerId, PublicKey, ed25519};

use crate::digest::Signature;

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The PeerId does not inline a public key (it is a hash of one).
    #[error("peer id {0} does not inline its public key")]
    NotInlineKey(PeerId),
    /// The PeerId inlines a key that is not ed25519, or an undecodable one.
    #[error("peer id {0} does not carry a valid ed25519 public key")]
    NotEd25519(PeerId),
    /// The signature does not verify.
    #[error("signature does not verify against {0}")]
    BadSignature(PeerId),
}

/// The multihash code of an identity hash (the key is inlined).
const IDENTITY_MULTIHASH: u64 = 0x00;

/// Recovers the ed25519 verifying key a PeerId inlines.
pub fn verifying_key(peer: &PeerId) -> Result<ed25519_dalek::VerifyingKey, VerifyError> {
    let multihash = peer.as_ref();
    if multihash.code() != IDENTITY_MULTIHASH {
        return Err(VerifyError::NotInlineKey(*peer));
    }
    let public = PublicKey::try_decode_protobuf(multihash.digest())
        .ok()
        .and_then(|key| key.try_into_ed25519().ok())
        .ok_or(VerifyError::NotEd25519(*peer))?;
    ed25519_dalek::VerifyingKey::from_bytes(&public.to_bytes()).map_err(|_| VerifyError::NotEd25519(*peer))
}

/// Verifies `sig` over `message` against the key `signer` inlines, strictly.
pub fn verify(signer: &PeerId, message: &[u8], sig: &Signature) -> Result<(), VerifyError> {
    let key = verifying_key(signer)?;
    key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&sig.0)).map_err(|_| VerifyError::BadSignature(*signer))
}

/// Whether `peer` is a well-formed ed25519 PeerId that signatures can be checked against.
pub fn is_signing_identity(peer: &PeerId) -> bool {
    verifying_key(peer).is_ok()
}

/// A node's ed25519 identity: its libp2p key and its signing key are the same.
#[derive(Clone)]
pub struct Keypair {
    inner: ed25519::Keypair,
    peer_id: PeerId,
}

impl Keypair {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self::from_ed25519(ed25519::Keypair::generate())
    }

    /// The key whose secret is `seed` (for fixed test keys and for key files).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let mut bytes = seed;
        #[allow(clippy::expect_used)]
        let secret = ed25519::SecretKey::try_from_bytes(&mut bytes).expect("any 32 bytes are an ed25519 secret key");
        Self::from_ed25519(ed25519::Keypair::from(secret))
    }

    fn from_ed25519(inner: ed25519::Keypair) -> Self {
        let peer_id = PeerId::from_public_key(&PublicKey::from(inner.public()));
        Self { inner, peer_id }
    }

    /// The 32-byte secret seed (for writing a key file).
    pub fn seed(&self) -> [u8; 32] {
        let mut seed = [0u8; 32];
        seed.copy_from_slice(self.inner.secret().as_ref());
        seed
    }

    /// This identity's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Signs `message` (ed25519 is deterministic: the same message gives the same signature).
    pub fn sign(&self, message: &[u8]) -> Signature {
        let bytes = self.inner.sign(message);
        let mut sig = [0u8; 64];
        sig.copy_from_slice(&bytes[..64]);
        Signature(sig)
    }

    /// The same key as a libp2p keypair, for the swarm's noise handshake.
    pub fn to_libp2p(&self) -> libp2p_identity::Keypair {
        libp2p_identity::Keypair::from(self.inner.clone())
    }
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keypair({})", self.peer_id)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use sha2::{Digest as _, Sha256};

    use super::*;

    /// The multihash code of SHA-256, which libp2p uses for keys too long to inline.
    const SHA256_MULTIHASH: u8 = 0x12;

    /// `key`'s PeerId in hashed form: the SHA-256 multihash of its protobuf-encoded public key,
    /// as libp2p derives the id of a key whose encoding is over 42 bytes (RSA, ECDSA, ...). The
    /// key is real and can sign, but a verifier holding only this id cannot recover it.
    pub(crate) fn hashed_peer_id(key: &Keypair) -> PeerId {
        let digest = Sha256::digest(key.to_libp2p().public().encode_protobuf());
        let mut multihash = vec![SHA256_MULTIHASH, 32];
        multihash.extend_from_slice(&digest);
        let peer = PeerId::from_bytes(&multihash).unwrap();
        assert_eq!(peer.as_ref().code(), u64::from(SHA256_MULTIHASH));
        peer
    }

    #[test]
    fn seed_round_trips() {
        let key = Keypair::from_seed([9; 32]);
        assert_eq!(key.seed(), [9; 32]);
        assert_eq!(Keypair::from_seed(key.seed()).peer_id(), key.peer_id());
    }

    #[test]
    fn hashed_peer_ids_are_refused() {
        let key = Keypair::from_seed([5; 32]);
        let sig = key.sign(b"x");
        assert_eq!(verify(&key.peer_id(), b"x", &sig), Ok(()), "the inline id of the same key verifies");
        let hashed = hashed_peer_id(&key);
        assert!(!is_signing_identity(&hashed), "a hashed id is not a signing identity");
        assert_eq!(verify(&hashed, b"x", &sig), Err(VerifyError::NotInlineKey(hashed)));
    }
}
