//! API tokens: issued as random secrets, stored as SHA-256 hashes, resolved
//! to a [`Grant`] (and, for tenant and admin tokens, a [`Principal`]) on
//! every request; listed and revoked by their public `tokenId`.

use hotswap_domain::time::{self, Timestamp};
use hotswap_domain::validation::ValidationErrors;
use hotswap_store::{ApiToken, TokenRole};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::{ControlError, ControlPlane, Result};

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub owner_id: String,
    pub is_admin: bool,
}

impl Principal {
    /// Whether this caller may see and change resources owned by `owner_id`.
    pub fn owns(&self, owner_id: &str) -> bool {
        self.is_admin || self.owner_id == owner_id
    }

    pub fn require_admin(&self) -> Result<()> {
        if self.is_admin {
            Ok(())
        } else {
            Err(ControlError::Forbidden(
                "this operation needs an admin token".into(),
            ))
        }
    }
}

/// What a valid token lets its bearer do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub token_id: String,
    pub owner_id: String,
    pub role: TokenRole,
    pub expires_at: Option<Timestamp>,
}

impl Grant {
    /// The API identity of a tenant or admin token; `None` for roles that
    /// may not use the API (`metrics`, `runner`).
    pub fn principal(&self) -> Option<Principal> {
        match self.role {
            TokenRole::Tenant | TokenRole::Admin => Some(Principal {
                owner_id: self.owner_id.clone(),
                is_admin: self.role == TokenRole::Admin,
            }),
            TokenRole::Metrics | TokenRole::Runner => None,
        }
    }

    /// Whether the token has expired at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// Why a presented token is refused (all answered 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("unknown API token")]
    Unknown,
    #[error("API token expired")]
    Expired,
    #[error("API token revoked")]
    Revoked,
}

/// What an admin asks for when issuing a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// Required for tenant tokens; admin and metrics tokens default to
    /// `"admin"` and `"metrics"`.
    pub owner_id: Option<String>,
    pub role: TokenRole,
    pub name: Option<String>,
    pub expires_at: Option<Timestamp>,
}

/// A freshly issued token: the secret, shown once, and what is stored.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub secret: String,
    pub token: ApiToken,
}

/// Lower-case hex SHA-256 of a token secret. Issued tokens are 256-bit
/// random values, so a plain hash (no salt, no slow KDF) cannot be
/// brute-forced.
pub fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

fn new_secret() -> String {
    format!("hs_{}", random_hex(32))
}

/// A token's public id: random, unrelated to its secret.
fn new_token_id() -> String {
    format!("tok_{}", random_hex(12))
}

/// Whether `owner` is a well-formed owner id: 1–128 letters, digits, `-`,
/// `_`, `.` or `@`.
pub fn valid_owner_id(owner: &str) -> bool {
    !owner.is_empty()
        && owner.len() <= 128
        && owner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
}

/// Longest token name, in characters.
pub const MAX_TOKEN_NAME: usize = 64;

fn check_new_token(req: &NewToken, now: Timestamp) -> Result<String> {
    let mut errors = ValidationErrors::new();
    if req.role == TokenRole::Runner {
        errors.push(
            "role 'runner' is reserved for remote runners, which this server does not run yet; \
             issue tenant, admin or metrics tokens",
        );
    }
    let owner = match (&req.owner_id, req.role) {
        (Some(owner), _) => owner.clone(),
        (None, TokenRole::Admin) => "admin".to_owned(),
        (None, TokenRole::Metrics) => "metrics".to_owned(),
        (None, _) => {
            errors.push("ownerId is required for tenant tokens");
            String::new()
        }
    };
    if req.owner_id.is_some() && !valid_owner_id(&owner) {
        errors.push("OwnerId must be 1-128 letters, digits, '-', '_', '.' or '@'");
    }
    if let Some(name) = &req.name {
        let chars = name.chars().count();
        if chars == 0
            || chars > MAX_TOKEN_NAME
            || name.trim().is_empty()
            || name.chars().any(char::is_control)
        {
            errors.push(format!(
                "name must be 1-{MAX_TOKEN_NAME} characters, not blank, without control characters"
            ));
        }
    }
    if let Some(at) = req.expires_at {
        if at <= now {
            errors.push(format!(
                "expiresAt {} is in the past: a token must expire in the future",
                at.to_rfc3339()
            ));
        }
    }
    errors.into_result()?;
    Ok(owner)
}

/// How precisely a token's `lastUsedAt` is kept.
pub const TOUCH_EVERY: chrono::Duration = chrono::Duration::minutes(5);

