//! Domain types. User input becomes one of these through a constructor that rejects bad values,
//! so storage and handlers only ever see valid data.

use sha2::{Digest, Sha256};
use std::fmt;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

/// Why a value from a request is not a valid domain value: the caller's mistake, with what to
/// fix (`error.rs` maps it to HTTP).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The unverified login lacks a parameter (the seed's message).
    #[error("social_id or social_type is null.")]
    MissingSocialLogin,
    /// A value that cannot be used, and what it must be instead.
    #[error("{0}")]
    Invalid(String),
    /// A media type that is not audio.
    #[error("content type is not audio")]
    NotAudio,
}

/// `{social_type}_{social_id}`: the user's id, as the original app formed it.
///
/// `social_type` is lowercase letters and digits only, so the first `_` always separates the two
/// parts and two different logins can never produce the same id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct UserId(String);

const MAX_SOCIAL_TYPE: usize = 32;
const MAX_SOCIAL_ID: usize = 128;

fn is_social_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+')
}

impl UserId {
    /// From the seed's `social_type` and `social_id` query parameters.
    pub fn from_social(social_type: &str, social_id: &str) -> Result<Self, DomainError> {
        if social_type.is_empty() || social_id.is_empty() {
            return Err(DomainError::MissingSocialLogin);
        }
        let type_ok = social_type.len() <= MAX_SOCIAL_TYPE
            && social_type.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !type_ok {
            return Err(DomainError::Invalid(format!(
                "social_type must be 1-{MAX_SOCIAL_TYPE} lowercase letters or digits"
            )));
        }
        if social_id.len() > MAX_SOCIAL_ID || !social_id.chars().all(is_social_id_char) {
            return Err(DomainError::Invalid(format!(
                "social_id must be 1-{MAX_SOCIAL_ID} characters from A-Z a-z 0-9 . _ - @ +"
            )));
        }
        Ok(UserId(format!("{social_type}_{social_id}")))
    }

    /// From the first token of an `Authorization` header. `None` if it cannot be a user id.
    pub fn parse(s: &str) -> Option<Self> {
        let (social_type, social_id) = s.split_once('_')?;
        UserId::from_social(social_type, social_id).ok()
    }

    /// An id read back from the tables: written by this service (checked then) or by the
    /// original app (kept as it was), so never refused.
    pub fn from_stored(s: String) -> Self {
        UserId(s)
    }

    /// The id as stored and sent (`{social_type}_{social_id}`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The media types both upload routes accept: audio a phone or browser records, plus the seed's
/// default. Anything else (HTML, SVG, scripts) would be served back from our bucket as is.
pub const AUDIO_TYPES: &[&str] = &[
    "audio/3gpp",
    "audio/aac",
    "audio/amr",
    "audio/flac",
    "audio/mp4",
    "audio/mpeg",
    "audio/ogg",
    "audio/opus",
    "audio/wav",
    "audio/webm",
    "audio/x-m4a",
    "audio/x-wav",
    "application/octet-stream",
];

/// The seed's only type, used when a client sends none.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// An upload's media type: `None` means the default; parameters (`; codecs=opus`) are dropped and
/// the type is lowercased. A type outside [`AUDIO_TYPES`] is refused with 415.
pub fn audio_type(value: Option<&str>) -> Result<String, DomainError> {
    let Some(value) = value else { return Ok(DEFAULT_CONTENT_TYPE.to_owned()) };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match AUDIO_TYPES.iter().find(|t| **t == essence) {
        Some(t) => Ok((*t).to_owned()),
        None => Err(DomainError::NotAudio),
    }
}

/// Everything but RFC 8187's attr-char (`ALPHA / DIGIT / "!" / "#" / "$" / "&" / "+" / "-" /
/// "." / "^" / "_" / "`" / "|" / "~"`) is percent-encoded in an extended parameter value.
const NOT_ATTR_CHAR: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `Content-Disposition` that makes a browser download the recording as a file named
/// `file_name`: an ASCII fallback (`filename`) and the exact name, UTF-8 and percent-encoded
/// (`filename*`, RFC 6266 / RFC 8187).
pub fn attachment(file_name: &str) -> String {
    let fallback: String =
        file_name.chars().map(|c| if c.is_ascii() && c != '"' && c != '\\' { c } else { '_' }).collect();
    let encoded = percent_encoding::utf8_percent_encode(file_name, NOT_ATTR_CHAR);
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A 256-bit key from the OS CSPRNG, shown to the client once and stored only as its SHA-256.
pub struct AuthKey(String);

const AUTH_KEY_BYTES: usize = 32;

impl AuthKey {
    // No key without randomness: the request fails (the sandbox restarts) rather than issue a
    // guessable secret.
    #[allow(clippy::expect_used)]
    /// A new key: 256 bits from the operating system's CSPRNG, as 64 hex digits.
    pub fn generate() -> Self {
        let mut bytes = [0u8; AUTH_KEY_BYTES];
        // The OS RNG failing means the machine cannot issue secrets at all: nothing to recover.
        getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
        AuthKey(hex::encode(bytes))
    }

    /// From the second token of an `Authorization` header. `None` if it cannot be a key we issued.
    pub fn parse(s: &str) -> Option<Self> {
        let well_formed = s.len() == AUTH_KEY_BYTES * 2
            && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        well_formed.then(|| AuthKey(s.to_owned()))
    }

    /// The key's text, to hand to the client once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the user table stores instead of the key.
    pub fn hash(&self) -> KeyHash {
        KeyHash(hex::encode(Sha256::digest(self.0.as_bytes())))
    }
}

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthKey(..)")
    }
}

