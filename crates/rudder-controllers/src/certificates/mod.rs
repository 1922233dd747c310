//! Upstream's certificate controllers (`pkg/controller/certificates`): csrapproving
//! auto-approves kubelet client certificates after a SubjectAccessReview, csrsigning issues
//! approved requests of the `kubernetes.io/*` signers with the cluster CA, csrcleaner deletes
//! old requests. The request checks (`isNodeClientCert`, `ValidateKubeletClientCSR`, …) are
//! pure functions here, tested with upstream's tables.

pub mod approver;
pub mod cleaner;
pub mod signer;

use std::sync::Arc;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use x509_parser::prelude::FromDer;

use crate::controller::{run_workers, Reconciler};
use crate::informer::{Change, Informer};
use crate::manager::Context;
use crate::workqueue::WorkQueue;

/// `capi.KubeAPIServerClientKubeletSignerName`.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// `capi.KubeAPIServerClientSignerName`.
pub const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// `capi.KubeletServingSignerName`.
pub const KUBELET_SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";

/// What the checks read of a PKCS#10 request (Go's `x509.CertificateRequest`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub der: Vec<u8>,
    pub common_name: String,
    pub organizations: Vec<String>,
    pub dns_names: usize,
    pub emails: usize,
    pub ips: usize,
    pub uris: usize,
}

/// `capihelper.ParseCSR`: the first `CERTIFICATE REQUEST` PEM block, parsed.
pub fn parse_csr(pem: &[u8]) -> Result<Request, String> {
    let text =
        std::str::from_utf8(pem).map_err(|_| "PEM block type must be CERTIFICATE REQUEST")?;
    let der = pem_block(text, "CERTIFICATE REQUEST")
        .ok_or_else(|| "PEM block type must be CERTIFICATE REQUEST".to_string())?;
    let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .map_err(|e| format!("x509: malformed certificate request: {e}"))?;
    let info = &csr.certification_request_info;
    let attr_strings = |oid: &x509_parser::der_parser::oid::Oid<'_>| -> Vec<String> {
        info.subject
            .iter_by_oid(oid)
            .filter_map(|a| a.as_str().ok().map(str::to_string))
            .collect()
    };
    let mut req = Request {
        common_name: attr_strings(&x509_parser::oid_registry::OID_X509_COMMON_NAME)
            .into_iter()
            .next()
            .unwrap_or_default(),
        organizations: attr_strings(&x509_parser::oid_registry::OID_X509_ORGANIZATION_NAME),
        ..Request::default()
    };
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) = ext {
            use x509_parser::extensions::GeneralName;
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(_) => req.dns_names += 1,
                    GeneralName::RFC822Name(_) => req.emails += 1,
                    GeneralName::IPAddress(_) => req.ips += 1,
                    GeneralName::URI(_) => req.uris += 1,
                    _ => {}
                }
            }
        }
    }
    req.der = der;
    Ok(req)
}

