//! Bearer tokens: who a caller is, in what part and where.
//!
//! Tokens are JWTs signed with HS256 by the server's own key, kept in `DATA_DIR/signing.key`
//! (created on first start, readable by the service's user only). A token names its subject,
//! role, province (`all` for national scope), optional county and team, and expiry; the key id
//! in its header lets a new key be introduced while tokens of the old one still verify.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::domain::province;
use crate::domain::types::domain_enum;

domain_enum! {
    /// A caller's part, as tokens and the command line name it.
    pub enum Role {
        /// A 1480 counsellor or 1480 centre.
        Hotline,
        /// A 123 operator.
        Operator,
        /// A mobile team.
        Team,
        /// A receiving centre.
        Centre,
        /// A provincial (or national) supervisor.
        Supervisor,
        /// An administrator: directory, policy, tokens; never narratives or identities.
        Admin,
        /// An auditor: the audit trail.
        Auditor,
    }
}

/// Province scope of a national token.
pub const ALL_PROVINCES: &str = "all";

/// What a token says of its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Who: an operator id, a team id, a centre id.
    pub sub: String,
    /// Their part.
    pub role: Role,
    /// Their province (ISO 3166-2:IR code) or `all`.
    pub province: String,
    /// Their county, when the token is limited to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub county: Option<String>,
    /// Their team, for a mobile team's token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
}

/// Why a token was refused, said to the caller in general terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `authorization: Bearer …` header.
    #[error("missing bearer token: send `authorization: Bearer <token>`")]
    Missing,
    /// Not a token this server can read, or not signed by its key.
    #[error("invalid bearer token")]
    Invalid,
    /// Past its expiry.
    #[error("expired bearer token")]
    Expired,
}

/// Why a token could not be issued or the key not loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read, created or written.
    #[error("signing key {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The key file does not hold a key.
    #[error("signing key {0}: not a key written by this service")]
    Corrupt(PathBuf),
    /// The system's random source failed.
    #[error("no randomness for a new key: {0}")]
    Random(String),
    /// A claim is not acceptable.
    #[error("{0}")]
    BadClaims(String),
    /// Signing failed.
    #[error("cannot sign: {0}")]
    Sign(String),
}

/// The key file's contents.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    kid: String,
    secret: String,
}

/// The server's signing key.
#[derive(Clone)]
pub struct Keys {
    kid: String,
    secret: Vec<u8>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The key file in a data directory.
pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("signing.key")
}

impl Keys {
    /// Reads the key in `data_dir`; `None` when there is none yet.
    pub fn load(data_dir: &Path) -> Result<Option<Self>, KeyError> {
        let path = key_path(data_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(KeyError::Io { path, source }),
        };
        let file: KeyFile =
            serde_json::from_str(&text).map_err(|_| KeyError::Corrupt(path.clone()))?;
        let secret = URL_SAFE_NO_PAD
            .decode(file.secret)
            .map_err(|_| KeyError::Corrupt(path.clone()))?;
        if secret.len() < 32 {
            return Err(KeyError::Corrupt(path));
        }
        Ok(Some(Self {
            kid: file.kid,
            secret,
        }))
    }

    /// Reads the key in `data_dir`, creating it (mode 0600) when there is none; says whether it
    /// was created. Creation never overwrites and is never seen half-written: the key is written
    /// and synced under a temporary name, then hard-linked into place, which fails if another
    /// process got there first — and then that process's key is read.
    pub fn load_or_create(data_dir: &Path) -> Result<(Self, bool), KeyError> {
        if let Some(keys) = Self::load(data_dir)? {
            return Ok((keys, false));
        }
        let path = key_path(data_dir);
        let mut secret = vec![0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| KeyError::Random(e.to_string()))?;
        let keys = Self {
            kid: uuid::Uuid::now_v7().simple().to_string(),
            secret,
        };
        let file = serde_json::to_string(&KeyFile {
            kid: keys.kid.clone(),
            secret: URL_SAFE_NO_PAD.encode(&keys.secret),
        })
        .map_err(|e| KeyError::Sign(e.to_string()))?;
        match crate::secret_file::create(&path, file.as_bytes()) {
            Ok(true) => Ok((keys, true)),
            Ok(false) => {
                let keys = Self::load(data_dir)?.ok_or_else(|| KeyError::Corrupt(path.clone()))?;
                Ok((keys, false))
            }
            Err(source) => Err(KeyError::Io { path, source }),
        }
    }

