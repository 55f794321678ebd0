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
//! The format check, the synced write batches and the quarantine follow the conventions shared
//! with the arbiter's decision store ([`super::rocks_db`]): a commit is one RocksDB write batch
//! across the column families, written with `sync = true`, so RocksDB's write-ahead log makes it
//! atomic across column families and durable once it returns.
//!
//! Calls block on disk I/O (a commit waits for an fsync). They are short, so the node's event
//! loop calls them inline from its tokio task; a load at startup reads everything and is best
//! done before the loop starts.

use std::path::Path;

use super::quarantine::QuarantinedRecord;
use valex_proto::Digest;

use super::record::{self, RecordDefect};
use super::rocks_db::{RocksDb, StoreError};
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
    pub const QUARANTINE: &str = super::super::rocks_db::QUARANTINE;
    /// The store's format version.
    pub const META: &str = super::super::rocks_db::META;
    /// All of them.
    pub const ALL: [&str; 6] = [VAULT, LOCKS, RECEIPTS, SESSIONS, QUARANTINE, META];
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
#[derive(Debug)]
pub struct RocksStore {
    db: RocksDb,
}

// The event loop runs the store inside a tokio task.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<RocksStore>();
};

impl RocksStore {
    /// Opens the store in directory `path`, creating it and its column families if missing.
    /// Fails if another process has it open, or if it was written in another format version.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Ok(Self { db: RocksDb::open(path, record::FORMAT_VERSION, &columns::ALL)? })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        self.db.path()
    }

    /// Every record set aside so far, in key order.
    pub fn quarantined(&self) -> Result<Vec<QuarantinedRecord>, StoreError> {
        self.db.quarantined()
    }
}

impl Store for RocksStore {
    type Error = StoreError;

    fn commit(&mut self, batch: &WriteBatch) -> Result<(), StoreError> {
        if batch.ops.is_empty() {
            return Ok(());
        }
        let (vault, locks) = (self.db.cf(columns::VAULT)?, self.db.cf(columns::LOCKS)?);
        let (receipts, sessions) = (self.db.cf(columns::RECEIPTS)?, self.db.cf(columns::SESSIONS)?);
        let mut write = rocksdb::WriteBatch::default();
        // Applied in order, so a later op on the same key wins, as in `NodeState::apply`.
        for op in &batch.ops {
            match op {
                WriteOp::PutValue(entry) => {
                    let id = entry.value.id();
                    write.put_cf(vault, id, encode(columns::VAULT, &id, entry)?);
                }
                WriteOp::RemoveValue(id) => write.delete_cf(vault, id),
                WriteOp::Lock { value, session } => write.put_cf(locks, value, encode(columns::LOCKS, value, session)?),
                WriteOp::Unlock(id) => write.delete_cf(locks, id),
                WriteOp::PutReceipt { value, receipt } => {
                    write.put_cf(receipts, value, encode(columns::RECEIPTS, value, receipt.as_ref())?)
                }
                WriteOp::PutSession(session) => {
                    let id = session.id();
                    write.put_cf(sessions, id, encode(columns::SESSIONS, &id, session.as_ref())?);
                }
            }
        }
        self.db.write_synced(write)
    }

    /// Loads every record; undecodable ones (bad version byte, truncated or garbage bytes, a
    /// value whose id or signature does not check out, a key that is not the record's id, a
    /// record over [`record::MAX_RECORD_BYTES`]) are logged, moved to `quarantine` in one synced
    /// write, and reported in [`Loaded::set_aside`].
    fn load(&mut self) -> Result<Loaded, StoreError> {
        let mut state = NodeState::default();
        let mut bad = Vec::new();
        self.db.scan(columns::VAULT, &mut bad, |key, bytes| {
            let entry: VaultEntry = record::decode(bytes)?;
            let id = expect_key(key, entry.value.id())?;
            state.vault.insert(id, entry);
            Ok(())
        })?;
        self.db.scan(columns::LOCKS, &mut bad, |key, bytes| {
            let value = key_id(key)?;
            let session: SessionId = record::decode(bytes)?;
            state.locks.insert(value, session);
            Ok(())
        })?;
        self.db.scan(columns::RECEIPTS, &mut bad, |key, bytes| {
            let value = key_id(key)?;
            let receipt: Receipt = record::decode(bytes)?;
            if value != receipt.terms.v1_id && value != receipt.terms.v2_id {
                return Err(RecordDefect::KeyMismatch { actual: format!("values {} and {}", receipt.terms.v1_id, receipt.terms.v2_id) });
            }
            state.receipts.insert(value, receipt);
            Ok(())
        })?;
        self.db.scan(columns::SESSIONS, &mut bad, |key, bytes| {
            let session: Session = record::decode(bytes)?;
            let id = expect_key(key, session.id())?;
            state.sessions.insert(id, session);
            Ok(())
        })?;
        let set_aside = self.db.quarantine(bad)?;
        Ok(Loaded { state, set_aside })
    }
}

fn encode<T: serde::Serialize>(column: &'static str, key: &Digest, record: &T) -> Result<Vec<u8>, StoreError> {
    record::encode(record).map_err(|defect| defect.at(column, &key.0).into())
}

fn key_id(key: &[u8]) -> Result<Digest, RecordDefect> {
    Digest::from_slice(key).ok_or(RecordDefect::KeyLength { len: key.len() })
}

fn expect_key(key: &[u8], id: Digest) -> Result<Digest, RecordDefect> {
    if key_id(key)? != id {
        return Err(RecordDefect::KeyMismatch { actual: id.to_hex() });
    }
    Ok(id)
}
