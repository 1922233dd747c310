//! Client certificates with one `O` per group.
//!
//! Kubernetes reads a client certificate's groups from its subject's Organization attributes,
//! one attribute per group. rcgen 0.14's `DistinguishedName` holds a single value per attribute
//! type (rustls/rcgen#418), so it cannot express a user in two groups. This module writes the
//! TBSCertificate itself with a minimal DER encoder and signs it with the CA key through rcgen's
//! `SigningKey`. The layout is the standard one (v3, ECDSA P-256 subject key, digitalSignature
//! key usage, clientAuth extended key usage, CA:FALSE, authority key id); the tests check it
//! with webpki (a TLS handshake), x509-parser and, where installed, OpenSSL and kubectl.

use rcgen::{KeyPair, PublicKeyData, SigningKey};
use time::OffsetDateTime;

use crate::error::{PkiError, Result};
use crate::fsutil::random_bytes;

// Object identifier contents (the bytes after the 0x06 tag and length).
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const OID_ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];
pub(crate) const OID_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
pub(crate) const OID_BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
pub(crate) const OID_EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
const OID_AUTHORITY_KEY_ID: &[u8] = &[0x55, 0x1d, 0x23];
const OID_CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];
const OID_ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const OID_ECDSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const OID_RSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];

/// What the CA contributes to a certificate it signs.
pub(crate) struct CaSigner<'a> {
    pub key: &'a KeyPair,
    /// The CA certificate's subject, DER-encoded, copied verbatim into the issuer field:
    /// verifiers chain by byte-comparing the two names.
    pub subject_der: &'a [u8],
    /// The CA's subject key identifier, repeated as the authority key identifier so that
    /// verifiers that build chains by key id (OpenSSL, Go) find the CA quickly.
    pub key_id: Option<&'a [u8]>,
}

pub(crate) struct ClientCertRequest<'a> {
    pub user: &'a str,
    pub groups: &'a [&'a str],
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// Issues a client certificate for a fresh P-256 key; returns `(certificate DER, key)`.
pub(crate) fn issue(ca: &CaSigner<'_>, req: &ClientCertRequest<'_>) -> Result<(Vec<u8>, KeyPair)> {
    if req.user.is_empty() {
        return Err(PkiError::InvalidClientCertRequest(
            "the user name (subject CN) must not be empty".into(),
        ));
    }
    if let Some(g) = req.groups.iter().find(|g| g.is_empty()) {
        return Err(PkiError::InvalidClientCertRequest(format!(
            "empty group name in {:?}: {g:?}",
            req.groups
        )));
    }
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;

    let mut subject_rdns = Vec::new();
    // Go's pkix.Name order: O before CN.
    for g in req.groups {
        subject_rdns.extend(rdn(OID_ORGANIZATION, g));
    }
    subject_rdns.extend(rdn(OID_COMMON_NAME, req.user));

    let mut extensions = Vec::new();
    // keyUsage = digitalSignature (bit 0), critical. ECDSA keys do not encipher.
    extensions.extend(extension(OID_KEY_USAGE, true, &tlv(0x03, &[0x07, 0x80])));
    // basicConstraints = CA:FALSE (the DER default, so an empty sequence), critical.
    extensions.extend(extension(OID_BASIC_CONSTRAINTS, true, &tlv(0x30, &[])));
    extensions.extend(extension(
        OID_EXT_KEY_USAGE,
        false,
        &tlv(0x30, &tlv(0x06, OID_CLIENT_AUTH)),
    ));
    let cert = sign_certificate(
        ca,
        &tlv(0x30, &subject_rdns),
        &key.subject_public_key_info(),
        (req.not_before, req.not_after),
        extensions,
    )?;
    Ok((cert, key))
}

