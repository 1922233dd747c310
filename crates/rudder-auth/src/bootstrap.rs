//! Bootstrap tokens: upstream's `plugin/pkg/auth/authenticator/token/bootstrap` and the
//! helpers of `k8s.io/cluster-bootstrap` (token format, Secret keys, groups, expiry).
//!
//! A bootstrap token `<id>.<secret>` is backed by the Secret `kube-system/bootstrap-token-<id>`
//! of type `bootstrap.kubernetes.io/token`; it authenticates as `system:bootstrap:<id>` in
//! `system:bootstrappers` plus the Secret's `auth-extra-groups`. kubeadm and Rudder's agents
//! use it to ask for their node client certificate.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::authn::{bearer_token, AuthError, AuthRequest, Authenticator, TokenAuthenticator};
use crate::user::UserInfo;

/// The namespace bootstrap token Secrets live in.
pub const NAMESPACE: &str = "kube-system";
/// `bootstrapapi.BootstrapTokenSecretPrefix`.
pub const SECRET_PREFIX: &str = "bootstrap-token-";
/// `bootstrapapi.SecretTypeBootstrapToken`.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The Secret's data keys (`bootstrapapi.BootstrapToken*Key`).
pub const KEY_ID: &str = "token-id";
pub const KEY_SECRET: &str = "token-secret";
pub const KEY_EXPIRATION: &str = "expiration";
pub const KEY_DESCRIPTION: &str = "description";
pub const KEY_EXTRA_GROUPS: &str = "auth-extra-groups";
pub const KEY_USAGE_AUTHENTICATION: &str = "usage-bootstrap-authentication";
pub const KEY_USAGE_SIGNING: &str = "usage-bootstrap-signing";
/// `bootstrapapi.BootstrapUserPrefix`.
pub const USER_PREFIX: &str = "system:bootstrap:";
/// `bootstrapapi.BootstrapDefaultGroup`.
pub const DEFAULT_GROUP: &str = "system:bootstrappers";

const ID_LEN: usize = 6;
const SECRET_LEN: usize = 16;
/// upstream's `validBootstrapTokenChars`.
const TOKEN_CHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

fn is_token_part(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// `bootstraputil.ParseToken`: `(id, secret)` of a token matching
/// `^([a-z0-9]{6})\.([a-z0-9]{16})$`.
pub fn parse_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    (is_token_part(id, ID_LEN) && is_token_part(secret, SECRET_LEN)).then_some((id, secret))
}

/// `bootstraputil.GenerateBootstrapToken`: a fresh `<id>.<secret>` from the system's CSPRNG.
pub fn generate_token() -> Result<String, BootstrapTokenError> {
    use aws_lc_rs::rand::SecureRandom as _;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut bytes = [0u8; ID_LEN + SECRET_LEN];
    rng.fill(&mut bytes)
        .map_err(|_| BootstrapTokenError::Random)?;
    // Bytes of 252 and above are redrawn so that `% 36` is uniform (252 = 7 * 36), as
    // upstream draws each character uniformly with crypto/rand's Int.
    let mut out = String::with_capacity(ID_LEN + 1 + SECRET_LEN);
    let mut extra = [0u8; 1];
    for (i, mut b) in bytes.into_iter().enumerate() {
        while b >= 252 {
            rng.fill(&mut extra)
                .map_err(|_| BootstrapTokenError::Random)?;
            b = extra[0];
        }
        if i == ID_LEN {
            out.push('.');
        }
        out.push(char::from(TOKEN_CHARS[usize::from(b % 36)]));
    }
    Ok(out)
}

/// k3s's token prefix: a token that pins the server's CA bundle.
pub const JOIN_TOKEN_PREFIX: &str = "K10";

/// A node join token in k3s's format, `K10<sha256 hex of the CA bundle>::<id>.<secret>`: the
/// bootstrap token plus the hash an agent checks the server's `/cacerts` against before
/// trusting it. A bare bootstrap token is accepted too (no hash: the CA is trusted on first
/// use, as k3s does with a token lacking one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinToken {
    pub ca_hash: Option<String>,
    /// The bootstrap token, `<id>.<secret>`.
    pub token: String,
}

