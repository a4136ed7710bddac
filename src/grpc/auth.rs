//! The bearer-token check in front of every service but health: a request without a valid token
//! never reaches a service, and a valid one carries its caller (claims and request id) into the request's extensions.
//! Each authenticated subject is also held to a request rate: keyed on who the caller is, not on
//! the address, since mobile carriers put many phones behind one.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::auth::{self, AuthError, Keys};
use crate::clock::Clock;

/// Checks the `authorization: Bearer …` header of each request.
#[derive(Clone)]
pub struct Authenticate {
    keys: Arc<Keys>,
    clock: Clock,
    limiter: Option<Arc<DefaultKeyedRateLimiter<String>>>,
    limited: Arc<crate::telemetry::RefusalCount>,
}

impl Authenticate {
    /// Checks tokens against `keys`, expiry by `clock`, and holds each subject to `per_second`
    /// requests with bursts of `burst` (no limit when `per_second` is 0).
    pub fn new(keys: Arc<Keys>, clock: Clock, per_second: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
            Arc::new(RateLimiter::keyed(
                Quota::per_second(rate).allow_burst(burst),
            ))
        });
        Self {
            keys,
            clock,
            limiter,
            limited: Arc::new(crate::telemetry::RefusalCount::new("a caller's rate limit")),
        }
    }

    fn admit(&self, subject: &str) -> Result<(), Status> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&subject.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            self.limited.count();
            super::status::rate_limited(wait)
        })
    }
}

impl Interceptor for Authenticate {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .map(|value| value.to_str().map_err(|_| AuthError::Invalid))
            .transpose();
        let claims = header
            .and_then(auth::bearer)
            .and_then(|token| self.keys.verify(token, self.clock.now()));
        match claims {
            Ok(claims) => {
                self.admit(&claims.sub)?;
                let request_id = request_id(request.metadata());
                request
                    .extensions_mut()
                    .insert(crate::access::Caller { claims, request_id });
                Ok(request)
            }
            Err(error) => {
                tracing::warn!(%error, "request refused: not authenticated");
                Err(super::status::unauthenticated(error))
            }
        }
    }
}

/// The request's id for the audit trail: the client's `x-request-id` when it is a sensible one
/// (1 to 128 visible ASCII characters), else a new UUIDv7.
fn request_id(metadata: &tonic::metadata::MetadataMap) -> String {
    // The request-id layer has already put a sensible one here; a service run without it
    // (a test's) still gets one.
    super::request_id::sensible(
        metadata
            .get(super::request_id::HEADER)
            .and_then(|value| value.to_str().ok()),
    )
    .map(str::to_owned)
    .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// The client side: sends a bearer token with every request (the demo's clients use it).
#[derive(Clone)]
pub struct BearerToken(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl BearerToken {
    /// Sends `token`; `None` when the token is not a valid header value.
    pub fn new(token: &str) -> Option<Self> {
        format!("Bearer {token}").parse().ok().map(Self)
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}
