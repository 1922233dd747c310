//! Upstream's `kubernetes.urls` library: `url()`, `isURL()` and the `URL` accessors.
//!
//! URLs are parsed as Go's `net/url` does (`ParseRequestURI` to accept, `Parse` to split), not
//! as WHATWG parsers do: an absolute path (`/path`) is a URL, nothing is normalised, and the
//! accessors return the components as written.

use super::{args, owned, string};
use cel::common::types::{CelBool, CelList, CelMap, CelMapKey, CelString, Type, STRING_TYPE};
use cel::common::value::{CowVal, StaticVal, Val};
use cel::{DeclarationError, Env, ExecutionError};
use std::any::Any;
use std::collections::HashMap;

pub(crate) static URL_TYPE: Type = Type::new_unspecified_type("kubernetes.URL");

pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_type(URL_TYPE.to_owned())?;
    env.add_overload("url", "string_to_url", vec![STRING_TYPE], to_url)?;
    env.add_overload("isURL", "is_url_string", vec![STRING_TYPE], is_url)?;
    let accessors: [(&str, cel::common::functions::Function); 6] = [
        ("getScheme", get_scheme),
        ("getHost", get_host),
        ("getHostname", get_hostname),
        ("getPort", get_port),
        ("getEscapedPath", get_escaped_path),
        ("getQuery", get_query),
    ];
    for (name, f) in accessors {
        env.add_member_overload(name, &format!("url_{name}"), URL_TYPE.to_owned(), vec![], f)?;
    }
    Ok(())
}

/// A parsed URL, as Go's `url.URL` holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    raw: String,
    scheme: String,
    host: String,
    /// The path as written (still escaped).
    raw_path: String,
    raw_query: String,
}

impl Val for Url {
    fn get_type(&self) -> &Type {
        &URL_TYPE
    }

    fn cel_type() -> &'static Type {
        &URL_TYPE
    }

    fn equals(&self, other: &dyn Val) -> bool {
        other.downcast_ref::<Url>().is_some_and(|o| o == self)
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }
}

impl StaticVal for Url {}

impl Url {
    /// The URL as it was written (its JSON form).
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

/// Go's `url.ParseRequestURI`: an absolute URI or an absolute path, no fragment split.
pub(crate) fn parse_request_uri(s: &str) -> Result<Url, String> {
    parse(s, true)
}

/// Go's `url.parse(rawURL, viaRequest)`.
fn parse(raw: &str, via_request: bool) -> Result<Url, String> {
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("net/url: invalid control character in URL".into());
    }
    if raw.is_empty() && via_request {
        return Err("empty url".into());
    }
    let mut url = Url {
        raw: raw.to_owned(),
        scheme: String::new(),
        host: String::new(),
        raw_path: String::new(),
        raw_query: String::new(),
    };
    if raw == "*" {
        url.raw_path = "*".into();
        return Ok(url);
    }
    let (scheme, mut rest) = split_scheme(raw)?;
    url.scheme = scheme.to_ascii_lowercase();
    if rest.ends_with('?') && rest.matches('?').count() == 1 {
        rest = &rest[..rest.len() - 1];
    } else if let Some((before, query)) = rest.split_once('?') {
        url.raw_query = query.to_owned();
        rest = before;
    }
    if !rest.starts_with('/') {
        if !url.scheme.is_empty() {
            // An opaque URL (`mailto:x@y`): no host, no path.
            return Ok(url);
        }
        if via_request {
            return Err("invalid URI for request".into());
        }
        // Go refuses a first path segment with a colon (it would read as a scheme).
        let segment = rest.split('/').next().unwrap_or("");
        if segment.contains(':') {
            return Err("first path segment in URL cannot contain colon".into());
        }
    }
    if (!url.scheme.is_empty() || !via_request && !rest.starts_with("///"))
        && rest.starts_with("//")
    {
        let after = &rest[2..];
        let (authority, path) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        };
        url.host = parse_authority(authority)?;
        rest = path;
    }
    unescape(rest, Mode::Path)?;
    url.raw_path = rest.to_owned();
    Ok(url)
}

fn split_scheme(raw: &str) -> Result<(&str, &str), String> {
    for (i, c) in raw.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return Err("missing protocol scheme".into()),
            ':' => return Ok((&raw[..i], &raw[i + 1..])),
            _ => return Ok(("", raw)),
        }
    }
    Ok(("", raw))
}

fn parse_authority(authority: &str) -> Result<String, String> {
    let host = match authority.rfind('@') {
        Some(i) => {
            let userinfo = &authority[..i];
            if !userinfo
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._:~!$&'()*+,;=%@".contains(c))
            {
                return Err("net/url: invalid userinfo".into());
            }
            &authority[i + 1..]
        }
        None => authority,
    };
    parse_host(host)?;
    Ok(host.to_owned())
}

