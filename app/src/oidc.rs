//! Verified social login: OpenID Connect ID tokens checked against each provider's JWKS
//! (signature, `alg`, `iss`, `aud`, `exp`, `nbf`, `iat`). Keys are cached; an unknown `kid`
//! triggers a refetch, at most once per interval and backed off while fetches fail, so forged
//! kids cannot hammer the provider. Fetches are single-flight, and a token whose key is cached
//! never waits on one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::OnceCell;

pub use crate::providers::{parse_providers, ProviderConfig};

/// Why a verified login was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OidcError {
    /// The request names a provider this service does not know.
    #[error("unknown provider")]
    UnknownProvider,
    /// Deliberately without detail: the client learns only that the token was refused.
    #[error("id token is not valid")]
    InvalidToken,
    /// The provider's keys cannot be fetched now (503: retry later).
    #[error("the identity provider's keys could not be fetched")]
    Unavailable,
    /// The token was exchanged for a key before (a replay).
    #[error("this id token was already exchanged for a key: get a new one from the provider")]
    AlreadyUsed,
}

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: u64 = 60;
/// How long fetched keys are trusted before a refetch.
const KEYS_TTL: Duration = Duration::from_secs(3600);

struct CachedKeys {
    keys: JwkSet,
    fetched: Instant,
}

/// The longest wait between two fetches of a failing provider.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// What is known of one provider's keys. Held under a plain mutex, never across an await.
#[derive(Default)]
struct KeyState {
    keys: Option<CachedKeys>,
    /// When the last fetch ended (or started, while one is in flight).
    last_attempt: Option<Instant>,
    /// Fetches that failed in a row.
    failures: u32,
}

impl KeyState {
    /// A cached key, fresh or (`stale_ok`) of any age.
    fn find(&self, kid: &str, stale_ok: bool) -> Option<Jwk> {
        let cached = self.keys.as_ref()?;
        (stale_ok || cached.fetched.elapsed() < KEYS_TTL).then(|| cached.keys.find(kid).cloned()).flatten()
    }

    fn may_fetch(&self, min_refetch: Duration) -> bool {
        self.last_attempt.is_none_or(|at| at.elapsed() >= backoff(self.failures, min_refetch))
    }

    /// The answer when no fetch may be made: the provider is failing, or the kid is unknown.
    fn refusal(&self) -> OidcError {
        if self.failures > 0 {
            OidcError::Unavailable
        } else {
            OidcError::InvalidToken
        }
    }
}

/// The wait after a fetch before the next: `min_refetch` after a success; after `failures`
/// failures in a row, doubling from at least a second, up to [`MAX_BACKOFF`].
fn backoff(failures: u32, min_refetch: Duration) -> Duration {
    match failures {
        0 => min_refetch,
        n => {
            let base = min_refetch.max(Duration::from_secs(1));
            base.saturating_mul(1u32.checked_shl(n - 1).unwrap_or(u32::MAX)).min(MAX_BACKOFF)
        }
    }
}

struct Provider {
    config: ProviderConfig,
    state: std::sync::Mutex<KeyState>,
    /// Held by the one fetch in flight.
    fetching: tokio::sync::Mutex<()>,
}

impl Provider {
    fn state(&self) -> std::sync::MutexGuard<'_, KeyState> {
        // A panic while holding it cannot leave the state half-updated (plain assignments).
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
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
    exp: u64,
    jti: Option<String>,
}

/// A verified ID token: who it names, and what identifies the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The token's `sub`: the user at the provider.
    pub subject: String,
    /// SHA-256 (hex) of the token's `jti`, or of its signed part (header and claims) when it has
    /// none: the same token always gives the same id, however its signature is encoded, and two
    /// tokens with different claims never do.
    pub token_id: String,
    /// The token's `exp` (epoch seconds): it cannot be exchanged after that anyway.
    pub expires_at: i64,
}

impl Verifier {
    /// `min_refetch`: the shortest time between two fetches of one provider's keys.
    pub fn new(configs: &[ProviderConfig], min_refetch: Duration) -> Self {
        let providers = configs
            .iter()
            .map(|c| {
                let provider =
                    Provider { config: c.clone(), state: Default::default(), fetching: Default::default() };
                (c.name.clone(), provider)
            })
            .collect();
        Verifier { providers: Arc::new(providers), http: Arc::default(), min_refetch }
    }

