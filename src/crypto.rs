//! Encryption at rest of the fields that identify or endanger people: intake details (names,
//! numbers, addresses, coordinates, narratives, risk answers), contacts, notes, follow-up
//! outcomes, routing decisions (their distances place the incident) and teams' positions at
//! the scene.
//!
//! Each value is sealed with XChaCha20-Poly1305 under the keyring's active key, with a random
//! nonce, and bound to its table, column and row as associated data: a ciphertext copied to
//! another row or column, or altered by one bit, fails to open instead of reading as garbage.
//! A sealed value names its key's id, so keys rotate: `referrals keys rotate` adds a key, makes
//! it the one new values are sealed with, and re-seals every stored value under it.
//!
//! Caller numbers also get a keyed hash (HMAC-SHA256 under a key of their own, which never
//! rotates) so repeat calls link without the clear number being stored anywhere.
//!
//! The keyring lives in `DATA_DIR/field.keys` (mode 0600), created on first start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::domain::Error;

/// What a sealed value starts with (binary columns).
const MAGIC: &[u8; 4] = b"\0rf1";
/// What a sealed value starts with in a text column (then base64).
const TEXT_PREFIX: &str = "rf1:";
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = MAGIC.len() + 4 + NONCE_LEN;

/// Where a value is stored: its table, column and row, which the ciphertext is bound to.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    /// The table.
    pub table: &'static str,
    /// The column.
    pub column: &'static str,
    /// The row's key, as bytes (a UUID's bytes, then any further key column).
    pub row: &'a [u8],
}

impl Place<'_> {
    fn aad(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(self.table.len() + self.column.len() + 2 + self.row.len());
        aad.extend_from_slice(self.table.as_bytes());
        aad.push(b'.');
        aad.extend_from_slice(self.column.as_bytes());
        aad.push(0);
        aad.extend_from_slice(self.row);
        aad
    }
}

/// The key of a row in `Place::row` form: a UUID's bytes followed by more key parts.
pub fn row_key(id: &uuid::Uuid, more: &[&[u8]]) -> Vec<u8> {
    let mut key = id.as_bytes().to_vec();
    for part in more {
        key.extend_from_slice(&(part.len() as u32).to_be_bytes());
        key.extend_from_slice(part);
    }
    key
}

/// The keyring file's contents.
#[derive(Serialize, Deserialize, Clone)]
struct KeyringFile {
    /// The key new values are sealed with.
    active: u32,
    /// Every key, by id: old ones stay until no value names them.
    keys: BTreeMap<u32, String>,
    /// The caller-number hash key.
    hash_key: String,
}

struct Keyring {
    active: u32,
    keys: BTreeMap<u32, XChaCha20Poly1305>,
    hash_key: Vec<u8>,
}

impl Keyring {
    fn from_file(file: &KeyringFile, path: &Path) -> Result<Self, KeyringError> {
        let corrupt = || KeyringError::Corrupt(path.to_owned());
        let mut keys = BTreeMap::new();
        for (id, secret) in &file.keys {
            let bytes = URL_SAFE_NO_PAD.decode(secret).map_err(|_| corrupt())?;
            let cipher = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| corrupt())?;
            keys.insert(*id, cipher);
        }
        let hash_key = URL_SAFE_NO_PAD
            .decode(&file.hash_key)
            .map_err(|_| corrupt())?;
        if !keys.contains_key(&file.active) || hash_key.len() < 32 {
            return Err(corrupt());
        }
        Ok(Self {
            active: file.active,
            keys,
            hash_key,
        })
    }
}

/// Why the keyring could not be read, created or changed.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The file could not be read or written.
    #[error("field keys {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold a keyring.
    #[error("field keys {0}: not a keyring written by this service")]
    Corrupt(PathBuf),
    /// The system's random source failed.
    #[error("no randomness for a new key: {0}")]
    Random(String),
}

/// The keyring file in a data directory.
pub fn keyring_path(data_dir: &Path) -> PathBuf {
    data_dir.join("field.keys")
}

fn random_key() -> Result<String, KeyringError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| KeyringError::Random(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(secret))
}

/// Seals and opens the sensitive fields.
pub struct FieldCipher {
    path: PathBuf,
    ring: RwLock<Keyring>,
}

