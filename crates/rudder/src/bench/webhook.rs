//! `rudder bench webhook`: what an admission webhook costs a write. ConfigMap creates/s
//! against `rudder server` without webhooks, then with a validating webhook that allows
//! everything (an HTTPS server in this process on loopback, its certificate the server's own
//! serving certificate, `caBundle` the cluster CA), so the difference is the round trip.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;

use super::api::{connect, rate, request, start};
use super::machine_summary;

#[derive(clap::Args)]
pub struct WebhookBenchArgs {
    /// Seconds each create workload runs.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

/// Serves `allowed: true` to every AdmissionReview, over TLS with the given certificate.
async fn noop_webhook(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<u16> {
    let certs =
        rustls_pki_types::CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(key)?;
    let mut cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let body = req.into_body().collect().await?.to_bytes();
                        let review: serde_json::Value =
                            serde_json::from_slice(&body).unwrap_or_default();
                        let answer = serde_json::json!({
                            "apiVersion": "admission.k8s.io/v1",
                            "kind": "AdmissionReview",
                            "response": {"uid": review["request"]["uid"], "allowed": true},
                        });
                        anyhow::Ok(hyper::Response::new(Full::new(Bytes::from(
                            answer.to_string(),
                        ))))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    Ok(port)
}

pub async fn run(args: WebhookBenchArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let (s, _) = start("redb").await?;
    let dur = Duration::from_secs(args.seconds);
    let before_1 = rate(&s, 1, dur, None).await?;
    let before_32 = rate(&s, 32, dur, None).await?;
    eprintln!("  without webhooks: {before_1:.0}/s (1), {before_32:.0}/s (32)");
    let tls = s.data_dir().join("server/tls");
    let port = noop_webhook(
        &tls.join("serving-kube-apiserver.crt"),
        &tls.join("serving-kube-apiserver.key"),
    )
    .await?;
    let ca = std::fs::read(tls.join("ca.crt")).context("reading the cluster CA")?;
    let config = serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "bench-noop"},
        "webhooks": [{
            "name": "noop.bench.rudder.dev",
            "clientConfig": {
                "url": format!("https://127.0.0.1:{port}/"),
                "caBundle": base64::engine::general_purpose::STANDARD.encode(&ca),
            },
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": ["configmaps"]}],
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        }],
    });
    let mut c = connect(s.addr, s.tls.clone()).await?;
    let (code, body) = request(
        &mut c,
        "POST",
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
        &s.token,
        Some(Bytes::from(config.to_string())),
    )
    .await?;
    if code >= 300 {
        bail!(
            "creating the webhook configuration: {code} {}",
            String::from_utf8_lossy(&body)
        );
    }
    let after_1 = rate(&s, 1, dur, None).await?;
    let after_32 = rate(&s, 32, dur, None).await?;
    eprintln!("  with a no-op webhook: {after_1:.0}/s (1), {after_32:.0}/s (32)");
    println!("Machine: {}", machine_summary());
    println!("Command: rudder bench webhook --seconds {}", args.seconds);
    println!();
    println!("| ConfigMap creates/s (redb) | no webhook | one no-op validating webhook | added per create |");
    println!("|---|---|---|---|");
    for (label, b, a) in [
        ("1 connection", before_1, after_1),
        ("32 connections", before_32, after_32),
    ] {
        println!(
            "| {label} | {b:.0} | {a:.0} ({:.2}×) | {:.2} ms |",
            a / b,
            (1.0 / a - 1.0 / b) * 1e3 * if label.starts_with('1') { 1.0 } else { 32.0 }
        );
    }
    Ok(())
}