    /// Signs a token for `claims`.
    pub fn issue(&self, claims: &Claims) -> Result<String, KeyError> {
        check_claims(claims)?;
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(&self.secret))
            .map_err(|e| KeyError::Sign(e.to_string()))
    }

    /// Reads and checks a token: signature, key id and expiry (no leeway).
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid)?;
        if header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(AuthError::Invalid);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked below against the service's clock, which tests set.
        validation.validate_exp = false;
        validation.required_spec_claims = ["exp", "sub"].iter().map(|s| (*s).to_owned()).collect();
        let data = jsonwebtoken::decode::<Claims>(
            token,
            &DecodingKey::from_secret(&self.secret),
            &validation,
        )
        .map_err(|_| AuthError::Invalid)?;
        let claims = data.claims;
        if claims.exp <= now.timestamp() {
            return Err(AuthError::Expired);
        }
        check_claims(&claims).map_err(|_| AuthError::Invalid)?;
        Ok(claims)
    }
}

/// A token's claims must name a known province (or `all`), and a team token its team.
fn check_claims(claims: &Claims) -> Result<(), KeyError> {
    if claims.sub.trim().is_empty() {
        return Err(KeyError::BadClaims("the subject is empty".into()));
    }
    if claims.province != ALL_PROVINCES && province::by_code(&claims.province).is_none() {
        return Err(KeyError::BadClaims(format!(
            "province {:?} is not an ISO 3166-2:IR code (IR-00 to IR-30) or `all`",
            claims.province
        )));
    }
    if claims.role == Role::Team && claims.team.is_none() {
        return Err(KeyError::BadClaims("a team token needs --team".into()));
    }
    if claims.role == Role::Centre && claims.sub == Role::Centre.as_str() {
        return Err(KeyError::BadClaims(
            "a centre token needs --subject: the service point's id".into(),
        ));
    }
    Ok(())
}

