//! Identity-provider configuration for verified login: plain data, so `xtask deploy` can check
//! `--oidc-providers` with the same parser the service uses.

use serde::Deserialize;

/// One identity provider, from `RECORD_OIDC_PROVIDERS`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ProviderConfig {
    /// Becomes the user's `social_type`: lowercase letters and digits.
    pub name: String,
    /// The `iss` its tokens must carry.
    pub issuer: String,
    /// The `aud` values accepted (the app's client ids).
    pub audiences: Vec<String>,
    /// Where its signing keys are published (JWKS).
    pub jwks_url: String,
    /// The web recorder's client id at the provider (one of `audiences`): with
    /// `authorization_endpoint`, the page offers sign-in with this provider.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The provider's OpenID Connect authorization endpoint, where the page sends the browser.
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
}

/// Parse and check `RECORD_OIDC_PROVIDERS` (a JSON array of providers); blank means none.
pub fn parse_providers(json: &str) -> Result<Vec<ProviderConfig>, String> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    let providers: Vec<ProviderConfig> = serde_json::from_str(json)
        .map_err(|e| format!("expected a JSON array of {{name, issuer, audiences, jwks_url}}: {e}"))?;
    for p in &providers {
        if p.name.is_empty() || !p.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) {
            return Err(format!(
                "provider name {:?} must be lowercase letters and digits (it becomes the social_type)",
                p.name
            ));
        }
        if p.audiences.is_empty() {
            return Err(format!("provider {} has no audiences: list your client ids", p.name));
        }
        match (&p.client_id, &p.authorization_endpoint) {
            (None, None) => {}
            (Some(client), Some(endpoint)) => {
                if !p.audiences.contains(client) {
                    return Err(format!(
                        "provider {}'s client_id {client} is not among its audiences",
                        p.name
                    ));
                }
                if !endpoint.starts_with("https://") && !endpoint.starts_with("http://127.0.0.1") {
                    return Err(format!("provider {}'s authorization_endpoint must be https", p.name));
                }
            }
            _ => {
                return Err(format!(
                "provider {} needs both client_id and authorization_endpoint for browser sign-in, or neither",
                p.name
            ))
            }
        }
    }
    Ok(providers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_config_is_checked() {
        let ok = r#"[{"name":"google","issuer":"https://accounts.google.com","audiences":["a"],"jwks_url":"https://x"}]"#;
        assert_eq!(parse_providers(ok).unwrap()[0].name, "google");
        assert!(parse_providers(&ok.replace("google", "Goo_gle")).is_err());
        assert!(parse_providers(&ok.replace(r#"["a"]"#, "[]")).is_err());
        assert!(parse_providers("{}").is_err());
        assert_eq!(parse_providers(" "), Ok(Vec::new()));
        let browser = ok.replace(
            r#""jwks_url":"https://x""#,
            r#""jwks_url":"https://x","client_id":"a","authorization_endpoint":"https://idp/authorize""#,
        );
        assert_eq!(parse_providers(&browser).unwrap()[0].client_id.as_deref(), Some("a"));
        assert!(parse_providers(&browser.replace(r#""client_id":"a""#, r#""client_id":"b""#)).is_err());
        assert!(parse_providers(&browser.replace("https://idp", "http://idp")).is_err());
    }
}
