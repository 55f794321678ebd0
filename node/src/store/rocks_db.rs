//! The RocksDB conventions the node's [`RocksStore`](super::RocksStore) and the arbiter's
//! decision store share: [`RocksDb`] opens a directory with its column families and checks its
//! format version, commits one synced write batch, and moves records a load refuses into
//! quarantine; [`StoreError`] says why any of it failed.
//!
//! Every store following them has
//!
//! | column family | key | value |
//! |---|---|---|
//! | [`META`] | [`FORMAT_KEY`] | one byte, the store's format version, written when it is created |
//! | [`QUARANTINE`] | column ‖ 0x00 ‖ key | a record set aside by a load, with the reason |
//!
//! besides its own column families of records (each `version ‖ JSON`, see [`super::record`]).
//! Every write is one RocksDB write batch written with `sync = true`: RocksDB's write-ahead log
//! makes it atomic across column families and durable once it returns.
//!
//! ```
//! use valex_node::store::rocks_db::{META, QUARANTINE, RocksDb};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let db = RocksDb::open(dir.path(), 1, &["things", QUARANTINE, META]).unwrap();
//! let mut write = rocksdb::WriteBatch::default();
//! write.put_cf(db.cf("things").unwrap(), b"k", b"\x01{}");
//! db.write_synced(write).unwrap();
//! drop(db);
//! assert!(RocksDb::open(dir.path(), 2, &["things", QUARANTINE, META]).is_err(), "another format version is refused");
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use super::quarantine::{self, QuarantinedRecord, SetAside};
use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, Options, WriteOptions};

use super::record::{RecordDefect, RecordError};

/// The column family of records set aside by a load.
pub const QUARANTINE: &str = "quarantine";
/// The column family of the store's metadata.
pub const META: &str = "meta";
/// The [`META`] key of the store's format version.
pub const FORMAT_KEY: &[u8] = b"format_version";

/// Why a RocksDB store could not open, write or load.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB failed (I/O, corruption it detected itself, the directory is locked by another
    /// process, …).
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A column family is missing (cannot happen for a store opened with all of its columns).
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
    /// A record of the write cannot be written (it does not encode, or would not pass the next
    /// load's checks); nothing was written.
    #[error("cannot write {0}")]
    Record(#[from] RecordError),
}

/// A record a load refused, with its bytes, before it is moved to quarantine.
#[derive(Debug, Clone)]
pub struct BadRecord {
    /// Where it is and why it was refused.
    pub error: RecordError,
    /// Its bytes, kept unchanged in quarantine.
    pub raw: Vec<u8>,
}

/// An open RocksDB directory following the conventions above.
pub struct RocksDb {
    db: DB,
    path: PathBuf,
    format_version: u8,
}

impl fmt::Debug for RocksDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksDb").field("path", &self.path).field("format_version", &self.format_version).finish_non_exhaustive()
    }
}

impl RocksDb {
    /// Opens the store in directory `path` with the column families `columns` (which must
    /// include [`QUARANTINE`] and [`META`]), creating what is missing (LZ4-compressed). A new
    /// store gets `format_version`; one of another version is refused. Fails too if another
    /// process has it open.
    pub fn open(path: impl AsRef<Path>, format_version: u8, columns: &[&'static str]) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut db_options = Options::default();
        db_options.create_if_missing(true);
        db_options.create_missing_column_families(true);
        db_options.set_compression_type(DBCompressionType::Lz4);
        let descriptors = columns.iter().map(|name| {
            let mut options = Options::default();
            options.set_compression_type(DBCompressionType::Lz4);
            ColumnFamilyDescriptor::new(*name, options)
        });
        let db = DB::open_cf_descriptors(&db_options, &path, descriptors)?;
        let store = Self { db, path, format_version };
        store.cf(QUARANTINE)?;
        store.check_format()?;
        Ok(store)
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The handle of column family `name`.
    pub fn cf(&self, name: &'static str) -> Result<&ColumnFamily, StoreError> {
        self.db.cf_handle(name).ok_or(StoreError::MissingColumn(name))
    }

    /// Writes `write` as one atomic, synced write: durable once this returns `Ok`.
    pub fn write_synced(&self, write: rocksdb::WriteBatch) -> Result<(), StoreError> {
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db.write_opt(write, &options)?;
        Ok(())
    }

    /// The value stored under `key` in `column`, if any.
    pub fn get(&self, column: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(column)?, key)?)
    }

