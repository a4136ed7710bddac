//! Every request has an id, and every answer says it: the client's `x-request-id` when it is a
//! sensible one (1 to 128 visible ASCII characters), else a new UUIDv7. The id is set on the
//! request before anything else sees it, so the audit trail, the log lines of the request and
//! the answer's `x-request-id` header all carry the same one.

use std::task::{Context, Poll};

use tonic::codegen::{BoxFuture, Service, http};

/// The header that carries a request's id, both ways.
pub(crate) const HEADER: &str = "x-request-id";

/// The client's id when it is a sensible one.
pub(crate) fn sensible(value: Option<&str>) -> Option<&str> {
    value.filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
}

/// Sets and echoes request ids around a service.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestIdLayer;

impl<S> tower_layer::Layer<S> for RequestIdLayer {
    type Service = RequestId<S>;

    fn layer(&self, inner: S) -> RequestId<S> {
        RequestId { inner }
    }
}

/// A service whose requests and answers carry a request id.
#[derive(Debug, Clone)]
pub struct RequestId<S> {
    inner: S,
}

impl<S, B, R> Service<http::Request<B>> for RequestId<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let given = request
            .headers()
            .get(HEADER)
            .and_then(|value| value.to_str().ok());
        let id = match sensible(given) {
            Some(id) => id.to_owned(),
            None => uuid::Uuid::now_v7().to_string(),
        };
        let value = http::HeaderValue::from_str(&id).ok();
        if let Some(value) = &value {
            request.headers_mut().insert(HEADER, value.clone());
        }
        let answer = self.inner.call(request);
        Box::pin(async move {
            let mut response = answer.await?;
            if let Some(value) = value {
                response.headers_mut().insert(HEADER, value);
            }
            Ok(response)
        })
    }
}
