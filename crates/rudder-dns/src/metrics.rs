//! CoreDNS's `coredns_dns_*` metrics (its `plugin/metrics/vars`), with its label names and
//! values, so dashboards and alerts written for CoreDNS read Rudder's DNS unchanged.

use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::resolve::Source;

/// The server block's address label as k3s's Corefile (`.:53`) reports it.
pub const SERVER_LABEL: &str = "dns://:53";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub server: &'static str,
    pub zone: &'static str,
    pub view: &'static str,
    pub proto: &'static str,
    pub family: &'static str,
    pub r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResponseLabels {
    pub server: &'static str,
    pub zone: &'static str,
    pub view: &'static str,
    pub rcode: &'static str,
    pub plugin: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ZoneLabels {
    pub server: &'static str,
    pub zone: &'static str,
    pub view: &'static str,
}

pub struct DnsMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub responses: Family<ResponseLabels, Counter>,
    pub duration: Family<ZoneLabels, Histogram>,
}

impl Default for DnsMetrics {
    fn default() -> Self {
        // CoreDNS's `plugin.TimeBuckets`: 0.25 ms doubling to 8 s.
        DnsMetrics {
            requests: Family::default(),
            responses: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.00025, 2.0, 16))
            }),
        }
    }
}

impl DnsMetrics {
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "coredns_dns_requests",
            "Counter of DNS requests made per zone, protocol and family.",
            self.requests.clone(),
        );
        r.register(
            "coredns_dns_responses",
            "Counter of response status codes.",
            self.responses.clone(),
        );
        r.register(
            "coredns_dns_request_duration_seconds",
            "Histogram of the time (in seconds) each request took per zone.",
            self.duration.clone(),
        );
    }

    /// The text exposition of these metrics.
    pub fn render(&self, out: &mut String) {
        let mut r = Registry::default();
        self.register(&mut r);
        let _ = prometheus_client::encoding::text::encode(out, &r);
    }

    /// CoreDNS's `vars.Report` for one answered request.
    pub fn report(
        &self,
        tcp: bool,
        ipv6: bool,
        qtype: RecordType,
        rcode: ResponseCode,
        source: Source,
        took: Duration,
    ) {
        let zone = ".";
        self.requests
            .get_or_create(&RequestLabels {
                server: SERVER_LABEL,
                zone,
                view: "",
                proto: if tcp { "tcp" } else { "udp" },
                family: if ipv6 { "2" } else { "1" },
                r#type: qtype_label(qtype),
            })
            .inc();
        self.responses
            .get_or_create(&ResponseLabels {
                server: SERVER_LABEL,
                zone,
                view: "",
                rcode: rcode_label(rcode),
                plugin: match source {
                    Source::Kubernetes => "kubernetes",
                    Source::Hosts => "hosts",
                    Source::Forward => "forward",
                },
            })
            .inc();
        self.duration
            .get_or_create(&ZoneLabels {
                server: SERVER_LABEL,
                zone,
                view: "",
            })
            .observe(took.as_secs_f64());
    }
}

/// CoreDNS's `qTypeString`: the common types by name, everything else `other`.
fn qtype_label(t: RecordType) -> &'static str {
    match t {
        RecordType::A => "A",
        RecordType::AAAA => "AAAA",
        RecordType::CNAME => "CNAME",
        RecordType::HINFO => "HINFO",
        RecordType::MX => "MX",
        RecordType::NS => "NS",
        RecordType::PTR => "PTR",
        RecordType::SOA => "SOA",
        RecordType::SRV => "SRV",
        RecordType::TXT => "TXT",
        RecordType::NAPTR => "NAPTR",
        RecordType::CAA => "CAA",
        RecordType::HTTPS => "HTTPS",
        RecordType::SVCB => "SVCB",
        RecordType::AXFR => "AXFR",
        RecordType::IXFR => "IXFR",
        RecordType::ANY => "ANY",
        RecordType::DS => "DS",
        RecordType::DNSKEY => "DNSKEY",
        RecordType::OPT => "OPT",
        _ => "other",
    }
}

/// miekg/dns's `RcodeToString`.
fn rcode_label(r: ResponseCode) -> &'static str {
    match r {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::YXDomain => "YXDOMAIN",
        ResponseCode::YXRRSet => "YXRRSET",
        ResponseCode::NXRRSet => "NXRRSET",
        ResponseCode::NotAuth => "NOTAUTH",
        ResponseCode::NotZone => "NOTZONE",
        _ => "OTHER",
    }
}
