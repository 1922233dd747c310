//! resourceVersion and continue-token codecs.
//!
//! A resourceVersion is the store's global revision printed in decimal (upstream
//! `storage.APIObjectVersioner`). A continue token is upstream's
//! `base64url(json({"v":"meta.k8s.io/v1","rv":<revision>,"start":"<key after the prefix>"}))`
//! (upstream `storage.EncodeContinue` / `DecodeContinue`), so a client can resume a paginated
//! list at the revision of its first page. Tokens are opaque to clients but must survive a
//! Rudder restart or version skew, so the layout is fixed here.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::field::{ErrorList, FieldError, Path};
use crate::gofmt;
use crate::status::ApiError;

/// The encoded version tag of continue tokens.
pub const CONTINUE_TOKEN_VERSION: &str = "meta.k8s.io/v1";

/// A resourceVersion that is not a decimal revision.
///
/// `Display` is upstream's storage error text, e.g. `resourceVersion: Invalid value: "abc":
/// strconv.ParseUint: parsing "abc": invalid syntax`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .errors)]
pub struct ResourceVersionError {
    /// The rejected string.
    pub value: String,
    errors: ErrorList,
}

impl ResourceVersionError {
    fn new(value: &str, reason: &str) -> Self {
        let detail = format!(
            "strconv.ParseUint: parsing {}: {reason}",
            gofmt::quote(value)
        );
        ResourceVersionError {
            value: value.to_owned(),
            errors: FieldError::invalid(&Path::new("resourceVersion"), value, detail).into(),
        }
    }

    /// The 400 upstream's list and watch return: `invalid resource version: <error>`.
    pub fn to_api_error(&self) -> ApiError {
        ApiError::bad_request(format!("invalid resource version: {self}"))
    }
}

/// Parses a resourceVersion as upstream's `ParseResourceVersion` does: `""` and `"0"` mean
/// "any / unset" and give 0; otherwise an unsigned decimal (no sign, no spaces).
///
/// Revisions are `i64` in the store; a value that fits `u64` but not `i64` cannot name any
/// revision and is reported as out of range.
pub fn parse_resource_version(rv: &str) -> Result<i64, ResourceVersionError> {
    if rv.is_empty() || rv == "0" {
        return Ok(0);
    }
    if !rv.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ResourceVersionError::new(rv, "invalid syntax"));
    }
    rv.parse::<u64>()
        .ok()
        .and_then(|v| i64::try_from(v).ok())
        .ok_or_else(|| ResourceVersionError::new(rv, "value out of range"))
}

/// Formats a revision as a resourceVersion. Zero becomes the empty string, as upstream's
/// `UpdateObject` leaves it unset.
pub fn format_resource_version(revision: i64) -> String {
    if revision == 0 {
        String::new()
    } else {
        revision.to_string()
    }
}

/// Why a continue token was rejected. `Display` is upstream's text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContinueError {
    /// Not base64url, not JSON, or a start key that tries to escape the prefix.
    #[error("continue key is not valid: {0}")]
    Invalid(String),
    /// `rv` missing or zero.
    #[error("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")]
    InvalidStartRv,
    /// `start` missing or empty.
    #[error("continue key is not valid: encoded start key empty (version meta.k8s.io/v1)")]
    EmptyStartKey,
    /// A `v` other than `meta.k8s.io/v1`.
    #[error("continue key is not valid: server does not recognize this encoded version {0}")]
    UnrecognizedVersion(String),
    /// Encoding a key that does not start with the list prefix (a server bug).
    #[error("unable to encode next field: the key and key prefix do not match {prefix} {key}")]
    KeyPrefixMismatch {
        /// The list prefix.
        prefix: String,
        /// The key.
        key: String,
    },
}

impl ContinueError {
    /// The 400 upstream returns: `invalid continue token: <error>`.
    pub fn to_api_error(&self) -> ApiError {
        ApiError::bad_request(format!("invalid continue token: {self}"))
    }
}

/// A decoded continue token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContinueToken {
    /// The full store key to resume from (prefix + encoded start).
    pub start_key: String,
    /// The revision of the first page; `-1` asks for an inconsistent continuation at the
    /// latest revision (upstream's answer to a compacted revision).
    pub resource_version: i64,
}

#[derive(serde::Deserialize)]
struct RawToken {
    #[serde(default)]
    v: String,
    #[serde(default)]
    rv: i64,
    #[serde(default)]
    start: String,
}

