//! Service-account signing and verification keys: loaded from PEM as upstream's `keyutil` reads
//! `--service-account-signing-key-file` and `--service-account-key-file`, identified by
//! upstream's key id (`keyIDFromPublicKey`: unpadded base64url of the SHA-256 of the PKIX public
//! key), and published as JWKs in go-jose's field order.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use rustls_pki_types::pem::{PemObject, SectionKind};
use serde::Serialize;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey as ParsedKey;
use x509_parser::x509::SubjectPublicKeyInfo;

/// Why a key could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("data does not contain any valid RSA or ECDSA private key")]
    NoPrivateKey,
    #[error("data does not contain any valid RSA or ECDSA public keys")]
    NoPublicKey,
    #[error("invalid PEM: {0}")]
    Pem(String),
    #[error("unsupported key: {0}")]
    Unsupported(String),
    #[error("signing failed: {0}")]
    Signing(String),
}

/// A public key that verifies service-account tokens.
#[derive(Clone)]
pub struct PublicKey {
    pub key_id: String,
    pub alg: Algorithm,
    pub(crate) decoding: DecodingKey,
    jwk: Jwk,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("key_id", &self.key_id)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// A JWK as go-jose marshals a public key (`rawJSONWebKey` field order, empty fields omitted).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Jwk {
    #[serde(rename = "use")]
    pub use_: &'static str,
    pub kty: &'static str,
    pub kid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<&'static str>,
    pub alg: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

impl PublicKey {
    /// From a DER `SubjectPublicKeyInfo` (RSA, or ECDSA on P-256/P-384).
    pub fn from_spki(spki_der: &[u8]) -> Result<PublicKey, KeyError> {
        let (_, spki) = SubjectPublicKeyInfo::from_der(spki_der)
            .map_err(|e| KeyError::Unsupported(e.to_string()))?;
        let key_id = key_id(spki_der);
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        match spki.parsed() {
            Ok(ParsedKey::RSA(rsa)) => {
                let n = strip_zeros(rsa.modulus);
                let e = strip_zeros(rsa.exponent);
                Ok(PublicKey {
                    alg: Algorithm::RS256,
                    decoding: DecodingKey::from_rsa_raw_components(n, e),
                    jwk: Jwk {
                        use_: "sig",
                        kty: "RSA",
                        kid: key_id.clone(),
                        crv: None,
                        alg: "RS256",
                        x: None,
                        y: None,
                        n: Some(b64(n)),
                        e: Some(b64(e)),
                    },
                    key_id,
                })
            }
            Ok(ParsedKey::EC(point)) => {
                let data = point.data();
                let (alg, crv, name, size) = match data.len() {
                    65 => (Algorithm::ES256, "P-256", "ES256", 32),
                    97 => (Algorithm::ES384, "P-384", "ES384", 48),
                    n => {
                        return Err(KeyError::Unsupported(format!(
                            "ECDSA point of {n} bytes (P-256 and P-384 are supported)"
                        )))
                    }
                };
                if data[0] != 0x04 {
                    return Err(KeyError::Unsupported("compressed ECDSA point".into()));
                }
                Ok(PublicKey {
                    alg,
                    decoding: DecodingKey::from_ec_der(data),
                    jwk: Jwk {
                        use_: "sig",
                        kty: "EC",
                        kid: key_id.clone(),
                        crv: Some(crv),
                        alg: name,
                        x: Some(b64(&data[1..1 + size])),
                        y: Some(b64(&data[1 + size..])),
                        n: None,
                        e: None,
                    },
                    key_id,
                })
            }
            Ok(_) => Err(KeyError::Unsupported(
                "only RSA and ECDSA keys are supported".into(),
            )),
            Err(e) => Err(KeyError::Unsupported(e.to_string())),
        }
    }

    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }
}

