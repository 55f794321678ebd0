//! The on-disk encoding of one record: a format-version byte, then the record as JSON.
//!
//! ```text
//! record = version (1 byte, FORMAT_VERSION) ‖ JSON of the record (serde)
//! ```
//!
//! Why JSON rather than a compact binary encoding such as postcard: a record that fails to decode
//! is set aside with the reason, and serde_json keeps the reason whole (e.g. "value id … does not
//! match its contents"), where postcard reduces every custom error to one opaque variant; JSON
//! names its fields, so a later format can add fields with defaults and an operator can read a
//! record with standard tools. The cost is size (values and signatures are hex, about 2× their
//! bytes), which is small next to the synced write each commit pays anyway.
//!
//! Values inside records go through their protobuf wire form and are re-checked when read (id,
//! sizes, issuer signature): see the `Deserialize` impl of [`valex_proto::value::Value`].
//!
//! The arbiter's decision store uses the same layout with its own [`RecordFormat`] (a smaller
//! size limit), and the same [`RecordError`] for a record it cannot write or load: which column,
//! which key, and the [`RecordDefect`] that says why.
//!
//! ```
//! use valex_node::store::record::{self, RecordDefect};
//! use valex_proto::Digest;
//!
//! let bytes = record::encode(&Digest([7; 32])).unwrap();
//! assert_eq!(bytes[0], record::FORMAT_VERSION);
//! assert_eq!(record::decode::<Digest>(&bytes).unwrap(), Digest([7; 32]));
//! assert!(matches!(record::decode::<Digest>(&[9, b'1']), Err(RecordDefect::UnsupportedVersion { found: 9, .. })));
//! ```

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The record format this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// The largest record read or written, version byte included. Real records are a few KiB (a
/// session holds at most two values of at most 16 KiB payload each, hex-encoded).
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// The node store's records: [`FORMAT_VERSION`], at most [`MAX_RECORD_BYTES`].
pub const NODE_FORMAT: RecordFormat = RecordFormat { version: FORMAT_VERSION, max_bytes: MAX_RECORD_BYTES };

/// One store's record layout: `version ‖ JSON`, at most `max_bytes` long (version byte included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordFormat {
    /// The version byte written and required.
    pub version: u8,
    /// The largest record read or written.
    pub max_bytes: usize,
}

impl RecordFormat {
    /// Encodes `record` as `version ‖ JSON`. Refuses a result over `max_bytes`: writing it would
    /// only have it set aside on the next load.
    pub fn encode<T: Serialize>(&self, record: &T) -> Result<Vec<u8>, RecordDefect> {
        let mut bytes = vec![self.version];
        serde_json::to_writer(&mut bytes, record).map_err(|e| RecordDefect::Encode(e.to_string()))?;
        if bytes.len() > self.max_bytes {
            return Err(RecordDefect::TooLarge { len: bytes.len(), max: self.max_bytes });
        }
        Ok(bytes)
    }

    /// Decodes a record written by [`encode`](Self::encode): checks the size limit and the
    /// version byte, then decodes the whole body (trailing bytes are an error).
    pub fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, RecordDefect> {
        if bytes.len() > self.max_bytes {
            return Err(RecordDefect::TooLarge { len: bytes.len(), max: self.max_bytes });
        }
        let (&version, body) = bytes.split_first().ok_or(RecordDefect::Empty)?;
        if version != self.version {
            return Err(RecordDefect::UnsupportedVersion { found: version, supported: self.version });
        }
        serde_json::from_slice(body).map_err(|e| RecordDefect::Malformed(e.to_string()))
    }
}

/// A stored record that cannot be written or loaded: where it is, and why.
///
/// ```
/// use valex_node::store::record::{RecordDefect, RecordError};
/// let error = RecordError { column: "vault", key: vec![0xab; 2], defect: RecordDefect::Empty };
/// assert_eq!(error.to_string(), "vault record abab: empty record");
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error("{column} record {}: {defect}", hex::encode(.key))]
pub struct RecordError {
    /// Its column family.
    pub column: &'static str,
    /// Its key there.
    pub key: Vec<u8>,
    /// Why.
    #[source]
    pub defect: RecordDefect,
}

