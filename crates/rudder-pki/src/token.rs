//! The admin bearer token, kept in a static token file that the API server's token
//! authenticator reads (upstream's `--token-auth-file` CSV format:
//! `token,user,uid,"group1,group2"`).

use std::path::Path;

use crate::error::Result;
use crate::fsutil::{hex, random_bytes, read_optional, write_atomic, SECRET_MODE};

/// The user the generated admin token authenticates as, as in k3s and kubeadm.
pub const ADMIN_USER: &str = "system:admin";
/// The group upstream's authorizer lets do anything, with no RBAC binding needed.
pub const ADMIN_GROUP: &str = "system:masters";
/// The uid recorded for the admin user in the token file.
pub const ADMIN_UID: &str = "admin";

/// Returns the admin token from `path`, adding a fresh one (32 random bytes, hex) if the file
/// or the admin's line is missing. Other lines are kept as they are: the operator may add
/// users to the same file.
pub(crate) fn load_or_create_admin_token(path: &Path) -> Result<String> {
    let existing = read_optional(path)?;
    if let Some(content) = &existing {
        warn_if_readable_by_others(path);
        if let Some(token) = find_admin_token(content) {
            return Ok(token);
        }
    }
    let token = hex(&random_bytes::<32>()?);
    let mut content = existing.unwrap_or_default();
    if !content.is_empty() && !content.ends_with('\n') {
        content.push('\n');
    }
    content.push_str(&format!(
        "{token},{ADMIN_USER},{ADMIN_UID},\"{ADMIN_GROUP}\"\n"
    ));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::fsutil::ensure_private_dir(parent)?;
    }
    write_atomic(path, content.as_bytes(), SECRET_MODE)?;
    tracing::info!(path = %path.display(), "wrote a new admin token");
    Ok(token)
}

/// The token of the first line whose user is [`ADMIN_USER`]. This reads only the first two
/// fields with simple CSV quoting; the full format is parsed by rudder-auth's token file
/// authenticator, which is what actually authenticates requests.
fn find_admin_token(content: &str) -> Option<String> {
    content.lines().find_map(|line| {
        let mut fields = split_simple_csv(line.trim_end_matches('\r'));
        let token = fields.next()?;
        let user = fields.next()?;
        (user == ADMIN_USER && !token.is_empty()).then_some(token)
    })
}

fn split_simple_csv(line: &str) -> impl Iterator<Item = String> + '_ {
    let mut rest = Some(line);
    std::iter::from_fn(move || {
        let s = rest?;
        if let Some(quoted) = s.strip_prefix('"') {
            let mut field = String::new();
            let mut chars = quoted.char_indices().peekable();
            while let Some((i, c)) = chars.next() {
                if c == '"' {
                    if let Some((_, '"')) = chars.peek() {
                        field.push('"');
                        chars.next();
                        continue;
                    }
                    let after = &quoted[i + 1..];
                    rest = after.strip_prefix(',');
                    return Some(field);
                }
                field.push(c);
            }
            rest = None;
            Some(field)
        } else {
            match s.split_once(',') {
                Some((f, r)) => {
                    rest = Some(r);
                    Some(f.to_owned())
                }
                None => {
                    rest = None;
                    Some(s.to_owned())
                }
            }
        }
    })
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "token file is readable by other users; it should have mode 0600");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_admin_line_among_others() {
        let content = "abc,alice,1,\"dev\"\r\n\"t,ok\",\"system:admin\",admin,\"system:masters\"\n";
        assert_eq!(find_admin_token(content).as_deref(), Some("t,ok"));
        assert_eq!(find_admin_token("abc,alice,1\n"), None);
        assert_eq!(find_admin_token(",system:admin,1\n"), None);
    }

    #[test]
    fn creates_once_and_keeps_other_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.csv");
        std::fs::write(&path, "abc,alice,1").unwrap();
        let t1 = load_or_create_admin_token(&path).unwrap();
        assert_eq!(t1.len(), 64);
        assert!(t1.bytes().all(|b| b.is_ascii_hexdigit()));
        let t2 = load_or_create_admin_token(&path).unwrap();
        assert_eq!(t1, t2);
        let content = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            content,
            format!("abc,alice,1\n{t1},system:admin,admin,\"system:masters\"\n")
        );
    }
}