impl ControlPlane {
    /// Resolves a bearer secret: the grant of a live token, or why it is
    /// refused. A valid lookup also records the token's `lastUsedAt`
    /// (to the nearest [`TOUCH_EVERY`]).
    pub async fn verify_token(&self, secret: &str) -> Result<Result<Grant, Refused>> {
        let Some(token) = self.store.find_token(&hash_token(secret)).await? else {
            return Ok(Err(Refused::Unknown));
        };
        let now = time::now();
        if token.revoked_at.is_some() {
            return Ok(Err(Refused::Revoked));
        }
        if token.is_expired(now) {
            return Ok(Err(Refused::Expired));
        }
        // `lastUsedAt` to the nearest TOUCH_EVERY: the first use is written
        // at once, later ones at most every five minutes and off the
        // request's path (a write per verification put the store's write
        // lock on the path of every request that missed the token cache).
        match token.last_used_at {
            None => {
                if let Err(e) = self.store.touch_token(&token.token_id, now).await {
                    tracing::warn!(error = %e, token_id = %token.token_id, "cannot record a token's last use");
                }
            }
            Some(last) if now - last >= TOUCH_EVERY => {
                let (store, id) = (self.store.clone(), token.token_id.clone());
                tokio::spawn(async move {
                    if let Err(e) = store.touch_token(&id, now).await {
                        tracing::warn!(error = %e, token_id = %id, "cannot record a token's last use");
                    }
                });
            }
            Some(_) => {}
        }
        Ok(Ok(Grant {
            token_id: token.token_id,
            owner_id: token.owner_id,
            role: token.role,
            expires_at: token.expires_at,
        }))
    }