    /// The providers the web page can send a browser to for sign-in: name, client id and
    /// authorization endpoint of each that has them.
    pub fn browser_sign_in(&self) -> Vec<serde_json::Value> {
        let mut providers: Vec<serde_json::Value> = self
            .providers
            .values()
            .filter_map(|p| {
                let (client, endpoint) = (p.config.client_id.as_ref()?, p.config.authorization_endpoint.as_ref()?);
                Some(serde_json::json!({ "name": p.config.name, "client_id": client, "authorization_endpoint": endpoint }))
            })
            .collect();
        providers.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        providers
    }

    /// Whether `name` is a configured provider.
    pub fn has_provider(&self, name: &str) -> bool {
        self.providers.contains_key(name)
    }

    /// The token's subject (`sub`) and identity if `token` is a valid ID token of `provider`.
    pub async fn verify(&self, provider: &str, token: &str) -> Result<VerifiedToken, OidcError> {
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
        use sha2::Digest;
        // Without a `jti`, the token is what its signature signs: the header and claims. Not the
        // whole string, whose signature can take another form that still verifies (ECDSA's s and
        // n − s), so one token could be exchanged twice.
        let signed = token.rsplit_once('.').map_or(token, |(signed, _signature)| signed);
        let id_source =
            claims.jti.as_deref().map_or_else(|| format!("signed:{signed}"), |jti| format!("jti:{jti}"));
        let token_id =
            sha2::Sha256::digest(id_source.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        Ok(VerifiedToken {
            subject: claims.sub,
            token_id,
            expires_at: i64::try_from(claims.exp).unwrap_or(i64::MAX),
        })
    }

    /// The provider's key `kid`: from the cache, or after one (rate-limited, single-flight)
    /// refetch. Stale keys are used while the provider cannot be reached.
    async fn key(&self, provider: &Provider, kid: &str) -> Result<Jwk, OidcError> {
        let stale = {
            let state = provider.state();
            if let Some(key) = state.find(kid, false) {
                return Ok(key);
            }
            if !state.may_fetch(self.min_refetch) {
                return state.find(kid, true).ok_or_else(|| state.refusal());
            }
            state.find(kid, true)
        };
        let _flight = match provider.fetching.try_lock() {
            Ok(flight) => flight,
            // A fetch is in flight: a key we have is served now; an unknown kid waits for the
            // fetch's outcome instead of starting another.
            Err(_) => {
                if let Some(key) = stale {
                    return Ok(key);
                }
                drop(provider.fetching.lock().await);
                let state = provider.state();
                return state.find(kid, true).ok_or_else(|| state.refusal());
            }
        };
        {
            // Another flight may have ended between the checks above and the lock.
            let mut state = provider.state();
            if let Some(key) = state.find(kid, false) {
                return Ok(key);
            }
            if !state.may_fetch(self.min_refetch) {
                return state.find(kid, true).ok_or_else(|| state.refusal());
            }
            state.last_attempt = Some(Instant::now());
        }
        let fetched = self.fetch(&provider.config.jwks_url).await;
        let mut state = provider.state();
        state.last_attempt = Some(Instant::now());
        match fetched {
            Ok(keys) => {
                let found = keys.find(kid).cloned();
                state.keys = Some(CachedKeys { keys, fetched: Instant::now() });
                state.failures = 0;
                found.ok_or(OidcError::InvalidToken)
            }
            Err(err) => {
                state.failures = state.failures.saturating_add(1);
                tracing::warn!(
                    provider = %provider.config.name,
                    error = %err,
                    failures = state.failures,
                    next_in_s = backoff(state.failures, self.min_refetch).as_secs(),
                    "could not fetch the JWKS"
                );
                state.find(kid, true).ok_or(OidcError::Unavailable)
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

    #[test]
    fn failed_fetches_back_off_doubling_up_to_five_minutes() {
        let min = Duration::from_secs(30);
        assert_eq!(backoff(0, min), min);
        assert_eq!(backoff(1, min), min);
        assert_eq!(backoff(2, min), Duration::from_secs(60));
        assert_eq!(backoff(3, min), Duration::from_secs(120));
        assert_eq!(backoff(10, min), MAX_BACKOFF);
        assert_eq!(backoff(200, min), MAX_BACKOFF);
        assert_eq!(
            backoff(1, Duration::ZERO),
            Duration::from_secs(1),
            "a failing provider waits at least 1 s"
        );
    }

    #[tokio::test]
    async fn none_and_hmac_tokens_are_refused_before_any_fetch() {
        let config = ProviderConfig {
            name: "p".into(),
            issuer: "i".into(),
            audiences: vec!["a".into()],
            // Nothing listens here: a fetch would make the result Unavailable, not InvalidToken.
            jwks_url: "http://127.0.0.1:9/jwks".into(),
            client_id: None,
            authorization_endpoint: None,
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
