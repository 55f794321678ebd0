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
//! [`valex_node::store::record`] for why JSON). The format check, the synced writes and the
//! quarantine are the RocksDB conventions the node's store follows too
//! ([`valex_node::store::rocks_db`]); a record that cannot be written or loaded is a
//! [`RecordError`] naming its column, its key and why. Every write is synced.
//!
//! First request wins is the [`Arbiter`](crate::Arbiter)'s rule, and the store's too: the driver
//! only calls [`DecisionStore::put`] with [`ArbiterStep::persist`](crate::ArbiterStep), and `put`
//! never replaces what is on disk. A second, different decision for a stored s2 is refused
//! ([`InvalidDecision::AlreadyDecided`], carrying the stored record, which stands), so an arbiter
//! whose memory and disk disagree cannot overwrite a decision a party may already hold.
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
use std::path::Path;

pub use valex_node::store::quarantine::{QuarantinedRecord, SetAside};
use valex_node::store::record::RecordFormat;
pub use valex_node::store::record::{RecordDefect, RecordError};
use valex_node::store::rocks_db::RocksDb;
pub use valex_node::store::rocks_db::StoreError;
use valex_proto::message::DecisionError;
use valex_proto::{Digest, PeerId};

use crate::{ArbiterError, DecisionRecord};

/// The column family names.
pub mod columns {
    /// Decisions, by s2.
    pub const DECISIONS: &str = "decisions";
    /// Equivocation evidence, in the order it was recorded.
    pub const EQUIVOCATIONS: &str = "equivocations";
    /// Records a load could not accept, set aside with the reason.
    pub const QUARANTINE: &str = valex_node::store::rocks_db::QUARANTINE;
    /// The store's format version.
    pub const META: &str = valex_node::store::rocks_db::META;
    /// All of them.
    pub const ALL: [&str; 4] = [DECISIONS, EQUIVOCATIONS, QUARANTINE, META];
}

/// The record format this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// The largest record read or written. A decision record is well under 2 KiB.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// The decision store's records: [`FORMAT_VERSION`], at most [`MAX_RECORD_BYTES`].
pub const FORMAT: RecordFormat = RecordFormat { version: FORMAT_VERSION, max_bytes: MAX_RECORD_BYTES };

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

/// Why a decision record, decodable or not, is not this store's arbiter's decision (the
/// [`RecordDefect::Invalid`] of its [`RecordError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidDecision {
    /// The terms name another arbiter.
    #[error("the terms name arbiter {named}, not this store's {ours}")]
    ForeignArbiter {
        /// The arbiter the terms name.
        named: PeerId,
        /// This store's arbiter.
        ours: PeerId,
    },
    /// The decision is not this arbiter's signature over the terms' h and the record's s2.
    #[error("decision does not check out: {0}")]
    Unverified(#[source] DecisionError),
    /// Another decision is already stored for the s2; it stands (first request wins).
    #[error("s2 {} already has a decision ({}); first request wins", .stored.decision.s2, .stored.decision.outcome.name())]
    AlreadyDecided {
        /// The stored record.
        stored: Box<DecisionRecord>,
    },
    /// The s2's key already holds a record that does not check out; it is left for the next
    /// load to set aside, never overwritten.
    #[error("s2 {s2} holds an unreadable record ({reason}); not overwritten")]
    OccupiedByUnreadable {
        /// The s2.
        s2: Digest,
        /// Why the stored record does not check out.
        reason: String,
    },
}

/// The arbiter's durable decisions, in a RocksDB directory.
#[derive(Debug)]
pub struct DecisionStore {
    db: RocksDb,
    arbiter: PeerId,
    next_equivocation: u64,
}

const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<DecisionStore>();
};

impl DecisionStore {
    /// Opens (creating if missing) the store in directory `path`, for the arbiter `arbiter`:
    /// decisions that are not signed by it are set aside when loading.
    pub fn open(path: impl AsRef<Path>, arbiter: PeerId) -> Result<Self, StoreError> {
        let db = RocksDb::open(path, FORMAT_VERSION, &columns::ALL)?;
        let next_equivocation = last_equivocation(&db)?.map_or(0, |last| last.saturating_add(1));
        Ok(Self { db, arbiter, next_equivocation })
    }

    /// The arbiter whose decisions this store holds.
    pub fn arbiter(&self) -> PeerId {
        self.arbiter
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        self.db.path()
    }