/// Lowercase hex SHA-256 of an [`AuthKey`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHash(String);

impl KeyHash {
    /// The hash as stored (lowercase hex).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A record's id: a UUIDv7, unique and time-ordered even for uploads in the same millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordId(uuid::Uuid);

impl RecordId {
    /// A new time-ordered id (UUIDv7).
    pub fn new() -> Self {
        RecordId(uuid::Uuid::now_v7())
    }

    /// An id from a request path, `None` if it cannot be one of ours.
    pub fn parse(s: &str) -> Option<Self> {
        uuid::Uuid::try_parse(s).ok().map(RecordId)
    }
}

impl Default for RecordId {
    fn default() -> Self {
        Self::new()
    }
}

impl serde::Serialize for RecordId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// An uploaded file's name: no path separators, no `..`, no control characters, 1-255 bytes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct FileName(String);

/// The longest file name accepted, in bytes.
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// Characters that change how a name is displayed without being seen: bidirectional overrides,
/// embeddings, isolates and marks (`a` + U+202E + `gpj.html` shows as `almth.jpg`), and
/// zero-width characters.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

impl FileName {
    /// A file name from a request, refused with what to fix when it is not a plain name.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let problem = if s.is_empty() {
            Some("is empty")
        } else if s.len() > MAX_FILE_NAME_BYTES {
            Some("is longer than 255 bytes")
        } else if s.contains(['/', '\\']) {
            Some("contains a path separator")
        } else if s.contains("..") {
            Some("contains '..'")
        } else if s.chars().any(char::is_control) {
            Some("contains a control character")
        } else if s.chars().any(is_invisible_format) {
            Some("contains a bidirectional or zero-width character")
        } else {
            None
        };
        match problem {
            Some(p) => Err(DomainError::Invalid(format!("file name {p}: use a plain file name"))),
            None => Ok(FileName(s.to_owned())),
        }
    }

    /// A name read back from the tables: checked when this service stored it, or the original
    /// app's, kept as it was (downloads encode it either way).
    pub fn from_stored(s: String) -> Self {
        FileName(s)
    }

    /// The name as uploaded.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where every upload of the service keeps the audio of `user`'s record `id`.
pub fn object_key(user: &UserId, id: &RecordId) -> String {
    format!("{}{user}/{id}", crate::schema::RECORDINGS_PREFIX)
}

/// A stored recording's metadata.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Record {
    /// Its id.
    pub id: RecordId,
    /// Its owner.
    pub user_id: UserId,
    /// The name it was uploaded as.
    pub file_name: FileName,
    /// RFC 3339 UTC with milliseconds.
    pub created_at: String,
    /// Its size in bytes.
    pub size: u64,
    /// The audio type it is served as.
    pub content_type: String,
    /// Where the audio lives in the bucket; never shown to clients.
    #[serde(skip)]
    pub object_key: String,
}

impl Record {
    /// A new record for an upload by `user`, stored under a key derived from the user and id.
    pub fn new(user: &UserId, file_name: &FileName, size: u64, content_type: String) -> Self {
        let id = RecordId::new();
        Record {
            id,
            user_id: user.clone(),
            file_name: file_name.clone(),
            created_at: timestamp(OffsetDateTime::now_utc()),
            size,
            content_type,
            object_key: object_key(user, &id),
        }
    }
}

/// RFC 3339 UTC with exactly three fractional digits, so that string order is time order.
// The format fails only for years outside 0000–9999; the times formatted are the clock's.
#[allow(clippy::expect_used)]
pub fn timestamp(t: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.to_offset(time::UtcOffset::UTC).format(&format).expect("a UTC timestamp always formats")
}

