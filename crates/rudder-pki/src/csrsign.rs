//! Signing CertificateSigningRequests with the cluster CA, as kube-controller-manager's
//! csrsigning controller does (`pkg/controller/certificates/authority`: the subject, public key
//! and subject alternative names of the request, key usages from the CSR's `spec.usages`, no
//! other requested extension, CA:FALSE, backdated 5 minutes when the TTL is at least 8 hours,
//! never past the CA's own expiry).

use rcgen::{KeyPair, PublicKeyData as _};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::prelude::FromDer;

use crate::clientcert::{
    extension, sign_certificate, tlv, CaSigner, OID_BASIC_CONSTRAINTS, OID_EXT_KEY_USAGE,
    OID_KEY_USAGE,
};
use crate::error::{PkiError, Result};

const OID_SUBJECT_ALT_NAME: &str = "2.5.29.17";

/// Upstream's `keyUsageDict`: a CSR usage → the bit of Go's `x509.KeyUsage`.
const KEY_USAGES: &[(&str, u16)] = &[
    ("signing", 1 << 0),
    ("digital signature", 1 << 0),
    ("content commitment", 1 << 1),
    ("key encipherment", 1 << 2),
    ("data encipherment", 1 << 3),
    ("key agreement", 1 << 4),
    ("cert sign", 1 << 5),
    ("crl sign", 1 << 6),
    ("encipher only", 1 << 7),
    ("decipher only", 1 << 8),
];

/// Upstream's `extKeyUsageDict`, in the order of Go's `x509.ExtKeyUsage` values, which is the
/// order upstream sorts them into the extension; DER OID contents.
const EXT_KEY_USAGES: &[(&[&str], &[u8])] = &[
    (&["any"], &[0x55, 0x1d, 0x25, 0x00]),
    (&["server auth"], &[0x2b, 6, 1, 5, 5, 7, 3, 1]),
    (&["client auth"], &[0x2b, 6, 1, 5, 5, 7, 3, 2]),
    (&["code signing"], &[0x2b, 6, 1, 5, 5, 7, 3, 3]),
    (
        &["email protection", "s/mime"],
        &[0x2b, 6, 1, 5, 5, 7, 3, 4],
    ),
    (&["ipsec end system"], &[0x2b, 6, 1, 5, 5, 7, 3, 5]),
    (&["ipsec tunnel"], &[0x2b, 6, 1, 5, 5, 7, 3, 6]),
    (&["ipsec user"], &[0x2b, 6, 1, 5, 5, 7, 3, 7]),
    (&["timestamping"], &[0x2b, 6, 1, 5, 5, 7, 3, 8]),
    (&["ocsp signing"], &[0x2b, 6, 1, 5, 5, 7, 3, 9]),
    (
        &["microsoft sgc"],
        &[0x2b, 6, 1, 4, 1, 0x82, 0x37, 10, 3, 3],
    ),
    (
        &["netscape sgc"],
        &[0x60, 0x86, 0x48, 0x01, 0x86, 0xf8, 0x42, 4, 1],
    ),
];

/// The subject attributes Go's `pkix.Name` keeps, in the order `ToRDNSequence` writes them
/// (DER OID contents); whether only the last value counts (CN and serialNumber are single
/// strings in `pkix.Name`).
const SUBJECT_ORDER: &[(&str, &[u8], bool)] = &[
    ("2.5.4.6", &[0x55, 0x04, 0x06], false),
    ("2.5.4.8", &[0x55, 0x04, 0x08], false),
    ("2.5.4.7", &[0x55, 0x04, 0x07], false),
    ("2.5.4.9", &[0x55, 0x04, 0x09], false),
    ("2.5.4.17", &[0x55, 0x04, 0x11], false),
    ("2.5.4.10", &[0x55, 0x04, 0x0a], false),
    ("2.5.4.11", &[0x55, 0x04, 0x0b], false),
    ("2.5.4.3", &[0x55, 0x04, 0x03], true),
    ("2.5.4.5", &[0x55, 0x04, 0x05], true),
];

