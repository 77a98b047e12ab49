//! Who may call the API: tokens, each with a name and a role, held as SHA-256 hashes.

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// What a token may do, each role including the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessRole {
    /// Every `GET` under `/api/`, and the preview of a schedule's fires.
    Reader,
    /// Also creates, cancels, re-runs and schedules.
    Writer,
    /// Also `/api/v1/admin/*`.
    Admin,
}

impl AccessRole {
    /// The spelling of the configuration and the errors.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessRole::Reader => "reader",
            AccessRole::Writer => "writer",
            AccessRole::Admin => "admin",
        }
    }

    /// Parses [`AccessRole::as_str`]'s spelling.
    pub fn parse(text: &str) -> Option<Self> {
        [AccessRole::Reader, AccessRole::Writer, AccessRole::Admin]
            .into_iter()
            .find(|role| role.as_str() == text)
    }
}

/// One entry of `auth.tokens`.
#[derive(Clone, Deserialize)]
#[serde(untagged)]
pub enum TokenEntry {
    /// `{ name = "ci", role = "writer", sha256 = "…" }`, as `kairos token new` prints it.
    Hashed(HashedToken),
    /// A token in plain text, the form before roles: accepted for this release as an `admin`
    /// token, with a warning at start-up.
    Plain(String),
}

/// A token known by its SHA-256 hash.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashedToken {
    pub name: String,
    pub role: AccessRole,
    /// The token's SHA-256, 64 hexadecimal digits.
    pub sha256: String,
}

/// Who may call the API.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub tokens: Vec<TokenEntry>,
    /// Serve the API on a non-loopback address with no tokens (anyone reaching it may run
    /// commands): refused at start-up unless this is set.
    pub allow_anonymous: bool,
}

// Written by hand so that tokens and their hashes never reach a log.
impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("tokens", &format!("<{} redacted>", self.tokens.len()))
            .field("allow_anonymous", &self.allow_anonymous)
            .finish()
    }
}

/// A token the API accepts: its name, its role and its hash.
#[derive(Clone)]
pub struct Credential {
    pub name: String,
    pub role: AccessRole,
    pub sha256: [u8; 32],
}

/// A token's SHA-256.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl AuthSettings {
    /// The tokens as the API checks them; plain ones are `admin`, named `token-<n>`.
    ///
    /// # Errors
    /// The key and what is wrong, for an entry that is empty or whose hash is malformed.
    pub fn credentials(&self) -> Result<Vec<Credential>, (&'static str, String)> {
        self.tokens
            .iter()
            .enumerate()
            .map(|(n, entry)| match entry {
                TokenEntry::Plain(token) if token.trim().is_empty() => {
                    Err(("auth.tokens", "must not contain an empty token".to_owned()))
                }
                TokenEntry::Plain(token) => Ok(Credential {
                    name: format!("token-{}", n + 1),
                    role: AccessRole::Admin,
                    sha256: hash_token(token),
                }),
                TokenEntry::Hashed(hashed) => {
                    if hashed.name.trim().is_empty() {
                        return Err(("auth.tokens", "a token's `name` must not be empty".into()));
                    }
                    let sha256 = decode_hex(&hashed.sha256).ok_or_else(|| {
                        (
                            "auth.tokens",
                            format!(
                                "the `sha256` of token `{}` must be 64 hexadecimal digits",
                                hashed.name
                            ),
                        )
                    })?;
                    Ok(Credential {
                        name: hashed.name.clone(),
                        role: hashed.role,
                        sha256,
                    })
                }
            })
            .collect()
    }

    /// How many tokens are given in plain text (the form before roles).
    pub fn plain_tokens(&self) -> usize {
        self.tokens
            .iter()
            .filter(|entry| matches!(entry, TokenEntry::Plain(_)))
            .count()
    }
}

fn decode_hex(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0_u8; 32];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks(2)) {
        let digits = std::str::from_utf8(pair).ok()?;
        *slot = u8::from_str_radix(digits, 16).ok()?;
    }
    Some(out)
}

// Written by hand so that a token never reaches a log.
impl std::fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenEntry::Hashed(hashed) => hashed.fmt(f),
            TokenEntry::Plain(_) => f.write_str("Plain(<redacted>)"),
        }
    }
}

impl std::fmt::Debug for HashedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashedToken")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}
