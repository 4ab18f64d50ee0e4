//! The check S3 makes of a presigned request, for the emulator that does not: re-sign the exact
//! request (method, URL, and the values of the headers it claims to have signed) with SigV4 and
//! the same key, and compare signatures; and refuse it after `X-Amz-Expires`.

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    sign, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    UriPathNormalizationMode,
};

/// The tests' emulator credentials, which the service signs with.
const KEY: (&str, &str) = ("local", "local");

/// `Ok` if S3 would accept `method url` sent with `headers` (lowercase names) now; else why not.
pub fn check_presigned(method: &str, url: &str, headers: &[(String, String)]) -> Result<(), String> {
    let (base, query) = url.split_once('?').ok_or("no query string: not a presigned URL")?;
    let pairs: Vec<(&str, &str)> = query.split('&').filter_map(|p| p.split_once('=')).collect();
    let get =
        |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v).ok_or(format!("no {name}"));
    let date = get("X-Amz-Date")?;
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let signed_at: SystemTime = time::PrimitiveDateTime::parse(date, &format)
        .map_err(|e| format!("X-Amz-Date {date}: {e}"))?
        .assume_utc()
        .into();
    let expires = Duration::from_secs(get("X-Amz-Expires")?.parse().map_err(|_| "bad X-Amz-Expires")?);
    if SystemTime::now() > signed_at + expires {
        return Err("the URL has expired".into());
    }
    let signed_names: Vec<String> = get("X-Amz-SignedHeaders")?.split("%3B").map(str::to_owned).collect();
    let authority = base.split("://").nth(1).and_then(|rest| rest.split('/').next()).ok_or("no host")?;
    let mut signed_headers = Vec::new();
    for name in &signed_names {
        let value = match name.as_str() {
            "host" => authority.to_owned(),
            other => headers
                .iter()
                .find(|(n, _)| n == other)
                .map(|(_, v)| v.clone())
                .ok_or(format!("the request lacks the signed header {other}"))?,
        };
        signed_headers.push((name.clone(), value));
    }
    let unsigned: Vec<String> =
        pairs.iter().filter(|(k, _)| !k.starts_with("X-Amz-")).map(|(k, v)| format!("{k}={v}")).collect();
    let unsigned_url = format!("{base}?{}", unsigned.join("&"));

    let identity = aws_sdk_s3::config::Credentials::new(KEY.0, KEY.1, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires);
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(signed_at)
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let request = SignableRequest::new(
        method,
        unsigned_url,
        signed_headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        SignableBody::UnsignedPayload,
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(request, &params).map_err(|e| e.to_string())?.into_parts();
    let ours =
        instructions.params().iter().find(|(k, _)| *k == "X-Amz-Signature").map(|(_, v)| v.to_string());
    match ours {
        Some(ours) if ours == get("X-Amz-Signature")? => Ok(()),
        _ => Err("SignatureDoesNotMatch: the request differs from what was signed".into()),
    }
}