/// Go's string encoding in `encoding/asn1`: PrintableString when every byte is in its set
/// (without `*` and `&`), else UTF8String.
fn go_string(value: &str) -> Vec<u8> {
    let printable = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b));
    tlv(if printable { 0x13 } else { 0x0c }, value.as_bytes())
}

/// The request's subject as upstream's CA writes it: Go parses it into a `pkix.Name` and
/// marshals that again, so attributes come out in `pkix.Name`'s order, one RDN per attribute
/// type holding all its values, and attributes it does not model are dropped.
fn go_subject(name: &x509_parser::x509::X509Name<'_>) -> Vec<u8> {
    let mut rdns = Vec::new();
    for (dotted, oid, single) in SUBJECT_ORDER {
        let Ok(want) = dotted.parse::<x509_parser::der_parser::oid::Oid<'static>>() else {
            continue;
        };
        let mut values: Vec<&str> = name
            .iter_by_oid(&want)
            .filter_map(|a| a.as_str().ok())
            .collect();
        if *single {
            values = values.pop().filter(|v| !v.is_empty()).into_iter().collect();
        }
        if values.is_empty() {
            continue;
        }
        let set: Vec<u8> = values
            .iter()
            .flat_map(|v| tlv(0x30, &[tlv(0x06, oid), go_string(v)].concat()))
            .collect();
        rdns.extend(tlv(0x31, &set));
    }
    tlv(0x30, &rdns)
}

/// Backdating applies to certificates living at least this long (upstream's `Short`).
const SHORT: time::Duration = time::Duration::hours(8);
const BACKDATE: time::Duration = time::Duration::minutes(5);

/// The key usage bits and extended key usage OIDs of CSR usages (upstream's
/// `keyUsagesFromStrings`), or its error for unknown ones.
pub fn key_usages(usages: &[&str]) -> std::result::Result<(u16, Vec<&'static [u8]>), String> {
    let mut bits = 0u16;
    let mut ext = Vec::new();
    let mut unrecognized = Vec::new();
    for u in usages {
        if let Some((_, b)) = KEY_USAGES.iter().find(|(n, _)| n == u) {
            bits |= b;
        } else if EXT_KEY_USAGES.iter().any(|(n, _)| n.contains(u)) {
        } else {
            unrecognized.push(format!("{u:?}"));
        }
    }
    if !unrecognized.is_empty() {
        return Err(format!(
            "unrecognized usage values: [{}]",
            unrecognized.join(" ")
        ));
    }
    for (names, oid) in EXT_KEY_USAGES {
        if usages.iter().any(|u| names.contains(u)) {
            ext.push(*oid);
        }
    }
    Ok((bits, ext))
}

/// Go's `marshalKeyUsage`: the bits reversed into a BIT STRING of one or two bytes, trailing
/// zero bits counted as unused.
fn key_usage_bit_string(bits: u16) -> Vec<u8> {
    let a = [
        (bits as u8).reverse_bits(),
        ((bits >> 8) as u8).reverse_bits(),
    ];
    let bytes = if a[1] != 0 { &a[..] } else { &a[..1] };
    let last = bytes[bytes.len() - 1];
    let unused = if last == 0 {
        0
    } else {
        last.trailing_zeros() as u8
    };
    let mut content = vec![unused];
    content.extend_from_slice(bytes);
    tlv(0x03, &content)
}

/// The cluster CA as a CSR signer (`--cluster-signing-cert-file`/`--cluster-signing-key-file`).
pub struct CsrSigner {
    key: KeyPair,
    ca_pem: String,
    subject_der: Vec<u8>,
    key_id: Option<Vec<u8>>,
    not_after: OffsetDateTime,
}

