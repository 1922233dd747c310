//! Upstream's csrcleaner (`pkg/controller/certificates/cleaner/cleaner.go`): every hour,
//! deletes requests that are issued for over an hour (or whose certificate expired), denied or
//! failed for over an hour, or pending for over a day.

use std::time::Duration;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams};

use super::has_certificate;
use crate::manager::Context;

const POLLING_INTERVAL: Duration = Duration::from_secs(3600);
const APPROVED_EXPIRATION: i64 = 3600;
const DENIED_EXPIRATION: i64 = 3600;
const PENDING_EXPIRATION: i64 = 24 * 3600;

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let csrs = cx.informers.get::<CertificateSigningRequest>();
    let api = Api::<CertificateSigningRequest>::all(cx.client.clone());
    tasks.spawn(async move {
        csrs.wait_synced().await;
        loop {
            let now = jiff::Timestamp::now();
            for csr in csrs.list_all() {
                if !should_delete(&csr, now) {
                    continue;
                }
                let name = csr.metadata.name.clone().unwrap_or_default();
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => tracing::info!(csr = %name, "cleaned up"),
                    Err(e) => tracing::info!("unable to delete CSR {name:?}: {e}"),
                }
            }
            tokio::time::sleep(POLLING_INTERVAL).await;
        }
    });
}

/// `isOlderThan`: a set time more than `secs` before `now`.
fn older_than(t: Option<&Time>, secs: i64, now: jiff::Timestamp) -> bool {
    t.is_some_and(|t| now.as_second() - t.0.as_second() > secs)
}

/// `isExpired`: the issued certificate's notAfter has passed.
fn certificate_expired(csr: &CertificateSigningRequest, now: jiff::Timestamp) -> bool {
    let Some(pem) = csr.status.as_ref().and_then(|s| s.certificate.as_ref()) else {
        return false;
    };
    let Some(der) = std::str::from_utf8(&pem.0)
        .ok()
        .and_then(|t| super::pem_block(t, "CERTIFICATE"))
    else {
        return false;
    };
    x509_parser::parse_x509_certificate(&der)
        .is_ok_and(|(_, c)| now.as_second() > c.validity().not_after.timestamp())
}

/// Upstream's `handle` conditions, any of which deletes the request.
pub fn should_delete(csr: &CertificateSigningRequest, now: jiff::Timestamp) -> bool {
    let conds = csr
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let issued = has_certificate(csr);
    conds.iter().any(|c| match c.type_.as_str() {
        "Approved" => {
            issued
                && (older_than(c.last_update_time.as_ref(), APPROVED_EXPIRATION, now)
                    || certificate_expired(csr, now))
        }
        "Denied" | "Failed" => older_than(c.last_update_time.as_ref(), DENIED_EXPIRATION, now),
        _ => false,
    }) || (conds.is_empty()
        && older_than(
            csr.metadata.creation_timestamp.as_ref(),
            PENDING_EXPIRATION,
            now,
        ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::certificates::v1::{
        CertificateSigningRequestCondition, CertificateSigningRequestStatus,
    };

    fn at(secs_ago: i64) -> Option<Time> {
        Some(Time(
            jiff::Timestamp::from_second(1_000_000 - secs_ago).unwrap(),
        ))
    }

    fn csr(created_ago: i64, cond: Option<(&str, i64)>, cert: bool) -> CertificateSigningRequest {
        let mut c = CertificateSigningRequest::default();
        c.metadata.creation_timestamp = at(created_ago);
        c.status = Some(CertificateSigningRequestStatus {
            conditions: cond.map(|(ty, ago)| {
                vec![CertificateSigningRequestCondition {
                    type_: ty.into(),
                    status: "True".into(),
                    last_update_time: at(ago),
                    ..Default::default()
                }]
            }),
            certificate: cert.then(|| k8s_openapi::ByteString(b"not a pem".to_vec())),
        });
        c
    }

    // cleaner_test.go's TestCleanerWithApprovedExpiredCSR table (minus the expired-certificate
    // rows, which need a real certificate).
    #[test]
    fn retention_as_upstream() {
        let now = jiff::Timestamp::from_second(1_000_000).unwrap();
        let cases = [
            (
                "no delete approved not passed deadline",
                csr(0, Some(("Approved", 300)), true),
                false,
            ),
            (
                "delete approved passed deadline",
                csr(0, Some(("Approved", 5400)), true),
                true,
            ),
            (
                "no delete approved not issued",
                csr(0, Some(("Approved", 5400)), false),
                false,
            ),
            (
                "no delete denied not passed deadline",
                csr(0, Some(("Denied", 300)), false),
                false,
            ),
            (
                "delete denied passed deadline",
                csr(0, Some(("Denied", 5400)), false),
                true,
            ),
            (
                "delete failed passed deadline",
                csr(0, Some(("Failed", 5400)), false),
                true,
            ),
            (
                "no delete pending not passed deadline",
                csr(300, None, false),
                false,
            ),
            (
                "delete pending passed deadline",
                csr(25 * 3600, None, false),
                true,
            ),
        ];
        for (name, c, want) in cases {
            assert_eq!(should_delete(&c, now), want, "{name}");
        }
    }
}
