//! Static bearer tokens from a CSV file, as kube-apiserver's `--token-auth-file`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aws_lc_rs::digest;

use crate::authn::{bearer_token, AuthError, AuthRequest, Authenticator, TokenAuthenticator};
use crate::csv::Reader;
use crate::user::UserInfo;

/// Why a token file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenFileError {
    #[error("reading token file {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A malformed line. `line` is the 1-based line where the record starts; the message
    /// carries Go's `encoding/csv` wording for syntax errors, so an operator sees the same
    /// complaint as from kube-apiserver.
    #[error("token file {}: line {line}: {message}", display_source(.path))]
    Parse {
        path: Option<PathBuf>,
        line: usize,
        message: String,
    },
}

fn display_source(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "<inline>".to_owned())
}

/// Authenticates `Authorization: Bearer <token>` against a static token file whose lines are
/// `token,user,uid[,"group1,group2,..."]` (more columns are ignored), parsed exactly like
/// upstream's `tokenfile.NewCSV`: CSV quoting, blank lines skipped, at least three columns,
/// lines with an empty token skipped with a warning, the last of duplicate tokens winning.
///
/// One deliberate difference: an empty group column gives no groups, where upstream's
/// `strings.Split("", ",")` yields a group named `""`, which nothing can bind to.
///
/// Tokens are kept only as SHA-256 digests and looked up by digest, so the lookup's timing
/// does not depend on how much of a guessed token matches a real one, and a heap dump does
/// not contain usable tokens.
pub struct TokenFileAuthenticator {
    tokens: HashMap<[u8; 32], UserInfo>,
}

impl std::fmt::Debug for TokenFileAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenFileAuthenticator")
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

impl TokenFileAuthenticator {
    pub fn from_file(path: &Path) -> Result<Self, TokenFileError> {
        let content = std::fs::read_to_string(path).map_err(|source| TokenFileError::Io {
            path: path.to_owned(),
            source,
        })?;
        let auth = Self::parse(&content, Some(path))?;
        tracing::info!(path = %path.display(), tokens = auth.len(), "loaded static token file");
        Ok(auth)
    }

    pub fn from_csv(content: &str) -> Result<Self, TokenFileError> {
        Self::parse(content, None)
    }

    /// How many distinct tokens are loaded.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    fn parse(content: &str, path: Option<&Path>) -> Result<Self, TokenFileError> {
        let err = |line, message: String| TokenFileError::Parse {
            path: path.map(Path::to_owned),
            line,
            message,
        };
        let source = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "<inline>".to_owned());
        let mut reader = Reader::new(content);
        let mut tokens = HashMap::new();
        let mut record_num = 0;
        while let Some(record) = reader
            .read_record()
            .map_err(|e| err(e.start_line, e.to_string()))?
        {
            let fields = record.fields;
            if fields.len() < 3 {
                return Err(err(
                    record.line,
                    format!(
                        "must have at least 3 columns (token, user name, user uid), found {}",
                        fields.len()
                    ),
                ));
            }
            record_num += 1;
            if fields[0].is_empty() {
                tracing::warn!(file = %source, record = record_num, line = record.line, "empty token in token file; record skipped");
                continue;
            }
            let user = UserInfo {
                name: fields[1].clone(),
                uid: fields[2].clone(),
                groups: fields
                    .get(3)
                    .map(|g| {
                        g.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
                extra: Default::default(),
            };
            if tokens.insert(token_digest(&fields[0]), user).is_some() {
                tracing::warn!(file = %source, record = record_num, line = record.line, "duplicate token in token file; the later record wins");
            }
        }
        Ok(TokenFileAuthenticator { tokens })
    }
}

fn token_digest(token: &str) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl TokenAuthenticator for TokenFileAuthenticator {
    fn authenticate_token(&self, token: &str) -> Result<Option<UserInfo>, AuthError> {
        Ok(self.tokens.get(&token_digest(token)).cloned())
    }
}