impl std::fmt::Debug for CsrSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsrSigner")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl CsrSigner {
    /// A signer from the CA certificate and key, PEM.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<CsrSigner> {
        let invalid = |reason: String| PkiError::InvalidCertificate {
            path: "cluster signing certificate".into(),
            reason,
        };
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| invalid(e.to_string()))?;
        let (_, cert) =
            x509_parser::parse_x509_certificate(&der).map_err(|e| invalid(e.to_string()))?;
        let key = KeyPair::from_pem(key_pem).map_err(|e| PkiError::InvalidKey {
            path: "cluster signing key".into(),
            reason: e.to_string(),
        })?;
        if cert.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(PkiError::InvalidKey {
                path: "cluster signing key".into(),
                reason: "does not match the signing certificate".into(),
            });
        }
        let not_after = OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp())
            .map_err(|e| invalid(e.to_string()))?;
        let key_id = cert
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => {
                    Some(id.0.to_vec())
                }
                _ => None,
            });
        Ok(CsrSigner {
            subject_der: cert.subject().as_raw().to_vec(),
            ca_pem: cert_pem.to_string(),
            key,
            key_id,
            not_after,
        })
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Signs the PKCS#10 request `csr_der` for `ttl` with `usages` (CSR usage names); returns
    /// the certificate PEM.
    pub fn sign(
        &self,
        csr_der: &[u8],
        usages: &[&str],
        ttl: std::time::Duration,
        now: OffsetDateTime,
    ) -> Result<String> {
        let bad = |r: String| PkiError::InvalidClientCertRequest(r);
        let (_, csr) =
            x509_parser::certification_request::X509CertificationRequest::from_der(csr_der)
                .map_err(|e| bad(format!("x509: malformed certificate request: {e}")))?;
        csr.verify_signature()
            .map_err(|_| bad("x509: certificate request signature is invalid".into()))?;
        let info = &csr.certification_request_info;
        let (bits, ext) = key_usages(usages).map_err(bad)?;
        let ttl = time::Duration::try_from(ttl).map_err(|e| bad(e.to_string()))?;
        let mut not_before = now;
        if ttl >= SHORT {
            not_before = now - BACKDATE;
        }
        let not_after = (now + ttl).min(self.not_after);

        let mut extensions = Vec::new();
        if bits != 0 {
            extensions.extend(extension(OID_KEY_USAGE, true, &key_usage_bit_string(bits)));
        }
        if !ext.is_empty() {
            let oids: Vec<u8> = ext.iter().flat_map(|oid| tlv(0x06, oid)).collect();
            extensions.extend(extension(OID_EXT_KEY_USAGE, false, &tlv(0x30, &oids)));
        }
        extensions.extend(extension(OID_BASIC_CONSTRAINTS, true, &tlv(0x30, &[])));
        // The requested names, as Go re-encodes them from the parsed request (critical only
        // when the subject is empty, RFC 5280 §4.2.1.6).
        let subject_empty = info.subject.iter().next().is_none();
        if let Some(san) = raw_requested_extension(&csr, OID_SUBJECT_ALT_NAME) {
            extensions.extend(extension(&[0x55, 0x1d, 0x11], subject_empty, &san));
        }
        let der = sign_certificate(
            &CaSigner {
                key: &self.key,
                subject_der: &self.subject_der,
                key_id: self.key_id.as_deref(),
            },
            &go_subject(&info.subject),
            info.subject_pki.raw,
            (not_before, not_after),
            extensions,
        )?;
        Ok(crate::cluster::pem_encode("CERTIFICATE", &der))
    }
}

