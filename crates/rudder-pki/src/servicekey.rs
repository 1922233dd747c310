//! The service-account signing key (`service.key`, as k3s keeps it beside the CA): an RSA key
//! whose tokens are RS256, what upstream issues with the keys kubeadm and k3s generate. Created
//! once and kept, since every token ever issued (and every legacy token Secret) is signed by it.

use std::path::Path;

use rcgen::KeyPair;

use crate::error::{PkiError, Result};
use crate::fsutil::{read_optional, write_atomic, SECRET_MODE};

/// The signing key's file name in the TLS directory.
pub const SERVICE_KEY_FILE: &str = "service.key";

/// The PEM of the key at `path`, generating a 2048-bit RSA key (PKCS#8) if there is none.
pub(crate) fn load_or_create_service_key(path: &Path) -> Result<String> {
    if let Some(pem) = read_optional(path)? {
        // Any RSA or ECDSA key upstream accepts may be put here by hand; rcgen reads them all.
        KeyPair::from_pem(&pem).map_err(|e| PkiError::InvalidKey {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        return Ok(pem);
    }
    let key = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)?;
    let pem = key.serialize_pem();
    write_atomic(path, pem.as_bytes(), SECRET_MODE)?;
    tracing::info!(path = %path.display(), "created service-account signing key");
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SERVICE_KEY_FILE);
        let first = load_or_create_service_key(&path).unwrap();
        assert!(first.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(load_or_create_service_key(&path).unwrap(), first);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, "garbage").unwrap();
        assert!(load_or_create_service_key(&path).is_err());
    }
}
