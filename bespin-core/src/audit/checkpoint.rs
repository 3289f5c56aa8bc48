//! Signed checkpoints of the tenants' chain heads, and range proofs.
//!
//! A checkpoint is a [C2SP signed note](https://c2sp.org/signed-note) whose text has the
//! [tlog-checkpoint](https://c2sp.org/tlog-checkpoint) lines:
//!
//! ```text
//! bespin/<tenant id>/audit
//! <size: rows in the chain>
//! <base64 of the chain head: row size-1's row_hash>
//!
//! — bespin-audit <base64(key id ‖ Ed25519 signature of the three lines above)>
//! ```
//!
//! with key id = the first 4 bytes of SHA-256("bespin-audit" ‖ 0x0A ‖ 0x01 ‖ public key). In a
//! transparency log the hash line is a Merkle tree's root; ours is the head of a hash chain. So
//! a checkpoint commits to every row before it as a Merkle root would, but what proves a row
//! against it is the run of rows from that row to the checkpoint (a range proof, linear in its
//! length), not a logarithmic inclusion proof.
//!
//! The signing key is an Ed25519 key made once per database and kept in its secret store
//! (`secrets`, never shown). A checkpoint is written with the 1,000th, 2,000th, … row of a
//! chain, in the row's transaction, and by the server's upkeep once a minute for every chain
//! whose head moved since its last checkpoint.

use super::chain::{self, Hash};
use super::{AUDIT_HEADS, AUDIT_LOG, AuditKey, HeadKey, HeadRec};
use crate::auth::Principal;
use crate::error::{Error, Result};
use crate::store::{Flow, NameKey, Order, Reader, Record, SECRETS, Table, WriteTx, key};
use crate::time::Timestamp;
use crate::validate::{Bounds, Fields, Presence, got};
use crate::{Bespin, Ctx};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The name of the signing key, in notes and in the verifier key.
pub const KEY_NAME: &str = "bespin-audit";

/// The name of the signing key's seed in the database's secret store.
pub(crate) const SIGNING_SECRET: &str = "audit_signing";

/// A chain gets a checkpoint with every this many rows.
pub const EVERY_ROWS: u64 = 1_000;

/// Rows a proof may carry.
pub const PROOF_MAX_ROWS: u64 = 2_000;

key! {
    /// (tenant, chain size the checkpoint signs).
    pub(crate) struct CheckpointKey<'a> { tenant_id: tenant, size: u64 }
}

/// A stored checkpoint: the signed note and when it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CheckpointRec {
    pub note: String,
    pub created_at: Timestamp,
}
impl Record for CheckpointRec {}

/// (tenant, size) → signed note of that chain head.
pub(crate) const CHECKPOINTS: Table<CheckpointKey<'static>, CheckpointRec> =
    Table::new("audit_checkpoints");

/// The database's signing key (its seed is made when the database is first opened).
fn signing_key(r: &impl Reader) -> Result<SigningKey> {
    let s = r
        .get(&SECRETS, &NameKey::new(SIGNING_SECRET))?
        .ok_or_else(|| Error::Internal("the audit signing key is missing".into()))?;
    Ok(SigningKey::from_bytes(&s.0))
}

