//! exec, attach and port-forward: the kubelet asks CRI for a stream URL on containerd's
//! streaming server and splices the caller's upgraded connection to it, as upstream's kubelet
//! proxies to the CRI streaming server. containerd 1.6 speaks SPDY/3.1 (remotecommand v1–v4,
//! portforward) and WebSocket up to v4. kubectl's port-forward tunnel (SPDY/3.1 inside
//! WebSocket, its default since 1.31) is unwrapped here onto a SPDY connection to containerd.
//! kubectl's v5 remotecommand over WebSocket (its default for exec, attach and cp) is
//! translated onto SPDY v4 to containerd (`v5.rs`).

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Request, StatusCode};

use super::{v5, Ctx};
use crate::cri::api as cri;

fn status(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, msg.into()).into_response()
}

fn query_pairs(req: &Request<Body>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn flag(q: &[(String, String)], k: &str) -> bool {
    q.iter()
        .any(|(key, v)| key == k && (v == "true" || v == "1"))
}

fn websocket_protocols(h: &HeaderMap) -> Option<Vec<String>> {
    let ws = h
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    ws.then(|| {
        h.get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|p| p.trim().to_string())
            .collect()
    })
}

/// Port-forward over WebSocket is only the SPDY tunnel; anything else is refused so that the
/// client falls back to SPDY.
fn refuse_websocket(h: &HeaderMap) -> Option<Response> {
    let protocols = websocket_protocols(h)?;
    (!protocols.iter().any(|p| p == PORT_FORWARD_TUNNEL_PROTOCOL)).then(|| {
        status(
            StatusCode::BAD_REQUEST,
            format!(
                "port-forward over WebSocket needs the {PORT_FORWARD_TUNNEL_PROTOCOL} subprotocol"
            ),
        )
    })
}

/// Opens an upgraded connection to a CRI stream URL with `headers` (the upgrade offer), or
/// the runtime's refusal as this server's response.
async fn upgrade_runtime(
    url: &str,
    method: http::Method,
    headers: &HeaderMap,
) -> Result<(Response, hyper::upgrade::OnUpgrade), Response> {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return Err(status(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("bad stream URL {url}"),
        ));
    };
    let host = uri.host().unwrap_or("127.0.0.1").to_string();
    let port = uri.port_u16().unwrap_or(80);
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| {
            status(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("dial {host}:{port}: {e}"),
            )
        })?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .map_err(|e| status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let mut out = Request::builder().method(method).uri(path);
    if let Some(h) = out.headers_mut() {
        for (k, v) in headers {
            if matches!(
                k.as_str(),
                "host" | "authorization" | "content-length" | "transfer-encoding"
            ) {
                continue;
            }
            h.append(k.clone(), v.clone());
        }
        if let Ok(v) = http::HeaderValue::from_str(&format!("{host}:{port}")) {
            h.insert(http::header::HOST, v);
        }
    }
    let out = out
        .body(Body::empty())
        .map_err(|_| status(StatusCode::INTERNAL_SERVER_ERROR, "request"))?;
    let mut resp = sender
        .send_request(out)
        .await
        .map_err(|e| status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let code = resp.status();
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err((code, body).into_response());
    }
    let runtime_upgrade = hyper::upgrade::on(&mut resp);
    let mut builder = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
    if let Some(h) = builder.headers_mut() {
        for (k, v) in resp.headers() {
            if matches!(k.as_str(), "content-length" | "transfer-encoding" | "date") {
                continue;
            }
            h.append(k.clone(), v.clone());
        }
    }
    let response = builder
        .body(Body::empty())
        .map_err(|_| status(StatusCode::INTERNAL_SERVER_ERROR, "response"))?;
    Ok((response, runtime_upgrade))
}

/// Forwards the upgrade request to a CRI stream URL and splices the two connections.
async fn splice_to(url: &str, mut req: Request<Body>) -> Response {
    let client_upgrade = hyper::upgrade::on(&mut req);
    let (response, runtime_upgrade) =
        match upgrade_runtime(url, req.method().clone(), req.headers()).await {
            Ok(x) => x,
            Err(r) => return r,
        };
    tokio::spawn(async move {
        let (Ok(a), Ok(b)) = (client_upgrade.await, runtime_upgrade.await) else {
            return;
        };
        let mut a = hyper_util::rt::TokioIo::new(a);
        let mut b = hyper_util::rt::TokioIo::new(b);
        let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
    });
    response
}