/// Signs a v3 certificate for `subject` (a DER `Name`) and `spki` (a DER
/// SubjectPublicKeyInfo) with a fresh serial; the CA's authority key id is appended to
/// `extensions` (each a DER `Extension`). Returns the certificate's DER.
pub(crate) fn sign_certificate(
    ca: &CaSigner<'_>,
    subject: &[u8],
    spki: &[u8],
    (not_before, not_after): (OffsetDateTime, OffsetDateTime),
    mut extensions: Vec<u8>,
) -> Result<Vec<u8>> {
    let sig_alg = signature_algorithm(ca.key)?;
    // RFC 5280: a positive integer of at most 20 octets; 16 random ones make collisions moot.
    let mut serial = random_bytes::<16>()?;
    serial[0] &= 0x7f;
    serial[0] |= 0x01; // never a leading zero octet, so the encoding is exactly 16 bytes
    if let Some(id) = ca.key_id {
        extensions.extend(extension(
            OID_AUTHORITY_KEY_ID,
            false,
            &tlv(0x30, &tlv(0x80, id)),
        ));
    }
    let tbs = tlv(
        0x30,
        &[
            tlv(0xa0, &tlv(0x02, &[0x02])), // version v3
            tlv(0x02, &serial),
            sig_alg.clone(),
            ca.subject_der.to_vec(),
            tlv(0x30, &[der_time(not_before), der_time(not_after)].concat()),
            subject.to_vec(),
            spki.to_vec(),
            tlv(0xa3, &tlv(0x30, &extensions)),
        ]
        .concat(),
    );
    let signature = ca.key.sign(&tbs)?;
    let mut bits = Vec::with_capacity(signature.len() + 1);
    bits.push(0); // no unused bits
    bits.extend_from_slice(&signature);
    Ok(tlv(0x30, &[tbs, sig_alg, tlv(0x03, &bits)].concat()))
}

/// The AlgorithmIdentifier for signatures made by `key`.
fn signature_algorithm(key: &KeyPair) -> Result<Vec<u8>> {
    let alg = key.algorithm();
    let (oid, null_params) = if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
        (OID_ECDSA_SHA256, false)
    } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
        (OID_ECDSA_SHA384, false)
    } else if alg == &rcgen::PKCS_ED25519 {
        (OID_ED25519, false)
    } else if alg == &rcgen::PKCS_RSA_SHA256 {
        (OID_RSA_SHA256, true)
    } else {
        return Err(PkiError::UnsupportedCaKey(format!("{alg:?}")));
    };
    let mut content = tlv(0x06, oid);
    if null_params {
        content.extend_from_slice(&[0x05, 0x00]);
    }
    Ok(tlv(0x30, &content))
}

/// One single-valued RDN: `SET { SEQUENCE { type, UTF8String value } }`.
fn rdn(oid: &[u8], value: &str) -> Vec<u8> {
    tlv(
        0x31,
        &tlv(
            0x30,
            &[tlv(0x06, oid), tlv(0x0c, value.as_bytes())].concat(),
        ),
    )
}

pub(crate) fn extension(oid: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    let mut content = tlv(0x06, oid);
    if critical {
        content.extend_from_slice(&[0x01, 0x01, 0xff]);
    }
    content.extend(tlv(0x04, value));
    tlv(0x30, &content)
}

/// RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
fn der_time(t: OffsetDateTime) -> Vec<u8> {
    let t = t.to_offset(time::UtcOffset::UTC);
    let (y, mo, d, h, mi, s) = (
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    );
    if (1950..2050).contains(&y) {
        let text = format!("{:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z", y % 100);
        tlv(0x17, text.as_bytes())
    } else {
        let text = format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z");
        tlv(0x18, text.as_bytes())
    }
}

/// A DER tag-length-value with the definite length form.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = Vec::with_capacity(len + 6);
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths() {
        assert_eq!(tlv(0x04, &[]), vec![0x04, 0x00]);
        assert_eq!(tlv(0x04, &[1; 0x7f])[..2], [0x04, 0x7f]);
        assert_eq!(tlv(0x04, &[1; 0x80])[..3], [0x04, 0x81, 0x80]);
        assert_eq!(tlv(0x04, &[1; 0x1234])[..4], [0x04, 0x82, 0x12, 0x34]);
    }

    #[test]
    fn times_switch_encoding_in_2050() {
        let at = |y, m, d, h, mi, s| {
            time::Date::from_calendar_date(y, m, d)
                .unwrap()
                .with_hms(h, mi, s)
                .unwrap()
                .assume_utc()
        };
        let t = at(2049, time::Month::December, 31, 23, 59, 59);
        assert_eq!(der_time(t), tlv(0x17, b"491231235959Z"));
        let t = at(2050, time::Month::January, 1, 0, 0, 0);
        assert_eq!(der_time(t), tlv(0x18, b"20500101000000Z"));
    }
}
