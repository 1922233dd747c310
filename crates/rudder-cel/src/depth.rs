//! A bound on how deeply an expression nests, found before parsing it.
//!
//! The parser and the interpreter recurse once per level of the expression tree, and a level
//! costs tens of kilobytes of stack in a debug build, so `((((…))))` or `1+1+…+1` thousands deep
//! would overflow any thread's stack. cel-go refuses parse trees deeper than 250
//! (`maxRecursionDepth`); cel-rust's own check comes too late (while walking a tree that is
//! already deep). This pass over the characters bounds the depth from above without parsing:
//! brackets open a segment, every operator character (`.`, `[`, `(`, `{`, arithmetic,
//! comparison, `!`, `?`) counts one in the segment it is in, and the bound is the largest sum
//! of counts from the root to any segment. `&&` and `||` are not counted: the parser balances
//! their chains.

/// The deepest expression accepted (cel-go's default maximum recursion depth).
pub const MAX_DEPTH: usize = 250;

/// An upper bound on the depth of the tree `expr` parses to.
pub(crate) fn bound(expr: &str) -> usize {
    // counts[i] = operators directly in segment i; parents[i] = enclosing segment.
    let mut counts: Vec<usize> = vec![0];
    let mut parents: Vec<usize> = vec![0];
    let mut open: Vec<usize> = vec![0];
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let current = *open.last().unwrap_or(&0);
        match c {
            b'\'' | b'"' => {
                let raw = i > 0 && matches!(bytes[i - 1], b'r' | b'R')
                    || i > 1
                        && matches!(bytes[i - 1], b'b' | b'B')
                        && matches!(bytes[i - 2], b'r' | b'R');
                i = skip_string(bytes, i, raw);
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'(' | b'[' | b'{' => {
                counts[current] += 1;
                counts.push(0);
                parents.push(current);
                open.push(counts.len() - 1);
            }
            // An unbalanced closer is the parser's to report.
            b')' | b']' | b'}' if open.len() > 1 => {
                open.pop();
            }
            b'.' | b'+' | b'-' | b'*' | b'/' | b'%' | b'<' | b'>' | b'=' | b'!' | b'?' => {
                counts[current] += 1;
            }
            _ => {}
        }
        i += 1;
    }
    // Parents are created before their children, so one pass in order sums every path.
    let mut path = vec![0usize; counts.len()];
    for seg in 0..counts.len() {
        let above = if seg == 0 { 0 } else { path[parents[seg]] };
        path[seg] = above + counts[seg];
    }
    path.into_iter().max().unwrap_or(0)
}

/// The index just past the string literal starting at `start` (its opening quote).
fn skip_string(bytes: &[u8], start: usize, raw: bool) -> usize {
    let quote = bytes[start];
    let triple = bytes.get(start + 1) == Some(&quote) && bytes.get(start + 2) == Some(&quote);
    let mut i = start + if triple { 3 } else { 1 };
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\\' && !raw {
            i += 2;
            continue;
        }
        if c == quote {
            if !triple {
                return i + 1;
            }
            if bytes.get(i + 1) == Some(&quote) && bytes.get(i + 2) == Some(&quote) {
                return i + 3;
            }
        }
        i += 1;
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::bound;

    #[test]
    fn bounds_nesting_and_chains() {
        assert_eq!(bound("1"), 0);
        assert_eq!(bound("self.a == 1 && self.b == 2"), 6);
        assert_eq!(bound(&("(".repeat(10) + "1" + &")".repeat(10))), 10);
        assert_eq!(bound(&("1".to_string() + &"+1".repeat(300))), 300);
        // Operators inside strings and comments do not count.
        assert_eq!(
            bound("'((((+.' + \"a.b\" + '''x'\"y''' + r'\\' // (((\n"),
            3
        );
        // An over-estimate: the operators of sibling arguments add up.
        assert_eq!(bound("f(a.b, c.d)"), 3);
        assert_eq!(bound("[[1+1], [1+1]]"), 4);
    }
}
