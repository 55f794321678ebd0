//! The quarantine entry format shared by the node's and the arbiter's RocksDB stores: a stored
//! record that does not decode or verify is moved, bytes unchanged, to a `quarantine` column family
//! under `column ‖ 0x00 ‖ key`, with the reason it was set aside. It is plain bytes, so it needs no
//! RocksDB: the arbiter's store and tools that inspect a database use it too.
//!
//! ```
//! use valex_node::store::quarantine::{entry_key, entry_value, parse_entry};
//! let (key, value) = (entry_key("vault", &[7; 4]), entry_value(1, "truncated", b"\x01{"));
//! let record = parse_entry(1, &key, &value);
//! assert_eq!((record.column.as_str(), record.key, record.reason.as_str(), record.raw), ("vault", vec![7; 4], "truncated", b"\x01{".to_vec()));
//! ```

/// The longest reason kept for a set-aside record (decoder messages may quote the bad input).
pub const MAX_REASON_BYTES: usize = 512;

/// A stored record that could not be loaded and was set aside (moved to quarantine).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SetAside {
    /// The column family (or part of the state) it was in, e.g. `vault`.
    pub column: String,
    /// Its key, in lower-case hex.
    pub key_hex: String,
    /// Why it was set aside.
    pub reason: String,
}

/// A record in a `quarantine` column family: where it was, why it was set aside, and its bytes
/// exactly as they were.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QuarantinedRecord {
    /// The column family it was in.
    pub column: String,
    /// Its key there.
    pub key: Vec<u8>,
    /// Why it was set aside.
    pub reason: String,
    /// Its bytes.
    pub raw: Vec<u8>,
}

/// `reason`, cut to [`MAX_REASON_BYTES`] at a character boundary (marked with `…`).
pub fn bounded_reason(mut reason: String) -> String {
    if reason.len() > MAX_REASON_BYTES {
        let mut cut = MAX_REASON_BYTES;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        reason.push('…');
    }
    reason
}

/// The quarantine key: `column ‖ 0x00 ‖ key`.
pub fn entry_key(column: &str, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(column.len() + 1 + key.len());
    out.extend_from_slice(column.as_bytes());
    out.push(0);
    out.extend_from_slice(key);
    out
}

/// The quarantine value: `version ‖ u32 BE reason length ‖ reason ‖ the record's bytes, unchanged`.
pub fn entry_value(version: u8, reason: &str, raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + reason.len() + raw.len());
    out.push(version);
    out.extend_from_slice(&u32::try_from(reason.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(raw);
    out
}

/// Reads a quarantine entry back; an entry of another version or cut short is returned whole as
/// its raw bytes, with a reason saying it could not be read.
pub fn parse_entry(version: u8, key: &[u8], value: &[u8]) -> QuarantinedRecord {
    let (column, original_key) = match key.iter().position(|&b| b == 0) {
        Some(at) => (String::from_utf8_lossy(&key[..at]).into_owned(), key[at + 1..].to_vec()),
        None => (String::new(), key.to_vec()),
    };
    let parsed = value.split_first().filter(|(found, _)| **found == version).and_then(|(_, rest)| {
        let (len, rest) = rest.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        let reason = rest.get(..len)?;
        Some((String::from_utf8_lossy(reason).into_owned(), rest[len..].to_vec()))
    });
    let (reason, raw) = parsed.unwrap_or_else(|| ("(unreadable quarantine entry)".to_owned(), value.to_vec()));
    QuarantinedRecord { column, key: original_key, reason, raw }
}
