//! Audits the requests refused because their bytes did not decode. Such a request never reaches
//! its handler (the generated service decodes it first), so this wrapper around each service
//! looks at the answer: one marked by [`super::codec`] as undecodable, from an authenticated
//! caller, is put on the audit trail as that caller's refused operation before it is sent.

use std::task::{Context, Poll};

use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;

use super::Guard;
use super::status::UNDECODABLE;
use crate::access::{Caller, Operation};

/// A service whose undecodable requests are audited.
#[derive(Clone)]
pub(crate) struct AuditUndecodable<S> {
    inner: S,
    guard: Guard,
}

impl<S> AuditUndecodable<S> {
    pub(crate) fn new(inner: S, guard: Guard) -> Self {
        Self { inner, guard }
    }
}

impl<S: NamedService> NamedService for AuditUndecodable<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, R> Service<http::Request<B>> for AuditUndecodable<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The authentication interceptor, outside this wrapper, left the caller.
        let caller = request.extensions().get::<Caller>().cloned();
        let operation = Operation::of_method(request.uri().path());
        let guard = self.guard.clone();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            if let (Some(caller), Some(operation)) = (caller, operation)
                && response.headers().contains_key(UNDECODABLE)
            {
                guard.undecodable(&caller, operation).await;
            }
            Ok(response)
        })
    }
}
