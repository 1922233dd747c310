//! Label selectors, modelled on upstream `k8s.io/apimachinery/pkg/labels` (`selector.go`) and
//! `metav1.LabelSelectorAsSelector`.
//!
//! The parser is a line-by-line port of upstream's lexer and recursive-descent parser, because
//! clients depend on its quirks: which strings are accepted (`x in (,a)`, `!x`, `x>1`), how
//! values are normalised (sorted, de-duplicated), and the exact error text (`unable to parse
//! requirement: found '', expected: identifier`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::field::{BadValue, ErrorList, FieldError, Path};
use crate::status::ApiError;
use crate::validation::{is_qualified_name, is_valid_label_value};

/// A label selector error, carrying upstream's message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

impl SelectorError {
    /// The 400 the API server returns for an unparsable `labelSelector` parameter.
    pub fn to_api_error(&self) -> ApiError {
        ApiError::bad_request(self.0.clone())
    }
}

/// A set of labels a selector can be matched against (upstream `labels.Labels`).
pub trait Labels {
    /// The value of `key`, if present.
    fn get_label(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn get_label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<S: std::hash::BuildHasher> Labels for HashMap<String, String, S> {
    fn get_label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<L: Labels + ?Sized> Labels for &L {
    fn get_label(&self, key: &str) -> Option<&str> {
        (**self).get_label(key)
    }
}

/// A selector operator (upstream `selection.Operator`); [`Operator::as_str`] gives the
/// upstream spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `!key`: the label is absent.
    DoesNotExist,
    /// `key=value`.
    Equals,
    /// `key==value`.
    DoubleEquals,
    /// `key in (a,b)`.
    In,
    /// `key!=value`: absent or different.
    NotEquals,
    /// `key notin (a,b)`: absent or not one of the values.
    NotIn,
    /// `key`: the label is present.
    Exists,
    /// `key>n`: present and numerically greater.
    GreaterThan,
    /// `key<n`: present and numerically smaller.
    LessThan,
}

impl Operator {
    /// Upstream's spelling: `!`, `=`, `==`, `in`, `!=`, `notin`, `exists`, `gt`, `lt`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::DoesNotExist => "!",
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::In => "in",
            Operator::NotEquals => "!=",
            Operator::NotIn => "notin",
            Operator::Exists => "exists",
            Operator::GreaterThan => "gt",
            Operator::LessThan => "lt",
        }
    }
}

/// Upstream's `binaryOperators`, in its order (used in an error message).
const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

/// One `key op values` term of a selector (upstream `labels.Requirement`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

fn validate_label_key(key: &str, path: &Path) -> Option<FieldError> {
    let errs = is_qualified_name(key);
    (!errs.is_empty()).then(|| FieldError::invalid(path, key, errs.join("; ")))
}

fn validate_label_value(key: &str, value: &str, path: &Path) -> Option<FieldError> {
    let errs = is_valid_label_value(value);
    (!errs.is_empty()).then(|| FieldError::invalid(&path.key(key), value, errs.join("; ")))
}

/// How upstream renders a `[]string` bad value: JSON, with a nil slice as `null`.
fn values_bad_value(values: Option<&[String]>) -> BadValue {
    match values {
        None => BadValue::Json(serde_json::Value::Null),
        Some(v) => v.into(),
    }
}

impl Requirement {
    /// Upstream `NewRequirement` with no field path: validates the key, the number of values for
    /// the operator, integer values for `gt`/`lt`, and each value.
    pub fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Self, SelectorError> {
        Self::new_at(key, operator, Some(values), &Path::nil())
    }