impl JoinToken {
    /// k3s's `parseToken`, with the credential part checked as a bootstrap token.
    pub fn parse(text: &str) -> Result<JoinToken, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("token must not be empty".into());
        }
        let (ca_hash, token) = match text.strip_prefix(JOIN_TOKEN_PREFIX) {
            Some(rest) => match rest.split_once("::") {
                Some((hash, token)) => {
                    let valid_hex = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
                    if !valid_hex {
                        return Err("invalid token CA hash length".into());
                    }
                    (Some(hash.to_ascii_lowercase()), token)
                }
                None => (None, rest),
            },
            None => (None, text),
        };
        if parse_token(token).is_none() {
            return Err("the credential part of the token is not a bootstrap token \
                 ([a-z0-9]{6}.[a-z0-9]{16})"
                .into());
        }
        Ok(JoinToken {
            ca_hash,
            token: token.to_string(),
        })
    }
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.ca_hash {
            Some(h) => write!(f, "{JOIN_TOKEN_PREFIX}{h}::{}", self.token),
            None => f.write_str(&self.token),
        }
    }
}

/// `bootstrapsecretutil.ValidateBootstrapGroupName`'s message for a bad group.
fn validate_group(group: &str) -> Result<(), String> {
    // ^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$
    let ok = group
        .strip_prefix("system:bootstrappers:")
        .is_some_and(|rest| {
            !rest.is_empty()
                && rest.len() <= 256
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b':' || b == b'-')
                && rest
                    .bytes()
                    .last()
                    .is_some_and(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "bootstrap group {group:?} is invalid (must match ^system:bootstrappers:[a-z0-9:-]{{0,255}}[a-z0-9]$)"
        ))
    }
}

/// `bootstrapsecretutil.GetGroups`: the default group plus the extra ones, deduplicated and
/// sorted.
pub fn groups(extra: &str) -> Result<Vec<String>, String> {
    let mut set = std::collections::BTreeSet::from([DEFAULT_GROUP.to_string()]);
    if !extra.is_empty() {
        for g in extra.split(',') {
            validate_group(g)?;
            set.insert(g.to_string());
        }
    }
    Ok(set.into_iter().collect())
}

/// What the authenticator reads of a `bootstrap-token-<id>` Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootstrapSecret {
    pub type_: String,
    /// `data`, base64-decoded.
    pub data: BTreeMap<String, Vec<u8>>,
    pub deleting: bool,
}

impl BootstrapSecret {
    /// `bootstrapsecretutil.GetData`: a key's value as a string, empty when absent.
    pub fn get(&self, key: &str) -> &str {
        self.data
            .get(key)
            .and_then(|v| std::str::from_utf8(v).ok())
            .unwrap_or_default()
    }

    /// `bootstrapsecretutil.HasExpired`: an unparseable expiration counts as expired.
    pub fn has_expired(&self, now: jiff::Timestamp) -> bool {
        let exp = self.get(KEY_EXPIRATION);
        if exp.is_empty() {
            return false;
        }
        match exp.parse::<jiff::Timestamp>() {
            Ok(t) => t < now,
            Err(_) => true,
        }
    }
}