/// Where the next page of a user's list starts: the last record of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The last listed record's `created_at`.
    pub created_at: String,
    /// The last listed record's id.
    pub record_id: String,
}

impl Cursor {
    /// The opaque `next` token handed to clients.
    pub fn to_token(&self) -> String {
        hex::encode(format!("{} {}", self.created_at, self.record_id))
    }

    /// A cursor from the `next` token a list returned; 400 for anything else.
    pub fn from_token(token: &str) -> Result<Self, DomainError> {
        let invalid = || DomainError::Invalid("next is not a token from a previous page".into());
        if token.len() > 256 {
            return Err(invalid());
        }
        let bytes = hex::decode(token).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (created_at, record_id) = text.split_once(' ').ok_or_else(invalid)?;
        OffsetDateTime::parse(created_at, &Rfc3339).map_err(|_| invalid())?;
        let record_id = RecordId::parse(record_id).ok_or_else(invalid)?;
        Ok(Cursor { created_at: created_at.to_owned(), record_id: record_id.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_types_are_accepted_without_parameters_and_others_refused() {
        assert_eq!(audio_type(None).unwrap(), "application/octet-stream");
        assert_eq!(audio_type(Some("Audio/Ogg; codecs=opus")).unwrap(), "audio/ogg");
        for refused in ["text/html", "image/svg+xml", "application/javascript", "audio/", "", "audio/mpeg2"] {
            assert!(matches!(audio_type(Some(refused)), Err(DomainError::NotAudio)), "{refused}");
        }
    }

    #[test]
    fn attachment_names_survive_quotes_and_non_ascii() {
        assert_eq!(
            attachment("memo 1.m4a"),
            "attachment; filename=\"memo 1.m4a\"; filename*=UTF-8''memo%201.m4a"
        );
        assert_eq!(
            attachment("회의\"x\".mp3"),
            "attachment; filename=\"___x_.mp3\"; filename*=UTF-8''%ED%9A%8C%EC%9D%98%22x%22.mp3"
        );
    }

    #[test]
    fn auth_keys_are_256_bit_hex_and_differ() {
        let (a, b) = (AuthKey::generate(), AuthKey::generate());
        assert_eq!(a.expose().len(), 64);
        assert!(AuthKey::parse(a.expose()).is_some());
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn key_hash_is_sha256_hex_of_the_key_not_the_key() {
        let key = AuthKey::parse(&"ab".repeat(32)).unwrap();
        // sha256("abab...ab" x32), computed independently with `printf ab%.0s {1..32} | sha256sum`.
        assert_eq!(key.hash().as_str(), "271a413bd339c5709fdceaec41f14f11e9fbfb5042d72d331c65f32b284cd09a");
        assert_ne!(key.hash().as_str(), key.expose());
        assert_eq!(key.hash().as_str().len(), 64);
    }

    #[test]
    fn user_ids_cannot_collide_across_social_types() {
        assert!(UserId::from_social("a_b", "c").is_err());
        assert_eq!(UserId::from_social("kakao", "b_c").unwrap().as_str(), "kakao_b_c");
        assert_eq!(UserId::parse("kakao_b_c").unwrap().as_str(), "kakao_b_c");
        assert!(UserId::parse("nounderscore").is_none());
    }

    #[test]
    fn file_names_that_could_escape_or_confuse_are_rejected() {
        for bad in ["", "a/b", "a\\b", "..", "x..y", "a\u{0}b", "tab\tname"] {
            assert!(FileName::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(FileName::parse(&"é".repeat(128)).is_err(), "256 bytes accepted");
        assert!(FileName::parse(&"a".repeat(255)).is_ok());
        assert!(FileName::parse("voice memo (1).m4a").is_ok());
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c =
            Cursor { created_at: "2026-11-25T18:00:00.123Z".into(), record_id: RecordId::new().to_string() };
        assert_eq!(Cursor::from_token(&c.to_token()).unwrap(), c);
        for bad in ["", "zz", "abc", &hex::encode(b"no-space"), &hex::encode(b"2026 not-a-uuid")] {
            assert!(Cursor::from_token(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn record_ids_made_in_the_same_millisecond_are_distinct() {
        let ids: std::collections::HashSet<_> = (0..10_000).map(|_| RecordId::new()).collect();
        assert_eq!(ids.len(), 10_000);
    }

    #[test]
    fn timestamps_have_millisecond_precision_in_utc() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_764_000_000_123_456_789).unwrap();
        assert_eq!(timestamp(t), "2025-11-24T16:00:00.123Z");
    }
}
