//! Upstream's certificate admission plugins (`plugin/pkg/admission/certificates`):
//! CertificateApproval (approving a CertificateSigningRequest needs `approve` on its signer),
//! CertificateSigning (setting its certificate needs `sign` on its signer) and
//! CertificateSubjectRestriction (no `system:masters` client certificates from the
//! `kubernetes.io/kube-apiserver-client` signer). The permission checks ask the server's
//! authorizer, which the composition root hands in as a function.

use std::sync::Arc;

use rudder_api::status::ApiError;
use rudder_registry::{object, Admission, Attributes, Entry, Operation, Requester};
use serde_json::Value;

use crate::strategies::certificates::request_organizations;
use crate::strategies::util::str_at;

/// Whether `user` may `verb` the `certificates.k8s.io` `signers` named `name`.
pub type SignerAuthorizer = Arc<dyn Fn(&Requester, &str, &str) -> bool + Send + Sync>;

const KUBE_APISERVER_CLIENT: &str = "kubernetes.io/kube-apiserver-client";

fn is_csrs(entry: &Entry) -> bool {
    entry.info.group == "certificates.k8s.io" && entry.info.plural == "certificatesigningrequests"
}

/// Upstream's `IsAuthorizedForSignerName`: the signer itself, or its domain's wildcard
/// (`example.com/*`).
fn authorized_for_signer(
    authz: &SignerAuthorizer,
    user: &Requester,
    verb: &str,
    signer: &str,
) -> bool {
    if authz(user, verb, signer) {
        return true;
    }
    let domain = signer.split('/').next().unwrap_or("");
    authz(user, verb, &format!("{domain}/*"))
}

fn signer_name(csr: &Value) -> &str {
    csr.pointer("/spec/signerName")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn forbidden(attrs: &Attributes<'_>, csr: &Value, message: String) -> ApiError {
    let name = match attrs.name {
        "" => object::name(csr),
        n => n,
    };
    ApiError::forbidden(&attrs.entry.info.group_resource(), name, message)
}

/// CertificateApproval: an update of `certificatesigningrequests/approval` needs `approve` on
/// the (new) signer name.
pub struct CertificateApproval {
    pub authz: SignerAuthorizer,
}

#[async_trait::async_trait]
impl Admission for CertificateApproval {
    fn handles(&self, entry: &Entry) -> bool {
        is_csrs(entry)
    }

    async fn validate(&self, attrs: &Attributes<'_>, csr: &Value) -> Result<(), ApiError> {
        if attrs.operation != Operation::Update || attrs.subresource != "approval" {
            return Ok(());
        }
        // The server's own writes carry no user.
        let Some(user) = attrs.user else {
            return Ok(());
        };
        let signer = signer_name(csr);
        if authorized_for_signer(&self.authz, user, "approve", signer) {
            return Ok(());
        }
        Err(forbidden(
            attrs,
            csr,
            format!("user not permitted to approve requests with signerName {signer:?}"),
        ))
    }
}

/// CertificateSigning: an update of `certificatesigningrequests/status` that changes
/// `status.certificate` needs `sign` on the signer name.
pub struct CertificateSigning {
    pub authz: SignerAuthorizer,
}

#[async_trait::async_trait]
impl Admission for CertificateSigning {
    fn handles(&self, entry: &Entry) -> bool {
        is_csrs(entry)
    }

    async fn validate(&self, attrs: &Attributes<'_>, csr: &Value) -> Result<(), ApiError> {
        if attrs.operation != Operation::Update || attrs.subresource != "status" {
            return Ok(());
        }
        let Some(user) = attrs.user else {
            return Ok(());
        };
        let old = attrs.old.unwrap_or(&Value::Null);
        if old.pointer("/status/certificate") == csr.pointer("/status/certificate") {
            return Ok(());
        }
        let signer = signer_name(old);
        if authorized_for_signer(&self.authz, user, "sign", signer) {
            return Ok(());
        }
        Err(forbidden(
            attrs,
            csr,
            format!("user not permitted to sign requests with signerName {signer:?}"),
        ))
    }
}

/// CertificateSubjectRestriction: no request for the kube-apiserver client signer may ask for
/// the `system:masters` group.
pub struct CertificateSubjectRestriction;

#[async_trait::async_trait]
impl Admission for CertificateSubjectRestriction {
    fn handles(&self, entry: &Entry) -> bool {
        is_csrs(entry)
    }

    async fn validate(&self, attrs: &Attributes<'_>, csr: &Value) -> Result<(), ApiError> {
        if attrs.operation != Operation::Create || !attrs.is_main_resource() {
            return Ok(());
        }
        let signer = signer_name(csr);
        if signer != KUBE_APISERVER_CLIENT {
            return Ok(());
        }
        let request = str_at(csr.get("spec").unwrap_or(&Value::Null), "request");
        let pem = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, request)
            .map_err(|e| ApiError::internal_error(format!("failed to parse CSR: {e}")))?;
        let groups = request_organizations(&pem)
            .map_err(|e| ApiError::internal_error(format!("failed to parse CSR: {e}")))?;
        if groups.iter().any(|g| g == "system:masters") {
            return Err(forbidden(
                attrs,
                csr,
                format!("use of {signer} signer with system:masters group is not allowed"),
            ));
        }
        Ok(())
    }
}
