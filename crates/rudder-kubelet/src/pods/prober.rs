//! Liveness, readiness and startup probes (upstream's prober manager): one task per container
//! instance and probe kind, with every timing field and threshold; results feed the pod's
//! readiness, failures restart containers as the restart policy says.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::runtime::pod_uid;
use super::status::{PodRuntime, RunState};
use super::PodManager;
use crate::cri::api as cri;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Liveness,
    Readiness,
    Startup,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
            Kind::Startup => "Startup",
        }
    }
}

/// (pod uid, container name, kind).
type ProbeKey = (String, String, Kind);

/// Probe tasks by key → the container id they probe.
#[derive(Default)]
pub struct Workers {
    tasks: Mutex<HashMap<ProbeKey, (String, tokio::task::JoinHandle<()>)>>,
}

impl Workers {
    pub fn stop_pod(&self, uid: &str) {
        if let Ok(mut t) = self.tasks.lock() {
            t.retain(|k, v| {
                if k.0 == uid {
                    v.1.abort();
                    false
                } else {
                    true
                }
            });
        }
    }
}

fn port_of(pod: &Pod, c: &Container, port: &IntOrString) -> Result<u16, String> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).map_err(|_| format!("invalid port {p}")),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port as u16)
            .or_else(|| name.parse().ok())
            .ok_or_else(|| {
                format!(
                    "unable to find port {name:?} in container {:?} of pod {:?}",
                    c.name,
                    pod.metadata.name.as_deref().unwrap_or_default()
                )
            }),
    }
}

/// Upstream's gRPC health check request/response (grpc.health.v1).
#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    status: i32,
}

async fn grpc_check(addr: String, service: String) -> Result<(), String> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?;
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("failed to connect service {addr:?} within 1s: {e}"))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| e.to_string())?;
    let path = http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Check");
    let codec: tonic_prost::ProstCodec<HealthCheckRequest, HealthCheckResponse> =
        Default::default();
    let resp = grpc
        .unary(
            tonic::Request::new(HealthCheckRequest { service }),
            path,
            codec,
        )
        .await
        .map_err(|e| format!("health rpc probe failed: {}", e.message()))?;
    // SERVING = 1.
    if resp.get_ref().status == 1 {
        Ok(())
    } else {
        Err(format!(
            "service unhealthy (responded with {:?})",
            match resp.get_ref().status {
                2 => "NOT_SERVING",
                3 => "SERVICE_UNKNOWN",
                _ => "UNKNOWN",
            }
        ))
    }
}