impl Authenticator for TokenFileAuthenticator {
    fn authenticate(&self, req: &AuthRequest<'_>) -> Result<Option<UserInfo>, AuthError> {
        let Some(token) = bearer_token(req.headers)? else {
            return Ok(None);
        };
        match self.authenticate_token(token)? {
            Some(user) => Ok(Some(user)),
            // A bearer token was sent and is not ours: upstream answers 401 rather than
            // falling back to anonymous, so a typo in a token is noticed.
            None => Err(AuthError::InvalidBearerToken),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::AUTHORIZATION;
    use http::{HeaderMap, HeaderValue};

    fn user(auth: &TokenFileAuthenticator, token: &str) -> Option<UserInfo> {
        auth.authenticate_token(token).unwrap()
    }

    fn u(name: &str, uid: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            uid: uid.into(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            extra: Default::default(),
        }
    }

    #[test]
    fn upstream_examples() {
        // The shapes upstream's tokenfile_test.go and docs use.
        let auth = TokenFileAuthenticator::from_csv(
            "token1,user1,uid1\n\
             token2,user2,uid2\n\
             token3,user3,uid3,\"group1,group2\"\n\
             token4,user4,uid4,\"group2\"\n\
             token5,user5,uid5,group5\n\
             token6,user6,uid6,group5,otherdata\n\
             token7,user7,uid7,\"group1,group2\",otherdata\n",
        )
        .unwrap();
        assert_eq!(auth.len(), 7);
        assert_eq!(user(&auth, "token1"), Some(u("user1", "uid1", &[])));
        assert_eq!(
            user(&auth, "token3"),
            Some(u("user3", "uid3", &["group1", "group2"]))
        );
        assert_eq!(user(&auth, "token4"), Some(u("user4", "uid4", &["group2"])));
        assert_eq!(user(&auth, "token5"), Some(u("user5", "uid5", &["group5"])));
        assert_eq!(user(&auth, "token6"), Some(u("user6", "uid6", &["group5"])));
        assert_eq!(
            user(&auth, "token7"),
            Some(u("user7", "uid7", &["group1", "group2"]))
        );
        assert_eq!(user(&auth, "token8"), None);
        assert_eq!(user(&auth, ""), None);
    }

    #[test]
    fn quoting_blank_lines_crlf_and_spaces() {
        let auth = TokenFileAuthenticator::from_csv(
            "\r\n\"tok,with,commas\",\"alice \"\"al\"\"\",\"\",\"a, b\"\r\n\n\
             plain,bob,1,\n",
        )
        .unwrap();
        // Spaces inside fields are kept, as upstream (no trimming).
        assert_eq!(
            user(&auth, "tok,with,commas"),
            Some(u("alice \"al\"", "", &["a", " b"]))
        );
        // A trailing comma gives an empty group column: no groups.
        assert_eq!(user(&auth, "plain"), Some(u("bob", "1", &[])));
    }

    #[test]
    fn empty_tokens_are_skipped_and_duplicates_take_the_last() {
        let auth = TokenFileAuthenticator::from_csv(
            ",nobody,0\n\
             dup,first,1\n\
             dup,second,2\n",
        )
        .unwrap();
        assert_eq!(auth.len(), 1);
        assert_eq!(user(&auth, "dup"), Some(u("second", "2", &[])));
        assert_eq!(user(&auth, ""), None);
    }

    #[test]
    fn malformed_lines_are_reported_with_line_numbers() {
        let cases = [
            ("a,b,c\n\nshort,line\n", "token file <inline>: line 3: must have at least 3 columns (token, user name, user uid), found 2"),
            ("onlytoken\n", "token file <inline>: line 1: must have at least 3 columns (token, user name, user uid), found 1"),
            ("   \n", "token file <inline>: line 1: must have at least 3 columns (token, user name, user uid), found 1"),
            ("a,b,c\nt,u\"x,1\n", "token file <inline>: line 2: parse error on line 2, column 4: bare \" in non-quoted-field"),
            ("t,u,1,\"g1,g2\n", "token file <inline>: line 1: parse error on line 1, column 14: extraneous or missing \" in quoted-field"),
        ];
        for (input, want) in cases {
            let err = TokenFileAuthenticator::from_csv(input).unwrap_err();
            assert_eq!(err.to_string(), want, "{input:?}");
            assert!(matches!(err, TokenFileError::Parse { .. }));
        }
    }

    #[test]
    fn from_file_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.csv");
        std::fs::write(&path, "abc,admin,admin,\"system:masters\"\n").unwrap();
        let auth = TokenFileAuthenticator::from_file(&path).unwrap();
        assert_eq!(
            user(&auth, "abc"),
            Some(u("admin", "admin", &["system:masters"]))
        );
        std::fs::write(&path, "abc\n").unwrap();
        let err = TokenFileAuthenticator::from_file(&path).unwrap_err();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert!(err.to_string().contains("line 1"), "{err}");
        let err = TokenFileAuthenticator::from_file(&dir.path().join("absent")).unwrap_err();
        assert!(matches!(err, TokenFileError::Io { .. }), "{err}");
    }

    #[test]
    fn bearer_header_drives_the_authenticator() {
        let auth = TokenFileAuthenticator::from_csv("s3cret,alice,1,\"dev\"\n").unwrap();
        let check = |value: Option<&str>| {
            let mut h = HeaderMap::new();
            if let Some(v) = value {
                h.insert(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            }
            auth.authenticate(&AuthRequest::new(&h))
        };
        assert_eq!(
            check(Some("Bearer s3cret")),
            Ok(Some(u("alice", "1", &["dev"])))
        );
        assert_eq!(
            check(Some("bearer s3cret")),
            Ok(Some(u("alice", "1", &["dev"])))
        );
        assert_eq!(
            check(Some("Bearer wrong")),
            Err(AuthError::InvalidBearerToken)
        );
        assert_eq!(
            check(Some("Bearer S3CRET")),
            Err(AuthError::InvalidBearerToken)
        );
        assert_eq!(check(Some("Basic czNjcmV0")), Ok(None));
        assert_eq!(check(Some("Bearer ")), Ok(None));
        assert_eq!(check(None), Ok(None));
    }

    #[test]
    fn debug_does_not_print_tokens() {
        let auth = TokenFileAuthenticator::from_csv("s3cret,alice,1\n").unwrap();
        assert!(!format!("{auth:?}").contains("s3cret"));
    }
}
