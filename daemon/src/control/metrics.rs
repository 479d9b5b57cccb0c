//! Counters and a latency histogram, rendered in the Prometheus text format for
//! `GET /v1/metrics` and the optional `[admin] metrics_address`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the upstream latency buckets.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// Requests by upstream, server and status (nested: counted without allocating).
    requests: BTreeMap<String, BTreeMap<String, BTreeMap<u16, u64>>>,
    denials: BTreeMap<String, u64>,
    latency: BTreeMap<String, Histogram>,
    refreshes: BTreeMap<(String, String), u64>,
    /// Requests by client key name and status.
    keys: BTreeMap<(String, u16), u64>,
    step_ups: BTreeMap<String, u64>,
}

/// The daemon's metrics; cheap to update from request paths.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    /// Tool calls and their outcomes.
    pub tools: crate::control::tool_metrics::ToolMetrics,
}

/// Values read at render time rather than counted.
#[derive(Debug, Default, Clone)]
pub struct Gauges {
    pub open_streams: u64,
    /// Seconds until each profile's access token expires, where known.
    pub token_expiry: Vec<(String, f64)>,
}

/// The value under `key`, inserted (and the key allocated) only the first time.
fn entry<'m, V: Default>(map: &'m mut BTreeMap<String, V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_string(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request finished its headers with `status`.
    pub fn request(&self, upstream: &str, server: &str, status: u16) {
        let mut inner = self.lock();
        let servers = entry(&mut inner.requests, upstream);
        *entry(servers, server).entry(status).or_default() += 1;
    }

    /// A request that presented the client key `name` finished its headers with `status`.
    pub fn key_request(&self, name: &str, status: u16) {
        *self
            .lock()
            .keys
            .entry((name.to_string(), status))
            .or_default() += 1;
    }

    /// A request refused by the guard, the path check or the ACL, by rule.
    pub fn denial(&self, rule: &str) {
        *self.lock().denials.entry(rule.to_string()).or_default() += 1;
    }

    /// Time from forwarding to the upstream's response headers.
    pub fn upstream_latency(&self, upstream: &str, took: Duration) {
        entry(&mut self.lock().latency, upstream).observe(took.as_secs_f64());
    }

    /// A token refresh ended with `outcome` (`ok`, `transient`, `invalid_grant`, ...).
    pub fn refresh(&self, profile: &str, outcome: &str) {
        *self
            .lock()
            .refreshes
            .entry((profile.to_string(), outcome.to_string()))
            .or_default() += 1;
    }

    /// An upstream asked a profile's token for more scopes (403 `insufficient_scope`).
    pub fn step_up(&self, profile: &str) {
        *self.lock().step_ups.entry(profile.to_string()).or_default() += 1;
    }

    /// The Prometheus text exposition.
    pub fn render(&self, gauges: &Gauges) -> String {
        let inner = self.lock();
        let mut out = String::new();
        header(
            &mut out,
            "mcpproxyd_requests_total",
            "counter",
            "Requests answered, by upstream, server and status.",
        );
        for (upstream, servers) in &inner.requests {
            for (server, statuses) in servers {
                for (status, v) in statuses {
                    let _ = writeln!(
                        out,
                        "mcpproxyd_requests_total{{upstream=\"{}\",server=\"{}\",status=\"{status}\"}} {v}",
                        esc(upstream),
                        esc(server),
                    );
                }
            }
        }
        header(
            &mut out,
            "mcpproxyd_client_key_requests_total",
            "counter",
            "Requests made with a client key, by key name and status.",
        );
        for ((name, status), v) in &inner.keys {
            let _ = writeln!(
                out,
                "mcpproxyd_client_key_requests_total{{key=\"{}\",status=\"{status}\"}} {v}",
                esc(name)
            );
        }
        header(
            &mut out,
            "mcpproxyd_denied_total",
            "counter",
            "Requests refused by the guard, path check or ACL, by rule.",
        );
        for (rule, v) in &inner.denials {
            let _ = writeln!(out, "mcpproxyd_denied_total{{rule=\"{}\"}} {v}", esc(rule));
        }
        header(
            &mut out,
            "mcpproxyd_upstream_latency_seconds",
            "histogram",
            "Time until the upstream's response headers.",
        );
        for (upstream, h) in &inner.latency {
            let u = esc(upstream);
            for (bound, count) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "mcpproxyd_upstream_latency_seconds_bucket{{upstream=\"{u}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "mcpproxyd_upstream_latency_seconds_bucket{{upstream=\"{u}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "mcpproxyd_upstream_latency_seconds_sum{{upstream=\"{u}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "mcpproxyd_upstream_latency_seconds_count{{upstream=\"{u}\"}} {}",
                h.count
            );
        }
        header(
            &mut out,
            "mcpproxyd_open_streams",
            "gauge",
            "Event streams open through the proxy.",
        );
        let _ = writeln!(out, "mcpproxyd_open_streams {}", gauges.open_streams);
        header(
            &mut out,
            "mcpproxyd_token_refreshes_total",
            "counter",
            "Token refreshes, by profile and outcome.",
        );
        for ((profile, outcome), v) in &inner.refreshes {
            let _ = writeln!(
                out,
                "mcpproxyd_token_refreshes_total{{profile=\"{}\",outcome=\"{}\"}} {v}",
                esc(profile),
                esc(outcome)
            );
        }
        header(
            &mut out,
            "mcpproxyd_scope_step_ups_total",
            "counter",
            "Upstream answers asking for more scopes (403 insufficient_scope), by profile.",
        );
        for (profile, v) in &inner.step_ups {
            let _ = writeln!(
                out,
                "mcpproxyd_scope_step_ups_total{{profile=\"{}\"}} {v}",
                esc(profile)
            );
        }
        header(
            &mut out,
            "mcpproxyd_token_expiry_seconds",
            "gauge",
            "Seconds until each profile's access token expires.",
        );
        for (profile, secs) in &gauges.token_expiry {
            let _ = writeln!(
                out,
                "mcpproxyd_token_expiry_seconds{{profile=\"{}\"}} {secs}",
                esc(profile)
            );
        }
        self.tools.render(&mut out, esc);
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.request("up", "ecs", 200);
        m.request("up", "ecs", 200);
        m.request("", "", 403);
        m.denial("blocked:ram");
        m.key_request("dify", 200);
        m.upstream_latency("up", Duration::from_millis(30));
        let text = m.render(&Gauges {
            open_streams: 2,
            token_expiry: vec![("p\"x".into(), 12.5)],
        });
        assert!(text
            .contains("mcpproxyd_requests_total{upstream=\"up\",server=\"ecs\",status=\"200\"} 2"));
        assert!(text.contains("mcpproxyd_denied_total{rule=\"blocked:ram\"} 1"));
        assert!(text.contains("mcpproxyd_client_key_requests_total{key=\"dify\",status=\"200\"} 1"));
        assert!(text
            .contains("mcpproxyd_upstream_latency_seconds_bucket{upstream=\"up\",le=\"0.025\"} 0"));
        assert!(text
            .contains("mcpproxyd_upstream_latency_seconds_bucket{upstream=\"up\",le=\"0.05\"} 1"));
        assert!(text.contains("mcpproxyd_upstream_latency_seconds_count{upstream=\"up\"} 1"));
        assert!(text.contains("mcpproxyd_open_streams 2"));
        assert!(text.contains("mcpproxyd_token_expiry_seconds{profile=\"p\\\"x\"} 12.5"));
    }
}
