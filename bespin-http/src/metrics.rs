//! `GET /metrics`: requests and latency per route and status; the writer's queue depth and
//! queue wait, group-commit batch sizes and latency; the database size; `bespin_build_info`;
//! and the process's memory, open files and CPU time. Built on `prometheus-client` (the
//! Prometheus project's own Rust client) rather than hand-written exposition.
//!
//! The registry is encoded as OpenMetrics 1.0.0, the format `prometheus-client` writes and the
//! one Prometheus asks for first. Scrapers that do not ask for it (`Accept` without
//! `application/openmetrics-text`: curl, older tools) get the same samples as Prometheus text
//! 0.0.4, which differs only in metadata: no `# EOF` or `# UNIT` lines, and a counter's
//! `# HELP`/`# TYPE` name its `_total` sample ([`to_text_004`]). Each answer carries its own
//! format's content type.

use crate::tarpit::Tarpit;
use bespin_core::{BATCH_SIZE_BUCKETS, Bespin, COMMIT_SECONDS_BUCKETS, QUEUE_WAIT_SECONDS_BUCKETS};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Content type of the OpenMetrics answer.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the Prometheus text answer.
pub const TEXT_004: &str = "text/plain; version=0.0.4; charset=utf-8";

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

/// Labels of an MCP request: its JSON-RPC method and, for `tools/call`, its tool (both from
/// fixed sets, `other` for anything else a client sends, so the labels stay bounded).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct McpLabels {
    method: &'static str,
    tool: &'static str,
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
    mcp: Family<McpLabels, Counter>,
    blocking_tasks: Counter,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    ])
}

impl Metrics {
    /// A registry with the request metrics, the database collector for `bespin` and the
    /// authentication failures `tarpit` counts.
    pub fn new(bespin: Bespin, tarpit: Arc<Tarpit>) -> Metrics {
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
        let mcp = Family::<McpLabels, Counter>::default();
        registry.register(
            "bespin_mcp_requests",
            "MCP requests that reached a method, by method and (for tools/call) tool",
            mcp.clone(),
        );
        let blocking_tasks = Counter::default();
        registry.register(
            "bespin_http_blocking_tasks",
            "Tasks the request pipeline handed to the blocking pool (reads that wait on the database server, handlers that run long)",
            blocking_tasks.clone(),
        );
        registry.register_collector(Box::new(DbCollector(bespin)));
        registry.register_collector(Box::new(ProcessCollector));
        registry.register_collector(Box::new(AuthFailures(tarpit)));
        Metrics {
            registry,
            requests,
            latency,
            mcp,
            blocking_tasks,
        }
    }

    /// Counts one task the pipeline hands to the blocking pool: each is a thread hand-off,
    /// which costs a request more server time than its reads from memory.
    pub(crate) fn blocking_task(&self) {
        self.blocking_tasks.inc();
    }

    /// Counts one MCP request that reached `method` (for `tools/call`, of `tool`; `-`
    /// otherwise); the caller maps names outside its fixed sets to `other`.
    pub(crate) fn mcp(&self, method: &'static str, tool: &'static str) {
        self.mcp.get_or_create(&McpLabels { method, tool }).inc();
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

    /// The exposition in OpenMetrics 1.0.0.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// The exposition for a scraper sending `accept`: (content type, body).
    pub fn negotiate(&self, accept: Option<&str>) -> (&'static str, String) {
        let om = self.render();
        if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
            (OPENMETRICS, om)
        } else {
            (TEXT_004, to_text_004(&om))
        }
    }
}

/// The same samples in the Prometheus text format 0.0.4: drops `# EOF` and `# UNIT`, and names
/// a counter family after its `_total` sample in `# HELP` and `# TYPE`.
pub fn to_text_004(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(name) {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(tail);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Reads the group committer's counters and the file size at scrape time.
#[derive(Debug)]
struct DbCollector(Bespin);

/// (upper bound, count) pairs for the encoder, which accumulates them itself; the last pair
/// holds the values above every bound, under `f64::MAX`, which the encoder writes `+Inf`.
fn buckets(bounds: &[f64], counts: &[u64]) -> Vec<(f64, u64)> {
    bounds
        .iter()
        .copied()
        .chain([f64::MAX])
        .zip(counts.iter().copied())
        .collect()
}

/// Encodes one histogram of the collectors.
fn histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    (bounds, counts, sum): (&[f64], &[u64], f64),
) -> Result<(), std::fmt::Error> {
    let total: u64 = counts.iter().sum();
    let mut m = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    m.encode_histogram::<NoLabelSet>(sum, total, &buckets(bounds, counts), None)
}

/// Encodes one constant gauge (`i64`) or counter (`f64`/`u64`) of the collectors.
fn constant(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    let kind = metric.metric_type();
    metric.encode(encoder.encode_descriptor(name, help, None, kind)?)
}

impl Collector for DbCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        let s = self.0.commit_stats();
        let build = [
            ("version", env!("CARGO_PKG_VERSION").to_owned()),
            ("layout", bespin_core::layout::CURRENT.to_string()),
        ];
        let mut m = e.encode_descriptor(
            "bespin_build_info",
            "The running build: its version and the key layout it writes",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(1i64).encode(m.encode_family(&build.as_slice())?)?;
        constant(
            e,
            "bespin_commits",
            "Group commits performed",
            ConstCounter::new(s.commits),
        )?;
        constant(
            e,
            "bespin_committed_operations",
            "Operations committed",
            ConstCounter::new(s.operations),
        )?;
        histogram(
            e,
            "bespin_commit_batch_size",
            "Operations per group commit",
            (&BATCH_SIZE_BUCKETS, &s.batch_sizes, s.operations as f64),
        )?;
        histogram(
            e,
            "bespin_commit_duration_seconds",
            "Time to commit (fsync) one batch",
            (
                &COMMIT_SECONDS_BUCKETS,
                &s.commit_seconds,
                s.commit_seconds_sum,
            ),
        )?;
        constant(
            e,
            "bespin_writer_queue_depth",
            "Jobs (write requests) waiting for the writer thread",
            ConstGauge::new(i64::try_from(s.queue_depth).unwrap_or(i64::MAX)),
        )?;
        histogram(
            e,
            "bespin_writer_queue_wait_seconds",
            "Time a write waited in the writer's queue before it joined a batch",
            (
                &QUEUE_WAIT_SECONDS_BUCKETS,
                &s.queue_wait_seconds,
                s.queue_wait_seconds_sum,
            ),
        )?;
        if let Some(n) = self.0.round_trips() {
            constant(
                e,
                "bespin_database_round_trips",
                "Statements, prepares and connections sent to the database server (PostgreSQL)",
                ConstCounter::new(n),
            )?;
        }
        if let Some(bytes) = self.0.db_size_bytes() {
            constant(
                e,
                "bespin_database_size_bytes",
                "Size of the database file",
                ConstGauge::new(i64::try_from(bytes).unwrap_or(i64::MAX)),
            )?;
        }
        Ok(())
    }
}