/// Go's `parseHost`: an IPv6 literal in brackets, or a name with an optional numeric port.
fn parse_host(host: &str) -> Result<(), String> {
    if host.starts_with('[') {
        let Some(end) = host.rfind(']') else {
            return Err("missing ']' in host".into());
        };
        let port = &host[end + 1..];
        if !valid_optional_port(port) {
            return Err(format!("invalid port {port:?} after host"));
        }
        return Ok(());
    }
    if let Some(i) = host.rfind(':') {
        let port = &host[i..];
        if !valid_optional_port(port) {
            return Err(format!("invalid port {port:?} after host"));
        }
    }
    unescape(host, Mode::Host).map(|_| ())
}

fn valid_optional_port(port: &str) -> bool {
    port.is_empty() || port.starts_with(':') && port[1..].bytes().all(|b| b.is_ascii_digit())
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Path,
    Host,
    Query,
}

/// Go's `unescape`: `%XX` sequences decoded (`+` is a space in a query).
fn unescape(s: &str, mode: Mode) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => out.push(byte),
                    None => {
                        let bad: String = s[i..].chars().take(3).collect();
                        return Err(format!("invalid URL escape {bad:?}"));
                    }
                }
                i += 3;
            }
            b'+' if mode == Mode::Query => {
                out.push(b' ');
                i += 1;
            }
            c => {
                if mode == Mode::Host
                    && c < 0x80
                    && !(c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]<>\"".contains(&c))
                {
                    return Err(format!("invalid character {:?} in host name", c as char));
                }
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "invalid UTF-8 in URL escape".to_string())
}

/// Go's `URL.EscapedPath`: the path as written when that is a valid escaping, else re-escaped.
fn escaped_path(raw_path: &str) -> String {
    let valid = raw_path
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"-_.~!$&'()*+,;=:@[]/%".contains(&c));
    if valid {
        return raw_path.to_owned();
    }
    let decoded = unescape(raw_path, Mode::Path).unwrap_or_else(|_| raw_path.to_owned());
    let mut out = String::new();
    for b in decoded.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~$&+,/:;=@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn url_arg<'a>(function: &str, v: &'a dyn Val) -> Result<&'a Url, ExecutionError> {
    v.downcast_ref::<Url>()
        .ok_or_else(|| super::no_overload(function, &[v]))
}

fn to_url<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [s] = args::<1>(&a)?;
    let s = string("url", s)?;
    let fail = |e: String| {
        ExecutionError::function_error(
            "url",
            format!("URL parse error during conversion from string: parse {s:?}: {e}"),
        )
    };
    parse_request_uri(s).map_err(fail)?;
    // Split again as Go's `url.Parse` does, which takes the fragment off first.
    let without_fragment = s.split_once('#').map_or(s, |(u, _)| u);
    let mut url = parse(without_fragment, false).map_err(fail)?;
    url.raw = s.to_owned();
    Ok(owned(url))
}

fn is_url<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [s] = args::<1>(&a)?;
    Ok(owned(CelBool::from(
        parse_request_uri(string("isURL", s)?).is_ok(),
    )))
}

fn text<'b, 'v>(s: &str) -> CowVal<'b, 'v> {
    owned(CelString::from(s.to_owned()))
}

fn get_scheme<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [u] = args::<1>(&a)?;
    Ok(text(&url_arg("getScheme", u)?.scheme))
}

fn get_host<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [u] = args::<1>(&a)?;
    Ok(text(&url_arg("getHost", u)?.host))
}

/// Go's `URL.Hostname` and `URL.Port`.
fn split_host_port(host: &str) -> (&str, &str) {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        match rest.find(']') {
            Some(end) => (
                &rest[..end],
                rest[end + 1..].strip_prefix(':').unwrap_or(""),
            ),
            None => (rest, ""),
        }
    } else {
        match host.rfind(':') {
            Some(i) => (&host[..i], &host[i + 1..]),
            None => (host, ""),
        }
    };
    let port = if port.bytes().all(|b| b.is_ascii_digit()) {
        port
    } else {
        ""
    };
    (name, port)
}

fn get_hostname<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [u] = args::<1>(&a)?;
    Ok(text(split_host_port(&url_arg("getHostname", u)?.host).0))
}

fn get_port<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [u] = args::<1>(&a)?;
    Ok(text(split_host_port(&url_arg("getPort", u)?.host).1))
}

fn get_escaped_path<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [u] = args::<1>(&a)?;
    Ok(text(&escaped_path(&url_arg("getEscapedPath", u)?.raw_path)))
}

