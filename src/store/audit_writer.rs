//! Group commit for the audit entries written on their own: the trail of reads and refusals.
//!
//! Every read of a case is answered only once its entry is stored, so under a flood of reads
//! each one used to be a write transaction of its own, queueing for the same write lock (SQLite)
//! or audit-chain row (PostgreSQL) as the intake writer. Here the entries that arrive while one
//! batch commits are committed together in the next, and each request waits for its own
//! entry's commit as before.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::Store;
use crate::audit::AuditEntry;
use crate::domain::Error;

/// Most entries waiting; past that, a request waits for room (reads are bounded anyway).
const QUEUE: usize = 1024;
/// Most entries in one transaction.
const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<Result<(), Error>>;

/// The submitting side. Cloning it shares the queue; the task ends when the last clone is
/// dropped, after writing what is queued.
#[derive(Clone)]
pub struct AuditWriter {
    queue: mpsc::Sender<(AuditEntry, Reply)>,
}

impl AuditWriter {
    /// Starts the task that writes entries into `store`.
    pub fn spawn(store: Arc<dyn Store>) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(run(store, receiver));
        Self { queue }
    }

    /// Appends `entry` to the trail and waits until it is committed.
    pub async fn append(&self, entry: AuditEntry) -> Result<(), Error> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((entry, reply))
            .await
            .map_err(|_| Error::internal("the audit writer stopped"))?;
        answer
            .await
            .map_err(|_| Error::internal("the audit writer stopped before answering"))?
    }
}

async fn run(store: Arc<dyn Store>, mut receiver: mpsc::Receiver<(AuditEntry, Reply)>) {
    let mut batch = Vec::new();
    while let Some(first) = receiver.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let entries: Vec<AuditEntry> = batch.iter().map(|(entry, _)| entry.clone()).collect();
        let result = store.append_audit(&entries).await;
        for (_, reply) in batch.drain(..) {
            let _ = reply.send(match &result {
                Ok(()) => Ok(()),
                Err(Error::Unavailable(_)) => {
                    Err(Error::Unavailable("database unavailable".into()))
                }
                Err(error) => Err(Error::internal(error.to_string())),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entries sent at once are all written, each answered after its commit, and read back
    /// in a chain that verifies.
    #[tokio::test]
    async fn concurrent_entries_are_all_written() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let cipher = crate::crypto::FieldCipher::load_or_create(dir.path()).expect("keys");
        let url = format!("sqlite://{}", dir.path().join("audit.db").display());
        crate::store::migrate(&url).await.expect("migrate");
        let store = crate::store::open(&url, 4, Arc::new(cipher))
            .await
            .expect("store");
        let writer = AuditWriter::spawn(store.clone());
        let entry = |n: usize| AuditEntry {
            at: chrono::Utc::now(),
            subject: format!("reader-{n}"),
            role: "supervisor".into(),
            action: "read_case".into(),
            case_id: None,
            outcome: crate::audit::OK.into(),
            request_id: format!("request-{n}"),
        };
        let appends = (0..50).map(|n| {
            let writer = writer.clone();
            async move { writer.append(entry(n)).await }
        });
        for result in futures::future::join_all(appends).await {
            result.expect("appended");
        }
        let trail = store
            .audit_trail(&crate::audit::AuditQuery {
                limit: 100,
                ..Default::default()
            })
            .await
            .expect("trail");
        assert_eq!(trail.len(), 50);
        let mut subjects: Vec<_> = trail.iter().map(|r| r.entry.subject.clone()).collect();
        subjects.sort();
        subjects.dedup();
        assert_eq!(subjects.len(), 50, "each entry once");
        for report in store.verify_chains().await.expect("verify") {
            assert_eq!(report.problem, None, "{} chain", report.chain);
        }
    }
}