/// Upstream `EncodeContinue`: the token for resuming a list over `key_prefix` at `key` (the key
/// after the last returned item) and `revision`.
pub fn encode_continue(
    key: &str,
    key_prefix: &str,
    revision: i64,
) -> Result<String, ContinueError> {
    let Some(next) = key.strip_prefix(key_prefix) else {
        return Err(ContinueError::KeyPrefixMismatch {
            prefix: key_prefix.to_owned(),
            key: key.to_owned(),
        });
    };
    if next.len() == key.len() {
        // Upstream compares the trimmed string with the key, so an empty prefix is rejected too.
        return Err(ContinueError::KeyPrefixMismatch {
            prefix: key_prefix.to_owned(),
            key: key.to_owned(),
        });
    }
    // Field order and escaping as Go's json.Marshal of upstream's continueToken struct.
    let json = format!(
        "{{\"v\":{},\"rv\":{revision},\"start\":{}}}",
        gofmt::json_string(CONTINUE_TOKEN_VERSION),
        gofmt::json_string(next)
    );
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// Upstream `DecodeContinue`: validates a token and returns the full key to resume from and the
/// revision. The start key must stay inside `key_prefix` (no `..` or `//` tricks).
pub fn decode_continue(token: &str, key_prefix: &str) -> Result<ContinueToken, ContinueError> {
    let data = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|e| ContinueError::Invalid(base64_error_text(&e)))?;
    let raw: RawToken =
        serde_json::from_slice(&data).map_err(|e| ContinueError::Invalid(e.to_string()))?;
    if raw.v != CONTINUE_TOKEN_VERSION {
        return Err(ContinueError::UnrecognizedVersion(raw.v));
    }
    if raw.rv == 0 {
        return Err(ContinueError::InvalidStartRv);
    }
    if raw.start.is_empty() {
        return Err(ContinueError::EmptyStartKey);
    }
    let key = if raw.start.starts_with('/') {
        raw.start.clone()
    } else {
        format!("/{}", raw.start)
    };
    let cleaned = clean_path(&key);
    if cleaned != key {
        return Err(ContinueError::Invalid(raw.start));
    }
    Ok(ContinueToken {
        start_key: format!("{key_prefix}{}", &cleaned[1..]),
        resource_version: raw.rv,
    })
}

/// Go's base64 error text (`illegal base64 data at input byte N`) for the decode failures the
/// `base64` crate reports.
fn base64_error_text(e: &base64::DecodeError) -> String {
    let offset = match e {
        base64::DecodeError::InvalidByte(offset, _)
        | base64::DecodeError::InvalidLastSymbol(offset, _) => *offset,
        base64::DecodeError::InvalidLength(len) => *len,
        base64::DecodeError::InvalidPadding => 0,
    };
    format!("illegal base64 data at input byte {offset}")
}

