//! One reader of AWS error answers, for the service and the tooling alike: the code, message
//! and request id (from what the SDK parsed, else from an XML body it could not), and what they
//! mean (a denial, or a transient failure worth retrying).

/// What AWS answered to a failed call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorReply {
    /// The HTTP status.
    pub status: Option<u16>,
    /// AWS's error code.
    pub code: Option<String>,
    /// AWS's message.
    pub message: Option<String>,
    /// The request id, for AWS support and the logs.
    pub request_id: Option<String>,
}

/// Codes that deny a request for want of a permission.
const DENIED: &[&str] = &["AccessDeniedException", "AccessDenied", "UnauthorizedOperation"];

/// Codes of a 403 that is about the request's signature or key, not its permissions.
const NOT_A_DENIAL: &[&str] = &[
    "SignatureDoesNotMatch",
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "ExpiredToken",
    "ExpiredTokenException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
];

/// Codes AWS answers when it is overloaded or failing: retrying later helps.
const TRANSIENT: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "SlowDown",
    "ServiceUnavailable",
    "InternalServerError",
    "InternalError",
];

impl ErrorReply {
    /// Read an answer: the SDK's parsed code and message win; an XML body (the emulator answers
    /// JSON services in XML at times) fills what the SDK could not read; a bodiless 403 (a HEAD
    /// request, e.g. S3's HeadObject) is a denial.
    pub fn read(
        status: u16,
        sdk_code: Option<&str>,
        sdk_message: Option<&str>,
        body: &str,
        header: impl Fn(&str) -> Option<String>,
    ) -> ErrorReply {
        let bare_403 = body.is_empty() && status == 403;
        ErrorReply {
            status: Some(status),
            code: sdk_code
                .map(str::to_owned)
                .or_else(|| xml_tag(body, "Code").map(str::to_owned))
                .or_else(|| bare_403.then(|| "AccessDenied".to_owned())),
            message: sdk_message.map(str::to_owned).or_else(|| xml_tag(body, "Message").map(str::to_owned)).or_else(
                || {
                    bare_403.then(|| {
                        "HTTP 403 with no error body (a HEAD request): access denied, or the object is missing \
                         and s3:ListBucket is not granted"
                            .to_owned()
                    })
                },
            ),
            request_id: header("x-amzn-requestid")
                .or_else(|| header("x-amz-request-id"))
                .or_else(|| xml_tag(body, "RequestId").map(str::to_owned)),
        }
    }

    /// An access denial: AWS's codes, or a 403 that is not about the signature or the key
    /// (moto answers denials as XML with HTTP 403 even for JSON services; its Lambda API answers
    /// `SignatureDoesNotMatch` with 403 even to allowed calls).
    pub fn is_access_denied(&self) -> bool {
        match self.code.as_deref() {
            Some(code) if DENIED.contains(&code) => true,
            Some(code) if NOT_A_DENIAL.contains(&code) => false,
            _ => self.status == Some(403),
        }
    }

    /// Whether AWS is overloaded or failing (a 5xx, or a throttling code): retrying later helps.
    pub fn is_transient(&self) -> bool {
        self.status.is_some_and(|s| (500..600).contains(&s))
            || self.code.as_deref().is_some_and(|c| TRANSIENT.contains(&c))
    }
}

/// The text of the first `<tag>…</tag>` in an XML body.
pub fn xml_tag<'a>(body: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body.get(start..)?.find(&format!("</{tag}>"))? + start;
    body.get(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(status: u16, code: Option<&str>, body: &str) -> ErrorReply {
        ErrorReply::read(status, code, None, body, |_| None)
    }

    #[test]
    fn denials_are_the_same_for_every_reader() {
        assert!(read(400, Some("AccessDeniedException"), "").is_access_denied());
        assert!(read(403, Some("AccessDenied"), "").is_access_denied());
        // The emulator's XML denial to a JSON service, which the SDK cannot read a code from.
        let xml = "<ErrorResponse><Error><Code>AccessDenied</Code><Message>User: x is not authorized</Message></Error><RequestId>r1</RequestId></ErrorResponse>";
        let reply = read(403, None, xml);
        assert!(reply.is_access_denied());
        assert_eq!(reply.message.as_deref(), Some("User: x is not authorized"));
        assert_eq!(reply.request_id.as_deref(), Some("r1"));
        // A HEAD request's 403 has no body.
        assert!(read(403, None, "").is_access_denied());
        // A bad signature is not a missing permission.
        assert!(!read(403, Some("SignatureDoesNotMatch"), "").is_access_denied());
        assert!(!read(404, Some("NoSuchKey"), "").is_access_denied());
    }

    #[test]
    fn transient_failures_are_5xx_or_throttling() {
        assert!(read(400, Some("ThrottlingException"), "").is_transient());
        assert!(read(503, None, "").is_transient());
        assert!(!read(400, Some("ValidationException"), "").is_transient());
    }
}
