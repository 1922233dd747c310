//! How upstream reports a request body it cannot decode. Its JSON serializer first reads
//! `apiVersion` and `kind` with Go's `encoding/json` (so malformed JSON is reported in Go's
//! words), defaults them from the endpoint, and fails when the kind is not the endpoint's; the
//! handler wraps that in `transformDecodeError`'s text. Every message here is upstream's.

use rudder_api::status::ApiError;
use serde_json::Value;

/// The scheme every built-in type is registered in, as its name appears in messages.
const SCHEME: &str = "k8s.io/kubernetes/pkg/api/legacyscheme/scheme.go:30";

/// The Go type `SimpleMetaFactory.Interpret` decodes into, as `%v` prints it.
const FIND_KIND: &str = r#"struct { APIVersion string "json:\"apiVersion,omitempty\""; Kind string "json:\"kind,omitempty\"" }"#;

/// The first syntax error in `data` with Go's `encoding/json` text, if any.
pub fn syntax_error(data: &[u8]) -> Option<String> {
    let mut s = Scanner { data, pos: 0 };
    s.value().and_then(|()| s.end()).err()
}

struct Scanner<'a> {
    data: &'a [u8],
    pos: usize,
}

const EOF: &str = "unexpected end of JSON input";

fn invalid(c: u8, context: &str) -> String {
    format!("invalid character {} {context}", quote_char(c))
}