    /// Calls `visit` with every key and value of `column`, in key order.
    pub fn for_each(&self, column: &'static str, mut visit: impl FnMut(&[u8], &[u8])) -> Result<(), StoreError> {
        let mut it = self.db.raw_iterator_cf(self.cf(column)?);
        it.seek_to_first();
        while let (Some(key), Some(value)) = (it.key(), it.value()) {
            visit(key, value);
            it.next();
        }
        it.status()?;
        Ok(())
    }

    /// The last key of `column`, if it has any.
    pub fn last_key(&self, column: &'static str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut it = self.db.raw_iterator_cf(self.cf(column)?);
        it.seek_to_last();
        let last = it.key().map(<[u8]>::to_vec);
        it.status()?;
        Ok(last)
    }

    /// Calls `accept` on every record of `column`, in key order; a record it refuses goes to `bad`
    /// (for [`quarantine`](Self::quarantine)).
    pub fn scan(
        &self,
        column: &'static str,
        bad: &mut Vec<BadRecord>,
        mut accept: impl FnMut(&[u8], &[u8]) -> Result<(), RecordDefect>,
    ) -> Result<(), StoreError> {
        self.for_each(column, |key, bytes| {
            if let Err(defect) = accept(key, bytes) {
                bad.push(BadRecord { error: defect.at(column, key), raw: bytes.to_vec() });
            }
        })
    }

    /// Moves `bad` records into [`QUARANTINE`] (bytes unchanged, with the reason), deleting them
    /// from their column, in one synced write; logs and reports them.
    pub fn quarantine(&self, bad: Vec<BadRecord>) -> Result<Vec<SetAside>, StoreError> {
        if bad.is_empty() {
            return Ok(Vec::new());
        }
        let quarantine_cf = self.cf(QUARANTINE)?;
        let mut write = rocksdb::WriteBatch::default();
        let mut set_aside = Vec::with_capacity(bad.len());
        for BadRecord { error, raw } in bad {
            let reason = quarantine::bounded_reason(error.defect.to_string());
            write.put_cf(
                quarantine_cf,
                quarantine::entry_key(error.column, &error.key),
                quarantine::entry_value(self.format_version, &reason, &raw),
            );
            write.delete_cf(self.cf(error.column)?, &error.key);
            set_aside.push(SetAside { column: error.column.to_owned(), key_hex: hex::encode(&error.key), reason });
        }
        self.write_synced(write)?;
        for record in &set_aside {
            tracing::warn!(column = %record.column, key = %record.key_hex, reason = %record.reason, "stored record set aside into quarantine");
        }
        Ok(set_aside)
    }

    /// Every record set aside so far, in key order.
    pub fn quarantined(&self) -> Result<Vec<QuarantinedRecord>, StoreError> {
        let mut out = Vec::new();
        self.for_each(QUARANTINE, |key, value| out.push(quarantine::parse_entry(self.format_version, key, value)))?;
        Ok(out)
    }

    /// Writes the format version into a new store; refuses a store of another version.
    fn check_format(&self) -> Result<(), StoreError> {
        let meta = self.cf(META)?;
        match self.db.get_pinned_cf(meta, FORMAT_KEY)? {
            None => {
                let mut write = rocksdb::WriteBatch::default();
                write.put_cf(meta, FORMAT_KEY, [self.format_version]);
                self.write_synced(write)
            }
            Some(found) if *found == [self.format_version] => Ok(()),
            Some(found) => Err(StoreError::UnsupportedFormat {
                path: self.path.clone(),
                found: hex::encode(&found[..found.len().min(16)]),
                supported: self.format_version,
            }),
        }
    }
}
