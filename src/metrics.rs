//! Service metrics in the Prometheus text exposition format (version 0.0.4), served
//! at `/metrics`, and the readiness `/ready` reports.
//!
//! [`Metrics`] counts only what nothing else counts: HTTP requests by route template
//! (never the raw path, which may hold a secret feed token) and feed renders / cache
//! hits, which the feed handlers report through [`Metrics::feed_render`] and
//! [`Metrics::feed_cache_hit`]. Everything else is read at scrape time from the parts
//! that already keep it, each seen through the small [`Observed`] trait (the
//! scheduler's [`SchedulerStatus`], the Google adapter's [`CallStats`]): the parts are
//! handed to [`Metrics::new`] when the service is assembled, so the API knows neither
//! the scheduler's nor Google's types.
//!
//! Anonymous scrapes see no identifiers: series that name an offering (or any other
//! object) are written only when the scraper presents `http.metrics_token`
//! ([`Metrics::authorize`]); parts ask [`Exposition::detailed`]. Everyone else gets
//! aggregates (calendars by state, the oldest last success).
//!
//! The format is written by hand (see the README's dependency table for why): a
//! family is `# HELP`, `# TYPE`, then its samples; label values are escaped as the
//! format requires (`\\`, `\"`, `\n`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::domain::calendar::OfferingCalendar;
use crate::google::CallStats;
use crate::scheduler::SchedulerStatus;

/// The content type of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Default, Clone, Copy)]
struct HttpStat {
    count: u64,
    seconds: f64,
}

/// A part of the service that `/metrics` and `/ready` read when asked.
pub trait Observed: Send + Sync {
    /// Appends this part's metric families.
    fn write_metrics(&self, out: &mut Exposition);

    /// Why this part keeps the service from serving, if it does.
    fn not_ready(&self) -> Option<String> {
        None
    }
}

/// Counters of this process plus the parts other metrics are read from.
#[derive(Default)]
pub struct Metrics {
    /// (method, route template, status) -> count and total latency.
    http: Mutex<BTreeMap<(String, String, u16), HttpStat>>,
    feed_renders: AtomicU64,
    feed_cache_hits: AtomicU64,
    /// Read at scrape time, in this order.
    parts: Vec<Arc<dyn Observed>>,
    /// The HTTP server's connection counts.
    pub connections: Arc<crate::server::ConnectionStats>,
    /// SHA-256 of `http.metrics_token`, when one is set.
    token: Option<[u8; 32]>,
}

/// Who is scraping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// No credentials: aggregates only.
    Anonymous,
    /// The metrics token: per-offering series too.
    Operator,
}

impl Metrics {
    /// Metrics reading `parts` (in this order) besides its own counters.
    pub fn new(parts: Vec<Arc<dyn Observed>>) -> Self {
        Metrics {
            parts,
            ..Metrics::default()
        }
    }

    /// Requires `token` (the `http.metrics_token` setting) for per-offering series.
    pub fn with_token(mut self, token: Option<&crate::config::Secret>) -> Self {
        use sha2::Digest;
        self.token = token.map(|t| sha2::Sha256::digest(t.expose().as_bytes()).into());
        self
    }

    /// Who presents `bearer` (the value after `Bearer `, if any): `None` when a token
    /// is presented and it is not the metrics token (compared in constant time).
    pub fn authorize(&self, bearer: Option<&str>) -> Option<Audience> {
        use sha2::Digest;
        use subtle::ConstantTimeEq;
        let Some(given) = bearer else {
            return Some(Audience::Anonymous);
        };
        let want = self.token?;
        let got: [u8; 32] = sha2::Sha256::digest(given.as_bytes()).into();
        bool::from(got.ct_eq(&want)).then_some(Audience::Operator)
    }

    /// Why the service cannot serve now: the first part that says so.
    pub fn not_ready(&self) -> Option<String> {
        self.parts.iter().find_map(|p| p.not_ready())
    }