/// The DER body of the first PEM block labelled `label`.
fn pem_block(text: &str, label: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    let b64: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

const ORGANIZATION_NOT_SYSTEM_NODES: &str = "subject organization is not system:nodes";
const COMMON_NAME_NOT_SYSTEM_NODE: &str = "subject common name does not begin with system:node:";
const DNS_OR_IP_SAN_REQUIRED: &str = "DNS or IP subjectAltName is required";
const DNS_SAN_NOT_ALLOWED: &str = "DNS subjectAltNames are not allowed";
const EMAIL_SAN_NOT_ALLOWED: &str = "Email subjectAltNames are not allowed";
const IP_SAN_NOT_ALLOWED: &str = "IP subjectAltNames are not allowed";
const URI_SAN_NOT_ALLOWED: &str = "URI subjectAltNames are not allowed";

fn usage_set(usages: &[String]) -> std::collections::BTreeSet<&str> {
    usages.iter().map(String::as_str).collect()
}

/// Whether the usage set is exactly `with_rsa` or `with_rsa` minus key encipherment.
fn usages_match(usages: &[String], with_rsa: &[&str]) -> Result<(), String> {
    let got = usage_set(usages);
    let rsa: std::collections::BTreeSet<&str> = with_rsa.iter().copied().collect();
    let mut no_rsa = rsa.clone();
    no_rsa.remove("key encipherment");
    if got == rsa || got == no_rsa {
        Ok(())
    } else {
        Err(format!(
            "usages did not match [{}]",
            rsa.into_iter().collect::<Vec<_>>().join(" ")
        ))
    }
}

/// `capihelper.ValidateKubeletClientCSR`.
pub fn validate_kubelet_client(req: &Request, usages: &[String]) -> Result<(), String> {
    if req.organizations != ["system:nodes"] {
        return Err(ORGANIZATION_NOT_SYSTEM_NODES.into());
    }
    if req.dns_names > 0 {
        return Err(DNS_SAN_NOT_ALLOWED.into());
    }
    if req.emails > 0 {
        return Err(EMAIL_SAN_NOT_ALLOWED.into());
    }
    if req.ips > 0 {
        return Err(IP_SAN_NOT_ALLOWED.into());
    }
    if req.uris > 0 {
        return Err(URI_SAN_NOT_ALLOWED.into());
    }
    if !req.common_name.starts_with("system:node:") {
        return Err(COMMON_NAME_NOT_SYSTEM_NODE.into());
    }
    usages_match(
        usages,
        &["client auth", "digital signature", "key encipherment"],
    )
}

/// `capihelper.ValidateKubeletServingCSR`.
pub fn validate_kubelet_serving(req: &Request, usages: &[String]) -> Result<(), String> {
    if req.organizations != ["system:nodes"] {
        return Err(ORGANIZATION_NOT_SYSTEM_NODES.into());
    }
    if req.dns_names == 0 && req.ips == 0 {
        return Err(DNS_OR_IP_SAN_REQUIRED.into());
    }
    if req.emails > 0 {
        return Err(EMAIL_SAN_NOT_ALLOWED.into());
    }
    if req.uris > 0 {
        return Err(URI_SAN_NOT_ALLOWED.into());
    }
    usages_match(
        usages,
        &["digital signature", "key encipherment", "server auth"],
    )?;
    if !req.common_name.starts_with("system:node:") {
        return Err(COMMON_NAME_NOT_SYSTEM_NODE.into());
    }
    Ok(())
}

/// The signer's `validAPIServerClientUsages`.
pub fn validate_client_usages(usages: &[String]) -> Result<(), String> {
    let mut client_auth = false;
    for u in usages {
        match u.as_str() {
            "digital signature" | "key encipherment" => {}
            "client auth" => client_auth = true,
            other => return Err(format!("invalid usage for client certificate: {other}")),
        }
    }
    if client_auth {
        Ok(())
    } else {
        Err("missing required usage for client certificate: client auth".into())
    }
}

/// The CSR's conditions of `ty` with status True (`HasTrueCondition`).
pub fn has_true_condition(csr: &CertificateSigningRequest, ty: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == ty && c.status == "True"))
}

/// `GetCertApprovalCondition`: (approved, denied).
pub fn approval(csr: &CertificateSigningRequest) -> (bool, bool) {
    let conds = csr
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    (
        conds.iter().any(|c| c.type_ == "Approved"),
        conds.iter().any(|c| c.type_ == "Denied"),
    )
}

pub fn has_certificate(csr: &CertificateSigningRequest) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty())
}

/// The CSR a worker should handle: upstream's `CertificateController.syncFunc` skips requests
/// that are gone or already carry a certificate.
fn unissued(
    csrs: &Informer<CertificateSigningRequest>,
    name: &str,
) -> Option<Arc<CertificateSigningRequest>> {
    csrs.get("", name).filter(|csr| !has_certificate(csr))
}

/// Appends a True condition of `type_`.
fn push_condition(
    csr: &mut CertificateSigningRequest,
    type_: &str,
    reason: &str,
    message: String,
    last_update_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
) {
    csr.status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new)
        .push(
            k8s_openapi::api::certificates::v1::CertificateSigningRequestCondition {
                type_: type_.into(),
                status: "True".into(),
                reason: Some(reason.into()),
                message: Some(message),
                last_update_time,
                ..Default::default()
            },
        );
}

/// Upstream's `CertificateController`: every CSR change queues its name; workers run `R`.
fn start_controller<R: Reconciler>(
    cx: &Context,
    tasks: &mut tokio::task::JoinSet<()>,
    queue_name: &'static str,
    make: impl FnOnce(Arc<Informer<CertificateSigningRequest>>, Arc<WorkQueue>) -> R,
) {
    let csrs = cx.informers.get::<CertificateSigningRequest>();
    let queue = WorkQueue::new(queue_name, cx.metrics.clone());
    let q = queue.clone();
    csrs.add_handler(move |ch| {
        if let Change::Added(csr) | Change::Updated { new: csr, .. } = ch {
            q.add(csr.metadata.name.clone().unwrap_or_default());
        }
    });
    let reconciler = Arc::new(make(csrs.clone(), queue.clone()));
    tasks.spawn(async move {
        csrs.wait_synced().await;
        run_workers(queue, reconciler, 5).await;
    });
}

