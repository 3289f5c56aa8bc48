//! `GET /metrics` in the Prometheus text format: requests and latency per route and status,
//! group-commit batch sizes and latency, and the database size. Built on `prometheus-client`
//! (the Prometheus project's own Rust client) rather than hand-written exposition.

use bespin_core::{BATCH_SIZE_BUCKETS, Bespin, COMMIT_SECONDS_BUCKETS};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

// Labels borrow static strings (route patterns, method names) so recording a request
// allocates nothing.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
    method: &'static str,
}

/// The static name of a method (`OTHER` for extension methods, which no route serves).
fn method_name(m: &hyper::Method) -> &'static str {
    use hyper::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::HEAD => "HEAD",
        _ => "OTHER",
    }
}

/// The server's metrics registry.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    ])
}

impl Metrics {
    /// A registry with the request metrics and the database collector for `bespin`.
    pub fn new(bespin: Bespin) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "bespin_http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "bespin_http_request_duration_seconds",
            "HTTP request latency by route and method",
            latency.clone(),
        );
        registry.register_collector(Box::new(DbCollector(bespin)));
        Metrics {
            registry,
            requests,
            latency,
        }
    }

    /// Records one request (`route` is the matched pattern, `-` when nothing matched).
    pub fn observe(
        &self,
        route: &'static str,
        method: &hyper::Method,
        status: u16,
        took: Duration,
    ) {
        let method = method_name(method);
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { route, method })
            .observe(took.as_secs_f64());
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Reads the group committer's counters and the file size at scrape time.
#[derive(Debug)]
struct DbCollector(Bespin);

/// (upper bound, count) pairs for the encoder, which accumulates them itself; the last pair
/// holds the values above every bound.
fn buckets(bounds: &[f64], counts: &[u64]) -> Vec<(f64, u64)> {
    bounds
        .iter()
        .copied()
        .chain([f64::INFINITY])
        .zip(counts.iter().copied())
        .collect()
}

impl Collector for DbCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.commit_stats();
        let commits = ConstCounter::new(s.commits);
        commits.encode(encoder.encode_descriptor(
            "bespin_commits",
            "Group commits performed",
            None,
            commits.metric_type(),
        )?)?;
        let ops = ConstCounter::new(s.operations);
        ops.encode(encoder.encode_descriptor(
            "bespin_committed_operations",
            "Operations committed",
            None,
            ops.metric_type(),
        )?)?;
        let sizes = buckets(&BATCH_SIZE_BUCKETS, &s.batch_sizes);
        let mut m = encoder.encode_descriptor(
            "bespin_commit_batch_size",
            "Operations per group commit",
            None,
            MetricType::Histogram,
        )?;
        m.encode_histogram::<NoLabelSet>(s.operations as f64, s.commits, &sizes, None)?;
        let secs = buckets(&COMMIT_SECONDS_BUCKETS, &s.commit_seconds);
        let total: u64 = s.commit_seconds.iter().sum();
        let mut m = encoder.encode_descriptor(
            "bespin_commit_duration_seconds",
            "Time to commit (fsync) one batch",
            None,
            MetricType::Histogram,
        )?;
        m.encode_histogram::<NoLabelSet>(s.commit_seconds_sum, total, &secs, None)?;
        if let Some(bytes) = self.0.db_size_bytes() {
            let g = ConstGauge::new(bytes as i64);
            g.encode(encoder.encode_descriptor(
                "bespin_database_size_bytes",
                "Size of the database file",
                None,
                g.metric_type(),
            )?)?;
        }
        Ok(())
    }
}
