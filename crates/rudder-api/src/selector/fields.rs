//! Field selectors, modelled on upstream `k8s.io/apimachinery/pkg/fields` (`selector.go`).
//!
//! The grammar is a comma-separated AND of `field=value`, `field==value` and `field!=value`
//! terms. In values, `\`, `,` and `=` must be escaped with a backslash; field names are never
//! escaped and end at the first operator. Which fields a resource supports is the resource's
//! business (its strategy), not the parser's.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::status::ApiError;

/// A field selector error, carrying upstream's message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FieldSelectorError(pub String);

impl FieldSelectorError {
    /// The 400 the API server returns for an unparsable `fieldSelector` parameter.
    pub fn to_api_error(&self) -> ApiError {
        ApiError::bad_request(self.0.clone())
    }
}

/// The selectable fields of an object (upstream `fields.Fields`). A missing field reads as the
/// empty string, as upstream's `Get` does.
pub trait Fields {
    /// The value of `field`, if the object has it.
    fn get_field(&self, field: &str) -> Option<&str>;
}

impl Fields for BTreeMap<String, String> {
    fn get_field(&self, field: &str) -> Option<&str> {
        self.get(field).map(String::as_str)
    }
}

impl<S: std::hash::BuildHasher> Fields for HashMap<String, String, S> {
    fn get_field(&self, field: &str) -> Option<&str> {
        self.get(field).map(String::as_str)
    }
}

impl Fields for [(&str, &str)] {
    fn get_field(&self, field: &str) -> Option<&str> {
        self.iter().find(|(f, _)| *f == field).map(|(_, v)| *v)
    }
}

impl<F: Fields + ?Sized> Fields for &F {
    fn get_field(&self, field: &str) -> Option<&str> {
        (**self).get_field(field)
    }
}

/// A field selector operator. `==` parses to [`FieldOperator::Equals`], as upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FieldOperator {
    /// `field=value` or `field==value`.
    Equals,
    /// `field!=value`.
    NotEquals,
}

/// One term of a field selector.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldRequirement {
    /// The field, e.g. `metadata.name`.
    pub field: String,
    /// `=` or `!=`.
    pub operator: FieldOperator,
    /// The unescaped value.
    pub value: String,
}

impl FieldRequirement {
    /// Builds a requirement.
    pub fn new(
        field: impl Into<String>,
        operator: FieldOperator,
        value: impl Into<String>,
    ) -> Self {
        FieldRequirement {
            field: field.into(),
            operator,
            value: value.into(),
        }
    }

    /// Upstream `hasTerm.Matches` / `notHasTerm.Matches` (missing fields read as `""`).
    pub fn matches(&self, fields: &impl Fields) -> bool {
        let actual = fields.get_field(&self.field).unwrap_or_default();
        match self.operator {
            FieldOperator::Equals => actual == self.value,
            FieldOperator::NotEquals => actual != self.value,
        }
    }
}

impl fmt::Display for FieldRequirement {
    /// `field=value` / `field!=value`, with the value escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{op}{}", self.field, escape_value(&self.value))
    }
}

/// A parsed field selector: the AND of its terms, or "matches nothing".
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldSelector {
    terms: Vec<FieldRequirement>,
    nothing: bool,
}

impl FieldSelector {
    /// Matches everything (upstream `Everything()`).
    pub fn everything() -> Self {
        FieldSelector::default()
    }

    /// Matches nothing (upstream `Nothing()`); renders as an empty string.
    pub fn nothing() -> Self {
        FieldSelector {
            terms: Vec::new(),
            nothing: true,
        }
    }

    /// A selector from terms, in the given order. Terms whose field and value are both empty are
    /// dropped, as upstream's `Transform` drops them.
    pub fn from_terms(terms: Vec<FieldRequirement>) -> Self {
        FieldSelector {
            terms: terms
                .into_iter()
                .filter(|t| !(t.field.is_empty() && t.value.is_empty()))
                .collect(),
            nothing: false,
        }
    }

    /// `field=value` (upstream `OneTermEqualSelector`).
    pub fn one_term_equal(field: impl Into<String>, value: impl Into<String>) -> Self {
        FieldSelector::from_terms(vec![FieldRequirement::new(
            field,
            FieldOperator::Equals,
            value,
        )])
    }

