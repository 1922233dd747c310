//! Upstream's csrapproving controller (`pkg/controller/certificates/approver/sarapprove.go`):
//! a kubelet client CSR (`isNodeClientCert`; `isSelfNodeClientCert` for a renewal by the node
//! itself) is approved when a SubjectAccessReview says its requester may `create`
//! `certificatesigningrequests/nodeclient` (or `/selfnodeclient`).

use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, PostParams};
use kube::Client;

use super::{approval, parse_csr, validate_kubelet_client, KUBELET_CLIENT_SIGNER};
use crate::controller::{Next, ReconcileError, ReconcileResult, Reconciler};
use crate::informer::Informer;
use crate::manager::Context;

/// One recognizer of upstream's list, tried in order.
pub struct Recognizer {
    pub recognize: fn(&CertificateSigningRequest, &super::Request) -> bool,
    pub subresource: &'static str,
    pub success_message: &'static str,
}

/// `isNodeClientCert`.
pub fn is_node_client_cert(csr: &CertificateSigningRequest, req: &super::Request) -> bool {
    csr.spec.signer_name == KUBELET_CLIENT_SIGNER
        && validate_kubelet_client(req, csr.spec.usages.as_deref().unwrap_or_default()).is_ok()
}

/// `isSelfNodeClientCert`: the requester is the node the certificate names.
pub fn is_self_node_client_cert(csr: &CertificateSigningRequest, req: &super::Request) -> bool {
    csr.spec.username.as_deref() == Some(req.common_name.as_str()) && is_node_client_cert(csr, req)
}

/// upstream's `recognizers()`.
pub const RECOGNIZERS: &[Recognizer] = &[
    Recognizer {
        recognize: is_self_node_client_cert,
        subresource: "selfnodeclient",
        success_message:
            "Auto approving self kubelet client certificate after SubjectAccessReview.",
    },
    Recognizer {
        recognize: is_node_client_cert,
        subresource: "nodeclient",
        success_message: "Auto approving kubelet client certificate after SubjectAccessReview.",
    },
];

struct Approver {
    client: Client,
    csrs: Arc<Informer<CertificateSigningRequest>>,
}

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let client = cx.client.clone();
    super::start_controller(cx, tasks, "csrapproving", |csrs, _| Approver {
        client,
        csrs,
    });
}