    /// Counts one answered HTTP request. `route` is the route template
    /// (`/api/booking-resources/{uuid}/`) or `unmatched`, never the raw path.
    pub fn http_request(&self, method: &str, route: &str, status: u16, latency: Duration) {
        let mut m = match self.http.lock() {
            Ok(g) => g,
            // Plain counters: a panic mid-update leaves nothing inconsistent.
            Err(poisoned) => poisoned.into_inner(),
        };
        let e = m
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default();
        e.count += 1;
        e.seconds += latency.as_secs_f64();
    }

    /// A feed was rendered (its data changed or it was not cached).
    pub fn feed_render(&self) {
        self.feed_renders.fetch_add(1, Ordering::Relaxed);
    }

    /// A feed was answered from the render cache (including 304s).
    pub fn feed_cache_hit(&self) {
        self.feed_cache_hits.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text for `audience`; `calendars` are the stored calendar
    /// records (calendar states and last successes).
    pub fn render(&self, calendars: &[OfferingCalendar], audience: Audience) -> String {
        let mut out = Exposition {
            detailed: audience == Audience::Operator,
            ..Exposition::default()
        };

        let http = match self.http.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        out.family(
            "bookcal_http_requests_total",
            "counter",
            "HTTP requests answered, by method, route template and status.",
        );
        for ((method, route, status), s) in &http {
            let status = status.to_string();
            out.sample(
                "bookcal_http_requests_total",
                &[("method", method), ("route", route), ("status", &status)],
                s.count as f64,
            );
        }
        let mut latency: BTreeMap<(&str, &str), HttpStat> = BTreeMap::new();
        for ((method, route, _), s) in &http {
            let e = latency.entry((method, route)).or_default();
            e.count += s.count;
            e.seconds += s.seconds;
        }
        out.family(
            "bookcal_http_request_duration_seconds",
            "summary",
            "Time to answer HTTP requests, by method and route template.",
        );
        for ((method, route), s) in &latency {
            let labels = [("method", *method), ("route", *route)];
            out.sample(
                "bookcal_http_request_duration_seconds_sum",
                &labels,
                s.seconds,
            );
            out.sample(
                "bookcal_http_request_duration_seconds_count",
                &labels,
                s.count as f64,
            );
        }

        for part in &self.parts {
            part.write_metrics(&mut out);
        }

        out.family(
            "bookcal_feed_renders_total",
            "counter",
            "iCalendar feeds rendered.",
        );
        out.sample(
            "bookcal_feed_renders_total",
            &[],
            self.feed_renders.load(Ordering::Relaxed) as f64,
        );
        out.family(
            "bookcal_feed_cache_hits_total",
            "counter",
            "iCalendar feed requests answered from the render cache.",
        );
        out.sample(
            "bookcal_feed_cache_hits_total",
            &[],
            self.feed_cache_hits.load(Ordering::Relaxed) as f64,
        );

        let conns = &self.connections;
        out.family(
            "bookcal_http_connections_open",
            "gauge",
            "HTTP connections open now.",
        );
        out.sample(
            "bookcal_http_connections_open",
            &[],
            conns.open.load(Ordering::Relaxed) as f64,
        );
        out.family(
            "bookcal_http_connections_over_limit_total",
            "counter",
            "Connections past http.max_connections: served probes only, or closed at once when the probe reserve was full too.",
        );
        for (outcome, n) in [
            ("probe_only", &conns.probe_only),
            ("refused", &conns.refused),
        ] {
            out.sample(
                "bookcal_http_connections_over_limit_total",
                &[("outcome", outcome)],
                n.load(Ordering::Relaxed) as f64,
            );
        }

        write_calendars(&mut out, calendars);
        out.text
    }
}

/// Calendars by state and the oldest last success for everyone; each offering's
/// last success only for the operator.
fn write_calendars(out: &mut Exposition, calendars: &[OfferingCalendar]) {
    use crate::domain::calendar::CalendarState;
    let seconds = |t: &chrono::DateTime<chrono::Utc>| t.timestamp_millis() as f64 / 1000.0;
    out.family(
        "bookcal_calendars",
        "gauge",
        "Offering calendars, by state.",
    );
    for state in [
        CalendarState::CreationScheduled,
        CalendarState::Creating,
        CalendarState::UpdateScheduled,
        CalendarState::Updating,
        CalendarState::Ok,
        CalendarState::Erred,
    ] {
        let n = calendars.iter().filter(|c| c.state == state).count();
        out.sample("bookcal_calendars", &[("state", state.as_str())], n as f64);
    }
    let never = calendars
        .iter()
        .filter(|c| c.last_success.is_none())
        .count();
    out.family(
        "bookcal_calendars_never_synced",
        "gauge",
        "Offering calendars without a successful sync yet.",
    );
    out.sample("bookcal_calendars_never_synced", &[], never as f64);
    if let Some(oldest) = calendars.iter().filter_map(|c| c.last_success).min() {
        out.family(
            "bookcal_last_sync_success_oldest_timestamp_seconds",
            "gauge",
            "Unix time of the least recent last successful sync over all offering calendars.",
        );
        out.sample(
            "bookcal_last_sync_success_oldest_timestamp_seconds",
            &[],
            seconds(&oldest),
        );
    }
    out.family(
        "bookcal_sync_waiting_offerings",
        "gauge",
        "Offerings whose sync waits for Google's usage limits (calendar creation budget spent, or writes paused).",
    );
    out.sample(
        "bookcal_sync_waiting_offerings",
        &[],
        calendars.iter().filter(|c| c.waiting.is_some()).count() as f64,
    );
    if let Some(oldest) = calendars
        .iter()
        .filter(|c| c.calendar_id.is_some())
        .filter_map(|c| c.busy_read_at)
        .min()
    {
        out.family(
            "bookcal_busy_read_oldest_timestamp_seconds",
            "gauge",
            "Unix time of the least recent full read of busy time over all offering calendars; orders are refused on an offering once its own is older than sync.max_busy_age_secs.",
        );
        out.sample(
            "bookcal_busy_read_oldest_timestamp_seconds",
            &[],
            seconds(&oldest),
        );
    }
    if !out.detailed() {
        return;
    }
    let mut cals: Vec<&OfferingCalendar> = calendars.iter().collect();
    cals.sort_by_key(|c| c.offering);
    out.family(
        "bookcal_busy_read_timestamp_seconds",
        "gauge",
        "Unix time each offering's busy time was last read in full (hex UUID); with the metrics token only.",
    );
    for c in &cals {
        if let Some(t) = &c.busy_read_at {
            let hex = c.offering.hex();
            out.sample(
                "bookcal_busy_read_timestamp_seconds",
                &[("offering", &hex)],
                seconds(t),
            );
        }
    }
    out.family(
        "bookcal_last_sync_success_timestamp_seconds",
        "gauge",
        "Unix time of the last successful sync of each offering (hex UUID); with the metrics token only.",
    );
    for c in cals {
        if let Some(t) = &c.last_success {
            let hex = c.offering.hex();
            out.sample(
                "bookcal_last_sync_success_timestamp_seconds",
                &[("offering", &hex)],
                seconds(t),
            );
        }
    }
}

/// The scheduler: whether it runs, its queue and runs (also `/ready`).
impl Observed for SchedulerStatus {
    fn write_metrics(&self, out: &mut Exposition) {
        out.family(
            "bookcal_scheduler_running",
            "gauge",
            "1 while the scheduler accepts work.",
        );
        let running = self.running.load(Ordering::Relaxed);
        out.sample(
            "bookcal_scheduler_running",
            &[],
            f64::from(u8::from(running)),
        );
        out.family(
            "bookcal_scheduler_queue_depth",
            "gauge",
            "Jobs waiting in the durable queue (as of the scheduler's last look).",
        );
        out.sample(
            "bookcal_scheduler_queue_depth",
            &[],
            self.queue_depth.load(Ordering::Relaxed) as f64,
        );
        out.family(
            "bookcal_scheduler_active_runs",
            "gauge",
            "Jobs running now.",
        );
        out.sample(
            "bookcal_scheduler_active_runs",
            &[],
            self.active_runs.load(Ordering::Relaxed) as f64,
        );
        let runs: BTreeMap<&str, u64> = match self.runs.lock() {
            Ok(m) => m.iter().map(|(k, v)| (*k, *v)).collect(),
            Err(poisoned) => poisoned
                .into_inner()
                .iter()
                .map(|(k, v)| (*k, *v))
                .collect(),
        };
        out.family(
            "bookcal_sync_runs_total",
            "counter",
            "Scheduler jobs (sync, share, unshare) finished, by outcome (deferred: the run said to retry later).",
        );
        for outcome in ["ok", "error", "deferred", "panicked", "skipped"] {
            let n = runs.get(outcome).copied().unwrap_or(0);
            out.sample("bookcal_sync_runs_total", &[("outcome", outcome)], n as f64);
        }
    }

