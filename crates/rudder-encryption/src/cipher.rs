//! The ciphers, with upstream's on-disk layouts (so a data store moves between Rudder and
//! kube-apiserver): `aescbc` is a random 16-byte IV then AES-CBC with PKCS#7 padding;
//! `aesgcm` a random 12-byte nonce then AES-GCM with the storage key as additional
//! authenticated data (so a value cannot be moved to another key); `secretbox` a random
//! 24-byte nonce then NaCl's secretbox (tag first).

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};
use aws_lc_rs::cipher::{
    DecryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey, UnboundCipherKey,
    AES_128, AES_256,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CipherKind {
    AesCbc,
    AesGcm,
    Secretbox,
}

impl CipherKind {
    /// The provider's name in the stored prefix `k8s:enc:<name>:v1:<key>:`.
    pub fn name(self) -> &'static str {
        match self {
            CipherKind::AesCbc => "aescbc",
            CipherKind::AesGcm => "aesgcm",
            CipherKind::Secretbox => "secretbox",
        }
    }

    /// k3s's names in `secrets-encrypt status`.
    pub fn display(self) -> &'static str {
        match self {
            CipherKind::AesCbc => "AES-CBC",
            CipherKind::AesGcm => "AES-GCM",
            CipherKind::Secretbox => "SecretBox",
        }
    }
}

pub struct Cipher {
    kind: CipherKind,
    key: Vec<u8>,
}

fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut b = [0u8; N];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| "no randomness".to_string())?;
    Ok(b)
}

impl Cipher {
    pub fn new(kind: CipherKind, key: &[u8]) -> Result<Cipher, String> {
        let ok = match kind {
            CipherKind::AesCbc | CipherKind::AesGcm => matches!(key.len(), 16 | 32),
            CipherKind::Secretbox => key.len() == 32,
        };
        if !ok {
            return Err(format!(
                "a {} key must be {} bytes, this one is {}",
                kind.name(),
                if kind == CipherKind::Secretbox {
                    "32"
                } else {
                    "16 or 32"
                },
                key.len()
            ));
        }
        Ok(Cipher {
            kind,
            key: key.to_vec(),
        })
    }

    fn cbc_key(&self) -> Result<UnboundCipherKey, String> {
        let alg = if self.key.len() == 16 {
            &AES_128
        } else {
            &AES_256
        };
        UnboundCipherKey::new(alg, &self.key).map_err(|e| e.to_string())
    }

    fn gcm_key(&self) -> Result<LessSafeKey, String> {
        let alg = if self.key.len() == 16 {
            &AES_128_GCM
        } else {
            &AES_256_GCM
        };
        Ok(LessSafeKey::new(
            UnboundKey::new(alg, &self.key).map_err(|e| e.to_string())?,
        ))
    }

    pub fn seal(&self, data: &[u8], storage_key: &str) -> Result<Vec<u8>, String> {
        match self.kind {
            CipherKind::AesCbc => {
                let key = PaddedBlockEncryptingKey::cbc_pkcs7(self.cbc_key()?)
                    .map_err(|e| e.to_string())?;
                let mut buf = data.to_vec();
                let ctx = key.encrypt(&mut buf).map_err(|e| e.to_string())?;
                let DecryptionContext::Iv128(iv) = ctx else {
                    return Err("unexpected CBC context".into());
                };
                let mut out = iv.as_ref().to_vec();
                out.extend_from_slice(&buf);
                Ok(out)
            }
            CipherKind::AesGcm => {
                let nonce = random::<12>()?;
                let mut buf = data.to_vec();
                self.gcm_key()?
                    .seal_in_place_append_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(storage_key.as_bytes()),
                        &mut buf,
                    )
                    .map_err(|e| e.to_string())?;
                let mut out = nonce.to_vec();
                out.extend_from_slice(&buf);
                Ok(out)
            }
            CipherKind::Secretbox => {
                use crypto_secretbox::aead::{Aead, KeyInit};
                let nonce = random::<24>()?;
                let c = crypto_secretbox::XSalsa20Poly1305::new_from_slice(&self.key)
                    .map_err(|e| e.to_string())?;
                let sealed = c
                    .encrypt(crypto_secretbox::Nonce::from_slice(&nonce), data)
                    .map_err(|e| e.to_string())?;
                let mut out = nonce.to_vec();
                out.extend_from_slice(&sealed);
                Ok(out)
            }
        }
    }

    pub fn open(&self, data: &[u8], storage_key: &str) -> Result<Vec<u8>, String> {
        match self.kind {
            CipherKind::AesCbc => {
                if data.len() < 32 || !data.len().is_multiple_of(16) {
                    return Err("the stored data is not a whole number of AES blocks".into());
                }
                let (iv, ct) = data.split_at(16);
                let key = PaddedBlockDecryptingKey::cbc_pkcs7(self.cbc_key()?)
                    .map_err(|e| e.to_string())?;
                let mut buf = ct.to_vec();
                let iv: [u8; 16] = iv.try_into().map_err(|_| "bad IV".to_string())?;
                let plain = key
                    .decrypt(&mut buf, DecryptionContext::Iv128(iv.into()))
                    .map_err(|_| "decryption failed (wrong key?)".to_string())?;
                Ok(plain.to_vec())
            }
            CipherKind::AesGcm => {
                if data.len() < 12 + 16 {
                    return Err("the stored data is too short for AES-GCM".into());
                }
                let (nonce, ct) = data.split_at(12);
                let nonce: [u8; 12] = nonce.try_into().map_err(|_| "bad nonce".to_string())?;
                let mut buf = ct.to_vec();
                let plain = self
                    .gcm_key()?
                    .open_in_place(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(storage_key.as_bytes()),
                        &mut buf,
                    )
                    .map_err(|_| "decryption failed (wrong key, or moved from another key)")?;
                Ok(plain.to_vec())
            }
            CipherKind::Secretbox => {
                use crypto_secretbox::aead::{Aead, KeyInit};
                if data.len() < 24 + 16 {
                    return Err("the stored data is too short for secretbox".into());
                }
                let (nonce, ct) = data.split_at(24);
                let c = crypto_secretbox::XSalsa20Poly1305::new_from_slice(&self.key)
                    .map_err(|e| e.to_string())?;
                c.decrypt(crypto_secretbox::Nonce::from_slice(nonce), ct)
                    .map_err(|_| "decryption failed (wrong key?)".to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cipher_round_trips_and_refuses_a_wrong_key() {
        for kind in [
            CipherKind::AesCbc,
            CipherKind::AesGcm,
            CipherKind::Secretbox,
        ] {
            let c = Cipher::new(kind, &[7u8; 32]).unwrap();
            let other = Cipher::new(kind, &[8u8; 32]).unwrap();
            for data in [&b""[..], b"x", &[1u8; 16], &[2u8; 1000]] {
                let sealed = c.seal(data, "/registry/secrets/a/b").unwrap();
                assert_ne!(&sealed[..], data);
                assert_eq!(c.open(&sealed, "/registry/secrets/a/b").unwrap(), data);
                let wrong = other.open(&sealed, "/registry/secrets/a/b").ok();
                assert_ne!(wrong.as_deref(), Some(data), "{kind:?}");
            }
        }
        // AES-GCM binds the value to its key.
        let c = Cipher::new(CipherKind::AesGcm, &[7u8; 16]).unwrap();
        let sealed = c.seal(b"v", "/registry/secrets/a/b").unwrap();
        assert!(c.open(&sealed, "/registry/secrets/a/c").is_err());
        assert!(Cipher::new(CipherKind::Secretbox, &[0u8; 16]).is_err());
    }
}