/// The raw value of a requested extension (from the CSR's extensionRequest attribute).
fn raw_requested_extension(
    csr: &x509_parser::certification_request::X509CertificationRequest<'_>,
    oid: &str,
) -> Option<Vec<u8>> {
    use x509_parser::der_parser::oid::Oid;
    let want: Oid<'static> = oid.parse().ok()?;
    for attr in csr.certification_request_info.iter_attributes() {
        if let x509_parser::cri_attributes::ParsedCriAttribute::ExtensionRequest(req) =
            attr.parsed_attribute()
        {
            for ext in &req.extensions {
                if ext.oid == want {
                    return Some(ext.value.to_vec());
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usages_map_as_upstream() {
        let (bits, ext) = key_usages(&["digital signature", "client auth"]).unwrap();
        assert_eq!(bits, 1);
        assert_eq!(ext, vec![EXT_KEY_USAGES[2].1]);
        // Sorted by Go's ExtKeyUsage values, deduplicated (s/mime is email protection).
        let (bits, ext) = key_usages(&[
            "client auth",
            "server auth",
            "key encipherment",
            "s/mime",
            "email protection",
        ])
        .unwrap();
        assert_eq!(bits, 4);
        assert_eq!(
            ext,
            vec![
                EXT_KEY_USAGES[1].1,
                EXT_KEY_USAGES[2].1,
                EXT_KEY_USAGES[4].1
            ]
        );
        assert_eq!(
            key_usages(&["client auth", "bogus", "nope"]).unwrap_err(),
            r#"unrecognized usage values: ["bogus" "nope"]"#
        );
    }

    #[test]
    fn signs_the_request_subject_key_and_names() {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::ClusterPki::load_or_create(dir.path(), Default::default()).unwrap();
        let signer = pki.csr_signer().unwrap();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["node1.example".into()]).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::OrganizationName, "system:nodes");
        dn.push(rcgen::DnType::CommonName, "system:node:node1");
        params.distinguished_name = dn;
        let csr = params.serialize_request(&key).unwrap();
        let now = OffsetDateTime::now_utc();
        let pem = signer
            .sign(
                csr.der(),
                &["digital signature", "client auth"],
                std::time::Duration::from_secs(3600),
                now,
            )
            .unwrap();
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(
            cert.subject().to_string(),
            "O=system:nodes, CN=system:node:node1"
        );
        // An hour is "short": not backdated.
        assert_eq!(cert.validity().not_before.timestamp(), now.unix_timestamp());
        assert_eq!(
            cert.validity().not_after.timestamp(),
            now.unix_timestamp() + 3600
        );
        assert_eq!(
            cert.public_key().raw,
            key.subject_public_key_info().as_slice()
        );
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && !ku.key_encipherment());
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        assert!(!cert.is_ca());
        let san = cert.subject_alternative_name().unwrap().unwrap().value;
        assert_eq!(san.general_names.len(), 1);
        // Verifies against the CA.
        let ca = CertificateDer::from_pem_slice(signer.ca_pem().as_bytes()).unwrap();
        let (_, ca) = x509_parser::parse_x509_certificate(&ca).unwrap();
        cert.verify_signature(Some(ca.public_key())).unwrap();
        // A year is backdated 5 minutes.
        let pem = signer
            .sign(
                csr.der(),
                &["client auth"],
                std::time::Duration::from_secs(365 * 86400),
                now,
            )
            .unwrap();
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(
            cert.validity().not_before.timestamp(),
            now.unix_timestamp() - 300
        );
        assert!(cert.key_usage().unwrap().is_none());
    }

    #[test]
    fn subjects_are_reencoded_as_go() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "alice@example");
        dn.push(rcgen::DnType::OrganizationName, "devs");
        dn.push(rcgen::DnType::CountryName, "NL");
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = dn;
        let csr = params.serialize_request(&key).unwrap();
        let (_, req) =
            x509_parser::certification_request::X509CertificationRequest::from_der(csr.der())
                .unwrap();
        let der = go_subject(&req.certification_request_info.subject);
        let (_, name) = x509_parser::x509::X509Name::from_der(&der).unwrap();
        assert_eq!(name.to_string(), "C=NL, O=devs, CN=alice@example");
        // `@` is not printable: UTF8String; `devs` is: PrintableString.
        assert!(der
            .windows(6)
            .any(|w| w == [0x13, 0x04, b'd', b'e', b'v', b's']));
        assert!(der.windows(3).any(|w| w == [0x0c, 0x0d, b'a']));
    }

    #[test]
    fn key_usage_encoding_matches_go() {
        // digitalSignature: 03 02 07 80; + keyEncipherment: 03 02 05 a0; decipherOnly: two bytes.
        assert_eq!(key_usage_bit_string(1), [0x03, 0x02, 0x07, 0x80]);
        assert_eq!(key_usage_bit_string(1 | 4), [0x03, 0x02, 0x05, 0xa0]);
        assert_eq!(
            key_usage_bit_string(1 | 1 << 8),
            [0x03, 0x03, 0x07, 0x80, 0x80]
        );
    }
}
