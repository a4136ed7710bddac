//! The audit anchor: the heads of the two hash chains (events and the audit trail), signed with a
//! key kept outside the database and written outside it, so that a database owner who rewrites
//! rows and recomputes every hash after them is still found out.
//!
//! The chains alone catch an edit, a deletion or an insertion by anyone who cannot also rewrite
//! the hashes and the heads. Whoever owns the database can: drop the triggers, change a row,
//! recompute every later hash and the head, and `referrals audit verify` would walk a chain that
//! holds. A checkpoint names a chain's last number and that row's hash when it was taken, with an
//! HMAC-SHA256 under `anchor.key` (created beside `signing.key`, mode 0600). Checkpoints are
//! appended to `audit-anchors.jsonl` in the data directory and logged, every
//! `--anchor-interval` and once more at shutdown. `referrals audit verify` then checks that each
//! checkpoint is signed by this key and that the row it names still has the hash it signed: a
//! row rewritten at or before a checkpointed number changes that row's hash.
//!
//! What it does not catch: a rewrite of rows newer than the last checkpoint (up to one interval
//! of history), or a rewrite by someone who also holds `anchor.key` and can rewrite the file and
//! the log lines shipped elsewhere.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::audit::ChainReport;
use crate::clock::Clock;
use crate::domain::Error;
use crate::store::Store;

/// The key file, beside the token signing key.
pub const KEY_FILE: &str = "anchor.key";
/// The checkpoints, one JSON object a line.
pub const CHECKPOINTS_FILE: &str = "audit-anchors.jsonl";

/// Why the anchor's key or file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    /// The key or the checkpoints file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key file does not hold a key.
    #[error("{0}: not an anchor key (32 bytes, hex)")]
    Corrupt(PathBuf),
    /// No random bytes for a new key.
    #[error("cannot make an anchor key: {0}")]
    Random(String),
}

/// The key checkpoints are signed with; it never enters the database.
#[derive(Clone)]
pub struct AnchorKey([u8; 32]);

impl std::fmt::Debug for AnchorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AnchorKey(…)")
    }
}

impl AnchorKey {
    /// Loads the data directory's key; `None` when there is none.
    pub fn load(data_dir: &Path) -> Result<Option<Self>, AnchorError> {
        let path = data_dir.join(KEY_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(AnchorError::Io { path, source }),
        };
        let bytes = hex::decode(text.trim()).map_err(|_| AnchorError::Corrupt(path.clone()))?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| AnchorError::Corrupt(path))?;
        Ok(Some(Self(key)))
    }

    /// Loads the data directory's key, creating it on first use.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, AnchorError> {
        if let Some(key) = Self::load(data_dir)? {
            return Ok(key);
        }
        let path = data_dir.join(KEY_FILE);
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| AnchorError::Random(e.to_string()))?;
        match crate::secret_file::create(&path, hex::encode(key).as_bytes()) {
            Ok(true) => Ok(Self(key)),
            // Another process made it first: use theirs.
            Ok(false) => Self::load(data_dir)?.ok_or(AnchorError::Corrupt(path)),
            Err(source) => Err(AnchorError::Io { path, source }),
        }
    }

    fn mac(&self, message: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(message.as_bytes());
        mac
    }
}

/// One chain's head at one moment, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// `event` or `audit`.
    pub chain: String,
    /// The chain's last number.
    pub number: i64,
    /// That row's hash, hex.
    pub hash: String,
    /// When the checkpoint was taken.
    pub at: DateTime<Utc>,
    /// HMAC-SHA256 of the fields above under the anchor key, hex.
    pub mac: String,
}

impl Checkpoint {
    /// A checkpoint of `chain` at `number` with `hash`, signed with `key`.
    pub fn signed(
        key: &AnchorKey,
        chain: &str,
        number: i64,
        hash: &[u8],
        at: DateTime<Utc>,
    ) -> Self {
        let mut checkpoint = Self {
            chain: chain.to_owned(),
            number,
            hash: hex::encode(hash),
            at,
            mac: String::new(),
        };
        checkpoint.mac = hex::encode(key.mac(&checkpoint.message()).finalize().into_bytes());
        checkpoint
    }

    fn message(&self) -> String {
        format!(
            "referrals audit anchor v1\n{}\n{}\n{}\n{}",
            self.chain,
            self.number,
            self.hash,
            self.at.timestamp_micros()
        )
    }

    /// True when `key` signed this checkpoint as it reads.
    pub fn is_signed_by(&self, key: &AnchorKey) -> bool {
        hex::decode(&self.mac).is_ok_and(|mac| key.mac(&self.message()).verify_slice(&mac).is_ok())
    }
}