/// kubectl's port-forward tunnel (`SPDY/3.1+portforward.k8s.io`, upstream's
/// PortForwardWebsockets): SPDY/3.1 frames carried as the payload of binary WebSocket
/// messages. containerd serves port-forward over SPDY only, so the kubelet opens a SPDY
/// upgrade to it and carries the bytes between the two framings, as the API server's
/// StreamTunnelingProxy does upstream; SPDY itself passes through untouched.
async fn tunnel_spdy_over_websocket(url: &str, req: Request<Body>) -> Response {
    websocket_to_spdy(
        url,
        req,
        PORT_FORWARD_TUNNEL_PROTOCOL,
        PORT_FORWARD_PROTOCOL,
        carry_websocket_payloads,
    )
    .await
}

/// Answers a WebSocket upgrade with `ws_protocol` once containerd accepted a SPDY/3.1 upgrade
/// to `url` with `spdy_protocol`, then runs `session` over the two connections.
async fn websocket_to_spdy<F, Fut>(
    url: &str,
    mut req: Request<Body>,
    ws_protocol: &'static str,
    spdy_protocol: &'static str,
    session: F,
) -> Response
where
    F: FnOnce(
            tokio_tungstenite::WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>,
            hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>,
        ) -> Fut
        + Send
        + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let Some(key) = req.headers().get(http::header::SEC_WEBSOCKET_KEY).cloned() else {
        return status(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
    };
    let client_upgrade = hyper::upgrade::on(&mut req);
    let mut offer = HeaderMap::new();
    offer.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    offer.insert(
        http::header::UPGRADE,
        http::HeaderValue::from_static("SPDY/3.1"),
    );
    offer.insert(
        "x-stream-protocol-version",
        http::HeaderValue::from_static(spdy_protocol),
    );
    let (_, runtime_upgrade) = match upgrade_runtime(url, http::Method::POST, &offer).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "websocket")
        .header(http::header::SEC_WEBSOCKET_ACCEPT, accept)
        .header(http::header::SEC_WEBSOCKET_PROTOCOL, ws_protocol)
        .body(Body::empty());
    let Ok(response) = response else {
        return status(StatusCode::INTERNAL_SERVER_ERROR, "response");
    };
    tokio::spawn(async move {
        let (Ok(client), Ok(runtime)) = (client_upgrade.await, runtime_upgrade.await) else {
            return;
        };
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            hyper_util::rt::TokioIo::new(client),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        session(ws, hyper_util::rt::TokioIo::new(runtime)).await;
    });
    response
}

/// exec/attach: kubectl's WebSocket v5 is translated onto SPDY v4 to containerd; every other
/// offer (SPDY, WebSocket up to v4) goes to containerd as it came.
async fn remotecommand(url: &str, req: Request<Body>, streams: v5::Streams) -> Response {
    let v5 = websocket_protocols(req.headers()).is_some_and(|p| p.iter().any(|p| p == v5::V5));
    if !v5 {
        return splice_to(url, req).await;
    }
    websocket_to_spdy(url, req, v5::V5, v5::V4, move |ws, raw| {
        v5::translate(ws, raw, streams)
    })
    .await
}

fn requested_streams(q: &[(String, String)]) -> v5::Streams {
    v5::Streams {
        stdin: flag(q, "stdin") || flag(q, "input"),
        stdout: flag(q, "stdout") || flag(q, "output"),
        stderr: flag(q, "stderr") || flag(q, "error"),
        tty: flag(q, "tty"),
    }
}

const PORT_FORWARD_PROTOCOL: &str = "portforward.k8s.io";
const PORT_FORWARD_TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// Binary message payloads from `ws` become bytes on `raw` and bytes from `raw` become binary
/// messages (upstream's TunnelingConnection), until either side ends.
async fn carry_websocket_payloads<W, R>(ws: tokio_tungstenite::WebSocketStream<W>, raw: R)
where
    W: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    R: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::Message;

    let (mut ws_tx, mut ws_rx) = ws.split();
    let (mut raw_rx, mut raw_tx) = tokio::io::split(raw);
    let inbound = async {
        while let Some(Ok(msg)) = ws_rx.next().await {
            match msg {
                Message::Binary(b) if raw_tx.write_all(&b).await.is_err() => break,
                Message::Close(_) => break,
                // Pings are answered by tungstenite; text is not part of the tunnel.
                _ => {}
            }
        }
        let _ = raw_tx.shutdown().await;
    };
    let outbound = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match raw_rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if ws_tx
                        .send(Message::Binary(buf[..n].to_vec().into()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        let _ = ws_tx.send(v5::normal_closure()).await;
    };
    // Either direction ending ends the tunnel: SPDY has its own stream-level half-close, so
    // a closed transport in one direction means the session is over.
    tokio::select! {
        _ = inbound => {}
        _ = outbound => {}
    }
}

