//! The audit trail and the hash chains that make tampering visible.
//!
//! Every read of a case's details, every change and every refused attempt appends an
//! [`AuditEntry`]. Entries and events are each numbered without gaps and chained: a row's hash
//! is SHA-256 over the previous row's hash and the row's own columns, and each chain's head
//! (last number and hash) is kept beside its counter. `referrals audit verify` walks both chains
//! and names the first row that was edited, removed or added out of turn.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::Error;

pub use crate::domain::audit::{AuditEntry, OK};

/// What the trail records as the outcome of a request.
pub fn outcome<T>(result: &Result<T, Error>) -> &'static str {
    match result {
        Ok(_) => OK,
        Err(error) => error_code(error),
    }
}

/// The name of the code an error becomes, as the trail records it.
pub fn error_code(error: &Error) -> &'static str {
    match error {
        Error::InvalidArgument(_) => "invalid_argument",
        Error::NotFound(_) => "not_found",
        Error::IdempotencyConflict => "already_exists",
        Error::FailedPrecondition(_) => "failed_precondition",
        Error::PermissionDenied(_) => "permission_denied",
        Error::Stale(_) => "aborted",
        Error::DirectoryMoved | Error::Unavailable(_) => "unavailable",
        Error::Overloaded(_) => "resource_exhausted",
        Error::Internal(_) => "internal",
    }
}

/// A stored entry with its place in the trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Its number, from 1 with no gap.
    pub sequence: i64,
    /// The entry.
    pub entry: AuditEntry,
}

/// Filters of a read of the trail; they combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this subject.
    pub subject: Option<String>,
    /// Only this case.
    pub case_id: Option<Uuid>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this outcome.
    pub outcome: Option<String>,
    /// At or after.
    pub from: Option<DateTime<Utc>>,
    /// Before.
    pub before: Option<DateTime<Utc>>,
    /// After this number (the last of the previous page).
    pub after: i64,
    /// Largest number of entries.
    pub limit: u32,
}

/// Builds a chain hash: SHA-256 over the previous hash (32 zero bytes before the first row) and
/// each column, length-prefixed so no two rows can encode alike.
#[derive(Clone)]
pub struct ChainHasher(Sha256);

impl ChainHasher {
    /// Starts the hash of the row after the one whose hash is `previous`.
    pub fn new(previous: Option<&[u8]>) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(previous.unwrap_or(&[0u8; 32]));
        Self(hasher)
    }

    /// Adds a column.
    pub fn bytes(mut self, value: &[u8]) -> Self {
        self.0.update((value.len() as u64).to_le_bytes());
        self.0.update(value);
        self
    }

    /// Adds a text column.
    pub fn text(self, value: &str) -> Self {
        self.bytes(value.as_bytes())
    }

    /// Adds a number column.
    pub fn number(self, value: i64) -> Self {
        self.bytes(&value.to_le_bytes())
    }

    /// Adds a column that may be null (distinct from any value).
    pub fn optional(mut self, value: Option<&[u8]>) -> Self {
        match value {
            None => {
                self.0.update([0u8]);
                self
            }
            Some(value) => {
                self.0.update([1u8]);
                self.bytes(value)
            }
        }
    }

    /// The hash.
    pub fn finish(self) -> Vec<u8> {
        self.0.finalize().to_vec()
    }
}

/// What `referrals audit verify` found in one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// `events` or `audit`.
    pub chain: &'static str,
    /// Rows checked.
    pub rows: i64,
    /// Rows written before the chain was introduced (the database predates it), not covered.
    pub unchained: i64,
    /// The first break found, in words, with the row's number; `None` when the chain holds.
    pub problem: Option<String>,
}

/// Walks one chain's rows (in number order) against its stored head.
#[derive(Debug)]
pub struct ChainCheck {
    report: ChainReport,
    expected_next: i64,
    previous: Option<Vec<u8>>,
}

impl ChainCheck {
    /// Starts checking the chain `chain`.
    pub fn new(chain: &'static str) -> Self {
        Self {
            report: ChainReport {
                chain,
                rows: 0,
                unchained: 0,
                problem: None,
            },
            expected_next: 1,
            previous: None,
        }
    }

    /// True once a break was found (the rest need not be read).
    pub fn broken(&self) -> bool {
        self.report.problem.is_some()
    }

    fn fail(&mut self, problem: String) {
        if self.report.problem.is_none() {
            self.report.problem = Some(problem);
        }
    }

    /// Checks the next row: its number, and its stored hash against the one recomputed from
    /// `hasher` (started from the previous row's hash by [`Self::hasher`]).
    pub fn row(&mut self, number: i64, stored: Option<&[u8]>, recomputed: Vec<u8>) {
        if self.broken() {
            return;
        }
        let chain = self.report.chain;
        if number != self.expected_next {
            self.fail(format!(
                "{chain} {}: missing (the next row is {number}); rows were deleted",
                self.expected_next
            ));
            return;
        }
        self.expected_next = number + 1;
        match stored {
            None if self.previous.is_none() => {
                // Rows from before the chain existed.
                self.report.unchained += 1;
            }
            None => self.fail(format!("{chain} {number}: its hash was removed")),
            Some(stored) => {
                if stored != recomputed.as_slice() {
                    self.fail(format!(
                        "{chain} {number}: does not match its hash; the row was edited, or one before it"
                    ));
                    return;
                }
                self.report.rows += 1;
                self.previous = Some(recomputed);
            }
        }
    }

    /// The hasher for the next row, chained to the last good one.
    pub fn hasher(&self) -> ChainHasher {
        ChainHasher::new(self.previous.as_deref())
    }

    /// Ends the walk against the chain's stored head (last number and hash).
    pub fn finish(mut self, head_number: i64, head_hash: Option<&[u8]>) -> ChainReport {
        let chain = self.report.chain;
        let last = self.expected_next - 1;
        if !self.broken() {
            if last < head_number {
                self.fail(format!(
                    "{chain} {}: missing (the counter says {head_number} were written); the last rows were deleted",
                    last + 1
                ));
            } else if last > head_number {
                self.fail(format!(
                    "{chain} {last}: beyond the last number written ({head_number}); rows were added"
                ));
            } else if self.previous.as_deref() != head_hash {
                self.fail(format!(
                    "{chain} {last}: does not match the chain's head; the last row was replaced"
                ));
            }
        }
        self.report
    }
}
