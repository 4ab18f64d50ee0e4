//! The `Authorization: <user_id> <auth_key>` header, checked against the stored key hash.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::domain::{AuthKey, UserId};
use crate::error::ApiError;
use crate::state::AppState;

/// Where the key check (`Caller`, `Claimed::verify`) leaves the authenticated user, for the
/// router's access line (the router puts an empty one in each request's extensions).
#[derive(Debug, Clone, Default)]
pub struct AuthenticatedUser(pub std::sync::Arc<std::sync::OnceLock<UserId>>);

/// The signed-in caller of a request, with the key they presented.
#[derive(Debug)]
pub struct Caller {
    pub user: UserId,
    pub key: AuthKey,
}

/// Split the header into its two tokens. Anything but exactly two is malformed (400); two tokens
/// that cannot be an id and a key we issued are simply not authorized (401).
fn parse_header(value: &[u8]) -> Result<(UserId, AuthKey), ApiError> {
    let text = std::str::from_utf8(value).map_err(|_| ApiError::MalformedAuthorization)?;
    let mut tokens = text.split_ascii_whitespace();
    let (Some(user), Some(key), None) = (tokens.next(), tokens.next(), tokens.next()) else {
        return Err(ApiError::MalformedAuthorization);
    };
    match (UserId::parse(user), AuthKey::parse(key)) {
        (Some(user), Some(key)) => Ok((user, key)),
        _ => Err(ApiError::NotAuthorized),
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Claimed::from_request_parts(parts, state).await?.verify(state).await
    }
}

/// A well-formed `Authorization` header whose key is not checked yet. A read by the claimed
/// user (the list) can run alongside the check, so the request waits for one DynamoDB
/// round trip instead of two; its result must only be returned once [`Claimed::verify`] passed.
#[derive(Debug)]
pub struct Claimed {
    user: UserId,
    key: AuthKey,
    /// The access line's slot for the user, filled once the key checks out.
    slot: Option<AuthenticatedUser>,
}

impl FromRequestParts<AppState> for Claimed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or(ApiError::MissingAuthorization)?;
        let (user, key) = parse_header(header.as_bytes())?;
        let slot = parts.extensions.get::<AuthenticatedUser>().cloned();
        Ok(Claimed { user, key, slot })
    }
}

impl Claimed {
    /// The user the header names: not yet authenticated.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// The caller, if the key is one we issued to this user and it has not expired.
    pub async fn verify(self, state: &AppState) -> Result<Caller, ApiError> {
        let stored = state.users.find_key(&self.user, &self.key.hash()).await?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        match stored {
            Some(k) if k.expires_at > now => {
                if let Some(slot) = self.slot {
                    let _ = slot.0.set(self.user.clone());
                }
                Ok(Caller { user: self.user, key: self.key })
            }
            _ => Err(ApiError::NotAuthorized),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> String {
        "0a".repeat(32)
    }

    #[test]
    fn a_well_formed_header_parses() {
        let (user, k) = parse_header(format!("kakao_1 {}", key()).as_bytes()).unwrap();
        assert_eq!((user.as_str(), k.expose()), ("kakao_1", key().as_str()));
    }

    #[test]
    fn one_or_three_tokens_or_non_utf8_are_malformed() {
        for bad in [
            b"kakao_1".to_vec(),
            format!("a_1 {} extra", key()).into_bytes(),
            b"\xff\xfe x".to_vec(),
            Vec::new(),
        ] {
            assert!(matches!(parse_header(&bad), Err(ApiError::MalformedAuthorization)), "{bad:?}");
        }
    }

    #[test]
    fn two_tokens_that_cannot_be_ours_are_unauthorized() {
        for bad in [format!("nounderscore {}", key()), "kakao_1 short".to_owned()] {
            assert!(matches!(parse_header(bad.as_bytes()), Err(ApiError::NotAuthorized)), "{bad}");
        }
    }
}