/// Failed tenant authentications: counters of all failures and of the answers the tarpit held,
/// and the failures in the current minute of the [`crate::tarpit::TOP`] client addresses and
/// claimed tenants failing most. Only those few are named, so the labels stay bounded whatever
/// clients send (a claimed tenant id is any string); a counter per address or tenant ever seen
/// would grow without end.
#[derive(Debug)]
struct AuthFailures(Arc<Tarpit>);

impl Collector for AuthFailures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        let f = self.0.failing(Instant::now());
        constant(
            e,
            "bespin_auth_failures",
            "Failed tenant authentications (all three credentials sent, and wrong)",
            ConstCounter::new(f.failures),
        )?;
        constant(
            e,
            "bespin_auth_failures_delayed",
            "Answers to failed authentications the tarpit held back",
            ConstCounter::new(f.delayed),
        )?;
        for (name, help, label, top) in [
            (
                "bespin_auth_failures_recent_by_client",
                "Failed authentications in the current minute, for the client addresses failing most",
                "client",
                &f.clients,
            ),
            (
                "bespin_auth_failures_recent_by_tenant",
                "Failed authentications in the current minute, for the claimed tenant ids failing most",
                "tenant",
                &f.tenants,
            ),
        ] {
            let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (key, failures) in top {
                let labels = [(label, key.as_str())];
                ConstGauge::new(i64::from(*failures))
                    .encode(m.encode_family(&labels.as_slice())?)?;
            }
        }
        Ok(())
    }
}

/// The process's memory, open files and CPU time, from `/proc/self` (Linux; elsewhere these
/// metrics are left out). Names as the Prometheus clients' process collectors write them.
#[derive(Debug)]
struct ProcessCollector;

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on Linux's platforms).
const USER_HZ: f64 = 100.0;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        let Some(p) = process_stats() else {
            return Ok(());
        };
        constant(
            e,
            "process_cpu_seconds",
            "User and system CPU time spent, in seconds",
            ConstCounter::new(p.cpu_seconds),
        )?;
        constant(
            e,
            "process_resident_memory_bytes",
            "Resident memory size",
            ConstGauge::new(p.resident_bytes),
        )?;
        constant(
            e,
            "process_virtual_memory_bytes",
            "Virtual memory size",
            ConstGauge::new(p.virtual_bytes),
        )?;
        constant(
            e,
            "process_open_fds",
            "Open file descriptors",
            ConstGauge::new(p.open_fds),
        )?;
        if let Some(max) = p.max_fds {
            constant(
                e,
                "process_max_fds",
                "Maximum number of open file descriptors",
                ConstGauge::new(max),
            )?;
        }
        if let Some(start) = p.start_time_seconds {
            constant(
                e,
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch, in seconds",
                ConstGauge::new(start),
            )?;
        }
        Ok(())
    }
}

/// What [`ProcessCollector`] reports.
struct ProcessStats {
    cpu_seconds: f64,
    resident_bytes: i64,
    virtual_bytes: i64,
    open_fds: i64,
    max_fds: Option<i64>,
    start_time_seconds: Option<i64>,
}

fn process_stats() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces), from field 3 (`state`) on.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let rss_kib: i64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find_map(|l| l.strip_prefix("Max open files"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        });
    let boot: Option<i64> = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()
    });
    Some(ProcessStats {
        cpu_seconds: (field(14)? + field(15)?) / USER_HZ,
        resident_bytes: rss_kib * 1024,
        virtual_bytes: field(23)? as i64,
        open_fds: std::fs::read_dir("/proc/self/fd").ok()?.count() as i64,
        max_fds,
        start_time_seconds: boot.zip(field(22)).map(|(b, t)| b + (t / USER_HZ) as i64),
    })
}

#[cfg(test)]
mod tests {
    use super::to_text_004;

    #[test]
    fn text_004_renames_counter_metadata_and_drops_openmetrics_lines() {
        let om = "# HELP a_requests Requests\n# TYPE a_requests counter\n# UNIT a_requests requests\na_requests_total{r=\"x\"} 2\n# HELP g A gauge\n# TYPE g gauge\ng 1\n# EOF\n";
        assert_eq!(
            to_text_004(om),
            "# HELP a_requests_total Requests\n# TYPE a_requests_total counter\na_requests_total{r=\"x\"} 2\n# HELP g A gauge\n# TYPE g gauge\ng 1\n"
        );
    }
}
