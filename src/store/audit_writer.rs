//! Group commit for the audit entries written on their own: the trail of reads and refusals.
//!
//! Every read of a case is answered only once its entry is stored, so under a flood of reads
//! each one used to be a write transaction of its own, queueing for the same write lock (SQLite)
//! or audit-chain row (PostgreSQL) as the intake writer. Here the entries that arrive while one
//! batch commits are committed together in the next, and each request waits for its own
//! entry's commit as before.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{DATABASE_WAIT, Store};
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

    /// Appends `entry` to the trail and waits until it is committed, at most
    /// [`DATABASE_WAIT`] (then UNAVAILABLE: the entry is still written when the database
    /// answers).
    pub async fn append(&self, entry: AuditEntry) -> Result<(), Error> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((entry, reply))
            .await
            .map_err(|_| Error::internal("the audit writer stopped"))?;
        match tokio::time::timeout(DATABASE_WAIT, answer).await {
            Ok(answer) => {
                answer.map_err(|_| Error::internal("the audit writer stopped before answering"))?
            }
            Err(_) => Err(Error::Unavailable(
                "the database did not store the audit entry in time".into(),
            )),
        }
    }

    /// Appends `entry` to the trail without waiting: a refusal because the database cannot
    /// answer is itself answered at once, and its entry written once the database is back.
    /// An entry that cannot be queued is logged as lost.
    pub fn append_later(&self, entry: AuditEntry) {
        let (reply, _) = oneshot::channel();
        if let Err(error) = self.queue.try_send((entry, reply)) {
            let (entry, _) = error.into_inner();
            tracing::error!(
                action = entry.action,
                subject = entry.subject,
                "audit entry lost: the audit queue is full"
            );
        }
    }
}

/// Most entries held in memory, nobody waiting for them, while the database cannot take them;
/// past that the oldest are logged as lost.
const MOST_HELD: usize = 10_000;

/// How often held entries are tried again.
const RETRY: std::time::Duration = std::time::Duration::from_millis(500);

async fn run(store: Arc<dyn Store>, mut receiver: mpsc::Receiver<(AuditEntry, Reply)>) {
    let mut batch: Vec<(AuditEntry, Reply)> = Vec::new();
    // Entries that failed to be written and that no request waits for any more (refusals
    // queued with `append_later`, requests answered UNAVAILABLE): written once the database
    // answers, ahead of what came later.
    let mut held: std::collections::VecDeque<AuditEntry> = Default::default();
    loop {
        if held.is_empty() {
            match receiver.recv().await {
                Some(first) => batch.push(first),
                None => break,
            }
        } else {
            tokio::select! {
                next = receiver.recv() => match next {
                    Some(first) => batch.push(first),
                    None => break,
                },
                () = tokio::time::sleep(RETRY) => {}
            }
        }
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let entries: Vec<AuditEntry> = held
            .iter()
            .cloned()
            .chain(batch.iter().map(|(entry, _)| entry.clone()))
            .collect();
        let result = store.append_audit(&entries).await;
        if result.is_ok() {
            if !held.is_empty() {
                tracing::info!(entries = held.len(), "held audit entries written");
            }
            held.clear();
        }
        for (entry, reply) in batch.drain(..) {
            if result.is_err() && reply.is_closed() {
                held.push_back(entry);
                continue;
            }
            let _ = reply.send(match &result {
                Ok(()) => Ok(()),
                Err(Error::Unavailable(_)) => {
                    Err(Error::Unavailable("database unavailable".into()))
                }
                Err(error) => Err(Error::internal(error.to_string())),
            });
        }
        while held.len() > MOST_HELD {
            if let Some(entry) = held.pop_front() {
                tracing::error!(
                    action = entry.action,
                    subject = entry.subject,
                    "audit entry lost: too many held while the database is unreachable"
                );
            }
        }
    }
    // The queue is closed: one last try for what is held.
    if !held.is_empty() {
        let entries: Vec<AuditEntry> = held.into_iter().collect();
        if let Err(error) = store.append_audit(&entries).await {
            tracing::error!(entries = entries.len(), %error, "held audit entries lost at shutdown");
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
