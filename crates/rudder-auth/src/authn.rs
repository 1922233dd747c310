//! The authenticator interface.

use std::sync::Arc;

use http::header::AUTHORIZATION;
use http::HeaderMap;
use rustls_pki_types::CertificateDer;

use crate::user::UserInfo;

/// The parts of a request authenticators may look at. Kept this small so the API server can
/// build it from a hyper request and the TLS session without copying, and tests can build it
/// from nothing.
#[derive(Clone, Copy, Debug)]
pub struct AuthRequest<'a> {
    pub headers: &'a HeaderMap,
    /// The client's certificate chain, leaf first, **as verified by the TLS layer** against
    /// the client CA. `None` for plain connections and for TLS without a client certificate.
    pub peer_certificates: Option<&'a [CertificateDer<'static>]>,
}

impl<'a> AuthRequest<'a> {
    pub fn new(headers: &'a HeaderMap) -> Self {
        AuthRequest {
            headers,
            peer_certificates: None,
        }
    }

    pub fn with_peer_certificates(mut self, certs: &'a [CertificateDer<'static>]) -> Self {
        self.peer_certificates = Some(certs);
        self
    }
}

/// Why credentials that were present did not authenticate. The server answers 401 without
/// detail (as upstream does); the message is for logs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Upstream's wording, so logs read the same.
    #[error("invalid bearer token")]
    InvalidBearerToken,
    #[error("invalid client certificate: {0}")]
    InvalidCertificate(String),
    /// A service-account token that is not (or no longer) valid; upstream's validator message.
    #[error("{0}")]
    ServiceAccountToken(String),
    /// Every authenticator that saw credentials rejected them.
    #[error("{}", aggregate_message(.0))]
    Aggregate(Vec<AuthError>),
}

/// apimachinery's aggregate error format: the message alone, or `[a, b]`.
fn aggregate_message(errs: &[AuthError]) -> String {
    match errs {
        [one] => one.to_string(),
        many => format!(
            "[{}]",
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// One way of establishing identity from a request.
///
/// `Ok(None)` means "no credentials of my kind here" and lets the next authenticator try;
/// `Err` means the request carried my kind of credentials and they are not valid.
pub trait Authenticator: Send + Sync {
    fn authenticate(&self, req: &AuthRequest<'_>) -> Result<Option<UserInfo>, AuthError>;
}

impl<T: Authenticator + ?Sized> Authenticator for Box<T> {
    fn authenticate(&self, req: &AuthRequest<'_>) -> Result<Option<UserInfo>, AuthError> {
        (**self).authenticate(req)
    }
}

impl<T: Authenticator + ?Sized> Authenticator for Arc<T> {
    fn authenticate(&self, req: &AuthRequest<'_>) -> Result<Option<UserInfo>, AuthError> {
        (**self).authenticate(req)
    }
}

/// Authenticates a bearer token's value (static tokens now; service-account and bootstrap
/// tokens later). `Ok(None)` means "not a token I know", which the bearer wrapper reports as
/// an invalid token.
pub trait TokenAuthenticator: Send + Sync {
    fn authenticate_token(&self, token: &str) -> Result<Option<UserInfo>, AuthError>;
}

/// The bearer token of a request, parsed as upstream's `bearertoken` authenticator does: the
/// first `Authorization` header, trimmed, split on single spaces; the scheme compared without
/// case; the token is the second part (anything after a further space is ignored). `Ok(None)`
/// when there is no header, another scheme or an empty token; an error when the token is not
/// valid UTF-8, since it cannot match any token then.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let auth = value.as_bytes().trim_ascii();
    if auth.is_empty() {
        return Ok(None);
    }
    let mut parts = auth.splitn(3, |b| *b == b' ');
    let (Some(scheme), Some(token)) = (parts.next(), parts.next()) else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Ok(None);
    }
    if token.is_empty() {
        // `Bearer  token` (two spaces): upstream ignores the header and warns the client.
        if parts.next().is_some() {
            tracing::debug!(
                "Authorization header has extra space before the bearer token; ignored"
            );
        }
        return Ok(None);
    }
    std::str::from_utf8(token)
        .map(Some)
        .map_err(|_| AuthError::InvalidBearerToken)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(v: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        h
    }

    #[test]
    fn bearer_parsing_follows_upstream() {
        let cases: &[(&[u8], Option<&str>)] = &[
            (b"Bearer abc", Some("abc")),
            (b"bearer abc", Some("abc")),
            (b"BEARER abc", Some("abc")),
            (b"  Bearer abc  ", Some("abc")),
            (b"Bearer abc extra stuff", Some("abc")),
            (b"Bearer", None),
            (b"Bearer ", None),
            (b"Bearer  abc", None),
            (b"Basic dXNlcjpwYXNz", None),
            (b"Bearerabc", None),
            (b"", None),
            (b"Token abc", None),
        ];
        for (value, want) in cases {
            let h = headers(value);
            assert_eq!(
                bearer_token(&h).unwrap(),
                *want,
                "{}",
                String::from_utf8_lossy(value)
            );
        }
        assert_eq!(bearer_token(&HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn only_the_first_authorization_header_counts() {
        let mut h = HeaderMap::new();
        h.append(AUTHORIZATION, HeaderValue::from_static("Basic xyz"));
        h.append(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(bearer_token(&h).unwrap(), None);
    }

    #[test]
    fn non_utf8_token_is_invalid_not_absent() {
        let h = headers(b"Bearer \xff\xfe");
        assert_eq!(bearer_token(&h), Err(AuthError::InvalidBearerToken));
    }

    #[test]
    fn aggregate_messages() {
        assert_eq!(
            AuthError::Aggregate(vec![AuthError::InvalidBearerToken]).to_string(),
            "invalid bearer token"
        );
        assert_eq!(
            AuthError::Aggregate(vec![
                AuthError::InvalidBearerToken,
                AuthError::InvalidCertificate("x".into())
            ])
            .to_string(),
            "[invalid bearer token, invalid client certificate: x]"
        );
    }
}
