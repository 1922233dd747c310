//! The wire side: a hickory `RequestHandler` over the resolver, served on UDP and TCP by
//! hickory's server loop (which truncates UDP answers to the client's buffer, 512 bytes without
//! EDNS, and sets TC), with CoreDNS's metrics per request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::RecordType;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use crate::metrics::DnsMetrics;
use crate::resolve::{Answer, Resolver, Source};

/// How long a TCP connection may sit without a request before it is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct DnsHandler {
    pub resolver: Arc<Resolver>,
    pub metrics: Arc<DnsMetrics>,
}

impl DnsHandler {
    /// The answer to a parsed request, before encoding.
    pub async fn answer(&self, request: &Request) -> (Answer, RecordType) {
        if request.metadata.op_code != OpCode::Query {
            return (
                Answer::empty(ResponseCode::NotImp, Source::Kubernetes),
                RecordType::NULL,
            );
        }
        match request.request_info() {
            Ok(info) => {
                let q = info.query.original();
                let a = self
                    .resolver
                    .resolve_for(
                        request.src().ip(),
                        q.name(),
                        q.query_type(),
                        q.query_class(),
                    )
                    .await;
                (a, q.query_type())
            }
            Err(_) => (
                Answer::empty(ResponseCode::FormErr, Source::Kubernetes),
                RecordType::NULL,
            ),
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for DnsHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let start = Instant::now();
        let (answer, qtype) = self.answer(request).await;
        let mut meta = Metadata::response_from_request(&request.metadata);
        meta.response_code = answer.rcode;
        meta.authoritative = answer.authoritative;
        meta.recursion_available = answer.recursion_available;
        meta.truncation = answer.truncated;
        // A request with EDNS gets EDNS back, advertising the client's own buffer size, which
        // bounds the UDP answer (CoreDNS's `SizeAndDo` + scrub).
        let edns = request.edns.as_ref().map(|req| {
            let mut e = Edns::new();
            e.set_max_payload(req.max_payload().max(512));
            e
        });
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(e) = &edns {
            builder.edns(e);
        }
        let response = builder.build(
            meta,
            answer.answers.iter(),
            answer.authorities.iter(),
            std::iter::empty(),
            answer.additionals.iter(),
        );
        let info = match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, src = %request.src(), "could not send a DNS response");
                ResponseInfo::from(Header {
                    metadata: meta,
                    counts: HeaderCounts::default(),
                })
            }
        };
        self.metrics.report(
            request.protocol() == Protocol::Tcp,
            request.src().is_ipv6(),
            qtype,
            answer.rcode,
            answer.source,
            start.elapsed(),
        );
        info
    }
}

/// Sockets bound for a DNS server (binding first makes a taken port an error at start).
pub struct Bound {
    udp: Vec<tokio::net::UdpSocket>,
    tcp: Vec<tokio::net::TcpListener>,
}

impl Bound {
    pub async fn bind(addrs: &[SocketAddr]) -> std::io::Result<Bound> {
        let mut b = Bound {
            udp: vec![],
            tcp: vec![],
        };
        for a in addrs {
            b.udp.push(tokio::net::UdpSocket::bind(a).await?);
            b.tcp.push(tokio::net::TcpListener::bind(a).await?);
        }
        Ok(b)
    }

    /// The UDP addresses bound (port 0 resolved).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.udp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// Serves until `shutdown` resolves.
    pub async fn serve(
        self,
        handler: DnsHandler,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), crate::DnsError> {
        let mut server = hickory_server::Server::new(handler);
        for s in self.udp {
            server.register_socket(s);
        }
        for l in self.tcp {
            server.register_listener(l, TCP_IDLE, 64);
        }
        let token = server.shutdown_token().clone();
        tokio::select! {
            r = server.block_until_done() => r.map_err(|e| crate::DnsError::Serve(e.to_string())),
            _ = shutdown => {
                token.cancel();
                server.block_until_done().await.map_err(|e| crate::DnsError::Serve(e.to_string()))
            }
        }
    }
}