/// Go's `path.Clean` for rooted paths: collapses `//`, removes `.` and resolves `..`, drops a
/// trailing `/` (except for the root).
fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_version_codec() {
        assert_eq!(parse_resource_version(""), Ok(0));
        assert_eq!(parse_resource_version("0"), Ok(0));
        assert_eq!(parse_resource_version("12345"), Ok(12345));
        assert_eq!(parse_resource_version("007"), Ok(7));
        assert_eq!(format_resource_version(12345), "12345");
        assert_eq!(format_resource_version(0), "");
        let e = parse_resource_version("abc").err();
        assert_eq!(
            e.as_ref().map(ToString::to_string).as_deref(),
            Some(
                r#"resourceVersion: Invalid value: "abc": strconv.ParseUint: parsing "abc": invalid syntax"#
            )
        );
        assert_eq!(
            e.map(|e| e.to_api_error().message).as_deref(),
            Some(
                r#"invalid resource version: resourceVersion: Invalid value: "abc": strconv.ParseUint: parsing "abc": invalid syntax"#
            )
        );
        for bad in ["-1", "+1", " 1", "1 ", "1.0", "0x10"] {
            assert!(parse_resource_version(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_resource_version("99999999999999999999").map_err(|e| e.to_string()),
            Err(r#"resourceVersion: Invalid value: "99999999999999999999": strconv.ParseUint: parsing "99999999999999999999": value out of range"#.to_owned())
        );
        assert!(parse_resource_version("9223372036854775808").is_err());
        assert_eq!(parse_resource_version("9223372036854775807"), Ok(i64::MAX));
    }

    #[test]
    fn continue_token_matches_upstream_encoding() {
        let prefix = "/registry/pods/";
        let tok = encode_continue("/registry/pods/default/web-1\u{0}", prefix, 42);
        let tok = tok.unwrap_or_default();
        let json = URL_SAFE_NO_PAD.decode(&tok).unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&json),
            "{\"v\":\"meta.k8s.io/v1\",\"rv\":42,\"start\":\"default/web-1\\u0000\"}"
        );
        assert!(!tok.contains('='));
        assert_eq!(
            decode_continue(&tok, prefix),
            Ok(ContinueToken {
                start_key: "/registry/pods/default/web-1\u{0}".into(),
                resource_version: 42
            })
        );
        // The bytes Go's encoder produces for the same token (computed independently).
        let upstream =
            "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NDIsInN0YXJ0IjoiZGVmYXVsdC93ZWItMVx1MDAwMCJ9";
        assert_eq!(tok, upstream);
        assert_eq!(
            encode_continue("/registry/pods/a", "/other/", 1),
            Err(ContinueError::KeyPrefixMismatch {
                prefix: "/other/".into(),
                key: "/registry/pods/a".into()
            })
        );
        assert!(encode_continue("/registry/pods/a", "", 1).is_err());
        let inconsistent = encode_continue("/registry/pods/a", prefix, -1).unwrap_or_default();
        assert_eq!(
            decode_continue(&inconsistent, prefix).map(|t| t.resource_version),
            Ok(-1)
        );
    }

    fn raw(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn continue_token_validation() {
        let prefix = "/registry/pods/";
        assert_eq!(
            decode_continue(&raw(r#"{"v":"meta.k8s.io/v1","rv":0,"start":"a"}"#), prefix)
                .map_err(|e| e.to_string()),
            Err("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)".into())
        );
        assert_eq!(
            decode_continue(&raw(r#"{"v":"meta.k8s.io/v1","rv":3}"#), prefix)
                .map_err(|e| e.to_string()),
            Err(
                "continue key is not valid: encoded start key empty (version meta.k8s.io/v1)"
                    .into()
            )
        );
        assert_eq!(
            decode_continue(&raw(r#"{"v":"v2","rv":3,"start":"a"}"#), prefix)
                .map_err(|e| e.to_string()),
            Err(
                "continue key is not valid: server does not recognize this encoded version v2"
                    .into()
            )
        );
        assert_eq!(
            decode_continue(
                &raw(r#"{"v":"meta.k8s.io/v1","rv":3,"start":"../secrets/x"}"#),
                prefix
            )
            .map_err(|e| e.to_string()),
            Err("continue key is not valid: ../secrets/x".into())
        );
        assert_eq!(
            decode_continue(
                &raw(r#"{"v":"meta.k8s.io/v1","rv":3,"start":"a//b"}"#),
                prefix
            )
            .map_err(|e| e.to_string()),
            Err("continue key is not valid: a//b".into())
        );
        assert_eq!(
            decode_continue(
                &raw(r#"{"v":"meta.k8s.io/v1","rv":3,"start":"/ns/a"}"#),
                prefix
            ),
            Ok(ContinueToken {
                start_key: "/registry/pods/ns/a".into(),
                resource_version: 3
            })
        );
        let e = decode_continue("!!!", prefix).err();
        assert_eq!(
            e.as_ref().map(ToString::to_string).as_deref(),
            Some("continue key is not valid: illegal base64 data at input byte 0")
        );
        assert_eq!(
            e.map(|e| e.to_api_error().message).as_deref(),
            Some("invalid continue token: continue key is not valid: illegal base64 data at input byte 0")
        );
        let not_json = decode_continue(&raw("nope"), prefix).map_err(|e| e.to_string());
        assert!(matches!(not_json, Err(m) if m.starts_with("continue key is not valid: ")));
        // Unknown fields are ignored, as Go's json.Unmarshal ignores them.
        assert!(decode_continue(
            &raw(r#"{"v":"meta.k8s.io/v1","rv":3,"start":"a","x":1}"#),
            prefix
        )
        .is_ok());
    }

    #[test]
    fn clean_path_matches_go() {
        for (input, want) in [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b"),
            ("/a//b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/../a", "/a"),
            ("/a/b/..", "/a"),
        ] {
            assert_eq!(clean_path(input), want, "{input}");
        }
    }
}