/// Why bytes are not a record of the expected type under their key, or a record cannot be
/// written. The text is what a set-aside record's reason says.
///
/// Decoder errors (serde_json's) are neither `Clone` nor comparable and are kept as their text.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RecordDefect {
    /// No bytes at all.
    #[error("empty record")]
    Empty,
    /// Over the format's size limit; not decoded (or not written).
    #[error("record of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The version byte is not the format's.
    #[error("record format version {found} is not supported (this build reads {supported})")]
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
        /// The version this build reads.
        supported: u8,
    },
    /// The body does not decode, or decodes to something invalid (e.g. a tampered value).
    #[error("undecodable record: {0}")]
    Malformed(String),
    /// The record could not be encoded.
    #[error("unencodable record: {0}")]
    Encode(String),
    /// Its key is not a 32-byte id.
    #[error("key is {len} bytes, not a 32-byte id")]
    KeyLength {
        /// The key's length.
        len: usize,
    },
    /// Its key is not the id of what it holds.
    #[error("key does not match the record (which is for {actual})")]
    KeyMismatch {
        /// What the record is for.
        actual: String,
    },
    /// It decodes but fails the store's own check (e.g. a decision this arbiter did not sign).
    #[error("{0}")]
    Invalid(#[source] Arc<dyn std::error::Error + Send + Sync>),
}

impl RecordDefect {
    /// A record failing the store's own check, keeping the check's error whole.
    pub fn invalid(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Invalid(Arc::new(error))
    }

    /// Where it was: the [`RecordError`] of this defect in `column` under `key`.
    pub fn at(self, column: &'static str, key: &[u8]) -> RecordError {
        RecordError { column, key: key.to_vec(), defect: self }
    }
}

/// Encodes `record` in the node's format ([`NODE_FORMAT`]).
pub fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, RecordDefect> {
    NODE_FORMAT.encode(record)
}

/// Decodes a record in the node's format ([`NODE_FORMAT`]).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RecordDefect> {
    NODE_FORMAT.decode(bytes)
}

/// Serde for [`valex_proto::wire::ErrorCode`] (a prost enum, without serde of its own) by its protobuf
/// name, e.g. `"EXPIRY_OUT_OF_POLICY"`. Use with `#[serde(with = "crate::store::record::error_code")]`.
pub mod error_code {
    use serde::{Deserialize, Deserializer, Serializer};
    use valex_proto::wire::ErrorCode;

    /// Writes the code's protobuf name.
    pub fn serialize<S: Serializer>(code: &ErrorCode, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(code.as_str_name())
    }

    /// Reads a protobuf name; an unknown one is an error.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ErrorCode, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        ErrorCode::from_str_name(&name).ok_or_else(|| serde::de::Error::custom(format_args!("unknown error code {name:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use valex_proto::Digest;

    #[test]
    fn bad_records_are_typed_errors() {
        assert!(matches!(decode::<Digest>(&[]), Err(RecordDefect::Empty)));
        assert!(matches!(decode::<Digest>(&[FORMAT_VERSION, b'{']), Err(RecordDefect::Malformed(_))));
        let good = encode(&Digest([1; 32])).unwrap();
        assert!(matches!(decode::<Digest>(&good[..good.len() - 3]), Err(RecordDefect::Malformed(_))));
        let mut trailing = good.clone();
        trailing.extend_from_slice(b"x");
        assert!(matches!(decode::<Digest>(&trailing), Err(RecordDefect::Malformed(_))));
        let huge = vec![FORMAT_VERSION; MAX_RECORD_BYTES + 1];
        assert!(
            matches!(decode::<Digest>(&huge), Err(RecordDefect::TooLarge { len, max: MAX_RECORD_BYTES }) if len == MAX_RECORD_BYTES + 1)
        );
        assert!(matches!(encode(&"x".repeat(MAX_RECORD_BYTES)), Err(RecordDefect::TooLarge { .. })));
    }

    #[test]
    fn a_whole_node_state_round_trips_with_digest_map_keys() {
        use crate::exchange::{Acquired, NodeState, VaultEntry, WriteBatch, WriteOp};
        use valex_proto::{crypto::Keypair, value::Value};
        let value = Value::issue(&Keypair::from_seed([1; 32]), "ticket", 1, b"p".to_vec(), [2; 16]).unwrap();
        let mut state = NodeState::default();
        state.apply(&WriteBatch::new(vec![
            WriteOp::PutValue(VaultEntry { value: value.clone(), acquired: Acquired::Issued }),
            WriteOp::Lock { value: value.id(), session: Digest([3; 32]) },
        ]));
        assert_eq!(decode::<NodeState>(&encode(&state).unwrap()).unwrap(), state);
    }
}
