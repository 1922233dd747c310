//! A CSV reader that accepts and rejects exactly what Go's `encoding/csv` does with the
//! settings upstream's token file uses (comma separator, no comments, any number of fields
//! per record, strict quotes), and reports errors with the same line and column numbers. A
//! generic CSV crate differs in the corners (bare quotes, `\r\n`, quoted newlines, blank
//! lines), and a token file that works with kube-apiserver must work here unchanged.

use std::fmt;

/// A record and the line it starts on (1-based).
pub(crate) struct Record {
    pub line: usize,
    pub fields: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    BareQuote,
    Quote,
}

/// Go's `csv.ParseError`: lines and columns are 1-based, columns count bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ParseError {
    pub start_line: usize,
    pub line: usize,
    pub column: usize,
    pub kind: ErrorKind,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::BareQuote => "bare \" in non-quoted-field",
            ErrorKind::Quote => "extraneous or missing \" in quoted-field",
        };
        if self.start_line != self.line {
            write!(
                f,
                "record on line {}; parse error on line {}, column {}: {what}",
                self.start_line, self.line, self.column
            )
        } else {
            write!(
                f,
                "parse error on line {}, column {}: {what}",
                self.line, self.column
            )
        }
    }
}

pub(crate) struct Reader<'a> {
    rest: &'a str,
    num_line: usize,
}

impl<'a> Reader<'a> {
    pub fn new(input: &'a str) -> Self {
        Reader {
            rest: input,
            num_line: 0,
        }
    }

    /// The next line including its `\n`, with a trailing `\r\n` turned into `\n` and a `\r`
    /// at end of input dropped, as Go's `readLine`.
    fn read_line(&mut self) -> Option<String> {
        if self.rest.is_empty() {
            return None;
        }
        let (line, rest) = match self.rest.find('\n') {
            Some(i) => self.rest.split_at(i + 1),
            None => (self.rest, ""),
        };
        self.rest = rest;
        self.num_line += 1;
        let mut line = line.to_owned();
        if line.ends_with("\r\n") {
            line.truncate(line.len() - 2);
            line.push('\n');
        } else if !line.ends_with('\n') && line.ends_with('\r') {
            line.pop();
        }
        Some(line)
    }

