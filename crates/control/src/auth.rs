//! API tokens: issued as random secrets, stored as SHA-256 hashes, resolved
//! to a [`Principal`] on every request.

use hotswap_domain::time;
use hotswap_store::ApiToken;
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

/// Lower-case hex SHA-256 of a token secret. Tokens are 256-bit random
/// values, so a plain hash (no salt, no slow KDF) cannot be brute-forced.
pub fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("hs_{}", hex::encode(bytes))
}

fn valid_owner_id(owner: &str) -> bool {
    !owner.is_empty()
        && owner.len() <= 128
        && owner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
}

impl ControlPlane {
    /// Resolves a bearer secret; `None` for an unknown token.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Principal>> {
        let token = self.store.find_token(&hash_token(secret)).await?;
        Ok(token.map(|t| Principal {
            owner_id: t.owner_id,
            is_admin: t.is_admin,
        }))
    }

    /// Issues a token for `owner_id` (admins only) and returns its secret,
    /// which is not stored and cannot be shown again.
    pub async fn create_token(
        &self,
        caller: &Principal,
        owner_id: &str,
        is_admin: bool,
    ) -> Result<String> {
        caller.require_admin()?;
        if !valid_owner_id(owner_id) {
            return Err(ControlError::validation(
                "OwnerId must be 1-128 letters, digits, '-', '_', '.' or '@'",
            ));
        }
        self.insert_token(owner_id, is_admin, &new_secret()).await
    }

    async fn insert_token(&self, owner_id: &str, is_admin: bool, secret: &str) -> Result<String> {
        let token = ApiToken {
            token_hash: hash_token(secret),
            owner_id: owner_id.to_owned(),
            is_admin,
            created_at: time::now(),
        };
        self.store.insert_token(&token).await?;
        Ok(secret.to_owned())
    }

    /// First-start bootstrap. With `configured` (from `HOTSWAP_ADMIN_TOKEN`)
    /// that secret becomes an admin token if it is not one yet. Without it, an
    /// admin token is generated when none exists, and returned so that it can
    /// be printed once. Returns `None` when nothing new was generated.
    pub async fn bootstrap_admin(&self, configured: Option<&str>) -> Result<Option<String>> {
        match configured {
            Some(secret) if secret.len() < 16 => Err(ControlError::validation(
                "HOTSWAP_ADMIN_TOKEN must be at least 16 characters",
            )),
            Some(secret) => {
                match self.store.find_token(&hash_token(secret)).await? {
                    Some(t) if t.is_admin => {}
                    Some(_) => {
                        return Err(ControlError::Conflict(
                            "HOTSWAP_ADMIN_TOKEN is already a non-admin token".into(),
                        ))
                    }
                    None => {
                        self.insert_token("admin", true, secret).await?;
                    }
                }
                Ok(None)
            }
            None if self.store.has_admin_token().await? => Ok(None),
            None => Ok(Some(self.insert_token("admin", true, &new_secret()).await?)),
        }
    }
}
