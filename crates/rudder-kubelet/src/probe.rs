//! Probe and hook transports: HTTP(S) GET (HTTP/1.1 as the kubelet's prober sends it; the
//! container's certificate is not verified, as upstream) and TCP connect.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::HTTPHeader;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

fn addr_of(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Who sends a GET: upstream's `kube-<fragment>/<major>.<minor>` user agents.
#[derive(Debug, Clone, Copy)]
pub enum Agent {
    Probe,
    Lifecycle,
}

impl Agent {
    fn user_agent(self) -> &'static str {
        match self {
            Agent::Probe => "kube-probe/1.37",
            Agent::Lifecycle => "kube-lifecycle/1.37",
        }
    }
}

/// Sends `GET path` and returns the status code.
pub async fn http_get(
    host: &str,
    port: u16,
    path: &str,
    headers: &[HTTPHeader],
    https: bool,
    agent: Agent,
) -> Result<u16, String> {
    let scheme = if https { "https" } else { "http" };
    let addr = addr_of(host, port);
    let fail = |e: &dyn std::fmt::Display| format!("Get \"{scheme}://{addr}{path}\": {e}");
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| fail(&e))?;
    if !https {
        return request(tcp, &addr, path, headers, agent).await;
    }
    let name = rustls_pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| fail(&e))?
        .to_owned();
    let tls = tokio_rustls::TlsConnector::from(insecure_tls().map_err(|e| fail(&e))?)
        .connect(name, tcp)
        .await
        .map_err(|e| fail(&e))?;
    request(tls, &addr, path, headers, agent).await
}

async fn request<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    addr: &str,
    path: &str,
    headers: &[HTTPHeader],
    agent: Agent,
) -> Result<u16, String> {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    req.push_str(&request_headers(headers, agent));
    req.push_str("\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 1024];
    let mut got = 0;
    while got < 12 {
        let n = stream
            .read(&mut buf[got..])
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let head = String::from_utf8_lossy(&buf[..got]);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("malformed HTTP response from {addr}"))
}

/// The user's headers, with upstream's User-Agent and Accept unless the user set them.
fn request_headers(headers: &[HTTPHeader], agent: Agent) -> String {
    let has = |name: &str| headers.iter().any(|h| h.name.eq_ignore_ascii_case(name));
    let mut out = String::new();
    if !has("User-Agent") {
        out.push_str(&format!("User-Agent: {}\r\n", agent.user_agent()));
    }
    if !has("Accept") {
        out.push_str("Accept: */*\r\n");
    }
    for h in headers {
        out.push_str(&format!("{}: {}\r\n", h.name, h.value));
    }
    out
}

fn insecure_tls() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    rudder_pki::insecure::any_server_client_config(None).map(Arc::new)
}

pub async fn tcp_connect(host: &str, port: u16, timeout: Duration) -> Result<(), String> {
    let addr = addr_of(host, port);
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("dial tcp {addr}: {e}")),
        Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_and_accept_unless_the_user_sets_them() {
        assert_eq!(
            request_headers(&[], Agent::Lifecycle),
            "User-Agent: kube-lifecycle/1.37\r\nAccept: */*\r\n"
        );
        let mine = [HTTPHeader {
            name: "user-agent".into(),
            value: "mine".into(),
        }];
        assert_eq!(
            request_headers(&mine, Agent::Probe),
            "Accept: */*\r\nuser-agent: mine\r\n"
        );
    }
}