/// Go's `url.ParseQuery`, keeping what parses: `&`-separated `key=value` pairs, unescaped; a
/// pair with a semicolon or a bad escape is dropped.
fn get_query<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [u] = args::<1>(&a)?;
    let url = url_arg("getQuery", u)?;
    let mut query: Vec<(String, Vec<String>)> = Vec::new();
    for pair in url.raw_query.split('&') {
        if pair.is_empty() || pair.contains(';') {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Ok(k), Ok(v)) = (unescape(k, Mode::Query), unescape(v, Mode::Query)) else {
            continue;
        };
        match query.iter_mut().find(|(key, _)| *key == k) {
            Some((_, values)) => values.push(v),
            None => query.push((k, vec![v])),
        }
    }
    let map: HashMap<CelMapKey, Box<dyn Val>> = query
        .into_iter()
        .map(|(k, vs)| {
            let list: Vec<Box<dyn Val>> = vs
                .into_iter()
                .map(|v| Box::new(CelString::from(v)) as Box<dyn Val>)
                .collect();
            (
                CelMapKey::from(k),
                Box::new(CelList::from(list)) as Box<dyn Val>,
            )
        })
        .collect();
    Ok(owned(CelMap::from(map)))
}

#[cfg(test)]
mod tests {
    use crate::tests::{eval_err, ok};
    use serde_json::json;

    #[test]
    fn upstream_examples() {
        assert_eq!(ok("type(url('https://user:pass@example.com:80/path?query=val#fragment')) == kubernetes.URL"), json!(true));
        assert_eq!(
            ok("url('/absolute-path').getEscapedPath()"),
            json!("/absolute-path")
        );
        assert_eq!(
            eval_err("url('https://a:b:c/')"),
            "URL parse error during conversion from string: parse \"https://a:b:c/\": invalid port \":c\" after host"
        );
        assert!(eval_err("url('../relative-path')").contains("invalid URI for request"));
        assert_eq!(
            ok("isURL('https://user:pass@example.com:80/path?query=val#fragment')"),
            json!(true)
        );
        assert_eq!(ok("isURL('/absolute-path')"), json!(true));
        assert_eq!(ok("isURL('https://a:b:c/')"), json!(false));
        assert_eq!(ok("isURL('../relative-path')"), json!(false));
        assert_eq!(ok("url('/path').getScheme()"), json!(""));
        assert_eq!(
            ok("url('https://example.com/').getScheme()"),
            json!("https")
        );
        assert_eq!(
            ok("url('https://example.com:80/').getHost()"),
            json!("example.com:80")
        );
        assert_eq!(
            ok("url('https://example.com/').getHost()"),
            json!("example.com")
        );
        assert_eq!(ok("url('https://[::1]:80/').getHost()"), json!("[::1]:80"));
        assert_eq!(ok("url('https://[::1]/').getHost()"), json!("[::1]"));
        assert_eq!(ok("url('/path').getHost()"), json!(""));
        assert_eq!(
            ok("url('https://example.com:80/').getHostname()"),
            json!("example.com")
        );
        assert_eq!(
            ok("url('https://127.0.0.1:80/').getHostname()"),
            json!("127.0.0.1")
        );
        assert_eq!(ok("url('https://[::1]:80/').getHostname()"), json!("::1"));
        assert_eq!(ok("url('/path').getHostname()"), json!(""));
        assert_eq!(ok("url('https://example.com:80/').getPort()"), json!("80"));
        assert_eq!(ok("url('https://example.com/').getPort()"), json!(""));
        assert_eq!(ok("url('/path').getPort()"), json!(""));
        assert_eq!(
            ok("url('https://example.com/path').getEscapedPath()"),
            json!("/path")
        );
        assert_eq!(
            ok("url('https://example.com/path with spaces/').getEscapedPath()"),
            json!("/path%20with%20spaces/")
        );
        assert_eq!(ok("url('https://example.com').getEscapedPath()"), json!(""));
        assert_eq!(
            ok("url('https://example.com/path?k1=a&k2=b&k2=c').getQuery()"),
            json!({"k1": ["a"], "k2": ["b", "c"]})
        );
        assert_eq!(
            ok("url('https://example.com/path?key with spaces=value with spaces').getQuery()"),
            json!({"key with spaces": ["value with spaces"]})
        );
        assert_eq!(ok("url('https://example.com/path?').getQuery()"), json!({}));
        assert_eq!(ok("url('https://example.com/path').getQuery()"), json!({}));
        // The fragment is not part of the path or the query.
        assert_eq!(
            ok("url('https://example.com/p?q=1#frag').getQuery()"),
            json!({"q": ["1"]})
        );
        assert_eq!(
            ok("url('https://example.com/p#frag').getEscapedPath()"),
            json!("/p")
        );
        assert_eq!(
            ok("url('https://example.com/p') == url('https://example.com/p')"),
            json!(true)
        );
        assert_eq!(
            ok("url('https://example.com/p')"),
            json!("https://example.com/p")
        );
        assert_eq!(ok("isURL('')"), json!(false));
        assert_eq!(ok("isURL('http://exa mple.com/')"), json!(false));
        assert_eq!(ok("isURL('http://x/%zz')"), json!(false));
    }
}