/// Looks up `kube-system/<name>` (upstream: the Secret lister). `None` when there is none.
pub trait BootstrapSecretGetter: Send + Sync {
    fn bootstrap_secret(&self, name: &str) -> Option<BootstrapSecret>;
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapTokenError {
    #[error("the system random number generator failed")]
    Random,
}

/// Upstream's bootstrap `TokenAuthenticator`. Every failure is "not my token" (`Ok(None)`), as
/// upstream's returns `nil, false, nil`, with the reason in the logs.
pub struct BootstrapTokenAuthenticator {
    secrets: Arc<dyn BootstrapSecretGetter>,
    clock: fn() -> jiff::Timestamp,
}

impl BootstrapTokenAuthenticator {
    pub fn new(secrets: Arc<dyn BootstrapSecretGetter>) -> Self {
        BootstrapTokenAuthenticator {
            secrets,
            clock: jiff::Timestamp::now,
        }
    }
}

/// upstream's `tokenErrorf`.
fn token_error(name: &str, why: &str) {
    tracing::debug!("Bootstrap secret {NAMESPACE}/{name} {why}");
}

impl TokenAuthenticator for BootstrapTokenAuthenticator {
    fn authenticate_token(&self, token: &str) -> Result<Option<UserInfo>, AuthError> {
        let Some((id, secret)) = parse_token(token) else {
            return Ok(None);
        };
        let name = format!("{SECRET_PREFIX}{id}");
        let Some(s) = self.secrets.bootstrap_secret(&name) else {
            tracing::debug!("No secret of name {name} to match bootstrap bearer token");
            return Ok(None);
        };
        if s.deleting {
            token_error(&name, "is deleted and awaiting removal");
            return Ok(None);
        }
        if s.type_ != SECRET_TYPE || s.data.is_empty() {
            token_error(&name, &format!("has invalid type, expected {SECRET_TYPE}."));
            return Ok(None);
        }
        let stored = s.get(KEY_SECRET).as_bytes();
        if !constant_time_eq(stored, secret.as_bytes()) {
            token_error(&name, &format!("has invalid value for key {KEY_SECRET}."));
            return Ok(None);
        }
        if s.get(KEY_ID) != id {
            token_error(&name, &format!("has invalid value for key {KEY_ID}."));
            return Ok(None);
        }
        if s.has_expired((self.clock)()) {
            token_error(&name, "has expired.");
            return Ok(None);
        }
        if s.get(KEY_USAGE_AUTHENTICATION) != "true" {
            token_error(
                &name,
                &format!("not marked {KEY_USAGE_AUTHENTICATION}=true."),
            );
            return Ok(None);
        }
        match groups(s.get(KEY_EXTRA_GROUPS)) {
            Ok(groups) => Ok(Some(
                UserInfo::new(format!("{USER_PREFIX}{id}")).with_groups(groups),
            )),
            Err(e) => {
                token_error(
                    &name,
                    &format!("has invalid value for key {KEY_EXTRA_GROUPS}: {e}."),
                );
                Ok(None)
            }
        }
    }
}

impl Authenticator for BootstrapTokenAuthenticator {
    fn authenticate(&self, req: &AuthRequest<'_>) -> Result<Option<UserInfo>, AuthError> {
        match bearer_token(req.headers)? {
            Some(token) => self.authenticate_token(token),
            None => Ok(None),
        }
    }
}

/// `subtle.ConstantTimeCompare`: no early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    struct One(Option<BootstrapSecret>);
    impl BootstrapSecretGetter for One {
        fn bootstrap_secret(&self, name: &str) -> Option<BootstrapSecret> {
            (name == "bootstrap-token-foobar")
                .then(|| self.0.clone())
                .flatten()
        }
    }

    const TOKEN: &str = "foobar.circumnavigation";

    fn secret(pairs: &[(&str, &str)]) -> BootstrapSecret {
        BootstrapSecret {
            type_: SECRET_TYPE.into(),
            data: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
            deleting: false,
        }
    }

    fn valid() -> Vec<(&'static str, &'static str)> {
        vec![
            (KEY_ID, "foobar"),
            (KEY_SECRET, "circumnavigation"),
            (KEY_USAGE_AUTHENTICATION, "true"),
        ]
    }

    fn auth(s: Option<BootstrapSecret>, token: &str) -> Option<UserInfo> {
        let mut a = BootstrapTokenAuthenticator::new(Arc::new(One(s)));
        a.clock = || "2026-01-01T00:00:00Z".parse().unwrap();
        a.authenticate_token(token).unwrap()
    }