impl PodManager {
    /// One probe: Ok, or the failure text as upstream words it in the Unhealthy event.
    async fn probe_once(
        &self,
        pod: &Pod,
        c: &Container,
        container_id: &str,
        p: &Probe,
        pod_ip: Option<&str>,
    ) -> Result<(), String> {
        let timeout = Duration::from_secs(p.timeout_seconds.unwrap_or(1).max(1) as u64);
        if let Some(e) = &p.exec {
            let cmd = e.command.clone().unwrap_or_default();
            let r = self
                .cri
                .runtime()
                .exec_sync(cri::ExecSyncRequest {
                    container_id: container_id.to_string(),
                    cmd: cmd.clone(),
                    timeout: timeout.as_secs() as i64,
                })
                .await;
            return match r {
                Ok(r) => {
                    let r = r.into_inner();
                    if r.exit_code == 0 {
                        Ok(())
                    } else {
                        let mut out = String::from_utf8_lossy(&r.stdout).into_owned();
                        out.push_str(&String::from_utf8_lossy(&r.stderr));
                        Err(out)
                    }
                }
                Err(s) if s.code() == tonic::Code::DeadlineExceeded => {
                    Err(format!("command {:?} timed out", cmd.join(" ")))
                }
                Err(s) => Err(s.message().to_string()),
            };
        }
        let ip = pod_ip.unwrap_or("127.0.0.1").to_string();
        if let Some(h) = &p.http_get {
            let port = port_of(pod, c, &h.port)?;
            let host = h.host.clone().filter(|h| !h.is_empty()).unwrap_or(ip);
            let path = h.path.clone().unwrap_or_else(|| "/".into());
            let https = h.scheme.as_deref() == Some("HTTPS");
            let fut = crate::probe::http_get(
                &host,
                port,
                &path,
                h.http_headers.as_deref().unwrap_or_default(),
                https,
                crate::probe::Agent::Probe,
            );
            return match tokio::time::timeout(timeout, fut).await {
                Ok(Ok(code)) if (200..400).contains(&code) => Ok(()),
                Ok(Ok(code)) => Err(format!("HTTP probe failed with statuscode: {code}")),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(format!(
                    "Get \"http://{host}:{port}{path}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                )),
            };
        }
        if let Some(t) = &p.tcp_socket {
            let port = port_of(pod, c, &t.port)?;
            let host = t.host.clone().filter(|h| !h.is_empty()).unwrap_or(ip);
            return crate::probe::tcp_connect(&host, port, timeout).await;
        }
        if let Some(g) = &p.grpc {
            let addr = format!("{ip}:{}", g.port);
            let service = g.service.clone().unwrap_or_default();
            return match tokio::time::timeout(timeout, grpc_check(addr, service)).await {
                Ok(r) => r,
                Err(_) => Err(format!(
                    "timeout: health rpc did not complete within {}s",
                    timeout.as_secs()
                )),
            };
        }
        Ok(())
    }

    /// Starts the probe tasks of running containers (and stops those of containers that are
    /// gone or replaced).
    pub(super) fn sync_probes(self: &Arc<Self>, pod: &Pod, rt: &PodRuntime) {
        let uid = pod_uid(pod);
        let spec = pod.spec.clone().unwrap_or_default();
        let pod_ip = self.pod_ip(pod, rt.ready_sandbox().and_then(|s| s.ip.as_deref()));
        let containers: Vec<Container> = spec
            .containers
            .iter()
            .chain(
                spec.init_containers
                    .iter()
                    .flatten()
                    .filter(|c| super::status::is_restartable_init(c)),
            )
            .cloned()
            .collect();
        let Ok(mut tasks) = self.probe_workers.tasks.lock() else {
            return;
        };
        for c in containers {
            let running = rt
                .latest(&c.name)
                .filter(|r| r.state == RunState::Running)
                .map(|r| r.id.clone());
            for (kind, probe) in [
                (Kind::Startup, c.startup_probe.clone()),
                (Kind::Readiness, c.readiness_probe.clone()),
                (Kind::Liveness, c.liveness_probe.clone()),
            ] {
                let key = (uid.clone(), c.name.clone(), kind);
                let Some(probe) = probe else { continue };
                match (&running, tasks.get(&key)) {
                    (Some(id), Some((cur, _))) if cur == id => {}
                    (Some(id), _) => {
                        if let Some((_, h)) = tasks.remove(&key) {
                            h.abort();
                        }
                        self.reset_probe(&uid, &c.name, kind);
                        let this = self.clone();
                        let (pod, c, id2, ip) =
                            (pod.clone(), c.clone(), id.clone(), pod_ip.clone());
                        let h = tokio::spawn(async move {
                            this.probe_loop(pod, c, id2, kind, probe, ip).await
                        });
                        tasks.insert(key, (id.clone(), h));
                    }
                    (None, Some(_)) => {
                        if let Some((_, h)) = tasks.remove(&key) {
                            h.abort();
                        }
                        self.reset_probe(&uid, &c.name, kind);
                    }
                    (None, None) => {}
                }
            }
        }
    }

    fn reset_probe(&self, uid: &str, name: &str, kind: Kind) {
        if let Ok(mut p) = self.probes.lock() {
            let e = p.entry((uid.to_string(), name.to_string())).or_default();
            match kind {
                Kind::Readiness => e.0 = Some(false),
                Kind::Startup => e.1 = Some(false),
                Kind::Liveness => {}
            }
        }
    }

    fn set_probe(&self, uid: &str, name: &str, kind: Kind, ok: bool) -> bool {
        let Ok(mut p) = self.probes.lock() else {
            return false;
        };
        let e = p.entry((uid.to_string(), name.to_string())).or_default();
        let slot = match kind {
            Kind::Readiness => &mut e.0,
            Kind::Startup => &mut e.1,
            Kind::Liveness => return false,
        };
        let changed = *slot != Some(ok);
        *slot = Some(ok);
        changed
    }

    pub(super) fn started(&self, uid: &str, c: &Container) -> bool {
        c.startup_probe.is_none()
            || self
                .probes
                .lock()
                .ok()
                .and_then(|p| p.get(&(uid.to_string(), c.name.clone())).and_then(|r| r.1))
                .unwrap_or(false)
    }

    async fn probe_loop(
        self: Arc<Self>,
        pod: Pod,
        c: Container,
        id: String,
        kind: Kind,
        p: Probe,
        pod_ip: Option<String>,
    ) {
        let uid = pod_uid(&pod);
        let period = Duration::from_secs(p.period_seconds.unwrap_or(10).max(1) as u64);
        let success_threshold = p.success_threshold.unwrap_or(1).max(1);
        let failure_threshold = p.failure_threshold.unwrap_or(3).max(1);
        tokio::time::sleep(Duration::from_secs(
            p.initial_delay_seconds.unwrap_or(0).max(0) as u64,
        ))
        .await;
        let (mut successes, mut failures) = (0, 0);
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // Liveness and readiness wait for the startup probe (upstream).
            if kind != Kind::Startup && !self.started(&uid, &c) {
                continue;
            }
            if kind == Kind::Startup && self.started(&uid, &c) {
                return;
            }
            match self.probe_once(&pod, &c, &id, &p, pod_ip.as_deref()).await {
                Ok(()) => {
                    failures = 0;
                    successes += 1;
                    if successes >= success_threshold && self.set_probe(&uid, &c.name, kind, true) {
                        self.wake(&uid);
                    }
                }
                Err(msg) => {
                    successes = 0;
                    failures += 1;
                    let r = super::sync::container_ref_pub(&pod, &c.name);
                    self.recorder.event_for(
                        r.clone(),
                        pod.metadata.namespace.clone().unwrap_or_default(),
                        "Warning",
                        "Unhealthy",
                        format!("{} probe failed: {}", kind.name(), msg.trim_end()),
                    );
                    if failures < failure_threshold {
                        continue;
                    }
                    match kind {
                        Kind::Readiness => {
                            if self.set_probe(&uid, &c.name, kind, false) {
                                self.wake(&uid);
                            }
                        }
                        Kind::Liveness | Kind::Startup => {
                            let what = if kind == Kind::Liveness {
                                "liveness"
                            } else {
                                "startup"
                            };
                            self.recorder.event_for(
                                r,
                                pod.metadata.namespace.clone().unwrap_or_default(),
                                "Normal",
                                "Killing",
                                format!(
                                    "Container {} failed {what} probe, will be restarted",
                                    c.name
                                ),
                            );
                            let grace = p
                                .termination_grace_period_seconds
                                .or(pod
                                    .spec
                                    .as_ref()
                                    .and_then(|s| s.termination_grace_period_seconds))
                                .unwrap_or(30);
                            let _ = self
                                .cri
                                .runtime()
                                .stop_container(cri::StopContainerRequest {
                                    container_id: id.clone(),
                                    timeout: grace,
                                })
                                .await;
                            self.wake(&uid);
                            return;
                        }
                    }
                }
            }
        }
    }
}
