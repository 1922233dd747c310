//! Indented JSON for people: upstream's negotiation switches to its pretty serializer when
//! `?pretty=` says so, when the chosen media type carries `pretty=1`, or when the User-Agent is
//! a browser or a command-line HTTP tool (`curl…`, `Wget…`, `Mozilla/5.0…`); see
//! `isPrettyPrint` in apiserver's `handlers/negotiation`.

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::{header, HeaderMap};
use http_body::Body as _;
use http_body_util::BodyExt;

use crate::request::Query;

/// Whether the response to this request is indented.
pub fn wanted(raw_query: Option<&str>, headers: &HeaderMap) -> bool {
    // The query parameter decides when it is given (any unparsable value means no).
    if let Some(q) = raw_query.filter(|q| q.contains("pretty")) {
        if let Some(v) = Query::parse(Some(q))
            .get("pretty")
            .filter(|v| !v.is_empty())
        {
            return parse_bool(v).unwrap_or(false);
        }
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept_pretty(accept) {
        return true;
    }
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    ua.starts_with("curl") || ua.starts_with("Wget") || ua.starts_with("Mozilla/5.0")
}

/// `pretty=1` on the first JSON media type the client accepts.
fn accept_pretty(accept: &str) -> bool {
    accept
        .split(',')
        .find(|part| {
            let essence = part.split(';').next().unwrap_or("").trim();
            matches!(essence, "application/json" | "*/*" | "application/*")
        })
        .is_some_and(|part| {
            part.split(';')
                .skip(1)
                .filter_map(|p| p.split_once('='))
                .any(|(k, v)| k.trim() == "pretty" && v.trim() == "1")
        })
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Middleware: re-encode complete JSON responses indented when the request asks for it.
/// Streams (watches) are left as they are, as upstream's stream serializer never indents.
pub async fn indent_for_humans(req: Request, next: Next) -> Response {
    let want = wanted(req.uri().query(), req.headers());
    let resp = next.run(req).await;
    if !want {
        return resp;
    }
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json") && !ct.contains("stream="));
    if !json || resp.body().size_hint().exact().is_none() {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(collected) = body.collect().await else {
        return Response::from_parts(parts, Body::empty());
    };
    let bytes = collected.to_bytes();
    // Already indented (`/version`, raw Status bodies): keep it as it is.
    if bytes.starts_with(b"{\n") {
        return Response::from_parts(parts, Body::from(bytes));
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(indent(&bytes)))
}

/// Go's `json.Indent(dst, src, "", "  ")` of compact JSON: the text is kept, field order
/// included, and only whitespace is added (empty objects and arrays stay `{}` and `[]`).
pub fn indent(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len() + src.len() / 4);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        out.extend(std::iter::repeat_n(b' ', depth * 2));
    };
    let mut i = 0;
    while i < src.len() {
        let c = src[i];
        i += 1;
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => {}
            b'"' => {
                in_string = true;
                out.push(c);
            }
            b'{' | b'[' => {
                out.push(c);
                let close = if c == b'{' { b'}' } else { b']' };
                if src.get(i) == Some(&close) {
                    out.push(close);
                    i += 1;
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            b',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn indents_as_go_keeping_field_order() {
        let src = br#"{"kind":"X","apiVersion":"v1","metadata":{},"items":[],"a":[1,{"b":"x,y: {z}\"\\"}]}"#;
        assert_eq!(
            String::from_utf8(indent(src)).unwrap(),
            "{\n  \"kind\": \"X\",\n  \"apiVersion\": \"v1\",\n  \"metadata\": {},\n  \"items\": [],\n  \"a\": [\n    1,\n    {\n      \"b\": \"x,y: {z}\\\"\\\\\"\n    }\n  ]\n}"
        );
    }

    #[test]
    fn humans_get_indented_json() {
        assert!(wanted(None, &headers(&[("user-agent", "curl/7.88.1")])));
        assert!(wanted(None, &headers(&[("user-agent", "Wget/1.21.3")])));
        assert!(wanted(
            None,
            &headers(&[("user-agent", "Mozilla/5.0 (X11; Linux x86_64)")])
        ));
        assert!(!wanted(
            None,
            &headers(&[("user-agent", "kubectl/v1.37.0 (linux/amd64)")])
        ));
        assert!(!wanted(None, &headers(&[("user-agent", "wget/1.0")])));
        // The parameter wins over the user agent, and garbage means no.
        let curl = headers(&[("user-agent", "curl/8")]);
        assert!(!wanted(Some("pretty=false"), &curl));
        assert!(!wanted(Some("pretty=yes"), &curl));
        assert!(wanted(Some("pretty=true"), &HeaderMap::new()));
        assert!(wanted(Some("pretty=1"), &HeaderMap::new()));
        assert!(wanted(Some("pretty="), &curl));
        assert!(wanted(
            None,
            &headers(&[("accept", "application/json;pretty=1")])
        ));
        assert!(!wanted(
            None,
            &headers(&[("accept", "application/json;pretty=0")])
        ));
    }
}
