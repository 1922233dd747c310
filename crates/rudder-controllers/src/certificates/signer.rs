//! Upstream's csrsigning controller (`pkg/controller/certificates/signer/signer.go`): approved
//! requests of the `kubernetes.io/kube-apiserver-client`, `…-client-kubelet` and
//! `kubernetes.io/kubelet-serving` signers are checked against their signer's rules and issued
//! by the cluster CA (`--cluster-signing-cert-file`/`--cluster-signing-key-file`) for
//! `--cluster-signing-duration`, or the requested `spec.expirationSeconds` when shorter (never
//! under 10 minutes).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use kube::Client;
use rudder_pki::CsrSigner;

use super::{
    approval, has_true_condition, parse_csr, validate_client_usages, validate_kubelet_client,
    validate_kubelet_serving, CLIENT_SIGNER, KUBELET_CLIENT_SIGNER, KUBELET_SERVING_SIGNER,
};
use crate::controller::{is_conflict, Next, ReconcileError, ReconcileResult, Reconciler};
use crate::informer::Informer;
use crate::manager::Context;

/// The sanity floor on requested durations (twice the 5-minute backdate).
const MIN_DURATION: Duration = Duration::from_secs(10 * 60);

/// upstream's `duration`: the default TTL unless a shorter one is requested.
pub fn duration(expiration_seconds: Option<i32>, cert_ttl: Duration) -> Duration {
    let Some(secs) = expiration_seconds else {
        return cert_ttl;
    };
    let requested = Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    if requested > cert_ttl {
        cert_ttl
    } else if requested < MIN_DURATION {
        MIN_DURATION
    } else {
        requested
    }
}

/// `isRequestForSignerFunc` of each signer: `None` when the signer is not one this controller
/// signs for, else the request's validation result.
pub fn check_for_signer(
    signer: &str,
    req: &super::Request,
    usages: &[String],
) -> Option<Result<(), String>> {
    match signer {
        KUBELET_CLIENT_SIGNER => Some(validate_kubelet_client(req, usages)),
        KUBELET_SERVING_SIGNER => Some(validate_kubelet_serving(req, usages)),
        CLIENT_SIGNER => Some(validate_client_usages(usages)),
        _ => None,
    }
}

struct Signer {
    client: Client,
    csrs: Arc<Informer<CertificateSigningRequest>>,
    ca: Arc<CsrSigner>,
    cert_ttl: Duration,
}

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let Some(ca) = cx.credentials.cluster_signer.clone() else {
        tracing::warn!(
            "certificatesigningrequest-signing-controller is disabled: no --cluster-signing-cert-file/--cluster-signing-key-file"
        );
        return;
    };
    let client = cx.client.clone();
    let cert_ttl = cx.options.cluster_signing_duration;
    super::start_controller(cx, tasks, "csrsigning", |csrs, _| Signer {
        client,
        csrs,
        ca,
        cert_ttl,
    });
}

impl Signer {
    async fn update_status(&self, csr: &CertificateSigningRequest, what: &str) -> ReconcileResult {
        let name = csr.metadata.name.clone().unwrap_or_default();
        match Api::<CertificateSigningRequest>::all(self.client.clone())
            .replace_status(&name, &PostParams::default(), csr)
            .await
        {
            Ok(_) => Ok(Next::Done),
            // A newer version is queued already.
            Err(e) if is_conflict(&e) => Ok(Next::Done),
            Err(e) => Err(ReconcileError::Other(format!(
                "error {what} for csr: {}",
                crate::controller::api_message(&e)
            ))),
        }
    }
}

impl Reconciler for Signer {
    fn reconcile(self: Arc<Self>, name: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(async move {
            let Some(csr) = super::unissued(&self.csrs, &name) else {
                return Ok(Next::Done);
            };
            let (approved, denied) = approval(&csr);
            if !approved || denied || has_true_condition(&csr, "Failed") {
                return Ok(Next::Done);
            }
            let usages = csr.spec.usages.clone().unwrap_or_default();
            let req = parse_csr(&csr.spec.request.0)
                .map_err(|e| ReconcileError::Other(format!("unable to parse csr {name:?}: {e}")))?;
            let mut csr = (*csr).clone();
            match check_for_signer(&csr.spec.signer_name, &req, &usages) {
                None => return Ok(Next::Done),
                Some(Err(message)) => {
                    super::push_condition(
                        &mut csr,
                        "Failed",
                        "SignerValidationFailure",
                        message,
                        Some(Time(jiff::Timestamp::now())),
                    );
                    return self.update_status(&csr, "adding failure condition").await;
                }
                Some(Ok(())) => {}
            }
            let usage_refs: Vec<&str> = usages.iter().map(String::as_str).collect();
            let ttl = duration(csr.spec.expiration_seconds, self.cert_ttl);
            let pem = self
                .ca
                .sign(&req.der, &usage_refs, ttl, time_now())
                .map_err(|e| ReconcileError::Other(format!("error auto signing csr: {e}")))?;
            csr.status.get_or_insert_with(Default::default).certificate =
                Some(ByteString(pem.into_bytes()));
            let next = self.update_status(&csr, "updating signature").await?;
            tracing::info!(csr = %name, signer = %csr.spec.signer_name, ?ttl, "issued");
            Ok(next)
        })
    }
}

fn time_now() -> rudder_pki::OffsetDateTime {
    rudder_pki::OffsetDateTime::now_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    // signer_test.go's TestDuration.
    #[test]
    fn durations_as_upstream() {
        let ttl = Duration::from_secs(3600);
        assert_eq!(duration(None, ttl), ttl);
        assert_eq!(duration(Some(3599), ttl), Duration::from_secs(3599));
        assert_eq!(duration(Some(3601), ttl), ttl);
        assert_eq!(duration(Some(600), ttl), MIN_DURATION);
        assert_eq!(duration(Some(599), ttl), MIN_DURATION);
        assert_eq!(duration(Some(0), ttl), MIN_DURATION);
        assert_eq!(duration(Some(-1), ttl), MIN_DURATION);
        // A default below the floor: upstream's switch order decides.
        assert_eq!(
            duration(Some(3600), Duration::from_secs(60)),
            Duration::from_secs(60)
        );
        assert_eq!(duration(Some(30), Duration::from_secs(60)), MIN_DURATION);
    }
}