impl std::fmt::Debug for FieldCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FieldCipher")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl FieldCipher {
    /// Reads the keyring of `data_dir`, creating it (mode 0600, never half-written, one
    /// keyring when servers start together) when there is none.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, KeyringError> {
        let path = keyring_path(data_dir);
        let io = |source| KeyringError::Io {
            path: path.clone(),
            source,
        };
        if !path.exists() {
            let file = KeyringFile {
                active: 1,
                keys: BTreeMap::from([(1, random_key()?)]),
                hash_key: random_key()?,
            };
            let text =
                serde_json::to_vec(&file).map_err(|_| KeyringError::Corrupt(path.clone()))?;
            crate::secret_file::create(&path, &text).map_err(io)?;
        }
        let ring = read_keyring(&path)?;
        Ok(Self {
            path,
            ring: RwLock::new(ring),
        })
    }

    /// The id of the key new values are sealed with.
    pub fn active_key(&self) -> u32 {
        self.ring.read().map(|ring| ring.active).unwrap_or_default()
    }

    /// Seals `plaintext` for `place`.
    pub fn seal(&self, place: Place<'_>, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let ring = self
            .ring
            .read()
            .map_err(|_| Error::internal("keyring lock poisoned"))?;
        let cipher = ring
            .keys
            .get(&ring.active)
            .ok_or_else(|| Error::internal("the active field key is missing"))?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| Error::internal(e.to_string()))?;
        let aad = place.aad();
        let sealed = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| Error::internal("sealing a field failed"))?;
        let mut out = Vec::with_capacity(HEADER_LEN + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&ring.active.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a value sealed for `place`. A value altered, moved from another row or column,
    /// or stored in clear is refused with an internal error, never returned.
    pub fn open(&self, place: Place<'_>, stored: &[u8]) -> Result<Vec<u8>, Error> {
        let key_id = Self::key_id(stored).ok_or_else(|| {
            Error::internal(format!(
                "{}.{} holds a value that is not sealed (written before encryption at rest? \
                 run `referrals keys rotate`)",
                place.table, place.column
            ))
        })?;
        let opened = {
            let ring = self
                .ring
                .read()
                .map_err(|_| Error::internal("keyring lock poisoned"))?;
            ring.keys
                .get(&key_id)
                .map(|cipher| decrypt(cipher, stored, &place))
        };
        let opened = match opened {
            Some(opened) => opened,
            // Another process rotated the keys since this one read them.
            None => {
                self.reload()?;
                let ring = self
                    .ring
                    .read()
                    .map_err(|_| Error::internal("keyring lock poisoned"))?;
                let cipher = ring.keys.get(&key_id).ok_or_else(|| {
                    Error::internal(format!("field key {key_id} is not in the keyring"))
                })?;
                decrypt(cipher, stored, &place)
            }
        };
        opened.map_err(|_| {
            Error::internal(format!(
                "{}.{} failed to open: altered, moved or sealed with another key",
                place.table, place.column
            ))
        })
    }

    /// The key id a stored value names, or `None` when it is not a sealed value.
    pub fn key_id(stored: &[u8]) -> Option<u32> {
        if stored.len() < HEADER_LEN + 16 || !stored.starts_with(MAGIC) {
            return None;
        }
        let id: [u8; 4] = stored[MAGIC.len()..MAGIC.len() + 4].try_into().ok()?;
        Some(u32::from_be_bytes(id))
    }

    /// Seals text for a text column.
    pub fn seal_text(&self, place: Place<'_>, plaintext: &str) -> Result<String, Error> {
        let sealed = self.seal(place, plaintext.as_bytes())?;
        Ok(format!("{TEXT_PREFIX}{}", STANDARD_NO_PAD.encode(sealed)))
    }

    /// Opens text sealed by [`Self::seal_text`].
    pub fn open_text(&self, place: Place<'_>, stored: &str) -> Result<String, Error> {
        let bytes = Self::text_bytes(stored).unwrap_or_default();
        let opened = self.open(place, &bytes)?;
        String::from_utf8(opened).map_err(Error::internal)
    }

    /// The sealed bytes of a text column's value, or `None` when it is not sealed.
    pub fn text_bytes(stored: &str) -> Option<Vec<u8>> {
        stored
            .strip_prefix(TEXT_PREFIX)
            .and_then(|b64| STANDARD_NO_PAD.decode(b64).ok())
    }

    /// The keyed hash of a caller's number: the same for every way of writing one number
    /// (`0912…`, `+98912…`, `0098912…`, spaces and dashes), and useless without the key.
    pub fn caller_hash(&self, number: &str) -> Result<Option<Vec<u8>>, Error> {
        let digits: String = number.chars().filter(char::is_ascii_digit).collect();
        let national = digits
            .strip_prefix("0098")
            .or_else(|| {
                digits
                    .strip_prefix("98")
                    .filter(|_| number.trim_start().starts_with('+'))
            })
            .or_else(|| digits.strip_prefix('0'))
            .unwrap_or(&digits);
        if national.is_empty() {
            return Ok(None);
        }
        let ring = self
            .ring
            .read()
            .map_err(|_| Error::internal("keyring lock poisoned"))?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&ring.hash_key)
            .map_err(|_| Error::internal("bad hash key"))?;
        mac.update(national.as_bytes());
        Ok(Some(mac.finalize().into_bytes().to_vec()))
    }

    fn reload(&self) -> Result<(), Error> {
        let ring = read_keyring(&self.path).map_err(Error::internal)?;
        *self
            .ring
            .write()
            .map_err(|_| Error::internal("keyring lock poisoned"))? = ring;
        Ok(())
    }
}