/// The claims of a token issued now for `ttl`.
pub fn claims(
    subject: &str,
    role: Role,
    province: &str,
    county: Option<String>,
    team: Option<String>,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Claims {
    let iat = now.timestamp();
    Claims {
        sub: subject.to_owned(),
        role,
        province: province.to_owned(),
        county,
        team,
        iat,
        exp: iat.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
    }
}

/// Mints a token as `referrals token issue` asks, with the key of `args.data_dir`.
pub fn issue_token(
    args: &crate::config::IssueArgs,
    now: DateTime<Utc>,
) -> Result<String, KeyError> {
    let role: Role = args.role.parse().map_err(|_| {
        KeyError::BadClaims(format!(
            "unknown role {:?}; one of hotline, operator, team, centre, supervisor, admin, auditor",
            args.role
        ))
    })?;
    // The county as cases record it: the canonical name, whatever spelling or id was given.
    let county = match &args.county {
        None => None,
        Some(given) => {
            let wanted = crate::domain::names::normalise(given);
            let found = crate::routing::geography::geography()
                .counties
                .iter()
                .filter(|c| c.province == args.province)
                .find(|c| {
                    c.id.as_deref() == Some(given.trim())
                        || crate::domain::names::normalise(&c.name_en) == wanted
                        || crate::domain::names::normalise(&c.name_fa) == wanted
                });
            match found {
                Some(county) => Some(county.name_en.clone()),
                None => {
                    return Err(KeyError::BadClaims(format!(
                        "no county {given:?} in province {:?} (a county needs its province's code)",
                        args.province
                    )));
                }
            }
        }
    };
    let (keys, _) = Keys::load_or_create(&args.data_dir)?;
    let subject = args
        .subject
        .clone()
        .unwrap_or_else(|| role.as_str().to_owned());
    keys.issue(&claims(
        &subject,
        role,
        &args.province,
        county,
        args.team.clone(),
        now,
        args.ttl,
    ))
}

/// Reads the bearer token of an `authorization` header value.
pub fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
    let value = header.ok_or(AuthError::Missing)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::Invalid)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Invalid);
    }
    Ok(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (tempfile::TempDir, Keys) {
        let dir = tempfile::tempdir().unwrap();
        let (keys, created) = Keys::load_or_create(dir.path()).unwrap();
        assert!(created);
        (dir, keys)
    }

    /// A county token carries the county as cases record it, whatever spelling was given; a
    /// county the province does not have is refused.
    #[test]
    fn a_token_names_its_county_canonically() {
        let dir = tempfile::tempdir().unwrap();
        let args = |county: &str| crate::config::IssueArgs {
            role: "operator".into(),
            province: "IR-23".into(),
            county: Some(county.into()),
            team: None,
            subject: None,
            ttl: std::time::Duration::from_secs(600),
            data_dir: dir.path().to_path_buf(),
        };
        let (keys, _) = Keys::load_or_create(dir.path()).unwrap();
        for spelling in ["tehran", "شهرستان تهران", "6554970"] {
            let token = issue_token(&args(spelling), now()).unwrap();
            let claims = keys.verify(&token, now()).unwrap();
            assert_eq!(claims.county.as_deref(), Some("Tehran"), "{spelling}");
        }
        let refused = issue_token(&args("Atlantis"), now()).unwrap_err();
        assert!(refused.to_string().contains("no county"), "{refused}");
        // Tabriz is a county, but not of Tehran.
        assert!(issue_token(&args("Tabriz"), now()).is_err());
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_329_000, 0).unwrap()
    }

    fn operator() -> Claims {
        claims(
            "op-17",
            Role::Operator,
            "IR-23",
            None,
            None,
            now(),
            Duration::from_secs(3600),
        )
    }

    #[test]
    fn a_token_issued_by_the_key_verifies_until_it_expires() {
        let (_dir, keys) = keys();
        let token = keys.issue(&operator()).unwrap();
        assert_eq!(keys.verify(&token, now()).unwrap(), operator());
        let at_expiry = now() + chrono::Duration::seconds(3600);
        assert_eq!(keys.verify(&token, at_expiry), Err(AuthError::Expired));
    }

    #[test]
    fn tokens_of_another_key_or_tampered_ones_are_refused() {
        let (_dir, keys) = keys();
        let (_other_dir, other) = super::tests::keys();
        let foreign = other.issue(&operator()).unwrap();
        assert_eq!(keys.verify(&foreign, now()), Err(AuthError::Invalid));
        let token = keys.issue(&operator()).unwrap();
        let (head, rest) = token.split_once('.').unwrap();
        let (payload, signature) = rest.split_once('.').unwrap();
        // A national supervisor's claims under the operator's signature.
        let mut forged = operator();
        forged.role = Role::Supervisor;
        forged.province = ALL_PROVINCES.into();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_ne!(payload, forged_payload);
        let forged = format!("{head}.{forged_payload}.{signature}");
        assert_eq!(keys.verify(&forged, now()), Err(AuthError::Invalid));
        assert_eq!(keys.verify("not a token", now()), Err(AuthError::Invalid));
    }

    #[test]
    fn the_key_is_created_once_readable_by_its_owner_only_and_then_reused() {
        let (dir, keys) = keys();
        let (again, created) = Keys::load_or_create(dir.path()).unwrap();
        assert!(!created);
        let token = keys.issue(&operator()).unwrap();
        assert!(again.verify(&token, now()).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(key_path(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn servers_starting_together_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let results: Vec<(Keys, bool)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| Keys::load_or_create(&path).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1);
        let kid = &results[0].0.kid;
        assert!(results.iter().all(|(keys, _)| &keys.kid == kid));
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
    }

    #[test]
    fn bad_claims_are_refused_at_issue() {
        let (_dir, keys) = keys();
        let mut bad = operator();
        bad.province = "IR-99".into();
        assert!(keys.issue(&bad).is_err());
        let team = claims(
            "t",
            Role::Team,
            "IR-23",
            None,
            None,
            now(),
            Duration::from_secs(60),
        );
        assert!(keys.issue(&team).is_err(), "a team token names its team");
        let mut national = operator();
        national.province = ALL_PROVINCES.into();
        assert!(keys.issue(&national).is_ok());
    }

    #[test]
    fn the_header_must_be_a_bearer_token() {
        assert_eq!(bearer(None), Err(AuthError::Missing));
        assert_eq!(bearer(Some("Basic abc")), Err(AuthError::Invalid));
        assert_eq!(bearer(Some("Bearer ")), Err(AuthError::Invalid));
        assert_eq!(bearer(Some("Bearer abc.def.ghi")), Ok("abc.def.ghi"));
        assert_eq!(bearer(Some("bearer abc")), Ok("abc"));
    }
}
