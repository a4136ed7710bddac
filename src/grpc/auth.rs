//! The bearer-token check in front of every service but health: a request without a valid token
//! never reaches a service, and a valid one carries its claims into the request's extensions.

use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::auth::{self, AuthError, Keys};
use crate::clock::Clock;

/// Checks the `authorization: Bearer …` header of each request.
#[derive(Clone)]
pub struct Authenticate {
    keys: Arc<Keys>,
    clock: Clock,
}

impl Authenticate {
    /// Checks tokens against `keys`, expiry by `clock`.
    pub fn new(keys: Arc<Keys>, clock: Clock) -> Self {
        Self { keys, clock }
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
                request.extensions_mut().insert(claims);
                Ok(request)
            }
            Err(error) => {
                tracing::warn!(%error, "request refused: not authenticated");
                Err(Status::unauthenticated(error.to_string()))
            }
        }
    }
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