    fn not_ready(&self) -> Option<String> {
        (!self.running.load(Ordering::Relaxed)).then(|| "the scheduler is not running".to_owned())
    }
}

/// The Google adapter's calls, retries, rate-limiter waits and token fetches.
impl Observed for CallStats {
    fn write_metrics(&self, out: &mut Exposition) {
        let snap = self.snapshot();
        out.family(
            "bookcal_google_calls_total",
            "counter",
            "Google Calendar API calls, by method and outcome (ok, retried, error:<reason>).",
        );
        for (method, outcomes) in &snap.calls {
            for (outcome, n) in outcomes {
                out.sample(
                    "bookcal_google_calls_total",
                    &[("method", method), ("outcome", outcome)],
                    *n as f64,
                );
            }
        }
        let plain = [
            (
                "bookcal_google_retries_total",
                "Google requests repeated after a retryable error.",
                snap.retries as f64,
            ),
            (
                "bookcal_google_rate_limit_waits_total",
                "Google requests that waited for the per-credential rate limiter.",
                snap.rate_limit_waits as f64,
            ),
            (
                "bookcal_google_rate_limit_wait_seconds_total",
                "Time spent waiting for the rate limiter.",
                snap.rate_limit_wait_total.as_secs_f64(),
            ),
            (
                "bookcal_google_token_fetches_total",
                "OAuth access tokens fetched.",
                snap.token_fetches as f64,
            ),
        ];
        for (name, help, v) in plain {
            out.family(name, "counter", help);
            out.sample(name, &[], v);
        }
    }
}

/// The exposition text being written: families and their samples.
#[derive(Default)]
pub struct Exposition {
    text: String,
    /// Whether series may name offerings and other objects (the metrics token).
    detailed: bool,
}

impl Exposition {
    /// Whether this scrape may see series that name objects (offerings, providers,
    /// users); anonymous scrapes get aggregates only.
    pub fn detailed(&self) -> bool {
        self.detailed
    }

