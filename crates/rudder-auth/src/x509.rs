//! Users from TLS client certificates.

use std::collections::BTreeMap;

use aws_lc_rs::digest;
use x509_parser::x509::X509Name;

use crate::authn::{AuthError, AuthRequest, Authenticator};
use crate::user::{UserInfo, CREDENTIAL_ID_KEY};

/// The user is the leaf certificate's subject CN, the groups its O attributes, in order
/// (upstream's `CommonNameUserConversion`).
///
/// This authenticator does not verify the chain: the API server's TLS listener already did
/// (against the cluster CA, for client auth, at the time of the handshake), and rejects the
/// connection otherwise. So it must only be given certificates that came out of that
/// handshake, never ones taken from a header.
#[derive(Clone, Copy, Debug, Default)]
pub struct X509Authenticator;

impl X509Authenticator {
    pub fn new() -> Self {
        X509Authenticator
    }
}

impl Authenticator for X509Authenticator {
    fn authenticate(&self, req: &AuthRequest<'_>) -> Result<Option<UserInfo>, AuthError> {
        let Some(leaf) = req.peer_certificates.and_then(|c| c.first()) else {
            return Ok(None);
        };
        let (_, cert) = x509_parser::parse_x509_certificate(leaf)
            .map_err(|e| AuthError::InvalidCertificate(e.to_string()))?;
        let subject = cert.subject();
        // Go's pkix.Name keeps the last CN when there are several.
        let Some(name) = strings(subject, Attr::CommonName).last().cloned() else {
            return Ok(None);
        };
        if name.is_empty() {
            // Upstream: no opinion, so another authenticator (a token) may still succeed.
            return Ok(None);
        }
        let fingerprint = digest::digest(&digest::SHA256, leaf.as_ref());
        let id = format!("X509SHA256={}", hex(fingerprint.as_ref()));
        Ok(Some(UserInfo {
            name,
            uid: String::new(),
            groups: strings(subject, Attr::Organization),
            extra: BTreeMap::from([(CREDENTIAL_ID_KEY.to_owned(), vec![id])]),
        }))
    }
}

enum Attr {
    CommonName,
    Organization,
}

/// The string values of one attribute type, in subject order. Values that are not strings
/// are skipped, as Go's `pkix.Name.FillFromRDNSequence` does.
fn strings(name: &X509Name<'_>, attr: Attr) -> Vec<String> {
    let values: Vec<_> = match attr {
        Attr::CommonName => name.iter_common_name().collect(),
        Attr::Organization => name.iter_organization().collect(),
    };
    values
        .into_iter()
        .filter_map(|v| v.as_str().ok().map(str::to_owned))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use rcgen::{CertificateParams, DnType, KeyPair};
    use rustls_pki_types::CertificateDer;

    fn self_signed(dn: &[(DnType, &str)]) -> CertificateDer<'static> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (ty, v) in dn {
            params.distinguished_name.push(ty.clone(), *v);
        }
        params.self_signed(&key).unwrap().der().clone()
    }

    fn auth(certs: &[CertificateDer<'static>]) -> Result<Option<UserInfo>, AuthError> {
        let h = HeaderMap::new();
        X509Authenticator.authenticate(&AuthRequest::new(&h).with_peer_certificates(certs))
    }

    #[test]
    fn no_certificate_is_no_opinion() {
        let h = HeaderMap::new();
        assert_eq!(
            X509Authenticator.authenticate(&AuthRequest::new(&h)),
            Ok(None)
        );
        assert_eq!(auth(&[]), Ok(None));
    }

    #[test]
    fn cn_and_o_become_user_and_group() {
        let cert = self_signed(&[
            (DnType::OrganizationName, "system:nodes"),
            (DnType::CommonName, "system:node:worker-1"),
        ]);
        let user = auth(std::slice::from_ref(&cert)).unwrap().unwrap();
        assert_eq!(user.name, "system:node:worker-1");
        assert_eq!(user.groups, ["system:nodes"]);
        assert_eq!(user.uid, "");
        let id = &user.extra[CREDENTIAL_ID_KEY];
        let want = hex(digest::digest(&digest::SHA256, cert.as_ref()).as_ref());
        assert_eq!(id, &[format!("X509SHA256={want}")]);
    }

    #[test]
    fn missing_or_empty_cn_is_no_opinion() {
        let cert = self_signed(&[(DnType::OrganizationName, "system:masters")]);
        assert_eq!(auth(&[cert]), Ok(None));
        let cert = self_signed(&[(DnType::CommonName, "")]);
        assert_eq!(auth(&[cert]), Ok(None));
    }

    #[test]
    fn garbage_is_an_error() {
        let err = auth(&[CertificateDer::from(vec![0x30, 0x03, 0x01, 0x01, 0xff])]).unwrap_err();
        assert!(matches!(err, AuthError::InvalidCertificate(_)), "{err}");
    }
}