/// Opens a sealed value (its header already checked) with `cipher`.
fn decrypt(
    cipher: &XChaCha20Poly1305,
    stored: &[u8],
    place: &Place<'_>,
) -> Result<Vec<u8>, chacha20poly1305::aead::Error> {
    let nonce: [u8; NONCE_LEN] = stored[MAGIC.len() + 4..HEADER_LEN]
        .try_into()
        .map_err(|_| chacha20poly1305::aead::Error)?;
    cipher.decrypt(
        &XNonce::from(nonce),
        Payload {
            msg: &stored[HEADER_LEN..],
            aad: &place.aad(),
        },
    )
}

fn read_file(path: &Path) -> Result<KeyringFile, KeyringError> {
    let text = std::fs::read(path).map_err(|source| KeyringError::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|_| KeyringError::Corrupt(path.to_owned()))
}

fn read_keyring(path: &Path) -> Result<Keyring, KeyringError> {
    Keyring::from_file(&read_file(path)?, path)
}

/// Adds a new key to the keyring of `data_dir` and makes it the active one; returns its id.
/// The file is replaced atomically (written under a temporary name, synced, renamed).
pub fn add_key(data_dir: &Path) -> Result<u32, KeyringError> {
    let path = keyring_path(data_dir);
    let mut file = read_file(&path)?;
    let id = file.keys.keys().next_back().copied().unwrap_or(0) + 1;
    file.keys.insert(id, random_key()?);
    file.active = id;
    let text = serde_json::to_vec(&file).map_err(|_| KeyringError::Corrupt(path.clone()))?;
    crate::secret_file::replace(&path, &text).map_err(|source| KeyringError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> (tempfile::TempDir, FieldCipher) {
        let dir = tempfile::tempdir().unwrap();
        let cipher = FieldCipher::load_or_create(dir.path()).unwrap();
        (dir, cipher)
    }

    const ROW: Place<'static> = Place {
        table: "notes",
        column: "body",
        row: b"row-1",
    };

    #[test]
    fn a_sealed_value_opens_only_where_it_was_sealed() {
        let (_dir, cipher) = cipher();
        let sealed = cipher.seal(ROW, b"she is at her aunt's").unwrap();
        assert!(!sealed.windows(4).any(|w| w == b"aunt"));
        assert_eq!(cipher.open(ROW, &sealed).unwrap(), b"she is at her aunt's");
        let other_row = Place {
            row: b"row-2",
            ..ROW
        };
        assert!(
            cipher.open(other_row, &sealed).is_err(),
            "moved to another row"
        );
        let other_column = Place {
            column: "outcome",
            ..ROW
        };
        assert!(cipher.open(other_column, &sealed).is_err());
        for i in [HEADER_LEN, sealed.len() - 1, MAGIC.len() + 5] {
            let mut tampered = sealed.clone();
            tampered[i] ^= 1;
            assert!(cipher.open(ROW, &tampered).is_err(), "byte {i} flipped");
        }
        assert!(
            cipher.open(ROW, b"{\"clear\": true}").is_err(),
            "clear text"
        );
        let text = cipher.seal_text(ROW, "سلام").unwrap();
        assert_eq!(cipher.open_text(ROW, &text).unwrap(), "سلام");
    }

    #[test]
    fn a_new_key_seals_new_values_and_old_ones_still_open() {
        let (dir, cipher) = cipher();
        let old = cipher.seal(ROW, b"x").unwrap();
        assert_eq!(FieldCipher::key_id(&old), Some(1));
        assert_eq!(add_key(dir.path()).unwrap(), 2);
        // This process learns of key 2 when it meets a value sealed with it.
        let other = FieldCipher::load_or_create(dir.path()).unwrap();
        let new = other.seal(ROW, b"y").unwrap();
        assert_eq!(FieldCipher::key_id(&new), Some(2));
        assert_eq!(cipher.open(ROW, &new).unwrap(), b"y");
        assert_eq!(other.open(ROW, &old).unwrap(), b"x");
        let keyring = std::fs::read_to_string(keyring_path(dir.path())).unwrap();
        assert!(keyring.contains("\"active\":2"));
    }

    #[test]
    fn one_number_written_many_ways_hashes_alike() {
        let (_dir, cipher) = cipher();
        let hash = |n: &str| cipher.caller_hash(n).unwrap();
        let one = hash("09121234567");
        assert!(one.is_some());
        for same in ["+98 912 123 4567", "0098-912-123-4567", "9121234567"] {
            assert_eq!(hash(same), one, "{same}");
        }
        assert_ne!(hash("09121234568"), one);
        assert_eq!(hash(""), None);
        let (_dir2, other) = super::tests::cipher();
        assert_ne!(
            other.caller_hash("09121234567").unwrap(),
            one,
            "another key"
        );
    }
}
