//! Metrics in the Prometheus text format, through the `metrics` facade and its Prometheus
//! exporter, served on a listener of their own (`--metrics-listen`, off by default, never the
//! gRPC port). No label carries a case id, a name or any value a caller sent: a method is one of
//! the service's own or `other`, a code is one of gRPC's seventeen.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `referrals_rpc_requests_total` | counter | `method`, `code` |
//! | `referrals_rpc_duration_seconds` | histogram | `method` |
//! | `referrals_intake_queue_depth` | gauge | |
//! | `referrals_intake_batch_size` | histogram | |
//! | `referrals_intake_commit_seconds` | histogram | |
//! | `referrals_refusals_total` | counter | `reason` |
//! | `referrals_streams_open` | gauge | `kind` |
//! | `referrals_stream_lag_events` | histogram | `kind` |
//! | `referrals_db_connections` | gauge | `state` |
//! | `referrals_db_connections_max` | gauge | |
//! | `referrals_deadlines_open` | gauge | `kind`, `overdue` |
//! | `referrals_deadlines_breached_total` | counter | `kind` |
//! | `referrals_build_info` | gauge (1) | `version` |

use std::borrow::Cow;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tonic::codegen::{BoxFuture, Service, http};

/// Requests by method and the code they were answered with.
pub const RPC_REQUESTS: &str = "referrals_rpc_requests_total";
/// How long requests took, by method, to their answer's head (a stream's start).
pub const RPC_DURATION: &str = "referrals_rpc_duration_seconds";
/// Commands waiting in the writer's queue.
pub const INTAKE_QUEUE_DEPTH: &str = "referrals_intake_queue_depth";
/// Intakes per committed batch.
pub const INTAKE_BATCH_SIZE: &str = "referrals_intake_batch_size";
/// How long a batch's transaction took, routing and commit included.
pub const INTAKE_COMMIT_SECONDS: &str = "referrals_intake_commit_seconds";
/// Requests refused, by the code the audit trail records (`not_found`, `permission_denied`,
/// `resource_exhausted`, …): every refusal the edge audits.
pub const REFUSALS: &str = "referrals_refusals_total";
/// Watch and assignment streams open now, by kind (`watch_cases`, `stream_assignments`).
pub const STREAMS_OPEN: &str = "referrals_streams_open";
/// How many events the feed's head was ahead of each event when a stream queued it for its
/// client, by kind: a stream's lag behind the feed.
pub const STREAM_LAG: &str = "referrals_stream_lag_events";
/// Database connections of the pool, by state (`in_use`, `idle`).
pub const DB_CONNECTIONS: &str = "referrals_db_connections";
/// The most connections the pool may open.
pub const DB_CONNECTIONS_MAX: &str = "referrals_db_connections_max";
/// Deadlines running now, by kind (`team_acknowledgement`, …) and whether they are already
/// past (`overdue` = `true`, waiting for the escalation).
pub const DEADLINES_OPEN: &str = "referrals_deadlines_open";
/// Deadlines missed and escalated, by kind.
pub const DEADLINES_BREACHED: &str = "referrals_deadlines_breached_total";
/// The running build.
pub const BUILD_INFO: &str = "referrals_build_info";

/// The process's recorder, installed once (a process has one); every server in it reports to
/// it, and each one that serves metrics renders it.
pub fn recorder() -> Result<PrometheusHandle, String> {
    static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let seconds = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ];
            let sizes = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
            let lag = [0.0, 1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0];
            let handle = PrometheusBuilder::new()
                .set_buckets(&seconds)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(INTAKE_BATCH_SIZE.into()), &sizes)
                })
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(STREAM_LAG.into()), &lag))
                .map_err(|error| error.to_string())?
                .install_recorder()
                .map_err(|error| error.to_string())?;
            metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            Ok(handle)
        })
        .clone()
}

/// Serves `GET /metrics` on `listener` until the task is aborted.
pub fn serve(
    listener: tokio::net::TcpListener,
    handle: PrometheusHandle,
) -> tokio::task::JoinHandle<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move { handle.render() }
        }),
    );
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "metrics listener failed");
        }
    })
}

/// The method label of a request path: one of the service's own (those `access` knows) or
/// health's, else `other`: paths are the client's to choose, so an unknown one is never a label
/// as sent.
fn method_label(path: &str) -> Cow<'static, str> {
    const HEALTH: [&str; 2] = [
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
    ];
    if crate::access::Operation::of_method(path).is_some() || HEALTH.contains(&path) {
        Cow::Owned(path.to_owned())
    } else {
        Cow::Borrowed("other")
    }
}

/// The code of an answer's head: a refusal's `grpc-status` (trailers-only), else OK (a stream
/// that fails after it started counts as started).
fn code_label<R>(response: &http::Response<R>) -> &'static str {
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i32>().ok())
        .unwrap_or(0);
    match tonic::Code::from_i32(code) {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "CANCELLED",
        tonic::Code::Unknown => "UNKNOWN",
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
        tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        tonic::Code::NotFound => "NOT_FOUND",
        tonic::Code::AlreadyExists => "ALREADY_EXISTS",
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
        tonic::Code::Aborted => "ABORTED",
        tonic::Code::OutOfRange => "OUT_OF_RANGE",
        tonic::Code::Unimplemented => "UNIMPLEMENTED",
        tonic::Code::Internal => "INTERNAL",
        tonic::Code::Unavailable => "UNAVAILABLE",
        tonic::Code::DataLoss => "DATA_LOSS",
        tonic::Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Counts and times every request by method and code.
#[derive(Debug, Clone, Copy, Default)]
pub struct RpcMetricsLayer;

impl<S> tower_layer::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> RpcMetrics<S> {
        RpcMetrics { inner }
    }
}

/// A service whose requests are counted and timed.
#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
}

impl<S, B, R> Service<http::Request<B>> for RpcMetrics<S>
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

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = method_label(request.uri().path());
        let started = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            let code = code_label(&response);
            metrics::counter!(RPC_REQUESTS, "method" => method.clone(), "code" => code)
                .increment(1);
            metrics::histogram!(RPC_DURATION, "method" => method)
                .record(started.elapsed().as_secs_f64());
            Ok(response)
        })
    }
}
