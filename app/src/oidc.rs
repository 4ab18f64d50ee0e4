//! Verified social login: OpenID Connect ID tokens checked against each provider's JWKS
//! (signature, `alg`, `iss`, `aud`, `exp`, `nbf`, `iat`). Keys are cached; an unknown `kid`
//! triggers one refetch (at most once per interval, so forged kids cannot hammer the provider).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::{Mutex, OnceCell};

pub use crate::providers::{parse_providers, ProviderConfig};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OidcError {
    #[error("unknown provider")]
    UnknownProvider,
    /// Deliberately without detail: the client learns only that the token was refused.
    #[error("id token is not valid")]
    InvalidToken,
    #[error("the identity provider's keys could not be fetched")]
    Unavailable,
}

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: u64 = 60;
/// How long fetched keys are trusted before a refetch.
const KEYS_TTL: Duration = Duration::from_secs(3600);

struct CachedKeys {
    keys: JwkSet,
    fetched: Instant,
}

struct Provider {
    config: ProviderConfig,
    cache: Mutex<Option<CachedKeys>>,
}

/// Verifies ID tokens for every configured provider. Built once per cold start.
#[derive(Clone)]
pub struct Verifier {
    providers: Arc<HashMap<String, Provider>>,
    /// Built on the first fetch: building it loads the system's CA certificates, a cost (and a
    /// failure) a cold start that never verifies a token should not pay.
    http: Arc<OnceCell<reqwest::Client>>,
    min_refetch: Duration,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("providers", &self.providers.keys().collect::<Vec<_>>()).finish()
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    iat: Option<u64>,
}

impl Verifier {
    /// `min_refetch`: the shortest time between two fetches of one provider's keys.
    pub fn new(configs: &[ProviderConfig], min_refetch: Duration) -> Self {
        let providers = configs
            .iter()
            .map(|c| (c.name.clone(), Provider { config: c.clone(), cache: Mutex::new(None) }))
            .collect();
        Verifier { providers: Arc::new(providers), http: Arc::default(), min_refetch }
    }

    /// The token's subject (`sub`) if `token` is a valid ID token of `provider`.
    pub async fn verify(&self, provider: &str, token: &str) -> Result<String, OidcError> {
        let provider = self.providers.get(provider).ok_or(OidcError::UnknownProvider)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| OidcError::InvalidToken)?;
        // Only asymmetric algorithms: `none` and HMAC (e.g. HS256 keyed with the public key)
        // are refused before any key is looked at.
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(OidcError::InvalidToken);
        }
        let kid = header.kid.ok_or(OidcError::InvalidToken)?;
        let jwk = self.key(provider, &kid).await?;
        let key = decoding_key(&jwk, header.alg).ok_or(OidcError::InvalidToken)?;

        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&provider.config.issuer]);
        validation.set_audience(&provider.config.audiences);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|_| OidcError::InvalidToken)?
            .claims;
        let now = jsonwebtoken::get_current_timestamp();
        if claims.iat.is_some_and(|iat| iat > now + LEEWAY_SECS) {
            return Err(OidcError::InvalidToken);
        }
        Ok(claims.sub)
    }

    /// The provider's key `kid`: from the cache, or after one (rate-limited) refetch.
    async fn key(&self, provider: &Provider, kid: &str) -> Result<Jwk, OidcError> {
        let mut cache = provider.cache.lock().await;
        if let Some(cached) = cache.as_ref() {
            let fresh = cached.fetched.elapsed() < KEYS_TTL;
            if let Some(key) = cached.keys.find(kid).filter(|_| fresh) {
                return Ok(key.clone());
            }
            if fresh && cached.fetched.elapsed() < self.min_refetch {
                return Err(OidcError::InvalidToken);
            }
        }
        match self.fetch(&provider.config.jwks_url).await {
            Ok(keys) => {
                let found = keys.find(kid).cloned();
                *cache = Some(CachedKeys { keys, fetched: Instant::now() });
                found.ok_or(OidcError::InvalidToken)
            }
            Err(err) => {
                tracing::warn!(provider = %provider.config.name, error = %err, "could not fetch the JWKS");
                // Stale keys are better than none while the provider is unreachable.
                match cache.as_ref().and_then(|c| c.keys.find(kid)) {
                    Some(key) => Ok(key.clone()),
                    None => Err(OidcError::Unavailable),
                }
            }
        }
    }

    async fn fetch(&self, url: &str) -> Result<JwkSet, reqwest::Error> {
        let http = self
            .http
            .get_or_try_init(|| async {
                reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .connect_timeout(Duration::from_secs(2))
                    .build()
            })
            .await?;
        http.get(url).send().await?.error_for_status()?.json().await
    }
}

/// The verification key, if the JWK fits the token's algorithm (RSA for RS256, P-256 for ES256,
/// and the JWK's own `alg`, when it has one, must agree).
fn decoding_key(jwk: &Jwk, alg: Algorithm) -> Option<DecodingKey> {
    let declared = jwk.common.key_algorithm;
    let wanted = match alg {
        Algorithm::RS256 => KeyAlgorithm::RS256,
        Algorithm::ES256 => KeyAlgorithm::ES256,
        _ => return None,
    };
    if declared.is_some_and(|d| d != wanted) {
        return None;
    }
    let fits = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(_), Algorithm::RS256) => true,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => ec.curve == EllipticCurve::P256,
        _ => false,
    };
    fits.then(|| DecodingKey::from_jwk(jwk).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn none_and_hmac_tokens_are_refused_before_any_fetch() {
        let config = ProviderConfig {
            name: "p".into(),
            issuer: "i".into(),
            audiences: vec!["a".into()],
            // Nothing listens here: a fetch would make the result Unavailable, not InvalidToken.
            jwks_url: "http://127.0.0.1:9/jwks".into(),
        };
        let verifier = Verifier::new(&[config], Duration::ZERO);
        let none = "eyJhbGciOiJub25lIiwia2lkIjoiayJ9.eyJzdWIiOiIxIn0.";
        assert_eq!(verifier.verify("p", none).await, Err(OidcError::InvalidToken));
        let key = jsonwebtoken::EncodingKey::from_secret(b"public key bytes");
        let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
        header.kid = Some("k".into());
        let hs256 = jsonwebtoken::encode(&header, &serde_json::json!({"sub": "1"}), &key).unwrap();
        assert_eq!(verifier.verify("p", &hs256).await, Err(OidcError::InvalidToken));
        assert_eq!(verifier.verify("other", &hs256).await, Err(OidcError::UnknownProvider));
    }
}
