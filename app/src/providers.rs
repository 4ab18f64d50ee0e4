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
    }
}
