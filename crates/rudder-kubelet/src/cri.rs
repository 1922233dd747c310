//! The CRI client: runtime.v1 over the runtime's unix socket (containerd 1.6 serves it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

pub use k8s_cri::v1 as api;

#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("cannot connect to the container runtime at {path}: {source}")]
    Connect {
        path: PathBuf,
        source: tonic::transport::Error,
    },
    #[error("container runtime endpoint {0:?} is not a unix socket (unix:///path)")]
    Endpoint(String),
    #[error("{op}: {status}")]
    Rpc {
        op: &'static str,
        status: tonic::Status,
    },
}

impl CriError {
    pub fn rpc(op: &'static str) -> impl FnOnce(tonic::Status) -> CriError {
        move |status| CriError::Rpc { op, status }
    }

    /// The gRPC code of a failed call (`NotFound` for a missing image, container or sandbox).
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            CriError::Rpc { status, .. } => Some(status.code()),
            _ => None,
        }
    }

    pub fn message(&self) -> String {
        match self {
            CriError::Rpc { status, .. } => status.message().to_string(),
            other => other.to_string(),
        }
    }
}

/// A connected CRI client; cheap to clone (tonic clients share one HTTP/2 connection).
#[derive(Clone)]
pub struct Cri {
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    socket: PathBuf,
}

/// `unix:///run/x.sock` or a bare path, as kubelet's `--container-runtime-endpoint` takes it.
pub fn socket_path(endpoint: &str) -> Result<PathBuf, CriError> {
    if let Some(p) = endpoint.strip_prefix("unix://") {
        return Ok(PathBuf::from(p));
    }
    if endpoint.starts_with('/') {
        return Ok(PathBuf::from(endpoint));
    }
    Err(CriError::Endpoint(endpoint.to_string()))
}

impl Cri {
    /// Connects lazily: the first call dials the socket, and a dropped connection is redialled
    /// by the channel, so a runtime restart does not need a new client.
    pub fn connect(socket: &Path) -> Result<Cri, CriError> {
        let path = socket.to_path_buf();
        let dial = path.clone();
        // The URI is a placeholder the connector ignores; tonic needs a valid one.
        let channel = Endpoint::from_static("http://cri.local")
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                let dial = dial.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(dial).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(stream))
                }
            }));
        // CRI messages such as ListContainers on a busy node exceed tonic's 4 MiB default; the
        // kubelet allows 16 MiB.
        const MAX: usize = 16 << 20;
        Ok(Cri {
            runtime: RuntimeServiceClient::new(channel.clone())
                .max_decoding_message_size(MAX)
                .max_encoding_message_size(MAX),
            images: ImageServiceClient::new(channel)
                .max_decoding_message_size(MAX)
                .max_encoding_message_size(MAX),
            socket: path,
        })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn runtime(&self) -> RuntimeServiceClient<Channel> {
        self.runtime.clone()
    }

    pub fn images(&self) -> ImageServiceClient<Channel> {
        self.images.clone()
    }

    pub async fn version(&self) -> Result<cri::VersionResponse, CriError> {
        let r = self
            .runtime()
            .version(cri::VersionRequest {
                version: "v1".into(),
            })
            .await
            .map_err(CriError::rpc("Version"))?;
        Ok(r.into_inner())
    }

    pub async fn status(&self) -> Result<cri::RuntimeStatus, CriError> {
        let r = self
            .runtime()
            .status(cri::StatusRequest { verbose: false })
            .await
            .map_err(CriError::rpc("Status"))?;
        Ok(r.into_inner().status.unwrap_or_default())
    }

    /// Waits until the runtime answers `Version` (a freshly started containerd takes ~0.15 s).
    pub async fn wait_ready(&self, limit: Duration) -> Result<cri::VersionResponse, CriError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match self.version().await {
                Ok(v) => return Ok(v),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    pub async fn list_sandboxes(&self) -> Result<Vec<cri::PodSandbox>, CriError> {
        let r = self
            .runtime()
            .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
            .await
            .map_err(CriError::rpc("ListPodSandbox"))?;
        Ok(r.into_inner().items)
    }

    pub async fn list_containers(&self) -> Result<Vec<cri::Container>, CriError> {
        let r = self
            .runtime()
            .list_containers(cri::ListContainersRequest { filter: None })
            .await
            .map_err(CriError::rpc("ListContainers"))?;
        Ok(r.into_inner().containers)
    }

    pub async fn container_status(&self, id: &str) -> Result<cri::ContainerStatus, CriError> {
        let r = self
            .runtime()
            .container_status(cri::ContainerStatusRequest {
                container_id: id.to_string(),
                verbose: false,
            })
            .await
            .map_err(CriError::rpc("ContainerStatus"))?;
        Ok(r.into_inner().status.unwrap_or_default())
    }

    pub async fn sandbox_status(&self, id: &str) -> Result<cri::PodSandboxStatus, CriError> {
        let r = self
            .runtime()
            .pod_sandbox_status(cri::PodSandboxStatusRequest {
                pod_sandbox_id: id.to_string(),
                verbose: false,
            })
            .await
            .map_err(CriError::rpc("PodSandboxStatus"))?;
        Ok(r.into_inner().status.unwrap_or_default())
    }

    /// The running (or most recent) container of a pod by its container name: what `logs`,
    /// `exec` and `attach` address.
    pub async fn find_container(
        &self,
        pod_uid: &str,
        name: &str,
    ) -> Result<Option<cri::Container>, CriError> {
        let mut found: Vec<cri::Container> = self
            .list_containers()
            .await?
            .into_iter()
            .filter(|c| {
                c.labels.get(labels::POD_UID).map(String::as_str) == Some(pod_uid)
                    && c.labels.get(labels::CONTAINER_NAME).map(String::as_str) == Some(name)
            })
            .collect();
        found.sort_by_key(|c| {
            (
                c.state == cri::ContainerState::ContainerRunning as i32,
                c.created_at,
            )
        });
        Ok(found.pop())
    }
}

/// The labels the kubelet puts on sandboxes and containers (upstream's names, so tools such as
/// crictl show them as for upstream pods).
pub mod labels {
    pub const POD_NAME: &str = "io.kubernetes.pod.name";
    pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
    pub const POD_UID: &str = "io.kubernetes.pod.uid";
    pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
}