/// Go's `quoteChar`: the byte as a rune, quoted with single quotes.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => r"'\''".to_owned(),
        b'"' => "'\"'".to_owned(),
        _ => {
            let q = rudder_api::go_quote(&char::from(c).to_string());
            format!("'{}'", &q[1..q.len() - 1])
        }
    }
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
    }

    /// The next non-space byte, consumed.
    fn next_token(&mut self) -> Result<u8, String> {
        self.skip_space();
        let c = self.peek().ok_or(EOF)?;
        self.pos += 1;
        Ok(c)
    }

    fn end(&mut self) -> Result<(), String> {
        self.skip_space();
        match self.peek() {
            None => Ok(()),
            Some(c) => Err(invalid(c, "after top-level value")),
        }
    }

    fn value(&mut self) -> Result<(), String> {
        let c = self.next_token()?;
        self.value_from(c)
    }

    fn value_from(&mut self, c: u8) -> Result<(), String> {
        match c {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string(),
            b'-' | b'0'..=b'9' => self.number(c),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => Err(invalid(c, "looking for beginning of value")),
        }
    }

    fn object(&mut self) -> Result<(), String> {
        let mut c = self.next_token()?;
        if c == b'}' {
            return Ok(());
        }
        loop {
            if c != b'"' {
                return Err(invalid(c, "looking for beginning of object key string"));
            }
            self.string()?;
            let colon = self.next_token()?;
            if colon != b':' {
                return Err(invalid(colon, "after object key"));
            }
            self.value()?;
            match self.next_token()? {
                b',' => c = self.next_token()?,
                b'}' => return Ok(()),
                other => return Err(invalid(other, "after object key:value pair")),
            }
        }
    }

    fn array(&mut self) -> Result<(), String> {
        let c = self.next_token()?;
        if c == b']' {
            return Ok(());
        }
        self.value_from(c)?;
        loop {
            match self.next_token()? {
                b',' => self.value()?,
                b']' => return Ok(()),
                other => return Err(invalid(other, "after array element")),
            }
        }
    }

    fn string(&mut self) -> Result<(), String> {
        loop {
            let c = self.peek().ok_or(EOF)?;
            self.pos += 1;
            match c {
                b'"' => return Ok(()),
                b'\\' => {
                    let e = self.peek().ok_or(EOF)?;
                    self.pos += 1;
                    match e {
                        b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => {}
                        b'u' => {
                            for _ in 0..4 {
                                let h = self.peek().ok_or(EOF)?;
                                self.pos += 1;
                                if !h.is_ascii_hexdigit() {
                                    return Err(invalid(h, "in \\u hexadecimal character escape"));
                                }
                            }
                        }
                        _ => return Err(invalid(e, "in string escape code")),
                    }
                }
                c if c < 0x20 => return Err(invalid(c, "in string literal")),
                _ => {}
            }
        }
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    /// A number starting with `first` (already consumed). The byte after a number belongs to
    /// whatever follows it, so it is left for the caller.
    fn number(&mut self, first: u8) -> Result<(), String> {
        let lead = if first == b'-' {
            let c = self.peek().ok_or(EOF)?;
            if !c.is_ascii_digit() {
                return Err(invalid(c, "in numeric literal"));
            }
            self.pos += 1;
            c
        } else {
            first
        };
        if lead != b'0' {
            self.digits();
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            let c = self.peek().ok_or(EOF)?;
            if !c.is_ascii_digit() {
                return Err(invalid(c, "after decimal point in numeric literal"));
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            let c = self.peek().ok_or(EOF)?;
            if !c.is_ascii_digit() {
                return Err(invalid(c, "in exponent of numeric literal"));
            }
            self.digits();
        }
        Ok(())
    }

    fn literal(&mut self, word: &str) -> Result<(), String> {
        for want in word.bytes().skip(1) {
            let c = self.peek().ok_or(EOF)?;
            if c != want {
                return Err(invalid(
                    c,
                    &format!("in literal {word} (expecting {})", quote_char(want)),
                ));
            }
            self.pos += 1;
        }
        Ok(())
    }
}

/// Upstream's `summarizeData(body, 30)`: the start of a JSON object as text, anything else in
/// hex.
pub fn summarize(data: &[u8]) -> String {
    const MAX: usize = 30;
    let head = &data[..data.len().min(MAX)];
    let more = if data.len() > MAX { " ..." } else { "" };
    match data.first() {
        None => "<empty>".to_owned(),
        Some(b'{') => format!("{}{more}", String::from_utf8_lossy(head)),
        Some(_) => {
            let hex: String = head.iter().map(|b| format!("{b:02x}")).collect();
            format!("{hex}{more}")
        }
    }
}

pub use rudder_openapi::Gvk;

/// `group/version`, or the version alone in the core group.
fn group_version(g: &Gvk) -> String {
    if g.group.is_empty() {
        g.version.clone()
    } else {
        format!("{}/{}", g.group, g.version)
    }
}

/// The Go package an internal type of `group` lives in, which conversion errors name.
fn internal_package(group: &str) -> &str {
    match group {
        "" | "events.k8s.io" => "core",
        "rbac.authorization.k8s.io" => "rbac",
        "flowcontrol.apiserver.k8s.io" => "flowcontrol",
        "internal.apiserver.k8s.io" => "apiserverinternal",
        g => g.split('.').next().unwrap_or(g),
    }
}

fn unrecognized(target: &Gvk, err: &str, body: &[u8]) -> ApiError {
    ApiError::bad_request(format!(
        "the object provided is unrecognized (must be of type {}): {err} ({})",
        target.kind,
        summarize(body)
    ))
}

/// Check a decoded create or update body against the endpoint's kind `target`, as upstream's
/// decoder and `createHandler`/`UpdateResource` do, before anything else looks at it.
/// `registered` says whether the scheme knows a group/version/kind. `raw` is the body as sent
/// (for the summary); `json` says it was sent as JSON (so syntax errors are Go's).
pub fn check_body(
    target: &Gvk,
    raw: &[u8],
    json: bool,
    registered: impl Fn(&Gvk) -> bool,
) -> Result<Option<Value>, ApiError> {
    if json {
        if let Some(e) = syntax_error(raw) {
            return Err(unrecognized(
                target,
                &format!("couldn't get version/kind; json parse error: {e}"),
                raw,
            ));
        }
    }
    let value: Value = if json {
        match serde_json::from_slice(raw) {
            Ok(v) => v,
            Err(_) => return Ok(None),
        }
    } else {
        return Ok(None);
    };
    check_value(target, raw, &value, registered)?;
    Ok(Some(value))
}

/// The apiVersion/kind checks of [`check_body`] on an already decoded body.
pub fn check_value(
    target: &Gvk,
    raw: &[u8],
    value: &Value,
    registered: impl Fn(&Gvk) -> bool,
) -> Result<(), ApiError> {
    let type_name = |v: &Value| match v {
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Object(_) => "object",
        Value::Null => "null",
    };
    let obj = match value {
        Value::Object(m) => m,
        Value::Null => return Ok(()),
        other => {
            return Err(unrecognized(
                target,
                &format!(
                    "couldn't get version/kind; json parse error: json: cannot unmarshal {} into Go value of type {FIND_KIND}",
                    type_name(other)
                ),
                raw,
            ))
        }
    };
    let field = |name: &str| -> Result<String, ApiError> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(unrecognized(
                target,
                &format!(
                    "couldn't get version/kind; json parse error: json: cannot unmarshal {} into Go struct field .{name} of type string",
                    type_name(other)
                ),
                raw,
            )),
        }
    };
    let api_version = field("apiVersion")?;
    let kind = field("kind")?;
    let (group, version) = match api_version.matches('/').count() {
        _ if api_version.is_empty() || api_version == "/" => (String::new(), String::new()),
        0 => (String::new(), api_version.clone()),
        1 => {
            let (g, v) = api_version.split_once('/').unwrap_or_default();
            (g.to_owned(), v.to_owned())
        }
        _ => {
            return Err(unrecognized(
                target,
                &format!("unexpected GroupVersion string: {api_version}"),
                raw,
            ))
        }
    };
    // Upstream's gvkWithDefaults: what the body leaves out comes from the endpoint.
    let mut actual = Gvk {
        group,
        version,
        kind,
    };
    if actual.kind.is_empty() {
        actual.kind = target.kind.clone();
    }
    if actual.version.is_empty() && actual.group.is_empty() {
        actual.group = target.group.clone();
        actual.version = target.version.clone();
    }
    if actual.version.is_empty() && actual.group == target.group {
        actual.version = target.version.clone();
    }
    let cannot = |err: String| {
        ApiError::bad_request(format!(
            "{} in version {} cannot be handled as a {}: {err}",
            actual.kind,
            rudder_api::go_quote(&actual.version),
            target.kind
        ))
    };
    if actual.version.is_empty() {
        return Err(cannot(format!(
            "no version {} has been registered in scheme {}",
            rudder_api::go_quote(&group_version(&actual)),
            rudder_api::go_quote(SCHEME)
        )));
    }
    if !registered(&actual) {
        return Err(cannot(format!(
            "no kind {} is registered for version {} in scheme {}",
            rudder_api::go_quote(&actual.kind),
            rudder_api::go_quote(&group_version(&actual)),
            rudder_api::go_quote(SCHEME)
        )));
    }
    if actual.kind != target.kind {
        return Err(cannot(format!(
            "converting ({}.{}) to ({}.{}): unknown conversion",
            actual.version,
            actual.kind,
            internal_package(&target.group),
            target.kind
        )));
    }
    if actual.group != target.group || actual.version != target.version {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({}) does not match the expected API version ({})",
            group_version(&actual),
            group_version(target)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_read_as_go_writes_them() {
        let e = |s: &str| syntax_error(s.as_bytes());
        assert_eq!(e(r#"{"a": [1, 2]}"#), None);
        assert_eq!(e(" -1.5e+3 "), None);
        assert_eq!(e("").as_deref(), Some("unexpected end of JSON input"));
        assert_eq!(e("{").as_deref(), Some("unexpected end of JSON input"));
        assert_eq!(
            e("apiVersion: v1\nkind: Pod").as_deref(),
            Some("invalid character 'a' looking for beginning of value")
        );
        assert_eq!(
            e("{a}").as_deref(),
            Some("invalid character 'a' looking for beginning of object key string")
        );
        assert_eq!(
            e(r#"{"a" 1}"#).as_deref(),
            Some("invalid character '1' after object key")
        );
        assert_eq!(
            e(r#"{"a":1 "b":2}"#).as_deref(),
            Some("invalid character '\"' after object key:value pair")
        );
        assert_eq!(
            e("[1 2]").as_deref(),
            Some("invalid character '2' after array element")
        );
        assert_eq!(
            e("{}x").as_deref(),
            Some("invalid character 'x' after top-level value")
        );
        assert_eq!(
            e("[tru]").as_deref(),
            Some("invalid character ']' in literal true (expecting 'e')")
        );
        assert_eq!(
            e("-x").as_deref(),
            Some("invalid character 'x' in numeric literal")
        );
        assert_eq!(
            e("1.x").as_deref(),
            Some("invalid character 'x' after decimal point in numeric literal")
        );
        assert_eq!(
            e("\"a\tb\"").as_deref(),
            Some(r"invalid character '\t' in string literal")
        );
        assert_eq!(
            e(r#""\q""#).as_deref(),
            Some("invalid character 'q' in string escape code")
        );
        assert_eq!(
            e("{'a':1}").as_deref(),
            Some(r"invalid character '\'' looking for beginning of object key string")
        );
    }

    #[test]
    fn summaries_as_upstream() {
        assert_eq!(summarize(b""), "<empty>");
        assert_eq!(summarize(b"{\"a\":1}"), "{\"a\":1}");
        assert_eq!(summarize(b"abc"), "616263");
        assert_eq!(
            summarize(b"apiVersion: v1\r\nkind: Persistent volume"),
            "61706956657273696f6e3a2076310d0a6b696e643a205065727369737465 ..."
        );
    }

    #[test]
    fn wrong_kinds_and_versions() {
        let ns = Gvk::new("", "v1", "Namespace");
        let known = |g: &Gvk| {
            matches!(
                (g.group.as_str(), g.version.as_str(), g.kind.as_str()),
                ("", "v1", "Namespace" | "Pod") | ("apps", "v1", "Deployment")
            )
        };
        let msg = |body: &str| {
            check_body(&ns, body.as_bytes(), true, known)
                .err()
                .map(|e| e.message)
        };
        assert_eq!(msg(r#"{"apiVersion":"v1","kind":"Namespace"}"#), None);
        assert_eq!(msg(r#"{"metadata":{"name":"x"}}"#), None);
        assert_eq!(
            msg(r#"{"apiVersion":"v1","kind":"Pod"}"#).as_deref(),
            Some(
                r#"Pod in version "v1" cannot be handled as a Namespace: converting (v1.Pod) to (core.Namespace): unknown conversion"#
            )
        );
        assert_eq!(
            msg(r#"{"apiVersion":"v1","kind":"namespace"}"#).as_deref(),
            Some(
                r#"namespace in version "v1" cannot be handled as a Namespace: no kind "namespace" is registered for version "v1" in scheme "k8s.io/kubernetes/pkg/api/legacyscheme/scheme.go:30""#
            )
        );
        assert_eq!(
            msg(r#"{"apiVersion":"apps/v1","kind":"Deployment"}"#).as_deref(),
            Some(
                r#"Deployment in version "v1" cannot be handled as a Namespace: converting (v1.Deployment) to (core.Namespace): unknown conversion"#
            )
        );
        assert_eq!(
            msg("[]").as_deref(),
            Some(
                r#"the object provided is unrecognized (must be of type Namespace): couldn't get version/kind; json parse error: json: cannot unmarshal array into Go value of type struct { APIVersion string "json:\"apiVersion,omitempty\""; Kind string "json:\"kind,omitempty\"" } (5b5d)"#
            )
        );
        assert_eq!(
            msg("apiVersion: v1\nkind: Pod\n").as_deref(),
            Some("the object provided is unrecognized (must be of type Namespace): couldn't get version/kind; json parse error: invalid character 'a' looking for beginning of value (61706956657273696f6e3a2076310a6b696e643a20506f640a)")
        );
        assert_eq!(
            msg(r#"{"apiVersion":"a/b/c"}"#).as_deref(),
            Some(
                r#"the object provided is unrecognized (must be of type Namespace): unexpected GroupVersion string: a/b/c ({"apiVersion":"a/b/c"})"#
            )
        );
        let deploy = Gvk::new("apps", "v1", "Deployment");
        let err = check_body(
            &deploy,
            br#"{"apiVersion":"apps/v2","kind":"Deployment"}"#,
            true,
            known,
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            r#"Deployment in version "v2" cannot be handled as a Deployment: no kind "Deployment" is registered for version "apps/v2" in scheme "k8s.io/kubernetes/pkg/api/legacyscheme/scheme.go:30""#
        );
    }
}