async fn running_container(
    ctx: &Ctx,
    ns: &str,
    pod: &str,
    container: &str,
) -> Result<String, Response> {
    let Some(p) = ctx.pod(ns, pod) else {
        return Err(status(
            StatusCode::NOT_FOUND,
            format!("pod {ns}/{pod} not found"),
        ));
    };
    let uid = p.metadata.uid.clone().unwrap_or_default();
    let instances = ctx.containers(&uid, container).await?;
    instances
        .into_iter()
        .find(|c| c.state == cri::ContainerState::ContainerRunning as i32)
        .map(|c| c.id)
        .ok_or_else(|| {
            status(
                StatusCode::BAD_REQUEST,
                format!("container {container} is not running"),
            )
        })
}

pub(super) async fn exec(
    State(ctx): State<Ctx>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    req: Request<Body>,
) -> Response {
    let id = match running_container(&ctx, &ns, &pod, &container).await {
        Ok(id) => id,
        Err(r) => return r,
    };
    let q = query_pairs(&req);
    let cmd: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if cmd.is_empty() {
        return status(
            StatusCode::BAD_REQUEST,
            "you must specify at least 1 command",
        );
    }
    let streams = requested_streams(&q);
    let r = ctx
        .cri
        .runtime()
        .exec(cri::ExecRequest {
            container_id: id,
            cmd,
            tty: streams.tty,
            stdin: streams.stdin,
            stdout: streams.stdout,
            stderr: streams.stderr,
        })
        .await;
    match r {
        Ok(r) => remotecommand(&r.into_inner().url, req, streams).await,
        Err(e) => status(StatusCode::INTERNAL_SERVER_ERROR, e.message().to_string()),
    }
}

pub(super) async fn attach(
    State(ctx): State<Ctx>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    req: Request<Body>,
) -> Response {
    let id = match running_container(&ctx, &ns, &pod, &container).await {
        Ok(id) => id,
        Err(r) => return r,
    };
    let q = query_pairs(&req);
    let streams = requested_streams(&q);
    let r = ctx
        .cri
        .runtime()
        .attach(cri::AttachRequest {
            container_id: id,
            stdin: streams.stdin,
            tty: streams.tty,
            stdout: streams.stdout,
            stderr: streams.stderr,
        })
        .await;
    match r {
        Ok(r) => remotecommand(&r.into_inner().url, req, streams).await,
        Err(e) => status(StatusCode::INTERNAL_SERVER_ERROR, e.message().to_string()),
    }
}

pub(super) async fn port_forward(
    State(ctx): State<Ctx>,
    Path((ns, pod)): Path<(String, String)>,
    req: Request<Body>,
) -> Response {
    if let Some(r) = refuse_websocket(req.headers()) {
        return r;
    }
    let Some(p) = ctx.pod(&ns, &pod) else {
        return status(StatusCode::NOT_FOUND, format!("pod {ns}/{pod} not found"));
    };
    let uid = p.metadata.uid.clone().unwrap_or_default();
    let sandbox = match ctx.cri.list_sandboxes().await {
        Ok(s) => s.into_iter().find(|s| {
            s.labels
                .get(crate::cri::labels::POD_UID)
                .map(String::as_str)
                == Some(uid.as_str())
                && s.state == cri::PodSandboxState::SandboxReady as i32
        }),
        Err(e) => return status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let Some(sandbox) = sandbox else {
        return status(
            StatusCode::BAD_REQUEST,
            format!("pod {pod} has no running sandbox"),
        );
    };
    let q: HashMap<String, String> = query_pairs(&req).into_iter().collect();
    let ports: Vec<i32> = q
        .get("ports")
        .map(|p| p.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_default();
    match ctx
        .cri
        .runtime()
        .port_forward(cri::PortForwardRequest {
            pod_sandbox_id: sandbox.id,
            port: ports,
        })
        .await
    {
        Ok(r) if websocket_protocols(req.headers()).is_some() => {
            tunnel_spdy_over_websocket(&r.into_inner().url, req).await
        }
        Ok(r) => splice_to(&r.into_inner().url, req).await,
        Err(e) => status(StatusCode::INTERNAL_SERVER_ERROR, e.message().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_forward_websocket_is_the_spdy_tunnel_only() {
        let mut h = HeaderMap::new();
        h.insert(http::header::UPGRADE, "websocket".parse().unwrap());
        h.insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            "SPDY/3.1+portforward.k8s.io".parse().unwrap(),
        );
        assert!(refuse_websocket(&h).is_none());
        h.insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            "v4.channel.k8s.io".parse().unwrap(),
        );
        assert_eq!(
            refuse_websocket(&h).unwrap().status(),
            StatusCode::BAD_REQUEST
        );
        let mut spdy = HeaderMap::new();
        spdy.insert(http::header::UPGRADE, "SPDY/3.1".parse().unwrap());
        assert!(refuse_websocket(&spdy).is_none());
    }

    #[test]
    fn query_decoding() {
        assert_eq!(decode("sh%20-c+x%3D1"), "sh -c x=1");
    }
}
