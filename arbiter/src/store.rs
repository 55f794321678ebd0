//! [`DecisionStore`]: the arbiter's decisions and equivocation evidence in RocksDB.
//!
//! | column family | key | record |
//! |---|---|---|
//! | `decisions` | s2 (32 bytes) | [`DecisionRecord`] |
//! | `equivocations` | sequence number (u64 big-endian) | [`EquivocationEvidence`], append only |
//! | `quarantine` | column ‖ 0x00 ‖ key | records set aside by a load |
//! | `meta` | `format_version` | one byte, [`FORMAT_VERSION`] |
//!
//! A record is `FORMAT_VERSION ‖ JSON` (the node's store uses the same layout, see
//! `valex_node::store::record` for why JSON). Every write is synced. First request wins is the
//! [`Arbiter`](crate::Arbiter)'s rule, not the store's: [`DecisionStore::put`] writes what it is
//! given, and the driver only calls it with [`ArbiterStep::persist`](crate::ArbiterStep).
//!
//! Loading checks each decision against the store's own arbiter key: the record's s2 is its key,
//! its terms name this arbiter, its h is the terms' hash and its signature is this arbiter's. A
//! record that fails is set aside into `quarantine` and reported, never acted on.
//!
//! Calls block on disk I/O (a put waits for an fsync); they are short, so the arbiter's event
//! loop calls them inline.
//!
//! ```
//! use valex_arbiter::store::DecisionStore;
//! use valex_proto::crypto::Keypair;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let key = Keypair::from_seed([1; 32]);
//! let mut store = DecisionStore::open(dir.path(), key.peer_id()).unwrap();
//! let loaded = store.load().unwrap();
//! assert!(loaded.decisions.is_empty() && loaded.set_aside.is_empty());
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, Options, WriteOptions};
use serde::Serialize;
use serde::de::DeserializeOwned;
use valex_node::store::quarantine::{self, QuarantinedRecord, SetAside};
use valex_proto::{Digest, PeerId};

use crate::{ArbiterError, DecisionRecord};

/// The column family names.
pub mod columns {
    /// Decisions, by s2.
    pub const DECISIONS: &str = "decisions";
    /// Equivocation evidence, in the order it was recorded.
    pub const EQUIVOCATIONS: &str = "equivocations";
    /// Records a load could not accept, set aside with the reason.
    pub const QUARANTINE: &str = "quarantine";
    /// The store's format version.
    pub const META: &str = "meta";
    /// All of them.
    pub const ALL: [&str; 4] = [DECISIONS, EQUIVOCATIONS, QUARANTINE, META];
}

/// The record format this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// The largest record read or written. A decision record is well under 2 KiB.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

const FORMAT_KEY: &[u8] = b"format_version";

/// Evidence that someone asked about an s2 under a different h than the one decided.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct EquivocationEvidence {
    /// The session's s2.
    pub s2: Digest,
    /// The h the decision was made under.
    pub decided_h: Digest,
    /// The h of the equivocating request.
    pub asked_h: Digest,
    /// Who sent it.
    pub requester: PeerId,
    /// When, in ms since the Unix epoch.
    pub at_ms: u64,
}

impl EquivocationEvidence {
    /// The evidence in an [`ArbiterError::Equivocation`] refusal of `requester`'s request at
    /// `at_ms`; `None` for any other refusal.
    pub fn from_error(error: &ArbiterError, requester: PeerId, at_ms: u64) -> Option<Self> {
        match error {
            ArbiterError::Equivocation { s2, decided_h, asked_h } => {
                Some(Self { s2: *s2, decided_h: *decided_h, asked_h: *asked_h, requester, at_ms })
            }
            _ => None,
        }
    }
}

/// What [`DecisionStore::load`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadedDecisions {
    /// Every decision that checked out, by s2: hand it to [`Arbiter::new`](crate::Arbiter::new).
    pub decisions: BTreeMap<Digest, DecisionRecord>,
    /// The records that did not.
    pub set_aside: Vec<SetAside>,
}

/// Why the decision store could not open, write or load.
#[derive(Debug, thiserror::Error)]
pub enum DecisionStoreError {
    /// RocksDB failed (I/O, detected corruption, the directory is locked by another process, …).
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A column family is missing (cannot happen for a store opened by [`DecisionStore::open`]).
    #[error("column family {0} is missing")]
    MissingColumn(&'static str),
    /// The store was written in a format this build does not read.
    #[error("store at {path} has format version {found}, this build reads version {supported}")]
    UnsupportedFormat {
        /// The store's directory.
        path: PathBuf,
        /// The stored version bytes, in hex.
        found: String,
        /// The version this build reads.
        supported: u8,
    },
    /// A record could not be encoded; nothing was written.
    #[error("cannot encode a record: {0}")]
    Encode(String),
    /// A decision to put does not check out against this store's arbiter (it would be set aside
    /// on the next load); nothing was written.
    #[error("refusing to store decision for s2 {s2}: {reason}")]
    InvalidDecision {
        /// Its s2.
        s2: Digest,
        /// Why.
        reason: String,
    },
}

/// The arbiter's durable decisions, in a RocksDB directory.
pub struct DecisionStore {
    db: DB,
    path: PathBuf,
    arbiter: PeerId,
    next_equivocation: u64,
}

const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<DecisionStore>();
};