/// Appends `checkpoints` to the data directory's file and syncs it.
pub fn append(data_dir: &Path, checkpoints: &[Checkpoint]) -> Result<(), AnchorError> {
    let path = data_dir.join(CHECKPOINTS_FILE);
    let io = |source| AnchorError::Io {
        path: path.clone(),
        source,
    };
    let mut text = String::new();
    for checkpoint in checkpoints {
        let line = serde_json::to_string(checkpoint)
            .unwrap_or_else(|_| unreachable!("a checkpoint is plain data"));
        text.push_str(&line);
        text.push('\n');
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_data().map_err(io)
}

/// Reads the data directory's checkpoints: each line's number and what it holds.
pub fn read(data_dir: &Path) -> Result<Vec<(usize, Option<Checkpoint>)>, AnchorError> {
    let path = data_dir.join(CHECKPOINTS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(AnchorError::Io { path, source }),
    };
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| (i + 1, serde_json::from_str(line).ok()))
        .collect())
}

/// Signs the chains' heads that moved since `last` and writes them out; `last` follows.
async fn anchor_once(
    store: &dyn Store,
    key: &AnchorKey,
    data_dir: &Path,
    clock: &Clock,
    last: &mut Vec<(String, i64)>,
) -> Result<(), Error> {
    let at = clock.now();
    let mut new = Vec::new();
    for head in store.chain_heads().await? {
        let Some(hash) = head.hash else { continue };
        if last
            .iter()
            .any(|(chain, n)| *chain == head.chain && *n == head.number)
        {
            continue;
        }
        new.push(Checkpoint::signed(key, head.chain, head.number, &hash, at));
    }
    if new.is_empty() {
        return Ok(());
    }
    append(data_dir, &new).map_err(Error::internal)?;
    for checkpoint in &new {
        tracing::info!(
            chain = %checkpoint.chain,
            number = checkpoint.number,
            hash = %checkpoint.hash,
            mac = %checkpoint.mac,
            "audit anchor"
        );
        last.retain(|(chain, _)| *chain != checkpoint.chain);
        last.push((checkpoint.chain.clone(), checkpoint.number));
    }
    Ok(())
}

/// The running anchor task.
pub struct Anchor {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Anchor {
    /// Signs the chains' heads every `interval`, and once more when stopped.
    pub fn spawn(
        store: Arc<dyn Store>,
        key: AnchorKey,
        data_dir: PathBuf,
        clock: Clock,
        interval: Duration,
    ) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut last = Vec::new();
            loop {
                let stopping = tokio::select! {
                    _ = &mut stopped => true,
                    _ = tokio::time::sleep(interval) => false,
                };
                if let Err(error) =
                    anchor_once(store.as_ref(), &key, &data_dir, &clock, &mut last).await
                {
                    tracing::warn!(%error, "cannot write the audit anchor; retrying");
                }
                if stopping {
                    return;
                }
            }
        });
        Self { stop, task }
    }

    /// Writes a last checkpoint and stops.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Checks the data directory's checkpoints against the stored chains: one report per chain
/// that has checkpoints, naming the first that fails.
pub async fn verify(store: &dyn Store, data_dir: &Path) -> Result<Vec<ChainReport>, Error> {
    let lines = read(data_dir).map_err(Error::internal)?;
    if lines.is_empty() {
        return Ok(Vec::new());
    }
    let key = AnchorKey::load(data_dir).map_err(Error::internal)?;
    let mut reports: Vec<ChainReport> = Vec::new();
    for (line, checkpoint) in lines {
        let problem = match (&checkpoint, &key) {
            (None, _) => Some(format!("{CHECKPOINTS_FILE} line {line}: not a checkpoint")),
            (Some(_), None) => Some(format!(
                "{CHECKPOINTS_FILE} line {line}: no {KEY_FILE} in the data directory to check it with"
            )),
            (Some(c), Some(key)) if !c.is_signed_by(key) => Some(format!(
                "{CHECKPOINTS_FILE} line {line}: not signed by this data directory's {KEY_FILE}"
            )),
            (Some(c), Some(_)) => match store.chain_hash_at(&c.chain, c.number).await? {
                None => Some(format!(
                    "{} {}: missing, although a checkpoint of {} signed it; rows were deleted",
                    c.chain, c.number, c.at
                )),
                Some(hash) if hex::encode(&hash) != c.hash => Some(format!(
                    "{} {}: its hash is not the one signed at {}; the chain was rewritten at or before this row",
                    c.chain, c.number, c.at
                )),
                Some(_) => None,
            },
        };
        let chain = match &checkpoint {
            Some(c) if c.chain == "event" => "event checkpoints",
            Some(c) if c.chain == "audit" => "audit checkpoints",
            _ => "checkpoints",
        };
        let report = match reports.iter_mut().find(|r| r.chain == chain) {
            Some(report) => report,
            None => {
                reports.push(ChainReport {
                    chain,
                    rows: 0,
                    unchained: 0,
                    problem: None,
                });
                reports
                    .last_mut()
                    .unwrap_or_else(|| unreachable!("just pushed"))
            }
        };
        report.rows += 1;
        if report.problem.is_none() {
            report.problem = problem;
        }
    }
    Ok(reports)
}