/// The key id of the notes' signatures for the public key `pk`.
fn key_id(pk: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(KEY_NAME.as_bytes());
    h.update([0x0A, 0x01]);
    h.update(pk);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// The origin line of `tenant_id`'s checkpoints.
pub fn origin(tenant_id: &str) -> String {
    format!("bespin/{tenant_id}/audit")
}

/// The signed note of the head (`size`, `hash`) of `tenant_id`'s chain.
fn note(key: &SigningKey, tenant_id: &str, size: u64, hash: &Hash) -> String {
    let text = format!("{}\n{size}\n{}\n", origin(tenant_id), B64.encode(hash));
    let sig = key.sign(text.as_bytes());
    let mut blob = key_id(key.verifying_key().as_bytes()).to_vec();
    blob.extend_from_slice(&sig.to_bytes());
    format!("{text}\n\u{2014} {KEY_NAME} {}\n", B64.encode(blob))
}

/// Writes the checkpoint of `tenant_id`'s head `head` (unless there is one of that size).
pub(crate) fn write(tx: &mut WriteTx, ctx: &Ctx, tenant_id: &str, head: &HeadRec) -> Result<()> {
    let k = CheckpointKey::new(tenant_id, head.size);
    if head.size == 0 || tx.contains(&CHECKPOINTS, &k)? {
        return Ok(());
    }
    let note = note(&signing_key(tx)?, tenant_id, head.size, &head.hash);
    let rec = CheckpointRec {
        note,
        created_at: ctx.now,
    };
    tx.put(&CHECKPOINTS, &k, &rec)
}

/// The size of `tenant_id`'s latest checkpoint (0 when none).
fn latest_size(r: &impl Reader, tenant_id: &str) -> Result<u64> {
    let mut size = 0;
    r.scan(
        &CHECKPOINTS,
        &CHECKPOINTS.prefix().tenant(tenant_id),
        Order::Desc,
        |k, _| {
            size = CheckpointKey::decode(k).map_or(0, |k| k.size);
            Ok(Flow::Stop)
        },
    )?;
    Ok(size)
}

/// The upkeep: a checkpoint for every chain whose head moved since its last one; returns how
/// many were written.
pub fn checkpoint_moved(tx: &mut WriteTx, ctx: &Ctx) -> Result<usize> {
    let mut heads = Vec::new();
    tx.scan(&AUDIT_HEADS, &AUDIT_HEADS.prefix(), Order::Asc, |k, h| {
        if let Some(k) = HeadKey::decode(k) {
            heads.push((k.tenant_id.into_owned(), h));
        }
        Ok(Flow::Continue)
    })?;
    let mut written = 0;
    for (tenant, head) in heads {
        if latest_size(tx, &tenant)? < head.size {
            write(tx, ctx, &tenant, &head)?;
            written += 1;
        }
    }
    Ok(written)
}

/// The server's public key in the note verifier key format
/// (`<name>+<hex key id>+<base64(0x01 ‖ Ed25519 public key)>`), and the raw key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublicKey {
    /// The key's name in signature lines: `bespin-audit`.
    pub name: String,
    /// The verifier key (as Go's `golang.org/x/mod/sumdb/note` reads it).
    pub verifier_key: String,
    /// The Ed25519 public key, base64.
    pub ed25519_public_key: String,
    /// The algorithm: `ed25519`.
    pub algorithm: String,
}

fn public_key(r: &impl Reader) -> Result<PublicKey> {
    let pk = *signing_key(r)?.verifying_key().as_bytes();
    let id = key_id(&pk);
    let mut typed = vec![0x01];
    typed.extend_from_slice(&pk);
    Ok(PublicKey {
        name: KEY_NAME.into(),
        verifier_key: format!(
            "{KEY_NAME}+{:02x}{:02x}{:02x}{:02x}+{}",
            id[0],
            id[1],
            id[2],
            id[3],
            B64.encode(typed)
        ),
        ed25519_public_key: B64.encode(pk),
        algorithm: "ed25519".into(),
    })
}

/// `GET /v1/audit/proof`'s query: the positions `from..=to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofQuery {
    /// First position.
    pub from: u64,
    /// Last position.
    pub to: u64,
}

impl ProofQuery {
    /// Validates `from` and `to` (required, `0 <= from <= to`, at most 2,000 rows).
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let from = f.int("from", Presence::Required, Bounds::ge(0));
        let to = f.int("to", Presence::Required, Bounds::ge(0));
        if let (Some(Some(a)), Some(Some(b))) = (from, to)
            && (b < a || (b - a) as u64 >= PROOF_MAX_ROWS)
        {
            let reason =
                format!("to must be at least from and at most from + {PROOF_MAX_ROWS} - 1");
            f.value_error("to", reason);
        }
        f.finish()?;
        Ok(ProofQuery {
            from: got(from)?.unwrap_or(0) as u64,
            to: got(to)?.unwrap_or(0) as u64,
        })
    }
}

/// One row of a proof: what the chain hashes, in the order of the canonical encoding
/// ([`chain`]); hashes in base64.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProofRow {
    /// Position.
    pub n: u64,
    /// `created_at` in microseconds since the Unix epoch (what is hashed), and as RFC 3339.
    pub created_at_us: i64,
    /// RFC 3339.
    pub created_at: String,
    /// Hashed fields, in encoding order.
    pub action: String,
    #[allow(missing_docs)]
    pub tool_name: Option<String>,
    #[allow(missing_docs)]
    pub request_id: String,
    #[allow(missing_docs)]
    pub outcome: String,
    #[allow(missing_docs)]
    pub capability: Option<String>,
    #[allow(missing_docs)]
    pub target_type: Option<String>,
    #[allow(missing_docs)]
    pub target_id: Option<String>,
    #[allow(missing_docs)]
    pub units: Option<u64>,
    /// The salted digest of the personal fields (which are not in a proof).
    pub personal_digest: String,
    /// The previous row's hash.
    pub prev_hash: String,
    /// This row's hash.
    pub row_hash: String,
}