    /// [`Requirement::new`] with a field path for the error messages (upstream's
    /// `field.WithPath`). `values = None` stands for a nil Go slice, which upstream renders as
    /// `null` in messages.
    pub fn new_at(
        key: &str,
        operator: Operator,
        values: Option<Vec<String>>,
        path: &Path,
    ) -> Result<Self, SelectorError> {
        let mut errs = ErrorList::new();
        if let Some(e) = validate_label_key(key, &path.child("key")) {
            errs.push(e);
        }
        let value_path = path.child("values");
        let vals: &[String] = values.as_deref().unwrap_or_default();
        match operator {
            Operator::In | Operator::NotIn => {
                if vals.is_empty() {
                    errs.push(FieldError::invalid(
                        &value_path,
                        values_bad_value(values.as_deref()),
                        "for 'in', 'notin' operators, values set can't be empty",
                    ));
                }
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals => {
                if vals.len() != 1 {
                    errs.push(FieldError::invalid(
                        &value_path,
                        values_bad_value(values.as_deref()),
                        "exact-match compatibility requires one single value",
                    ));
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !vals.is_empty() {
                    errs.push(FieldError::invalid(
                        &value_path,
                        values_bad_value(values.as_deref()),
                        "values set must be empty for exists and does not exist",
                    ));
                }
            }
            Operator::GreaterThan | Operator::LessThan => {
                if vals.len() != 1 {
                    errs.push(FieldError::invalid(
                        &value_path,
                        values_bad_value(values.as_deref()),
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, v) in vals.iter().enumerate() {
                    if parse_go_int(v).is_err() {
                        errs.push(FieldError::invalid(
                            &value_path.index(i),
                            v.as_str(),
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
        }
        for (i, v) in vals.iter().enumerate() {
            if let Some(e) = validate_label_value(key, v, &value_path.index(i)) {
                errs.push(e);
            }
        }
        match errs.aggregate_message() {
            Some(msg) => Err(SelectorError(msg)),
            None => Ok(Requirement {
                key: key.to_owned(),
                operator,
                values: values.unwrap_or_default(),
            }),
        }
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, in the order given (the parser gives them sorted and de-duplicated).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Upstream `Requirement.Matches`.
    pub fn matches(&self, labels: &impl Labels) -> bool {
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                labels.get_label(&self.key).is_some_and(has)
            }
            Operator::NotIn | Operator::NotEquals => {
                labels.get_label(&self.key).is_none_or(|v| !has(v))
            }
            Operator::Exists => labels.get_label(&self.key).is_some(),
            Operator::DoesNotExist => labels.get_label(&self.key).is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(Ok(actual)) = labels.get_label(&self.key).map(parse_go_int) else {
                    return false;
                };
                let [wanted] = self.values.as_slice() else {
                    return false;
                };
                let Ok(wanted) = parse_go_int(wanted) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    actual > wanted
                } else {
                    actual < wanted
                }
            }
        }
    }
}

/// Go's `strconv.ParseInt(s, 10, 64)`: an optional sign and decimal digits.
fn parse_go_int(s: &str) -> Result<i64, std::num::ParseIntError> {
    // Rust accepts a leading '+' too, as Go does; both reject spaces and underscores.
    s.parse::<i64>()
}

impl fmt::Display for Requirement {
    /// Upstream `Requirement.String()`: `!k`, `k`, `k=v`, `k==v`, `k!=v`, `k>v`, `k<v`,
    /// `k in (a,b)`, `k notin (a,b)`, with multiple values sorted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.operator {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
        };
        f.write_str(op)?;
        let set = matches!(self.operator, Operator::In | Operator::NotIn);
        if set {
            f.write_str("(")?;
        }
        if let [only] = self.values.as_slice() {
            f.write_str(only)?;
        } else {
            let mut sorted: Vec<&str> = self.values.iter().map(String::as_str).collect();
            sorted.sort_unstable();
            f.write_str(&sorted.join(","))?;
        }
        if set {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A parsed label selector: the AND of its requirements, or the special "matches nothing"
/// selector that a nil `metav1.LabelSelector` converts to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Selector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl Selector {
    /// Matches every label set (upstream `Everything()`).
    pub fn everything() -> Self {
        Selector::default()
    }

    /// Matches nothing (upstream `Nothing()`); renders as an empty string.
    pub fn nothing() -> Self {
        Selector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// A selector from requirements, sorted by key (stably) as upstream's `Add` does.
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> Self {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Selector {
            requirements,
            nothing: false,
        }
    }

    /// Upstream `SelectorFromSet`: `k=v` for every entry, without validation.
    pub fn from_set(labels: &BTreeMap<String, String>) -> Self {
        Selector::from_requirements(
            labels
                .iter()
                .map(|(k, v)| Requirement {
                    key: k.clone(),
                    operator: Operator::Equals,
                    values: vec![v.clone()],
                })
                .collect(),
        )
    }

    /// Upstream `labels.Parse`: parses the `labelSelector` query-parameter syntax.
    pub fn parse(selector: &str) -> Result<Self, SelectorError> {
        Self::parse_at(selector, &Path::nil())
    }

    /// [`Selector::parse`] with a field path for requirement errors.
    pub fn parse_at(selector: &str, path: &Path) -> Result<Self, SelectorError> {
        let mut parser = Parser::new(selector, path.clone());
        let requirements = parser.parse()?;
        Ok(Selector::from_requirements(requirements))
    }

    /// Upstream `metav1.LabelSelectorAsSelector`: `None` matches nothing, an empty selector
    /// matches everything, otherwise `matchLabels` become `=` requirements and
    /// `matchExpressions` become `in`/`notin`/`exists`/`!` requirements, validated.
    pub fn from_label_selector(selector: Option<&LabelSelector>) -> Result<Self, SelectorError> {
        let Some(ls) = selector else {
            return Ok(Selector::nothing());
        };
        let match_labels = ls.match_labels.as_ref();
        let exprs = ls.match_expressions.as_deref().unwrap_or_default();
        if match_labels.map_or(0, BTreeMap::len) + exprs.len() == 0 {
            return Ok(Selector::everything());
        }
        let mut reqs = Vec::new();
        for (k, v) in match_labels.into_iter().flatten() {
            reqs.push(Requirement::new(k, Operator::Equals, vec![v.clone()])?);
        }
        for expr in exprs {
            let op = match expr.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(SelectorError(format!(
                        "{} is not a valid pod selector operator",
                        crate::gofmt::quote(other)
                    )))
                }
            };
            // Upstream copies with `append([]string(nil), values...)`, so an empty list is nil.
            let values = expr.values.clone().filter(|v| !v.is_empty());
            reqs.push(Requirement::new_at(&expr.key, op, values, &Path::nil())?);
        }
        Ok(Selector::from_requirements(reqs))
    }

    /// Upstream `Matches`: every requirement holds (and never, for [`Selector::nothing`]).
    pub fn matches(&self, labels: &impl Labels) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Upstream `Empty`: true when the selector does not restrict anything.
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// True for [`Selector::nothing`].
    pub fn matches_nothing(&self) -> bool {
        self.nothing
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Adds requirements, keeping them sorted by key.
    pub fn with_requirements(
        mut self,
        requirements: impl IntoIterator<Item = Requirement>,
    ) -> Self {
        if self.nothing {
            return self;
        }
        self.requirements.extend(requirements);
        Selector::from_requirements(self.requirements)
    }

    /// Upstream `RequiresExactMatch`: if the selector pins `label` to one value (`=`, `==` or a
    /// one-value `in`), that value. Lets a cache answer from an index instead of scanning.
    pub fn requires_exact_match(&self, label: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == label)?;
        match (r.operator, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [only]) => Some(only),
            _ => None,
        }
    }
}

impl fmt::Display for Selector {
    /// The canonical string form: requirements joined by `,` (empty for everything and for
    /// nothing, as upstream).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Selector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

// ---- lexer and parser: a direct port of upstream's, kept structurally identical ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    Error,
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn string_to_token(s: &[u8]) -> Option<Token> {
    Some(match s {
        b")" => Token::ClosedPar,
        b"," => Token::Comma,
        b"!" => Token::DoesNotExist,
        b"==" => Token::DoubleEquals,
        b"=" => Token::Equals,
        b">" => Token::GreaterThan,
        b"in" => Token::In,
        b"<" => Token::LessThan,
        b"!=" => Token::NotEquals,
        b"notin" => Token::NotIn,
        b"(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(ch: u8) -> bool {
    matches!(ch, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special_symbol(ch: u8) -> bool {
    matches!(ch, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    /// Returns the current byte and advances; 0 at the end (as upstream, so a NUL byte also
    /// reads as "end").
    fn read(&mut self) -> u8 {
        match self.s.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => 0,
        }
    }

    fn unread(&mut self) {
        self.pos = self.pos.saturating_sub(1);
    }

    fn scan_id_or_keyword(&mut self) -> (Token, String) {
        let mut buffer = Vec::new();
        loop {
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if is_special_symbol(ch) || is_whitespace(ch) {
                self.unread();
                break;
            }
            buffer.push(ch);
        }
        match string_to_token(&buffer) {
            Some(tok) => (tok, lossy(&buffer)),
            None => (Token::Identifier, lossy(&buffer)),
        }
    }

    fn scan_special_symbol(&mut self) -> (Token, String) {
        let mut last: Option<(Token, String)> = None;
        let mut buffer = Vec::new();
        loop {
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if is_special_symbol(ch) {
                buffer.push(ch);
                if let Some(tok) = string_to_token(&buffer) {
                    last = Some((tok, lossy(&buffer)));
                } else if last.is_some() {
                    self.unread();
                    break;
                }
            } else {
                self.unread();
                break;
            }
        }
        match last {
            Some(item) => item,
            None => (
                Token::Error,
                format!("error expected: keyword found '{}'", lossy(&buffer)),
            ),
        }
    }

    fn skip_white_spaces(&mut self, mut ch: u8) -> u8 {
        while is_whitespace(ch) {
            ch = self.read();
        }
        ch
    }

    fn lex(&mut self) -> (Token, String) {
        let first = self.read();
        let ch = self.skip_white_spaces(first);
        if ch == 0 {
            (Token::EndOfString, String::new())
        } else if is_special_symbol(ch) {
            self.unread();
            self.scan_special_symbol()
        } else {
            self.unread();
            self.scan_id_or_keyword()
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser {
    items: Vec<(Token, String)>,
    position: usize,
    path: Path,
}

impl Parser {
    fn new(selector: &str, path: Path) -> Self {
        let mut lexer = Lexer {
            s: selector.as_bytes(),
            pos: 0,
        };
        let mut items = Vec::new();
        loop {
            let (tok, lit) = lexer.lex();
            let end = tok == Token::EndOfString;
            items.push((tok, lit));
            if end {
                break;
            }
        }
        Parser {
            items,
            position: 0,
            path,
        }
    }

    fn item(&self, index: usize, ctx: Context) -> (Token, String) {
        let (tok, lit) = self
            .items
            .get(index)
            .cloned()
            .unwrap_or((Token::EndOfString, String::new()));
        // In a values context, `in` and `notin` are ordinary identifiers.
        let tok = match (ctx, tok) {
            (Context::Values, Token::In | Token::NotIn) => Token::Identifier,
            _ => tok,
        };
        (tok, lit)
    }

    fn lookahead(&self, ctx: Context) -> (Token, String) {
        self.item(self.position, ctx)
    }

    fn consume(&mut self, ctx: Context) -> (Token, String) {
        self.position += 1;
        self.item(self.position - 1, ctx)
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut requirements = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Context::Values);
            match tok {
                Token::Identifier | Token::DoesNotExist => {
                    let r = self.parse_requirement().map_err(|e| {
                        SelectorError(format!("unable to parse requirement: {}", e.0))
                    })?;
                    requirements.push(r);
                    let (t, l) = self.consume(Context::Values);
                    match t {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let (t2, l2) = self.lookahead(Context::Values);
                            if t2 != Token::Identifier && t2 != Token::DoesNotExist {
                                return Err(SelectorError(format!(
                                    "found '{l2}', expected: identifier after ','"
                                )));
                            }
                        }
                        _ => {
                            return Err(SelectorError(format!(
                                "found '{l}', expected: ',' or 'end of string'"
                            )))
                        }
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => {
                    return Err(SelectorError(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    )))
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, SelectorError> {
        let (key, operator) = self.parse_key_and_infer_operator()?;
        if let Some(op @ (Operator::Exists | Operator::DoesNotExist)) = operator {
            return Requirement::new_at(&key, op, Some(Vec::new()), &self.path);
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        Requirement::new_at(
            &key,
            operator,
            Some(values.into_iter().collect()),
            &self.path,
        )
    }

    fn parse_key_and_infer_operator(
        &mut self,
    ) -> Result<(String, Option<Operator>), SelectorError> {
        let mut operator = None;
        let (mut tok, mut literal) = self.consume(Context::Values);
        if tok == Token::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            (tok, literal) = self.consume(Context::Values);
        }
        if tok != Token::Identifier {
            return Err(SelectorError(format!(
                "found '{literal}', expected: identifier"
            )));
        }
        if let Some(e) = validate_label_key(&literal, &self.path) {
            return Err(SelectorError(e.to_string()));
        }
        let (t, _) = self.lookahead(Context::Values);
        if (t == Token::EndOfString || t == Token::Comma) && operator.is_none() {
            operator = Some(Operator::Exists);
        }
        Ok((literal, operator))
    }

    fn parse_operator(&mut self) -> Result<Operator, SelectorError> {
        let (tok, lit) = self.consume(Context::KeyAndOperator);
        Ok(match tok {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => {
                return Err(SelectorError(format!(
                    "found '{lit}', expected: {BINARY_OPERATORS}"
                )))
            }
        })
    }

    fn parse_values(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        let (tok, lit) = self.consume(Context::Values);
        if tok != Token::OpenPar {
            return Err(SelectorError(format!("found '{lit}' expected: '('")));
        }
        let (tok, lit) = self.lookahead(Context::Values);
        match tok {
            Token::Identifier | Token::Comma => {
                let s = self.parse_identifiers_list()?;
                let (tok, _) = self.consume(Context::Values);
                if tok != Token::ClosedPar {
                    return Err(SelectorError(format!("found '{lit}', expected: ')'")));
                }
                Ok(s)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(BTreeSet::from([String::new()]))
            }
            _ => Err(SelectorError(format!(
                "found '{lit}', expected: ',', ')' or identifier"
            ))),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        let mut s = BTreeSet::new();
        loop {
            let (tok, lit) = self.consume(Context::Values);
            match tok {
                Token::Identifier => {
                    s.insert(lit);
                    let (tok2, lit2) = self.lookahead(Context::Values);
                    match tok2 {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(s),
                        _ => {
                            return Err(SelectorError(format!(
                                "found '{lit2}', expected: ',' or ')'"
                            )))
                        }
                    }
                }
                Token::Comma => {
                    if s.is_empty() {
                        s.insert(String::new()); // "(,"
                    }
                    let (tok2, _) = self.lookahead(Context::Values);
                    if tok2 == Token::ClosedPar {
                        s.insert(String::new()); // ",)"
                        return Ok(s);
                    }
                    if tok2 == Token::Comma {
                        s.insert(String::new()); // ",,"
                    }
                }
                _ => {
                    return Err(SelectorError(format!(
                        "found '{lit}', expected: ',', or identifier"
                    )))
                }
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        let (tok, _) = self.lookahead(Context::Values);
        if tok == Token::EndOfString || tok == Token::Comma {
            return Ok(BTreeSet::from([String::new()]));
        }
        let (tok, lit) = self.consume(Context::Values);
        if tok == Token::Identifier {
            return Ok(BTreeSet::from([lit]));
        }
        Err(SelectorError(format!(
            "found '{lit}', expected: identifier"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn parse(s: &str) -> Result<Selector, SelectorError> {
        Selector::parse(s)
    }

    fn err(s: &str) -> String {
        match parse(s) {
            Ok(sel) => panic!("{s:?} parsed as {sel}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn accepts_upstream_good_selectors() {
        // From upstream's TestSelectorParse.
        for s in [
            "",
            "x=a",
            "x=a,y=b,z=c",
            "x = a",
            "x=a,y!=b",
            "x=a,y!=b,z in (h,i,j)",
            "x in (x,y)",
            "x in (x ,  y)",
            "x notin ()",
            "x in (,y)",
            "x in (y,)",
            "x in (,)",
            "x in ()",
            "!x",
            "!x,y",
            "x",
            "x,!y",
            "x>1",
            "x>1,z<5",
            "x in (in)",
            "x notin (notin)",
            "x in (in,notin)",
            "in=notin",
            " x = a ",
            "x=",
            "x==a",
            "x=a,x=b",
        ] {
            assert!(parse(s).is_ok(), "{s:?}: {:?}", parse(s));
        }
    }

    #[test]
    fn rejects_upstream_bad_selectors() {
        for s in [
            "x=a||y=b",
            "x==a==b",
            "!x=a",
            "x<a",
            "x in",
            "x in ((",
            "x in (a",
            "x in (a,",
            "x notin (a",
            "x=a,",
            ",x=a",
            "x!y",
            "x=-a",
            "-x",
            "x>a",
            "x in (-a)",
        ] {
            let ok = parse(s);
            assert!(ok.is_err(), "{s:?} unexpectedly parsed as {:?}", ok);
        }
    }

    #[test]
    fn error_messages_match_upstream() {
        // Upstream's own text has no comma here.
        assert_eq!(
            err("x in"),
            "unable to parse requirement: found '' expected: '('"
        );
        assert_eq!(
            err("x in ("),
            "unable to parse requirement: found '', expected: ',', ')' or identifier"
        );
        assert_eq!(
            err("x in (a"),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        assert_eq!(
            err("x in (a,"),
            "unable to parse requirement: found '', expected: ',', or identifier"
        );
        assert_eq!(err("x=a,"), "found '', expected: identifier after ','");
        assert_eq!(
            err(",x"),
            "found ',', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(err("x=a y"), "found 'y', expected: ',' or 'end of string'");
        assert_eq!(
            err("x y"),
            "unable to parse requirement: found 'y', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            err("!"),
            "unable to parse requirement: found '', expected: identifier"
        );
        assert_eq!(
            err("x=("),
            "unable to parse requirement: found '(', expected: identifier"
        );
        // An invalid key is reported against upstream's nil path.
        assert_eq!(
            err("-x"),
            "unable to parse requirement: <nil>: Invalid value: \"-x\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        );
        assert_eq!(
            err("x=-a"),
            "unable to parse requirement: values[0][x]: Invalid value: \"-a\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
        assert_eq!(
            err("x>a"),
            "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
        assert!(err("x>-1").starts_with(
            "unable to parse requirement: values[0][x]: Invalid value: \"-1\": a valid label"
        ));
    }

    #[test]
    fn canonical_string_form() {
        // Upstream's TestSelectorParse expectations (input -> String()).
        for (input, out) in [
            ("", ""),
            ("x=a,y=b,z=c", "x=a,y=b,z=c"),
            ("x = a", "x=a"),
            ("x=a,y!=b", "x=a,y!=b"),
            ("x=a,y!=b,z in (h,i,j)", "x=a,y!=b,z in (h,i,j)"),
            ("x in (y,x)", "x in (x,y)"),
            ("x in (x,x,y)", "x in (x,y)"),
            ("x notin ()", "x notin ()"),
            ("x in (,y)", "x in (,y)"),
            ("x in (y,)", "x in (,y)"),
            ("x in (,)", "x in ()"),
            ("!x", "!x"),
            ("!x,y", "!x,y"),
            ("y,!x", "!x,y"),
            ("z,y,x", "x,y,z"),
            ("x>1", "x>1"),
            ("x>1,z<5", "x>1,z<5"),
            ("x==a", "x==a"),
            ("x=", "x="),
            ("b=1,a=2,b=0", "a=2,b=1,b=0"),
        ] {
            assert_eq!(
                parse(input).map(|s| s.to_string()),
                Ok(out.to_owned()),
                "{input:?}"
            );
        }
    }

    #[test]
    fn matching() {
        let labels = set(&[("foo", "bar"), ("baz", "blah"), ("n", "5")]);
        let cases = [
            ("", true),
            ("foo=bar", true),
            ("foo==bar", true),
            ("foo=baz", false),
            ("foo!=baz", true),
            ("foo!=bar", false),
            ("missing!=x", true),
            ("foo in (bar,x)", true),
            ("foo in (x)", false),
            ("foo notin (x)", true),
            ("foo notin (bar)", false),
            ("missing notin (bar)", true),
            ("missing in (bar)", false),
            ("foo", true),
            ("missing", false),
            ("!missing", true),
            ("!foo", false),
            ("n>4", true),
            ("n>5", false),
            ("n<6", true),
            ("n<5", false),
            ("foo>1", false),
            ("missing>1", false),
            ("foo=bar,baz=blah", true),
            ("foo=bar,baz=x", false),
        ];
        for (sel, want) in cases {
            let s = parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&labels), want, "{sel}");
        }
        let mut hm = HashMap::new();
        hm.insert("a".to_owned(), "b".to_owned());
        assert!(parse("a=b").map(|s| s.matches(&hm)).unwrap_or(false));
        assert!(!Selector::nothing().matches(&labels));
        assert!(Selector::everything().matches(&labels));
        assert!(Selector::everything().is_empty());
        assert!(!Selector::nothing().is_empty());
        assert_eq!(Selector::nothing().to_string(), "");
    }

    #[test]
    fn lexer_edge_cases() {
        // Upstream's lexer reads 0 as "end": a NUL where a token starts ends the input, while a
        // NUL inside an identifier only ends that identifier.
        assert_eq!(
            parse("a=b \u{0}garbage").map(|s| s.to_string()),
            Ok("a=b".into())
        );
        assert_eq!(
            err("a=b\u{0}garbage"),
            "found 'garbage', expected: ',' or 'end of string'"
        );
        // Tabs and newlines are whitespace.
        assert_eq!(parse("a\t=\nb").map(|s| s.to_string()), Ok("a=b".into()));
        // `!=` binds before `!`.
        assert_eq!(
            parse("a!=b").map(|s| s.requirements()[0].operator()),
            Ok(Operator::NotEquals)
        );
        // Keywords are identifiers in key and value position.
        let s = parse("in in (notin)").unwrap_or_default();
        assert_eq!(s.requirements()[0].key(), "in");
        assert_eq!(s.requirements()[0].values(), ["notin".to_owned()]);
    }

    #[test]
    fn requirement_constructor_errors() {
        let e = Requirement::new("x", Operator::In, vec![])
            .err()
            .map(|e| e.0);
        assert_eq!(
            e.as_deref(),
            Some(
                "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"
            )
        );
        let e = Requirement::new("x", Operator::Equals, vec!["a".into(), "b".into()]).err();
        assert_eq!(
            e.map(|e| e.0).as_deref(),
            Some(
                r#"values: Invalid value: ["a","b"]: exact-match compatibility requires one single value"#
            )
        );
        let e = Requirement::new("x", Operator::Exists, vec!["a".into()]).err();
        assert_eq!(
            e.map(|e| e.0).as_deref(),
            Some(
                r#"values: Invalid value: ["a"]: values set must be empty for exists and does not exist"#
            )
        );
        let e = Requirement::new("x", Operator::GreaterThan, vec!["1".into(), "2".into()]).err();
        assert_eq!(
            e.map(|e| e.0).as_deref(),
            Some(
                r#"values: Invalid value: ["1","2"]: for 'Gt', 'Lt' operators, exactly one value is required"#
            )
        );
        let e = Requirement::new("-k", Operator::Equals, vec!["-v".into()])
            .err()
            .map(|e| e.0);
        let msg = e.unwrap_or_default();
        assert!(
            msg.starts_with("[key: Invalid value: \"-k\": name part must consist"),
            "{msg}"
        );
        assert!(
            msg.contains(", values[0][-k]: Invalid value: \"-v\": a valid label"),
            "{msg}"
        );
    }

    #[test]
    fn from_label_selector() {
        assert_eq!(Selector::from_label_selector(None), Ok(Selector::nothing()));
        assert_eq!(
            Selector::from_label_selector(Some(&LabelSelector::default())),
            Ok(Selector::everything())
        );
        let ls = LabelSelector {
            match_labels: Some(set(&[("app", "web"), ("tier", "fe")])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "env".into(),
                    operator: "In".into(),
                    values: Some(vec!["prod".into(), "dev".into()]),
                },
                LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
                LabelSelectorRequirement {
                    key: "zone".into(),
                    operator: "Exists".into(),
                    values: Some(vec![]),
                },
                LabelSelectorRequirement {
                    key: "x".into(),
                    operator: "NotIn".into(),
                    values: Some(vec!["a".into()]),
                },
            ]),
        };
        let sel = Selector::from_label_selector(Some(&ls)).unwrap_or_default();
        assert_eq!(
            sel.to_string(),
            "app=web,!canary,env in (dev,prod),tier=fe,x notin (a),zone"
        );
        assert!(sel.matches(&set(&[
            ("app", "web"),
            ("tier", "fe"),
            ("env", "dev"),
            ("zone", "z")
        ])));
        assert!(!sel.matches(&set(&[("app", "web"), ("tier", "fe"), ("env", "dev")])));
        assert_eq!(sel.requires_exact_match("app"), Some("web"));
        assert_eq!(sel.requires_exact_match("env"), None);

        let bad_op = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "k".into(),
                operator: "Matches".into(),
                values: None,
            }]),
            ..LabelSelector::default()
        };
        assert_eq!(
            Selector::from_label_selector(Some(&bad_op)).map_err(|e| e.0),
            Err(r#""Matches" is not a valid pod selector operator"#.to_owned())
        );
        let empty_in = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "k".into(),
                operator: "In".into(),
                values: Some(vec![]),
            }]),
            ..LabelSelector::default()
        };
        assert_eq!(
            Selector::from_label_selector(Some(&empty_in)).map_err(|e| e.0),
            Err("values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty".to_owned())
        );
        let bad_label = LabelSelector {
            match_labels: Some(set(&[("app", "-web")])),
            ..LabelSelector::default()
        };
        let e = Selector::from_label_selector(Some(&bad_label)).map_err(|e| e.0);
        assert!(e
            .err()
            .unwrap_or_default()
            .starts_with("values[0][app]: Invalid value: \"-web\""));
        assert_eq!(SelectorError("x".into()).to_api_error().code, 400);
    }

    #[test]
    fn from_set_and_add() {
        let s = Selector::from_set(&set(&[("b", "2"), ("a", "1")]));
        assert_eq!(s.to_string(), "a=1,b=2");
        let r = Requirement::new("0", Operator::Exists, vec![]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.with_requirements([r]).to_string(), "0,a=1,b=2");
        assert_eq!(
            "x in (b,a)".parse::<Selector>().map(|s| s.to_string()),
            Ok("x in (a,b)".into())
        );
    }
}
