//! File writes that never leave a half-written credential behind.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{PkiError, Result};

/// Mode for private keys, tokens and kubeconfigs: they are credentials.
pub(crate) const SECRET_MODE: u32 = 0o600;
/// Mode for certificates: public, and agents or tools may need to read them.
pub(crate) const PUBLIC_MODE: u32 = 0o644;

/// Creates `dir` (and its parents) if missing. A directory this function creates gets mode
/// 0700 because it holds private keys; an existing one is left as the operator made it.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| PkiError::io("creating directory", dir, e))
}

/// Replaces `path` with `data` so that readers see either the old file or the whole new one,
/// even across a crash: write a temporary file in the same directory with the final mode
/// already set (a secret is never readable by others, not even briefly), fsync it, rename it
/// over the target, then fsync the directory so the rename itself is durable.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);

    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_owned());
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));

    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| PkiError::io("creating", &tmp, e))?;
        // The umask may have narrowed the mode given to open(2); set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| PkiError::io("setting permissions of", &tmp, e))?;
        file.write_all(data)
            .map_err(|e| PkiError::io("writing", &tmp, e))?;
        file.sync_all()
            .map_err(|e| PkiError::io("syncing", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| PkiError::io("renaming into place", path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    // Some filesystems refuse to fsync a directory; the data itself is already safe then.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads a file, telling "absent" (`Ok(None)`) apart from real errors.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PkiError::io("reading", path, e)),
    }
}

/// Lowercase hex, for digests and tokens.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// `n` bytes from the operating system's CSPRNG (through aws-lc, the one crypto provider).
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| PkiError::Random)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_sets_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        write_atomic(&p, b"one", SECRET_MODE).unwrap();
        write_atomic(&p, b"two", SECRET_MODE).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "two");
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
    }
}
