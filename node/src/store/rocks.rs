//! [`RocksStore`]: a node's state in RocksDB.
//!
//! One column family per part of [`NodeState`], keyed by the 32-byte value id or session id,
//! each record encoded by [`super::record`]:
//!
//! | column family | key | record |
//! |---|---|---|
//! | `vault` | value id | [`VaultEntry`] |
//! | `locks` | value id | the [`SessionId`] it is locked for |
//! | `receipts` | value id | [`Receipt`] |
//! | `sessions` | s1 | [`Session`] |
//! | `quarantine` | column ‖ 0x00 ‖ key | records set aside by a load ([`QuarantinedRecord`]) |
//! | `meta` | `format_version` | one byte, [`record::FORMAT_VERSION`] |
//!
//! A commit is one RocksDB write batch across the column families, written with `sync = true`:
//! RocksDB's write-ahead log makes it atomic across column families and durable once it returns.
//!
//! Calls block on disk I/O (a commit waits for an fsync). They are short, so the node's event
//! loop calls them inline from its tokio task; a load at startup reads everything and is best
//! done before the loop starts.

use std::fmt;
use std::path::{Path, PathBuf};

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, Options, WriteOptions};
use valex_proto::Digest;

use super::quarantine::{self, QuarantinedRecord, SetAside};
use super::record::{self, RecordError};

use super::{Loaded, Store};
use crate::exchange::{NodeState, Receipt, Session, SessionId, VaultEntry, WriteBatch, WriteOp};

/// The column family names.
pub mod columns {
    /// Values in the vault.
    pub const VAULT: &str = "vault";
    /// Locks on vault values offered in open sessions.
    pub const LOCKS: &str = "locks";
    /// Receipts for values acquired by exchange.
    pub const RECEIPTS: &str = "receipts";
    /// Sessions, open or ended.
    pub const SESSIONS: &str = "sessions";
    /// Records a load could not decode, set aside with the reason.
    pub const QUARANTINE: &str = "quarantine";
    /// The store's format version.
    pub const META: &str = "meta";
    /// All of them.
    pub const ALL: [&str; 6] = [VAULT, LOCKS, RECEIPTS, SESSIONS, QUARANTINE, META];
}

/// The `meta` key of the store's format version.
const FORMAT_KEY: &[u8] = b"format_version";

/// Why the store could not open, commit or load.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB failed (I/O, corruption it detected itself, the directory is locked by another
    /// process, …).
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A column family is missing (cannot happen for a store opened by [`RocksStore::open`]).
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
    /// A record of the batch could not be encoded; nothing was written.
    #[error("cannot write a {column} record: {source}")]
    Encode {
        /// Its column family.
        column: &'static str,
        /// Why.
        source: RecordError,
    },
}

/// Why a stored record was set aside.
#[derive(Debug, thiserror::Error)]
enum Defect {
    /// It does not decode.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// Its key is not a 32-byte id.
    #[error("key is {len} bytes, not a 32-byte id")]
    KeyLength { len: usize },
    /// Its key is not the id of what it holds.
    #[error("key does not match the record (which is for {actual})")]
    KeyMismatch { actual: String },
}

impl Defect {
    fn reason(&self) -> String {
        quarantine::bounded_reason(self.to_string())
    }
}

/// A record found undecodable during a load, before it is moved to quarantine.
struct BadRecord {
    column: &'static str,
    key: Vec<u8>,
    raw: Vec<u8>,
    reason: String,
}

/// A node's durable state in a RocksDB directory.
///
/// ```
/// use valex_node::exchange::{Acquired, VaultEntry, WriteBatch, WriteOp};
/// use valex_node::store::{RocksStore, Store};
/// use valex_proto::{crypto::Keypair, value::Value};
///
/// let dir = tempfile::tempdir().unwrap();
/// let ticket = Value::issue(&Keypair::from_seed([1; 32]), "ticket", 1, Vec::new(), [0; 16]).unwrap();
/// {
///     let mut store = RocksStore::open(dir.path()).unwrap();
///     store.commit(&WriteBatch::new(vec![WriteOp::PutValue(VaultEntry { value: ticket.clone(), acquired: Acquired::Issued })])).unwrap();
/// }
/// let loaded = RocksStore::open(dir.path()).unwrap().load().unwrap();
/// assert_eq!(loaded.state.vault[&ticket.id()].value, ticket);
/// assert!(loaded.set_aside.is_empty());
/// ```
pub struct RocksStore {
    db: DB,
    path: PathBuf,
}

