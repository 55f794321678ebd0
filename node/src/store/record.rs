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
//! ```
//! use valex_node::store::record::{self, RecordError};
//! use valex_proto::Digest;
//!
//! let bytes = record::encode(&Digest([7; 32])).unwrap();
//! assert_eq!(bytes[0], record::FORMAT_VERSION);
//! assert_eq!(record::decode::<Digest>(&bytes).unwrap(), Digest([7; 32]));
//! assert!(matches!(record::decode::<Digest>(&[9, b'1']), Err(RecordError::UnsupportedVersion { found: 9, .. })));
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The record format this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// The largest record read or written, version byte included. Real records are a few KiB (a
/// session holds at most two values of at most 16 KiB payload each, hex-encoded).
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// Why bytes are not a record of the expected type, or a record cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// No bytes at all.
    #[error("empty record")]
    Empty,
    /// Over [`MAX_RECORD_BYTES`]; not decoded.
    #[error("record of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The version byte is not [`FORMAT_VERSION`].
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
}

/// Encodes `record` as `FORMAT_VERSION ‖ JSON`. Refuses a result over [`MAX_RECORD_BYTES`]:
/// writing it would only have it set aside on the next load.
pub fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, RecordError> {
    let mut bytes = vec![FORMAT_VERSION];
    serde_json::to_writer(&mut bytes, record).map_err(|e| RecordError::Encode(e.to_string()))?;
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(RecordError::TooLarge { len: bytes.len(), max: MAX_RECORD_BYTES });
    }
    Ok(bytes)
}

/// Decodes a record written by [`encode`]: checks the size limit and the version byte, then
/// decodes the whole body (trailing bytes are an error).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RecordError> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(RecordError::TooLarge { len: bytes.len(), max: MAX_RECORD_BYTES });
    }
    let (&version, body) = bytes.split_first().ok_or(RecordError::Empty)?;
    if version != FORMAT_VERSION {
        return Err(RecordError::UnsupportedVersion { found: version, supported: FORMAT_VERSION });
    }
    serde_json::from_slice(body).map_err(|e| RecordError::Malformed(e.to_string()))
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
        assert_eq!(decode::<Digest>(&[]), Err(RecordError::Empty));
        assert!(matches!(decode::<Digest>(&[FORMAT_VERSION, b'{']), Err(RecordError::Malformed(_))));
        let good = encode(&Digest([1; 32])).unwrap();
        assert!(matches!(decode::<Digest>(&good[..good.len() - 3]), Err(RecordError::Malformed(_))));
        let mut trailing = good.clone();
        trailing.extend_from_slice(b"x");
        assert!(matches!(decode::<Digest>(&trailing), Err(RecordError::Malformed(_))));
        let huge = vec![FORMAT_VERSION; MAX_RECORD_BYTES + 1];
        assert_eq!(decode::<Digest>(&huge), Err(RecordError::TooLarge { len: MAX_RECORD_BYTES + 1, max: MAX_RECORD_BYTES }));
        assert!(matches!(encode(&"x".repeat(MAX_RECORD_BYTES)), Err(RecordError::TooLarge { .. })));
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