    #[test]
    fn join_tokens() {
        let hash = "ab".repeat(32);
        let full = format!("K10{hash}::{TOKEN}");
        let t = JoinToken::parse(&full).unwrap();
        assert_eq!(t.ca_hash.as_deref(), Some(hash.as_str()));
        assert_eq!(t.token, TOKEN);
        assert_eq!(t.to_string(), full);
        let bare = JoinToken::parse(TOKEN).unwrap();
        assert_eq!((bare.ca_hash, bare.token.as_str()), (None, TOKEN));
        assert!(JoinToken::parse(&format!("K10abcd::{TOKEN}")).is_err());
        assert!(JoinToken::parse(&format!("K10{hash}::server:password")).is_err());
        assert!(JoinToken::parse("").is_err());
    }

    #[test]
    fn token_format() {
        assert_eq!(parse_token(TOKEN), Some(("foobar", "circumnavigation")));
        for bad in [
            "",
            "foobar",
            "fooba.circumnavigation",
            "foobar.circumnavigatio",
            "FOOBAR.circumnavigation",
            "foobar:circumnavigation",
            "foobar.circumnavigation.x",
        ] {
            assert_eq!(parse_token(bad), None, "{bad}");
        }
        for _ in 0..20 {
            let t = generate_token().unwrap();
            assert!(parse_token(&t).is_some(), "{t}");
        }
    }

    // upstream's bootstrap_test.go table, case by case.
    #[test]
    fn valid_token() {
        let u = auth(Some(secret(&valid())), TOKEN).unwrap();
        assert_eq!(u.name, "system:bootstrap:foobar");
        assert_eq!(u.groups, ["system:bootstrappers"]);
    }

    #[test]
    fn extra_groups_are_sorted_and_deduplicated() {
        let mut d = valid();
        d.push((
            KEY_EXTRA_GROUPS,
            "system:bootstrappers:foo,system:bootstrappers:bar,system:bootstrappers:bar",
        ));
        let u = auth(Some(secret(&d)), TOKEN).unwrap();
        assert_eq!(
            u.groups,
            [
                "system:bootstrappers",
                "system:bootstrappers:bar",
                "system:bootstrappers:foo"
            ]
        );
        let mut d = valid();
        d.push((KEY_EXTRA_GROUPS, "foo"));
        assert_eq!(auth(Some(secret(&d)), TOKEN), None, "invalid group");
    }

    #[test]
    fn rejections() {
        assert_eq!(auth(None, TOKEN), None, "no secret");
        assert_eq!(
            auth(Some(secret(&valid())), "foobar.circumnavigatiom"),
            None,
            "wrong secret"
        );
        let mut wrong_type = secret(&valid());
        wrong_type.type_ = "Opaque".into();
        assert_eq!(auth(Some(wrong_type), TOKEN), None, "wrong type");
        let mut deleting = secret(&valid());
        deleting.deleting = true;
        assert_eq!(auth(Some(deleting), TOKEN), None, "deleting");
        let mut d = valid();
        d[0] = (KEY_ID, "barfoo");
        assert_eq!(auth(Some(secret(&d)), TOKEN), None, "mismatched id");
        let mut d = valid();
        d.pop();
        assert_eq!(
            auth(Some(secret(&d)), TOKEN),
            None,
            "not for authentication"
        );
        let mut d = valid();
        d[2] = (KEY_USAGE_AUTHENTICATION, "false");
        assert_eq!(auth(Some(secret(&d)), TOKEN), None, "usage false");
    }

    #[test]
    fn expiration() {
        let mut d = valid();
        d.push((KEY_EXPIRATION, "2025-12-31T23:59:59Z"));
        assert_eq!(auth(Some(secret(&d)), TOKEN), None, "expired");
        let mut d = valid();
        d.push((KEY_EXPIRATION, "2026-01-01T00:00:01Z"));
        assert!(auth(Some(secret(&d)), TOKEN).is_some(), "not yet expired");
        let mut d = valid();
        d.push((KEY_EXPIRATION, "tomorrow"));
        assert_eq!(auth(Some(secret(&d)), TOKEN), None, "unparseable");
    }
}