// The event loop runs the store inside a tokio task.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<RocksStore>();
};

impl fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksStore").field("path", &self.path).finish_non_exhaustive()
    }
}

impl RocksStore {
    /// Opens the store in directory `path`, creating it and its column families if missing.
    /// Fails if another process has it open, or if it was written in another format version.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
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
        let store = Self { db, path };
        store.check_format()?;
        Ok(store)
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every record set aside so far, in key order.
    pub fn quarantined(&self) -> Result<Vec<QuarantinedRecord>, StoreError> {
        let mut out = Vec::new();
        let mut it = self.db.raw_iterator_cf(self.cf(columns::QUARANTINE)?);
        it.seek_to_first();
        while let (Some(key), Some(value)) = (it.key(), it.value()) {
            out.push(quarantine::parse_entry(record::FORMAT_VERSION, key, value));
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    /// Writes the format version into a new store; refuses a store of another version.
    fn check_format(&self) -> Result<(), StoreError> {
        let meta = self.cf(columns::META)?;
        match self.db.get_pinned_cf(meta, FORMAT_KEY)? {
            None => {
                let mut write = rocksdb::WriteBatch::default();
                write.put_cf(meta, FORMAT_KEY, [record::FORMAT_VERSION]);
                self.write_synced(write)
            }
            Some(found) if *found == [record::FORMAT_VERSION] => Ok(()),
            Some(found) => Err(StoreError::UnsupportedFormat {
                path: self.path.clone(),
                found: hex::encode(&found[..found.len().min(16)]),
                supported: record::FORMAT_VERSION,
            }),
        }
    }

    fn cf(&self, name: &'static str) -> Result<&ColumnFamily, StoreError> {
        self.db.cf_handle(name).ok_or(StoreError::MissingColumn(name))
    }

    fn write_synced(&self, write: rocksdb::WriteBatch) -> Result<(), StoreError> {
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db.write_opt(write, &options)?;
        Ok(())
    }

    /// Calls `load` on every record of `column`, in key order; a record it refuses goes to `bad`.
    fn scan(
        &self,
        column: &'static str,
        bad: &mut Vec<BadRecord>,
        mut load: impl FnMut(&[u8], &[u8]) -> Result<(), Defect>,
    ) -> Result<(), StoreError> {
        let mut it = self.db.raw_iterator_cf(self.cf(column)?);
        it.seek_to_first();
        while let (Some(key), Some(bytes)) = (it.key(), it.value()) {
            if let Err(defect) = load(key, bytes) {
                bad.push(BadRecord { column, key: key.to_vec(), raw: bytes.to_vec(), reason: defect.reason() });
            }
            it.next();
        }
        it.status()?;
        Ok(())
    }

    /// Moves `bad` records into quarantine, in one synced write, and reports them.
    fn quarantine(&self, bad: Vec<BadRecord>) -> Result<Vec<SetAside>, StoreError> {
        if bad.is_empty() {
            return Ok(Vec::new());
        }
        let quarantine = self.cf(columns::QUARANTINE)?;
        let mut write = rocksdb::WriteBatch::default();
        for record in &bad {
            write.put_cf(
                quarantine,
                quarantine::entry_key(record.column, &record.key),
                quarantine::entry_value(record::FORMAT_VERSION, &record.reason, &record.raw),
            );
            write.delete_cf(self.cf(record.column)?, &record.key);
        }
        self.write_synced(write)?;
        Ok(bad
            .into_iter()
            .map(|record| {
                let key_hex = hex::encode(&record.key);
                tracing::warn!(column = record.column, key = %key_hex, reason = %record.reason, "stored record set aside into quarantine");
                SetAside { column: record.column.to_owned(), key_hex, reason: record.reason }
            })
            .collect())
    }
}

impl Store for RocksStore {
    type Error = StoreError;

    fn commit(&mut self, batch: &WriteBatch) -> Result<(), StoreError> {
        if batch.ops.is_empty() {
            return Ok(());
        }
        let (vault, locks) = (self.cf(columns::VAULT)?, self.cf(columns::LOCKS)?);
        let (receipts, sessions) = (self.cf(columns::RECEIPTS)?, self.cf(columns::SESSIONS)?);
        let mut write = rocksdb::WriteBatch::default();
        // Applied in order, so a later op on the same key wins, as in `NodeState::apply`.
        for op in &batch.ops {
            match op {
                WriteOp::PutValue(entry) => write.put_cf(vault, entry.value.id(), encode(columns::VAULT, entry)?),
                WriteOp::RemoveValue(id) => write.delete_cf(vault, id),
                WriteOp::Lock { value, session } => write.put_cf(locks, value, encode(columns::LOCKS, session)?),
                WriteOp::Unlock(id) => write.delete_cf(locks, id),
                WriteOp::PutReceipt { value, receipt } => write.put_cf(receipts, value, encode(columns::RECEIPTS, receipt.as_ref())?),
                WriteOp::PutSession(session) => write.put_cf(sessions, session.id(), encode(columns::SESSIONS, session.as_ref())?),
            }
        }
        self.write_synced(write)
    }

    /// Loads every record; undecodable ones (bad version byte, truncated or garbage bytes, a
    /// value whose id or signature does not check out, a key that is not the record's id, a
    /// record over [`record::MAX_RECORD_BYTES`]) are logged, moved to `quarantine` in one synced
    /// write, and reported in [`Loaded::set_aside`].
    fn load(&mut self) -> Result<Loaded, StoreError> {
        let mut state = NodeState::default();
        let mut bad = Vec::new();
        self.scan(columns::VAULT, &mut bad, |key, bytes| {
            let entry: VaultEntry = record::decode(bytes)?;
            let id = expect_key(key, entry.value.id())?;
            state.vault.insert(id, entry);
            Ok(())
        })?;
        self.scan(columns::LOCKS, &mut bad, |key, bytes| {
            let value = key_id(key)?;
            let session: SessionId = record::decode(bytes)?;
            state.locks.insert(value, session);
            Ok(())
        })?;
        self.scan(columns::RECEIPTS, &mut bad, |key, bytes| {
            let value = key_id(key)?;
            let receipt: Receipt = record::decode(bytes)?;
            if value != receipt.terms.v1_id && value != receipt.terms.v2_id {
                return Err(Defect::KeyMismatch { actual: format!("values {} and {}", receipt.terms.v1_id, receipt.terms.v2_id) });
            }
            state.receipts.insert(value, receipt);
            Ok(())
        })?;
        self.scan(columns::SESSIONS, &mut bad, |key, bytes| {
            let session: Session = record::decode(bytes)?;
            let id = expect_key(key, session.id())?;
            state.sessions.insert(id, session);
            Ok(())
        })?;
        let set_aside = self.quarantine(bad)?;
        Ok(Loaded { state, set_aside })
    }
}

fn encode<T: serde::Serialize>(column: &'static str, record: &T) -> Result<Vec<u8>, StoreError> {
    record::encode(record).map_err(|source| StoreError::Encode { column, source })
}

fn key_id(key: &[u8]) -> Result<Digest, Defect> {
    Digest::from_slice(key).ok_or(Defect::KeyLength { len: key.len() })
}

fn expect_key(key: &[u8], id: Digest) -> Result<Digest, Defect> {
    if key_id(key)? != id {
        return Err(Defect::KeyMismatch { actual: id.to_hex() });
    }
    Ok(id)
}