    /// The next record, skipping empty lines; `Ok(None)` at end of input.
    pub fn read_record(&mut self) -> Result<Option<Record>, ParseError> {
        let mut line = loop {
            match self.read_line() {
                None => return Ok(None),
                Some(l) if l.is_empty() || l == "\n" => continue,
                Some(l) => break l,
            }
        };
        let start_line = self.num_line;
        let mut pos_line = self.num_line;
        let mut col = 1; // 1-based byte column of `off` within the current line
        let mut off = 0;
        let mut fields = Vec::new();

        'field: loop {
            if !line[off..].starts_with('"') {
                // Unquoted field: up to the next comma or the end of the line.
                let s = &line[off..];
                let (field, next) = match s.find(',') {
                    Some(i) => (&s[..i], Some(i)),
                    None => (s.strip_suffix('\n').unwrap_or(s), None),
                };
                if let Some(j) = field.find('"') {
                    return Err(ParseError {
                        start_line,
                        line: pos_line,
                        column: col + j,
                        kind: ErrorKind::BareQuote,
                    });
                }
                fields.push(field.to_owned());
                match next {
                    Some(i) => {
                        off += i + 1;
                        col += i + 1;
                        continue 'field;
                    }
                    None => break 'field,
                }
            }

            // Quoted field: may contain commas, `""` for a quote, and newlines.
            let mut field = String::new();
            off += 1;
            col += 1;
            loop {
                let s = &line[off..];
                if let Some(i) = s.find('"') {
                    field.push_str(&s[..i]);
                    off += i + 1;
                    col += i + 1;
                    let after = &line[off..];
                    if after.starts_with('"') {
                        field.push('"');
                        off += 1;
                        col += 1;
                    } else if after.starts_with(',') {
                        off += 1;
                        col += 1;
                        fields.push(field);
                        continue 'field;
                    } else if after.is_empty() || after == "\n" {
                        fields.push(field);
                        break 'field;
                    } else {
                        return Err(ParseError {
                            start_line,
                            line: pos_line,
                            column: col - 1,
                            kind: ErrorKind::Quote,
                        });
                    }
                } else if !s.is_empty() {
                    // The field goes on past the end of this line.
                    field.push_str(s);
                    col += s.len();
                    match self.read_line() {
                        Some(next) => {
                            line = next;
                            pos_line += 1;
                            col = 1;
                        }
                        None => line = String::new(),
                    }
                    off = 0;
                } else {
                    // End of input inside quotes.
                    return Err(ParseError {
                        start_line,
                        line: pos_line,
                        column: col,
                        kind: ErrorKind::Quote,
                    });
                }
            }
        }
        Ok(Some(Record {
            line: start_line,
            fields,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Records = Vec<(usize, Vec<String>)>;

    fn all(input: &str) -> Result<Records, String> {
        let mut r = Reader::new(input);
        let mut out = Vec::new();
        loop {
            match r.read_record() {
                Ok(Some(rec)) => out.push((rec.line, rec.fields)),
                Ok(None) => return Ok(out),
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    fn rec(line: usize, fields: &[&str]) -> (usize, Vec<String>) {
        (line, fields.iter().map(|s| s.to_string()).collect())
    }

    // Expected values worked through Go's encoding/csv `readRecord` (Go 1.17+, whose errors
    // carry 1-based lines and byte columns) with FieldsPerRecord = -1 and no other options.
    #[test]
    fn accepted_inputs() {
        let cases: Vec<(&str, Records)> = vec![
            ("a,b,c\n", vec![rec(1, &["a", "b", "c"])]),
            ("a,b,c", vec![rec(1, &["a", "b", "c"])]),
            (
                "a,b,c\r\nd,e\r\n",
                vec![rec(1, &["a", "b", "c"]), rec(2, &["d", "e"])],
            ),
            ("a,b\r", vec![rec(1, &["a", "b"])]),
            ("a\rb,c\n", vec![rec(1, &["a\rb", "c"])]),
            (
                "\n\na,b\n\n\nc\n",
                vec![rec(3, &["a", "b"]), rec(6, &["c"])],
            ),
            ("\r\n\r\na\r\n", vec![rec(3, &["a"])]),
            ("a,,c,\n", vec![rec(1, &["a", "", "c", ""])]),
            (",\n", vec![rec(1, &["", ""])]),
            (" a , b \n", vec![rec(1, &[" a ", " b "])]),
            (
                "\"a,b\",\"c\"\"d\",\"\"\n",
                vec![rec(1, &["a,b", "c\"d", ""])],
            ),
            (
                "\"multi\nline\",x\ny\n",
                vec![rec(1, &["multi\nline", "x"]), rec(3, &["y"])],
            ),
            ("\"crlf\r\ninside\"\n", vec![rec(1, &["crlf\ninside"])]),
            ("\"at eof\"", vec![rec(1, &["at eof"])]),
            ("a,\"b\"\n", vec![rec(1, &["a", "b"])]),
            ("", vec![]),
            ("\n", vec![]),
        ];
        for (input, want) in cases {
            assert_eq!(all(input).unwrap(), want, "{input:?}");
        }
    }

    #[test]
    fn rejected_inputs_report_go_positions() {
        let cases = [
            ("a\"b,c\n", "parse error on line 1, column 2: bare \" in non-quoted-field"),
            ("x,y\na,b\"c\n", "parse error on line 2, column 4: bare \" in non-quoted-field"),
            (" \"a\",b\n", "parse error on line 1, column 2: bare \" in non-quoted-field"),
            (
                "\"a\"b,c\n",
                "parse error on line 1, column 3: extraneous or missing \" in quoted-field",
            ),
            (
                "\"a\" ,c\n",
                "parse error on line 1, column 3: extraneous or missing \" in quoted-field",
            ),
            (
                "\"unterminated\n",
                "parse error on line 1, column 15: extraneous or missing \" in quoted-field",
            ),
            (
                "ok\n\"abc",
                "parse error on line 2, column 5: extraneous or missing \" in quoted-field",
            ),
            (
                "\"two\nlines\" x\n",
                "record on line 1; parse error on line 2, column 6: extraneous or missing \" in quoted-field",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(all(input).unwrap_err(), want, "{input:?}");
        }
    }
}
