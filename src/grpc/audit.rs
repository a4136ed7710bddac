//! `referral.v1.AuditTrail`: the auditor's view of who read and changed what.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{Guard, caller, convert};
use crate::access::Operation;
use crate::pb::audit_trail_server::AuditTrail;
use crate::pb::{ListAuditEntriesRequest, ListAuditEntriesResponse};
use crate::store::Store;

/// Serves the audit trail to auditors.
pub struct AuditService {
    guard: Guard,
    store: Arc<dyn Store>,
}

impl AuditService {
    /// Creates the service, reading the trail from `store`.
    pub fn new(guard: Guard, store: Arc<dyn Store>) -> Self {
        Self { guard, store }
    }
}

#[tonic::async_trait]
impl AuditTrail for AuditService {
    #[tracing::instrument(skip_all, fields(rpc = "ListAuditEntries"))]
    async fn list_audit_entries(
        &self,
        request: Request<ListAuditEntriesRequest>,
    ) -> Result<Response<ListAuditEntriesResponse>, Status> {
        let caller = caller(&request)?;
        self.guard.check(&caller, Operation::ReadAudit).await?;
        let result = match convert::audit_request(request.into_inner()) {
            Ok(query) => self.store.audit_trail(&query).await.map(|entries| {
                let full = entries.len() == query.limit as usize;
                (entries, full)
            }),
            Err(error) => Err(error),
        };
        // Reading the trail is itself on the trail, before the answer goes out.
        let (entries, full) = self
            .guard
            .audited(&caller, Operation::ReadAudit, None, result)
            .await?;
        let next_page_token = match entries.last() {
            Some(last) if full => last.sequence.to_string(),
            _ => String::new(),
        };
        Ok(Response::new(ListAuditEntriesResponse {
            entries: entries.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }
}