/// What a client needs to verify a range of a tenant's chain offline.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Proof {
    /// The tenant (hashed into every row).
    pub tenant_id: String,
    /// The rows from `from` up to the checkpoint's size - 1 (or to `to` when no checkpoint
    /// covers it yet).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub rows: Vec<ProofRow>,
    /// The hash of the row before `from` (32 zero bytes for row 0), base64.
    pub prev_hash: String,
    /// The first signed checkpoint covering `to`, as note text; `null` when none is signed
    /// yet (the upkeep signs moved heads within a minute).
    pub checkpoint: Option<String>,
    /// The key that signs checkpoints.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub public_key: PublicKey,
}

/// The proof of `tenant_id`'s positions `q.from..=q.to`.
fn proof(r: &impl Reader, tenant_id: &str, q: ProofQuery) -> Result<Proof> {
    let size = r
        .get(&AUDIT_HEADS, &HeadKey::new(tenant_id))?
        .map_or(0, |h| h.size);
    if q.to >= size {
        let reason = format!("the chain has {size} rows: to must be below {size}");
        return Err(super::query_error("to", &reason));
    }
    // The first checkpoint covering `to` (size > to); at most EVERY_ROWS rows past it.
    let mut checkpoint = None;
    let from_cp = CHECKPOINTS.prefix().tenant(tenant_id).u64(q.to + 1);
    r.scan_range(
        &CHECKPOINTS,
        &CHECKPOINTS.prefix().tenant(tenant_id),
        Some(&from_cp),
        None,
        Order::Asc,
        &mut |k, c| {
            checkpoint = CheckpointKey::decode(k).map(|k| (k.size, c.note));
            Ok(Flow::Stop)
        },
    )?;
    let last = checkpoint.as_ref().map_or(q.to, |(s, _)| s - 1);
    let prev_hash = if q.from == 0 {
        chain::GENESIS
    } else {
        r.get(&AUDIT_LOG, &AuditKey::new(tenant_id, q.from - 1))?
            .map_or(chain::GENESIS, |a| a.row_hash)
    };
    let mut rows = Vec::new();
    super::scan_positions(r, tenant_id, (q.from, last + 1), Order::Asc, |n, a| {
        rows.push(ProofRow {
            n,
            created_at_us: a.created_at.0,
            created_at: a.created_at.to_rfc3339(),
            action: a.action,
            tool_name: a.tool_name,
            request_id: a.request_id,
            outcome: a.outcome.as_str().into(),
            capability: a.capability,
            target_type: a.target_type,
            target_id: a.target_id,
            units: a.units,
            personal_digest: B64.encode(a.personal_digest),
            prev_hash: B64.encode(a.prev_hash),
            row_hash: B64.encode(a.row_hash),
        });
        Ok(Flow::Continue)
    })?;
    Ok(Proof {
        tenant_id: tenant_id.to_owned(),
        rows,
        prev_hash: B64.encode(prev_hash),
        checkpoint: checkpoint.map(|(_, n)| n),
        public_key: public_key(r)?,
    })
}

impl Bespin {
    /// The key that signs audit checkpoints.
    pub fn audit_public_key(&self) -> Result<PublicKey> {
        self.read(|r, _| public_key(r))
    }

    /// Writes a checkpoint for every audit chain whose head moved since its last one (the
    /// server's upkeep runs this once a minute); returns how many were written.
    pub fn audit_checkpoint(&self) -> Result<usize> {
        self.write(checkpoint_moved)
    }

    /// What a client needs to verify the caller's tenant's audit rows `q.from..=q.to` offline
    /// (tenant admin): the rows' hashed fields, the hash before them, and the first signed
    /// checkpoint covering them, with the rows up to it.
    ///
    /// Errors: `Forbidden` for a member; `Validation` when `to` is past the chain's end.
    pub fn audit_proof(&self, caller: &Principal, q: ProofQuery) -> Result<Proof> {
        caller.require_admin_to("read the audit log")?;
        self.read(|r, _| proof(r, caller.tenant_id(), q))
    }
}