    /// Upstream `fields.ParseSelector`.
    pub fn parse(selector: &str) -> Result<Self, FieldSelectorError> {
        let mut parts = split_terms(selector);
        parts.sort_unstable();
        let mut terms = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((lhs, op, rhs)) = split_term(part) else {
                return Err(FieldSelectorError(format!(
                    "invalid selector: '{selector}'; can't understand '{part}'"
                )));
            };
            let value = unescape_value(rhs)?;
            terms.push(FieldRequirement::new(lhs, op, value));
        }
        Ok(FieldSelector::from_terms(terms))
    }

    /// True when every term matches (never for [`FieldSelector::nothing`]).
    pub fn matches(&self, fields: &impl Fields) -> bool {
        !self.nothing && self.terms.iter().all(|t| t.matches(fields))
    }

    /// Upstream `Empty`: true when nothing is restricted.
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.terms.is_empty()
    }

    /// True for [`FieldSelector::nothing`].
    pub fn matches_nothing(&self) -> bool {
        self.nothing
    }

    /// The terms, in parse order (sorted by their raw text).
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.terms
    }

    /// Upstream `RequiresExactMatch`: the value an `=` term pins `field` to. Used for
    /// `metadata.name=x` single-object watches and for indexed lookups such as
    /// `spec.nodeName=<node>`.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && t.operator == FieldOperator::Equals)
            .map(|t| t.value.as_str())
    }

    /// Upstream `Transform`: rewrites every term (e.g. to map field aliases or reject
    /// unsupported fields); terms that come back with an empty field and value are dropped.
    pub fn transform<E>(
        &self,
        mut f: impl FnMut(&str, &str) -> Result<(String, String), E>,
    ) -> Result<Self, E> {
        if self.nothing {
            return Ok(self.clone());
        }
        let mut terms = Vec::with_capacity(self.terms.len());
        for t in &self.terms {
            let (field, value) = f(&t.field, &t.value)?;
            terms.push(FieldRequirement {
                field,
                operator: t.operator,
                value,
            });
        }
        Ok(FieldSelector::from_terms(terms))
    }
}

impl fmt::Display for FieldSelector {
    /// Terms joined by `,`, values escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{t}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for FieldSelector {
    type Err = FieldSelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FieldSelector::parse(s)
    }
}

/// Upstream `EscapeValue`: backslash-escapes `\`, `,` and `=`.
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Upstream `UnescapeValue`: reverses [`escape_value`], rejecting unknown escapes and unescaped
/// `,` or `=`.
pub fn unescape_value(s: &str) -> Result<String, FieldSelectorError> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => {
                    return Err(FieldSelectorError(format!(
                        "invalid field selector: invalid escape sequence: \\{c}"
                    )))
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            // Upstream formats the rune with `%v`, which prints its code point in decimal.
            ',' | '=' => {
                return Err(FieldSelectorError(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                )))
            }
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err(FieldSelectorError(
            "invalid field selector: invalid escape sequence: \\".to_owned(),
        ));
    }
    Ok(out)
}