/// The key that signs service-account tokens.
pub struct SigningKey {
    encoding: EncodingKey,
    public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The first private key in `pem`: RSA (PKCS#1 or PKCS#8, RS256) or ECDSA (SEC1 or PKCS#8;
    /// ES256 on P-256, ES384 on P-384), as upstream's `keyutil.ParsePrivateKeyPEM`.
    pub fn from_pem(pem: &[u8]) -> Result<SigningKey, KeyError> {
        for item in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(pem) {
            let (kind, der) = item.map_err(|e| KeyError::Pem(e.to_string()))?;
            match kind {
                SectionKind::RsaPrivateKey => {
                    let pair = aws_lc_rs::rsa::KeyPair::from_der(&der)
                        .map_err(|e| KeyError::Unsupported(e.to_string()))?;
                    return Self::rsa(&pair, EncodingKey::from_rsa_der(&der));
                }
                SectionKind::PrivateKey => {
                    if let Ok(pair) = aws_lc_rs::rsa::KeyPair::from_pkcs8(&der) {
                        // jsonwebtoken signs with the PKCS#1 form it extracts from a PKCS#8 PEM.
                        let pem = pem_encode("PRIVATE KEY", &der);
                        let enc = EncodingKey::from_rsa_pem(pem.as_bytes())
                            .map_err(|e| KeyError::Unsupported(e.to_string()))?;
                        return Self::rsa(&pair, enc);
                    }
                    return Self::ec(&der, EcdsaKeyPair::from_pkcs8);
                }
                SectionKind::EcPrivateKey => {
                    return Self::ec(&der, |alg, der| {
                        EcdsaKeyPair::from_private_key_der(alg, der)
                    });
                }
                _ => continue,
            }
        }
        Err(KeyError::NoPrivateKey)
    }

    fn rsa(pair: &aws_lc_rs::rsa::KeyPair, encoding: EncodingKey) -> Result<SigningKey, KeyError> {
        let spki = pair
            .public_key()
            .as_der()
            .map_err(|e| KeyError::Unsupported(e.to_string()))?;
        Ok(SigningKey {
            encoding,
            public: PublicKey::from_spki(spki.as_ref())?,
        })
    }

    fn ec(
        der: &[u8],
        parse: impl Fn(
            &'static aws_lc_rs::signature::EcdsaSigningAlgorithm,
            &[u8],
        ) -> Result<EcdsaKeyPair, aws_lc_rs::error::KeyRejected>,
    ) -> Result<SigningKey, KeyError> {
        for alg in [
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &ECDSA_P384_SHA384_FIXED_SIGNING,
        ] {
            let Ok(pair) = parse(alg, der) else { continue };
            let pkcs8 = pair
                .to_pkcs8v1()
                .map_err(|e| KeyError::Unsupported(e.to_string()))?;
            let spki = pair
                .public_key()
                .as_der()
                .map_err(|e| KeyError::Unsupported(e.to_string()))?;
            return Ok(SigningKey {
                encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
                public: PublicKey::from_spki(spki.as_ref())?,
            });
        }
        Err(KeyError::Unsupported(
            "ECDSA keys must be on P-256 or P-384".into(),
        ))
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// A compact JWS of `claims` with go-jose's header (`alg` and `kid`, no `typ`).
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, KeyError> {
        let mut header = jsonwebtoken::Header::new(self.public.alg);
        header.typ = None;
        header.kid = Some(self.public.key_id.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| KeyError::Signing(e.to_string()))
    }
}

/// Every public key in `pem`, as upstream's `keyutil.ParsePublicKeysPEM` reads
/// `--service-account-key-file`: public keys, the public half of private keys, and the keys of
/// certificates.
pub fn public_keys_from_pem(pem: &[u8]) -> Result<Vec<PublicKey>, KeyError> {
    let mut out = Vec::new();
    for item in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(pem) {
        let (kind, der) = item.map_err(|e| KeyError::Pem(e.to_string()))?;
        match kind {
            SectionKind::PublicKey => out.push(PublicKey::from_spki(&der)?),
            SectionKind::Certificate => {
                let (_, cert) = x509_parser::parse_x509_certificate(&der)
                    .map_err(|e| KeyError::Unsupported(e.to_string()))?;
                out.push(PublicKey::from_spki(cert.public_key().raw)?);
            }
            SectionKind::RsaPrivateKey | SectionKind::PrivateKey | SectionKind::EcPrivateKey => {
                let block = pem_encode(pem_label(kind), &der);
                out.push(SigningKey::from_pem(block.as_bytes())?.public);
            }
            _ => {}
        }
    }
    if out.is_empty() {
        return Err(KeyError::NoPublicKey);
    }
    Ok(out)
}

fn pem_label(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::RsaPrivateKey => "RSA PRIVATE KEY",
        SectionKind::EcPrivateKey => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    }
}

/// Upstream's `keyIDFromPublicKey`.
pub fn key_id(spki_der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki_der);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[start..]
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(label, der))
}