/// The SubjectAccessReview of the CSR's requester for `create certificatesigningrequests/<sub>`.
fn review(csr: &CertificateSigningRequest, subresource: &str) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: csr.spec.username.clone(),
            uid: csr.spec.uid.clone(),
            groups: csr.spec.groups.clone(),
            extra: csr.spec.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                group: Some("certificates.k8s.io".into()),
                resource: Some("certificatesigningrequests".into()),
                verb: Some("create".into()),
                subresource: Some(subresource.into()),
                version: Some("*".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

impl Reconciler for Approver {
    fn reconcile(self: Arc<Self>, name: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(async move {
            let Some(csr) = super::unissued(&self.csrs, &name) else {
                return Ok(Next::Done);
            };
            if let (true, _) | (_, true) = approval(&csr) {
                return Ok(Next::Done);
            }
            let req = parse_csr(&csr.spec.request.0)
                .map_err(|e| ReconcileError::Other(format!("unable to parse csr {name:?}: {e}")))?;
            let mut tried = Vec::new();
            for r in RECOGNIZERS {
                if !(r.recognize)(&csr, &req) {
                    continue;
                }
                tried.push(r.subresource);
                let sar = Api::<SubjectAccessReview>::all(self.client.clone())
                    .create(&PostParams::default(), &review(&csr, r.subresource))
                    .await?;
                if !sar.status.is_some_and(|s| s.allowed) {
                    continue;
                }
                let mut approved = (*csr).clone();
                super::push_condition(
                    &mut approved,
                    "Approved",
                    "AutoApproved",
                    r.success_message.into(),
                    None,
                );
                Api::<CertificateSigningRequest>::all(self.client.clone())
                    .replace_subresource("approval", &name, &PostParams::default(), &approved)
                    .await
                    .map_err(|e| {
                        ReconcileError::Other(format!(
                            "error updating approval for csr: {}",
                            crate::controller::api_message(&e)
                        ))
                    })?;
                tracing::info!(csr = %name, subresource = r.subresource, "approved");
                return Ok(Next::Done);
            }
            if !tried.is_empty() {
                // Upstream's IgnorableError: quietly logged, yet requeued with backoff like any
                // failed sync, so a request seen before its requester's bindings reached the
                // authorizer (a node joining as its server starts) is approved once they do.
                return Err(ReconcileError::Other(format!(
                    "recognized csr {name:?} as {tried:?} but subject access review was not approved"
                )));
            }
            Ok(Next::Done)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::csr_pem;
    use super::*;
    use k8s_openapi::api::certificates::v1::CertificateSigningRequestSpec;
    use k8s_openapi::ByteString;

    fn csr(
        username: &str,
        signer: &str,
        usages: &[&str],
        pem: String,
    ) -> CertificateSigningRequest {
        CertificateSigningRequest {
            spec: CertificateSigningRequestSpec {
                request: ByteString(pem.into_bytes()),
                signer_name: signer.into(),
                usages: Some(usages.iter().map(|s| s.to_string()).collect()),
                username: Some(username.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn recognized(c: &CertificateSigningRequest) -> Vec<&'static str> {
        let req = parse_csr(&c.spec.request.0).unwrap();
        RECOGNIZERS
            .iter()
            .filter(|r| (r.recognize)(c, &req))
            .map(|r| r.subresource)
            .collect()
    }

    // sarapprove_test.go's TestRecognizers, by case.
    #[test]
    fn recognizers_as_upstream() {
        let node = csr_pem("system:node:foo", &["system:nodes"], &[], &[]);
        let usages = ["digital signature", "client auth"];
        let by_bootstrap = csr(
            "system:bootstrap:abcdef",
            KUBELET_CLIENT_SIGNER,
            &usages,
            node.clone(),
        );
        assert_eq!(recognized(&by_bootstrap), ["nodeclient"]);
        let by_self = csr(
            "system:node:foo",
            KUBELET_CLIENT_SIGNER,
            &usages,
            node.clone(),
        );
        assert_eq!(recognized(&by_self), ["selfnodeclient", "nodeclient"]);
        let rsa = csr(
            "system:node:foo",
            KUBELET_CLIENT_SIGNER,
            &["digital signature", "key encipherment", "client auth"],
            node.clone(),
        );
        assert_eq!(recognized(&rsa), ["selfnodeclient", "nodeclient"]);
        let other_signer = csr(
            "system:node:foo",
            super::super::CLIENT_SIGNER,
            &usages,
            node.clone(),
        );
        assert!(recognized(&other_signer).is_empty());
        let server_auth = csr(
            "system:node:foo",
            KUBELET_CLIENT_SIGNER,
            &["digital signature", "client auth", "server auth"],
            node,
        );
        assert!(recognized(&server_auth).is_empty());
        for bad in [
            csr_pem("system:node:foo", &["system:masters"], &[], &[]),
            csr_pem("system:node:foo", &[], &[], &[]),
            csr_pem("foo", &["system:nodes"], &[], &[]),
            csr_pem("system:node:foo", &["system:nodes"], &["foo.example"], &[]),
            csr_pem("system:node:foo", &["system:nodes"], &[], &["10.0.0.1"]),
        ] {
            let c = csr("system:node:foo", KUBELET_CLIENT_SIGNER, &usages, bad);
            assert!(recognized(&c).is_empty());
        }
    }

    #[test]
    fn review_asks_for_the_requester() {
        let mut c = csr(
            "system:bootstrap:abcdef",
            KUBELET_CLIENT_SIGNER,
            &[],
            String::new(),
        );
        c.spec.groups = Some(vec!["system:bootstrappers".into()]);
        let sar = review(&c, "nodeclient");
        assert_eq!(sar.spec.user.as_deref(), Some("system:bootstrap:abcdef"));
        assert_eq!(sar.spec.groups, c.spec.groups);
        let ra = sar.spec.resource_attributes.unwrap();
        assert_eq!(ra.subresource.as_deref(), Some("nodeclient"));
        assert_eq!(ra.verb.as_deref(), Some("create"));
        assert_eq!(ra.version.as_deref(), Some("*"));
    }
}