/// Upstream `splitTerms`: splits on commas that are not escaped; escapes stay in the terms.
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in selector.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// Upstream `splitTerm`: splits at the first operator; at each position `!=` is tried before
/// `==` before `=`, so `a==b` is `a` `==` `b`, not `a` `=` `=b`.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, parsed) in [
            ("!=", FieldOperator::NotEquals),
            ("==", FieldOperator::Equals),
            ("=", FieldOperator::Equals),
        ] {
            if let Some(rhs) = rest.strip_prefix(op) {
                return Some((&term[..i], parsed, rhs));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parses_upstream_good_selectors() {
        // Upstream's TestSelectorParse / TestSplitTerms cases.
        for (input, canonical) in [
            ("", ""),
            ("a=b", "a=b"),
            ("a==b", "a=b"),
            ("a!=b", "a!=b"),
            ("a=b,c=d", "a=b,c=d"),
            ("c=d,a=b", "a=b,c=d"),
            (
                "metadata.name=x,status.phase!=Running",
                "metadata.name=x,status.phase!=Running",
            ),
            ("a=", "a="),
            ("a=b,,c=d", "a=b,c=d"),
            ("x=a\\,b", "x=a\\,b"),
            ("x=a\\=b", "x=a\\=b"),
            ("x=a\\\\b", "x=a\\\\b"),
            ("=", ""),
            ("=x", "=x"),
            ("a!b=c", "a!b=c"),
        ] {
            assert_eq!(
                FieldSelector::parse(input).map(|s| s.to_string()),
                Ok(canonical.to_owned()),
                "{input:?}"
            );
        }
    }

    #[test]
    fn error_messages_match_upstream() {
        assert_eq!(
            FieldSelector::parse("a"),
            Err(FieldSelectorError(
                "invalid selector: 'a'; can't understand 'a'".into()
            ))
        );
        assert_eq!(
            FieldSelector::parse("x=y,a").map_err(|e| e.0),
            Err("invalid selector: 'x=y,a'; can't understand 'a'".into())
        );
        assert_eq!(
            FieldSelector::parse("a=b=c").map_err(|e| e.0),
            Err("invalid field selector: unescaped character in value: 61".into())
        );
        assert_eq!(
            FieldSelector::parse("a=b\\x").map_err(|e| e.0),
            Err("invalid field selector: invalid escape sequence: \\x".into())
        );
        assert_eq!(
            FieldSelector::parse("a=b\\").map_err(|e| e.0),
            Err("invalid field selector: invalid escape sequence: \\".into())
        );
        assert_eq!(FieldSelectorError("x".into()).to_api_error().code, 400);
    }

    #[test]
    fn split_helpers() {
        assert_eq!(split_terms(""), Vec::<&str>::new());
        assert_eq!(split_terms("a,b"), vec!["a", "b"]);
        assert_eq!(split_terms("a\\,b,c"), vec!["a\\,b", "c"]);
        assert_eq!(split_terms("a\\\\,b"), vec!["a\\\\", "b"]);
        assert_eq!(split_terms(","), vec!["", ""]);
        assert_eq!(split_term("a==b"), Some(("a", FieldOperator::Equals, "b")));
        assert_eq!(
            split_term("a!=b"),
            Some(("a", FieldOperator::NotEquals, "b"))
        );
        assert_eq!(
            split_term("a=!=b"),
            Some(("a", FieldOperator::Equals, "!=b"))
        );
        assert_eq!(split_term("ab"), None);
    }

    #[test]
    fn escaping_round_trips() {
        for v in ["", "plain", "a,b", "a=b", "a\\b", "\\,=", "ünïcode"] {
            assert_eq!(unescape_value(&escape_value(v)), Ok(v.to_owned()));
        }
        assert_eq!(escape_value("a,b=c\\d"), "a\\,b\\=c\\\\d");
    }

    #[test]
    fn matching() {
        let f = fields(&[("metadata.name", "web"), ("status.phase", "Running")]);
        let cases = [
            ("", true),
            ("metadata.name=web", true),
            ("metadata.name==web", true),
            ("metadata.name=db", false),
            ("metadata.name!=db", true),
            ("status.phase!=Running", false),
            ("spec.nodeName=", true),
            ("spec.nodeName!=", false),
            ("metadata.name=web,status.phase=Running", true),
            ("metadata.name=web,status.phase=Pending", false),
        ];
        for (sel, want) in cases {
            let s = FieldSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&f), want, "{sel}");
        }
        let pairs: &[(&str, &str)] = &[("metadata.name", "a,b")];
        assert!(FieldSelector::parse("metadata.name=a\\,b")
            .map(|s| s.matches(&pairs))
            .unwrap_or(false));
        assert!(!FieldSelector::nothing().matches(&f));
        assert!(FieldSelector::everything().is_empty());
        assert!(!FieldSelector::nothing().is_empty());
    }

    #[test]
    fn exact_match_and_transform() {
        let s = FieldSelector::parse("metadata.name=x,spec.nodeName!=n").unwrap_or_default();
        assert_eq!(s.requires_exact_match("metadata.name"), Some("x"));
        assert_eq!(s.requires_exact_match("spec.nodeName"), None);
        assert_eq!(
            FieldSelector::one_term_equal("metadata.name", "a=b").to_string(),
            "metadata.name=a\\=b"
        );

        let renamed = s.transform(|f, v| -> Result<_, String> {
            if f == "spec.nodeName" {
                Ok((String::new(), String::new()))
            } else {
                Ok((f.to_owned(), v.to_owned()))
            }
        });
        assert_eq!(
            renamed.map(|s| s.to_string()),
            Ok("metadata.name=x".to_owned())
        );
        let rejected = s.transform(|f, _| {
            Err::<(String, String), _>(format!("field label not supported: {f}"))
        });
        assert_eq!(
            rejected,
            Err("field label not supported: metadata.name".to_owned())
        );
    }
}