impl fmt::Debug for DecisionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecisionStore").field("path", &self.path).field("arbiter", &self.arbiter).finish_non_exhaustive()
    }
}

impl DecisionStore {
    /// Opens (creating if missing) the store in directory `path`, for the arbiter `arbiter`:
    /// decisions that are not signed by it are set aside when loading.
    pub fn open(path: impl AsRef<Path>, arbiter: PeerId) -> Result<Self, DecisionStoreError> {
        let path = path.as_ref().to_path_buf();
        let mut db_options = Options::default();
        db_options.create_if_missing(true);
        db_options.create_missing_column_families(true);
        db_options.set_compression_type(DBCompressionType::Lz4);
        let descriptors = columns::ALL.iter().map(|name| {
            let mut options = Options::default();
            options.set_compression_type(DBCompressionType::Lz4);
            ColumnFamilyDescriptor::new(*name, options)
        });
        let db = DB::open_cf_descriptors(&db_options, &path, descriptors)?;
        let mut store = Self { db, path, arbiter, next_equivocation: 0 };
        store.check_format()?;
        store.next_equivocation = store.last_equivocation()?.map_or(0, |last| last.saturating_add(1));
        Ok(store)
    }

    /// The arbiter whose decisions this store holds.
    pub fn arbiter(&self) -> PeerId {
        self.arbiter
    }

    /// Durably records a decision (one synced write), replacing any record for its s2. Refuses a
    /// record that does not check out against this store's arbiter.
    pub fn put(&mut self, record: &DecisionRecord) -> Result<(), DecisionStoreError> {
        let s2 = record.decision.s2;
        check_decision(&self.arbiter, &s2, record).map_err(|reason| DecisionStoreError::InvalidDecision { s2, reason })?;
        let mut write = rocksdb::WriteBatch::default();
        write.put_cf(self.cf(columns::DECISIONS)?, s2, encode(record)?);
        self.write_synced(write)
    }

    /// Loads every decision that checks out (see the [module docs](self)); the others are logged,
    /// moved to `quarantine` in one synced write and reported.
    pub fn load(&mut self) -> Result<LoadedDecisions, DecisionStoreError> {
        let mut decisions = BTreeMap::new();
        let mut bad = Vec::new();
        let mut it = self.db.raw_iterator_cf(self.cf(columns::DECISIONS)?);
        it.seek_to_first();
        while let (Some(key), Some(bytes)) = (it.key(), it.value()) {
            match accept_decision(&self.arbiter, key, bytes) {
                Ok((s2, record)) => {
                    decisions.insert(s2, record);
                }
                Err(reason) => bad.push((key.to_vec(), bytes.to_vec(), quarantine::bounded_reason(reason))),
            }
            it.next();
        }
        it.status()?;
        drop(it);
        let set_aside = self.quarantine(columns::DECISIONS, bad)?;
        Ok(LoadedDecisions { decisions, set_aside })
    }

    /// Appends equivocation evidence (one synced write); returns its sequence number.
    pub fn record_equivocation(&mut self, evidence: &EquivocationEvidence) -> Result<u64, DecisionStoreError> {
        let seq = self.next_equivocation;
        let mut write = rocksdb::WriteBatch::default();
        write.put_cf(self.cf(columns::EQUIVOCATIONS)?, seq.to_be_bytes(), encode(evidence)?);
        self.write_synced(write)?;
        self.next_equivocation = seq.saturating_add(1);
        Ok(seq)
    }

