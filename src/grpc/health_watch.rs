//! Ends health `Watch` streams at shutdown. tonic-health's watch streams end only when their
//! service is dropped, so an open one (every load balancer holds one) kept the server from
//! stopping for the whole shutdown grace. Wrapped here, a watch still carries the NOT_SERVING
//! that shutdown sets first, then ends with UNAVAILABLE, like the service's own streams.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http_body::Frame;
use tokio::sync::watch;
use tonic::codegen::{Bytes, Service, http};
use tonic::server::NamedService;

/// The health service, its watches ended when `stop` turns true.
#[derive(Clone)]
pub struct EndWatchesOnShutdown<S> {
    inner: S,
    stop: watch::Receiver<bool>,
}

impl<S> EndWatchesOnShutdown<S> {
    /// Wraps `inner`, ending its watches once `stop` is true.
    pub fn new(inner: S, stop: watch::Receiver<bool>) -> Self {
        Self { inner, stop }
    }
}

impl<S: NamedService> NamedService for EndWatchesOnShutdown<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for EndWatchesOnShutdown<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let watching = request.uri().path().ends_with("/Watch");
        let mut stop = self.stop.clone();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            if !watching {
                return Ok(response);
            }
            let stopped: BoxFuture<'static, ()> = Box::pin(async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            });
            Ok(response.map(|body| {
                tonic::body::Body::new(UntilStopped {
                    inner: body,
                    stopped,
                    ended: false,
                })
            }))
        })
    }
}

/// A watch's body that ends with UNAVAILABLE once the server stops.
struct UntilStopped {
    inner: tonic::body::Body,
    stopped: BoxFuture<'static, ()>,
    ended: bool,
}

impl http_body::Body for UntilStopped {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        // What the watch already has (the NOT_SERVING that shutdown sets) goes out first.
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if self.stopped.as_mut().poll(cx).is_ready() {
            self.ended = true;
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", http::HeaderValue::from_static("14"));
            trailers.insert(
                "grpc-message",
                http::HeaderValue::from_static("the server is shutting down"),
            );
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}