#[cfg(test)]
pub(crate) mod testutil {
    /// A CSR PEM for `cn`/`orgs` with the given SANs, made by rcgen.
    pub fn csr_pem(cn: &str, orgs: &[&str], dns: &[&str], ips: &[&str]) -> String {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params =
            rcgen::CertificateParams::new(dns.iter().map(|d| d.to_string()).collect::<Vec<_>>())
                .unwrap();
        for ip in ips {
            params
                .subject_alt_names
                .push(rcgen::SanType::IpAddress(ip.parse().unwrap()));
        }
        let mut dn = rcgen::DistinguishedName::new();
        // rcgen keeps one value per attribute type: a second O replaces the first, so two
        // organizations are tested on the parsed form instead.
        for o in orgs {
            dn.push(rcgen::DnType::OrganizationName, *o);
        }
        if !cn.is_empty() {
            dn.push(rcgen::DnType::CommonName, cn);
        }
        params.distinguished_name = dn;
        params.serialize_request(&key).unwrap().pem().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::csr_pem;
    use super::*;

    fn u(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_subject_and_names() {
        let r = parse_csr(
            csr_pem(
                "system:node:a",
                &["system:nodes"],
                &["a.example"],
                &["10.0.0.1"],
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(r.common_name, "system:node:a");
        assert_eq!(r.organizations, ["system:nodes"]);
        assert_eq!((r.dns_names, r.ips, r.emails, r.uris), (1, 1, 0, 0));
        assert_eq!(
            parse_csr(b"garbage").unwrap_err(),
            "PEM block type must be CERTIFICATE REQUEST"
        );
    }

    // helpers_test.go's TestIsKubeletClientCSR / ValidateKubeletClientCSR cases.
    #[test]
    fn kubelet_client_as_upstream() {
        let good = Request {
            common_name: "system:node:foo".into(),
            organizations: vec!["system:nodes".into()],
            ..Default::default()
        };
        let ok = u(&["digital signature", "client auth"]);
        let ok_rsa = u(&["digital signature", "key encipherment", "client auth"]);
        assert_eq!(validate_kubelet_client(&good, &ok), Ok(()));
        assert_eq!(validate_kubelet_client(&good, &ok_rsa), Ok(()));
        let with = |f: fn(&mut Request)| {
            let mut r = good.clone();
            f(&mut r);
            validate_kubelet_client(&r, &ok).unwrap_err()
        };
        assert_eq!(
            with(|r| r.organizations.clear()),
            ORGANIZATION_NOT_SYSTEM_NODES
        );
        assert_eq!(
            with(|r| r.organizations.push("system:masters".into())),
            ORGANIZATION_NOT_SYSTEM_NODES
        );
        assert_eq!(
            with(|r| r.organizations = vec!["x".into()]),
            ORGANIZATION_NOT_SYSTEM_NODES
        );
        assert_eq!(with(|r| r.dns_names = 1), DNS_SAN_NOT_ALLOWED);
        assert_eq!(with(|r| r.emails = 1), EMAIL_SAN_NOT_ALLOWED);
        assert_eq!(with(|r| r.ips = 1), IP_SAN_NOT_ALLOWED);
        assert_eq!(with(|r| r.uris = 1), URI_SAN_NOT_ALLOWED);
        assert_eq!(
            with(|r| r.common_name = "foo".into()),
            COMMON_NAME_NOT_SYSTEM_NODE
        );
        let want = "usages did not match [client auth digital signature key encipherment]";
        for bad in [
            &["client auth"][..],
            &["digital signature"],
            &["digital signature", "client auth", "server auth"],
            &["key encipherment", "client auth"],
        ] {
            assert_eq!(
                validate_kubelet_client(&good, &u(bad)).unwrap_err(),
                want,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn kubelet_serving_as_upstream() {
        let good = Request {
            common_name: "system:node:foo".into(),
            organizations: vec!["system:nodes".into()],
            dns_names: 1,
            ..Default::default()
        };
        let ok = u(&["digital signature", "server auth"]);
        assert_eq!(validate_kubelet_serving(&good, &ok), Ok(()));
        let mut no_names = good.clone();
        no_names.dns_names = 0;
        assert_eq!(
            validate_kubelet_serving(&no_names, &ok).unwrap_err(),
            DNS_OR_IP_SAN_REQUIRED
        );
        assert_eq!(
            validate_kubelet_serving(&good, &u(&["client auth"])).unwrap_err(),
            "usages did not match [digital signature key encipherment server auth]"
        );
    }

    #[test]
    fn client_usages_as_upstream() {
        assert_eq!(validate_client_usages(&u(&["client auth"])), Ok(()));
        assert_eq!(
            validate_client_usages(&u(&["digital signature"])).unwrap_err(),
            "missing required usage for client certificate: client auth"
        );
        assert_eq!(
            validate_client_usages(&u(&["client auth", "server auth"])).unwrap_err(),
            "invalid usage for client certificate: server auth"
        );
    }
}