    /// The equivocation evidence recorded so far, oldest first. Entries that do not decode are
    /// skipped with a warning (evidence is kept as it is, never moved).
    pub fn equivocations(&self) -> Result<Vec<EquivocationEvidence>, DecisionStoreError> {
        let mut out = Vec::new();
        let mut it = self.db.raw_iterator_cf(self.cf(columns::EQUIVOCATIONS)?);
        it.seek_to_first();
        while let (Some(key), Some(bytes)) = (it.key(), it.value()) {
            match decode::<EquivocationEvidence>(bytes) {
                Ok(evidence) => out.push(evidence),
                Err(reason) => {
                    tracing::warn!(key = %hex::encode(key), reason = %quarantine::bounded_reason(reason), "undecodable equivocation evidence skipped")
                }
            }
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    /// Every record set aside so far, in key order.
    pub fn quarantined(&self) -> Result<Vec<QuarantinedRecord>, DecisionStoreError> {
        let mut out = Vec::new();
        let mut it = self.db.raw_iterator_cf(self.cf(columns::QUARANTINE)?);
        it.seek_to_first();
        while let (Some(key), Some(value)) = (it.key(), it.value()) {
            out.push(quarantine::parse_entry(FORMAT_VERSION, key, value));
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    fn check_format(&self) -> Result<(), DecisionStoreError> {
        let meta = self.cf(columns::META)?;
        match self.db.get_pinned_cf(meta, FORMAT_KEY)? {
            None => {
                let mut write = rocksdb::WriteBatch::default();
                write.put_cf(meta, FORMAT_KEY, [FORMAT_VERSION]);
                self.write_synced(write)
            }
            Some(found) if *found == [FORMAT_VERSION] => Ok(()),
            Some(found) => Err(DecisionStoreError::UnsupportedFormat {
                path: self.path.clone(),
                found: hex::encode(&found[..found.len().min(16)]),
                supported: FORMAT_VERSION,
            }),
        }
    }

    /// The sequence number of the last equivocation entry, if any.
    fn last_equivocation(&self) -> Result<Option<u64>, DecisionStoreError> {
        let mut it = self.db.raw_iterator_cf(self.cf(columns::EQUIVOCATIONS)?);
        it.seek_to_last();
        let last = it.key().map(|key| key.first_chunk::<8>().map_or(0, |seq| u64::from_be_bytes(*seq)));
        it.status()?;
        Ok(last)
    }

    fn cf(&self, name: &'static str) -> Result<&ColumnFamily, DecisionStoreError> {
        self.db.cf_handle(name).ok_or(DecisionStoreError::MissingColumn(name))
    }

    fn write_synced(&self, write: rocksdb::WriteBatch) -> Result<(), DecisionStoreError> {
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db.write_opt(write, &options)?;
        Ok(())
    }

    fn quarantine(&self, column: &'static str, bad: Vec<(Vec<u8>, Vec<u8>, String)>) -> Result<Vec<SetAside>, DecisionStoreError> {
        if bad.is_empty() {
            return Ok(Vec::new());
        }
        let (quarantine, source) = (self.cf(columns::QUARANTINE)?, self.cf(column)?);
        let mut write = rocksdb::WriteBatch::default();
        for (key, raw, reason) in &bad {
            write.put_cf(quarantine, quarantine::entry_key(column, key), quarantine::entry_value(FORMAT_VERSION, reason, raw));
            write.delete_cf(source, key);
        }
        self.write_synced(write)?;
        Ok(bad
            .into_iter()
            .map(|(key, _, reason)| {
                let key_hex = hex::encode(key);
                tracing::warn!(column, key = %key_hex, reason = %reason, "stored decision set aside into quarantine");
                SetAside { column: column.to_owned(), key_hex, reason }
            })
            .collect())
    }
}

/// Decodes and checks one stored decision under `key`.
fn accept_decision(arbiter: &PeerId, key: &[u8], bytes: &[u8]) -> Result<(Digest, DecisionRecord), String> {
    let s2 = Digest::from_slice(key).ok_or_else(|| format!("key is {} bytes, not a 32-byte s2", key.len()))?;
    let record: DecisionRecord = decode(bytes)?;
    check_decision(arbiter, &s2, &record)?;
    Ok((s2, record))
}

/// The record is for `s2`, its terms name `arbiter`, and its decision is `arbiter`'s signature
/// over the terms' h and `s2`.
fn check_decision(arbiter: &PeerId, s2: &Digest, record: &DecisionRecord) -> Result<(), String> {
    if record.terms.arbiter != *arbiter {
        return Err(format!("the terms name arbiter {}, not this store's {arbiter}", record.terms.arbiter));
    }
    record.decision.verify(arbiter, s2, &record.terms.h()).map_err(|e| format!("decision does not check out: {e}"))
}

fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, DecisionStoreError> {
    let mut bytes = vec![FORMAT_VERSION];
    serde_json::to_writer(&mut bytes, record).map_err(|e| DecisionStoreError::Encode(e.to_string()))?;
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(DecisionStoreError::Encode(format!("record of {} bytes is over the {MAX_RECORD_BYTES}-byte limit", bytes.len())));
    }
    Ok(bytes)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(format!("record of {} bytes is over the {MAX_RECORD_BYTES}-byte limit", bytes.len()));
    }
    let (&version, body) = bytes.split_first().ok_or("empty record")?;
    if version != FORMAT_VERSION {
        return Err(format!("record format version {version} is not supported (this build reads {FORMAT_VERSION})"));
    }
    serde_json::from_slice(body).map_err(|e| format!("undecodable record: {e}"))
}