    /// Starts a family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", number(value));
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Integers without a fraction, others as Rust prints them (both valid Go floats).
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_as_the_format_requires() {
        let cases = [
            ("plain", "plain"),
            ("a\"b", "a\\\"b"),
            ("back\\slash", "back\\\\slash"),
            ("new\nline", "new\\nline"),
        ];
        for (input, want) in cases {
            assert_eq!(escape_label(input), want, "{input:?}");
        }
    }

    #[test]
    fn numbers_are_integers_when_whole_and_decimals_otherwise() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(1_700_000_000.5), "1700000000.5");
    }

    #[test]
    fn requests_are_counted_by_route_template_and_status() {
        let m = Metrics::new(Vec::new());
        let route = "/api/booking-resources/{uuid}/";
        m.http_request("GET", route, 200, Duration::from_millis(10));
        m.http_request("GET", route, 200, Duration::from_millis(30));
        m.http_request("GET", route, 404, Duration::from_millis(1));
        m.feed_render();
        m.feed_cache_hit();
        m.feed_cache_hit();
        let text = m.render(&[], Audience::Anonymous);
        assert!(text.contains(
            "bookcal_http_requests_total{method=\"GET\",route=\"/api/booking-resources/{uuid}/\",status=\"200\"} 2\n"
        ));
        assert!(text.contains(
            "bookcal_http_request_duration_seconds_count{method=\"GET\",route=\"/api/booking-resources/{uuid}/\"} 3\n"
        ));
        assert!(text.contains("bookcal_feed_renders_total 1\n"));
        assert!(text.contains("bookcal_feed_cache_hits_total 2\n"));
        assert!(text.contains("# TYPE bookcal_http_requests_total counter\n"));
    }
}