    /// The API identity behind a secret; `None` for a token that is unknown,
    /// expired, revoked or not a tenant or admin token.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Principal>> {
        Ok(self
            .verify_token(secret)
            .await?
            .ok()
            .and_then(|g| g.principal()))
    }

    /// Issues a token (admins only). The secret is not stored and cannot be
    /// shown again.
    pub async fn issue_token(&self, caller: &Principal, req: NewToken) -> Result<IssuedToken> {
        caller.require_admin()?;
        let now = time::now();
        let owner = check_new_token(&req, now)?;
        let secret = new_secret();
        let token = ApiToken {
            token_hash: hash_token(&secret),
            token_id: new_token_id(),
            owner_id: owner,
            role: req.role,
            name: req.name,
            created_at: now,
            expires_at: req.expires_at.map(time::truncate),
            last_used_at: None,
            revoked_at: None,
        };
        self.store.insert_token(&token).await?;
        Ok(IssuedToken { secret, token })
    }

    /// Issues a tenant or admin token for `owner_id` without name or expiry.
    pub async fn create_token(
        &self,
        caller: &Principal,
        owner_id: &str,
        is_admin: bool,
    ) -> Result<String> {
        let req = NewToken {
            owner_id: Some(owner_id.to_owned()),
            role: if is_admin {
                TokenRole::Admin
            } else {
                TokenRole::Tenant
            },
            name: None,
            expires_at: None,
        };
        Ok(self.issue_token(caller, req).await?.secret)
    }

    /// Tokens that are not revoked: an admin sees every owner's (or one
    /// owner's), a tenant only its own (another owner: `NotFound`).
    pub async fn list_tokens(
        &self,
        caller: &Principal,
        owner_id: Option<&str>,
    ) -> Result<Vec<ApiToken>> {
        let owner = match owner_id {
            Some(o) if !valid_owner_id(o) => {
                return Err(ControlError::validation(
                    "ownerId must be 1-128 letters, digits, '-', '_', '.' or '@'",
                ))
            }
            Some(o) if !caller.owns(o) => {
                return Err(ControlError::NotFound(format!("owner '{o}' not found")))
            }
            Some(o) => Some(o),
            None if caller.is_admin => None,
            None => Some(caller.owner_id.as_str()),
        };
        Ok(self.store.list_tokens(owner).await?)
    }

    /// One token the caller may see (its own, or any for an admin);
    /// `NotFound` otherwise, and for revoked tokens.
    pub async fn get_token(&self, caller: &Principal, token_id: &str) -> Result<ApiToken> {
        match self.store.get_token(token_id).await? {
            Some(t) if t.revoked_at.is_none() && caller.owns(&t.owner_id) => Ok(t),
            _ => Err(ControlError::NotFound(format!(
                "token '{token_id}' not found"
            ))),
        }
    }

    /// Revokes a token the caller may see; returns it as it was. Servers
    /// that cached it accept it until their cache entry expires.
    pub async fn revoke_token(&self, caller: &Principal, token_id: &str) -> Result<ApiToken> {
        let token = self.get_token(caller, token_id).await?;
        if !self.store.revoke_token(token_id, time::now()).await? {
            return Err(ControlError::NotFound(format!(
                "token '{token_id}' not found"
            )));
        }
        tracing::info!(token_id, owner = %token.owner_id, by = %caller.owner_id, "token revoked");
        Ok(token)
    }

    /// First-start bootstrap. With `configured` (from `HOTSWAP_ADMIN_TOKEN`)
    /// that secret becomes an admin token if it is not one yet; a configured
    /// secret that was revoked is refused, never installed again. Without
    /// it, an admin token is generated when no live one exists, and
    /// returned so that it can be printed once. Returns `None` when nothing
    /// new was generated.
    pub async fn bootstrap_admin(&self, configured: Option<&str>) -> Result<Option<String>> {
        match configured {
            Some(secret) if secret.len() < 16 => Err(ControlError::validation(
                "HOTSWAP_ADMIN_TOKEN must be at least 16 characters",
            )),
            Some(secret) => {
                match self.store.find_token(&hash_token(secret)).await? {
                    Some(t) if t.revoked_at.is_some() => {
                        return Err(ControlError::Conflict(
                            "HOTSWAP_ADMIN_TOKEN was revoked and cannot be installed again; \
                             set a new secret"
                                .into(),
                        ))
                    }
                    Some(t) if t.is_expired(time::now()) => {
                        return Err(ControlError::Conflict(
                            "HOTSWAP_ADMIN_TOKEN is an expired token; set a new secret".into(),
                        ))
                    }
                    Some(t) if t.is_admin() => {}
                    Some(_) => {
                        return Err(ControlError::Conflict(
                            "HOTSWAP_ADMIN_TOKEN is already a non-admin token".into(),
                        ))
                    }
                    None => {
                        self.insert_bootstrap(secret).await?;
                    }
                }
                Ok(None)
            }
            None if self.store.has_admin_token().await? => Ok(None),
            None => {
                let secret = new_secret();
                self.insert_bootstrap(&secret).await?;
                Ok(Some(secret))
            }
        }
    }

    async fn insert_bootstrap(&self, secret: &str) -> Result<()> {
        let token = ApiToken {
            token_hash: hash_token(secret),
            token_id: new_token_id(),
            owner_id: "admin".to_owned(),
            role: TokenRole::Admin,
            name: Some("bootstrap".to_owned()),
            created_at: time::now(),
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
        };
        self.store.insert_token(&token).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(owner: Option<&str>, role: TokenRole) -> NewToken {
        NewToken {
            owner_id: owner.map(str::to_owned),
            role,
            name: None,
            expires_at: None,
        }
    }

    fn messages(r: Result<String>) -> Vec<String> {
        match r {
            Err(ControlError::Validation(e)) => e.into_messages(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn owners_default_by_role_and_tenants_need_one() {
        let now = time::now();
        let owner = |r| check_new_token(&r, now).unwrap();
        assert_eq!(owner(req(None, TokenRole::Admin)), "admin");
        assert_eq!(owner(req(None, TokenRole::Metrics)), "metrics");
        assert_eq!(owner(req(Some("alice"), TokenRole::Tenant)), "alice");
        let refused = messages(check_new_token(&req(None, TokenRole::Tenant), now));
        assert!(refused[0].contains("ownerId"), "{refused:?}");
        let refused = messages(check_new_token(&req(Some("a b"), TokenRole::Tenant), now));
        assert!(refused[0].contains("OwnerId"), "{refused:?}");
    }

    #[test]
    fn runner_tokens_bad_names_and_past_expiry_are_refused_together() {
        let now = time::now();
        let mut r = req(Some("node-1"), TokenRole::Runner);
        r.name = Some("\u{7}bell".into());
        r.expires_at = Some(now);
        let all = messages(check_new_token(&r, now));
        assert_eq!(all.len(), 3, "{all:?}");
        assert!(all[0].contains("runner"), "{all:?}");
        assert!(all[1].contains("name"), "{all:?}");
        assert!(all[2].contains("past"), "{all:?}");
        for ok in ["ci", "laptop é", &"x".repeat(MAX_TOKEN_NAME)] {
            let mut r = req(Some("a"), TokenRole::Tenant);
            r.name = Some(ok.to_owned());
            assert!(check_new_token(&r, now).is_ok(), "{ok}");
        }
        for bad in ["", "   ", &"x".repeat(MAX_TOKEN_NAME + 1)] {
            let mut r = req(Some("a"), TokenRole::Tenant);
            r.name = Some(bad.to_owned());
            assert!(check_new_token(&r, now).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_tenant_and_admin_grants_reach_the_api() {
        let grant = |role| Grant {
            token_id: "tok_1".into(),
            owner_id: "o".into(),
            role,
            expires_at: None,
        };
        assert_eq!(
            grant(TokenRole::Admin).principal(),
            Some(Principal {
                owner_id: "o".into(),
                is_admin: true
            })
        );
        assert_eq!(
            grant(TokenRole::Tenant).principal().map(|p| p.is_admin),
            Some(false)
        );
        assert_eq!(grant(TokenRole::Metrics).principal(), None);
        assert_eq!(grant(TokenRole::Runner).principal(), None);
        let mut g = grant(TokenRole::Tenant);
        let now = time::now();
        g.expires_at = Some(now);
        assert!(g.is_expired(now));
        let before = Timestamp::from_timestamp_micros(now.timestamp_micros() - 1).unwrap();
        assert!(!g.is_expired(before));
    }

    #[test]
    fn token_ids_are_random_and_unrelated_to_the_secret() {
        let (a, b) = (new_token_id(), new_token_id());
        assert_ne!(a, b);
        assert!(a.starts_with("tok_") && a.len() == 28, "{a}");
        let secret = new_secret();
        assert!(!hash_token(&secret).contains(&a[4..]));
    }
}