    /// Durably records the decision for an s2 that has none (one synced write). First request
    /// wins on disk: a record equal to the stored one is accepted without a write; any other
    /// record for an s2 already decided is refused with [`InvalidDecision::AlreadyDecided`]
    /// (carrying the stored record), and one for an s2 whose stored record does not check out
    /// with [`InvalidDecision::OccupiedByUnreadable`]. Refuses too a record that does not check
    /// out against this store's arbiter. Every refusal is a [`StoreError::Record`] whose defect is
    /// [`RecordDefect::Invalid`] holding the [`InvalidDecision`], and writes nothing.
    pub fn put(&mut self, record: &DecisionRecord) -> Result<(), StoreError> {
        let s2 = record.decision.s2;
        let at = |defect: RecordDefect| defect.at(columns::DECISIONS, &s2.0);
        check_decision(&self.arbiter, &s2, record).map_err(|e| at(RecordDefect::invalid(e)))?;
        if let Some(stored) = self.db.get(columns::DECISIONS, &s2.0)? {
            let refusal = match accept_decision(&self.arbiter, &s2.0, &stored) {
                Ok((_, stored)) if stored == *record => return Ok(()),
                Ok((_, stored)) => InvalidDecision::AlreadyDecided { stored: Box::new(stored) },
                Err(defect) => InvalidDecision::OccupiedByUnreadable { s2, reason: defect.to_string() },
            };
            return Err(at(RecordDefect::invalid(refusal)).into());
        }
        let bytes = FORMAT.encode(record).map_err(at)?;
        let mut write = rocksdb::WriteBatch::default();
        write.put_cf(self.db.cf(columns::DECISIONS)?, s2, bytes);
        self.db.write_synced(write)
    }

    /// Loads every decision that checks out (see the [module docs](self)); the others are logged,
    /// moved to `quarantine` in one synced write and reported.
    pub fn load(&mut self) -> Result<LoadedDecisions, StoreError> {
        let mut decisions = BTreeMap::new();
        let mut bad = Vec::new();
        self.db.scan(columns::DECISIONS, &mut bad, |key, bytes| {
            let (s2, record) = accept_decision(&self.arbiter, key, bytes)?;
            decisions.insert(s2, record);
            Ok(())
        })?;
        let set_aside = self.db.quarantine(bad)?;
        Ok(LoadedDecisions { decisions, set_aside })
    }

    /// Appends equivocation evidence (one synced write); returns its sequence number.
    pub fn record_equivocation(&mut self, evidence: &EquivocationEvidence) -> Result<u64, StoreError> {
        let seq = self.next_equivocation;
        let key = seq.to_be_bytes();
        let bytes = FORMAT.encode(evidence).map_err(|defect| defect.at(columns::EQUIVOCATIONS, &key))?;
        let mut write = rocksdb::WriteBatch::default();
        write.put_cf(self.db.cf(columns::EQUIVOCATIONS)?, key, bytes);
        self.db.write_synced(write)?;
        self.next_equivocation = seq.saturating_add(1);
        Ok(seq)
    }

    /// The equivocation evidence recorded so far, oldest first. Entries that do not decode are
    /// skipped with a warning (evidence is kept as it is, never moved).
    pub fn equivocations(&self) -> Result<Vec<EquivocationEvidence>, StoreError> {
        let mut out = Vec::new();
        self.db.for_each(columns::EQUIVOCATIONS, |key, bytes| match FORMAT.decode::<EquivocationEvidence>(bytes) {
            Ok(evidence) => out.push(evidence),
            Err(defect) => {
                let error = defect.at(columns::EQUIVOCATIONS, key);
                tracing::warn!(%error, "undecodable equivocation evidence skipped");
            }
        })?;
        Ok(out)
    }

    /// Every record set aside so far, in key order.
    pub fn quarantined(&self) -> Result<Vec<QuarantinedRecord>, StoreError> {
        self.db.quarantined()
    }
}

/// The sequence number of the last equivocation entry, if any.
fn last_equivocation(db: &RocksDb) -> Result<Option<u64>, StoreError> {
    Ok(db.last_key(columns::EQUIVOCATIONS)?.map(|key| key.first_chunk::<8>().map_or(0, |seq| u64::from_be_bytes(*seq))))
}

/// Decodes and checks one stored decision under `key`.
fn accept_decision(arbiter: &PeerId, key: &[u8], bytes: &[u8]) -> Result<(Digest, DecisionRecord), RecordDefect> {
    let s2 = Digest::from_slice(key).ok_or(RecordDefect::KeyLength { len: key.len() })?;
    let record: DecisionRecord = FORMAT.decode(bytes)?;
    check_decision(arbiter, &s2, &record).map_err(RecordDefect::invalid)?;
    Ok((s2, record))
}

/// The record is for `s2`, its terms name `arbiter`, and its decision is `arbiter`'s signature
/// over the terms' h and `s2`.
fn check_decision(arbiter: &PeerId, s2: &Digest, record: &DecisionRecord) -> Result<(), InvalidDecision> {
    if record.terms.arbiter != *arbiter {
        return Err(InvalidDecision::ForeignArbiter { named: record.terms.arbiter, ours: *arbiter });
    }
    record.decision.verify(arbiter, s2, &record.terms.h()).map_err(InvalidDecision::Unverified)
}
