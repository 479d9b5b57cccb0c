//! The report: facts about the run and the table, as text and as Markdown.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Args;

pub(super) enum Kind {
    /// More is better; the ratio is proxy/direct.
    Rate,
    /// Less is better; also shows the time the proxy adds.
    Latency,
}

pub(super) struct Row {
    pub(super) workload: String,
    pub(super) metric: String,
    pub(super) kind: Kind,
    pub(super) direct: f64,
    pub(super) proxy: f64,
}

pub(super) struct Report {
    pub(super) date: String,
    pub(super) command: String,
    pub(super) nproc: usize,
    pub(super) cpu: String,
    pub(super) kernel: String,
    pub(super) load_before: String,
    pub(super) load_after: String,
    pub(super) daemon_bin: String,
    pub(super) daemon_version: String,
    pub(super) daemon_debug: bool,
    pub(super) daemon_log: String,
    pub(super) proxy_upstream_versions: String,
    pub(super) settings: String,
    pub(super) rows: Vec<Row>,
    pub(super) elapsed: Duration,
}

impl Report {
    pub(super) fn new(args: &Args) -> Report {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("unknown".to_owned(), |(_, m)| m.trim().to_owned());
        let concurrency: Vec<String> = args.concurrency.iter().map(u64::to_string).collect();
        Report {
            date: utc_now(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or("unknown".to_owned(), |s| s.trim().to_owned()),
            load_before: loadavg(),
            load_after: String::new(),
            daemon_bin: String::new(),
            daemon_version: String::new(),
            daemon_debug: false,
            daemon_log: args.daemon_log.clone(),
            proxy_upstream_versions: String::new(),
            settings: format!(
                "{} JSON-RPC requests per side at concurrency {}; {} uploads of {} MiB; \
                 {} SSE streams; {} warm-up requests per side",
                args.requests,
                concurrency.join(", "),
                args.uploads,
                args.upload_mib,
                args.sse_streams,
                args.warmup
                    .max(args.concurrency.iter().copied().max().unwrap_or(1)),
            ),
            rows: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }

    pub(super) fn rate(&mut self, workload: &str, metric: &str, direct: f64, proxy: f64) {
        self.rows.push(Row {
            workload: workload.to_owned(),
            metric: metric.to_owned(),
            kind: Kind::Rate,
            direct,
            proxy,
        });
    }

    pub(super) fn latency(
        &mut self,
        workload: &str,
        metric: &str,
        direct: Duration,
        proxy: Duration,
    ) {
        self.rows.push(Row {
            workload: workload.to_owned(),
            metric: format!("{metric} latency (ms)"),
            kind: Kind::Latency,
            direct: direct.as_secs_f64() * 1000.0,
            proxy: proxy.as_secs_f64() * 1000.0,
        });
    }

    /// Cells: workload, metric, direct, proxy, proxy/direct, added by the proxy.
    pub(super) fn cells(&self) -> Vec<[String; 6]> {
        self.rows
            .iter()
            .map(|r| {
                let ratio = if r.direct > 0.0 {
                    format!("{:.2}x", r.proxy / r.direct)
                } else {
                    "-".to_owned()
                };
                let (direct, proxy, added) = match r.kind {
                    Kind::Rate => (
                        format!("{:.1}", r.direct),
                        format!("{:.1}", r.proxy),
                        String::new(),
                    ),
                    Kind::Latency => (
                        format!("{:.3}", r.direct),
                        format!("{:.3}", r.proxy),
                        format!("{:+.3} ms", r.proxy - r.direct),
                    ),
                };
                [
                    r.workload.clone(),
                    r.metric.clone(),
                    direct,
                    proxy,
                    ratio,
                    added,
                ]
            })
            .collect()
    }

    const HEADERS: [&'static str; 6] = [
        "workload",
        "metric",
        "direct",
        "proxy",
        "proxy/direct",
        "added by proxy",
    ];

    pub(super) fn facts(&self) -> Vec<(&'static str, String)> {
        let mut daemon = format!("{} ({})", self.daemon_bin, self.daemon_version);
        if self.daemon_debug {
            daemon.push_str(": DEBUG BUILD, not representative");
        }
        vec![
            ("date (UTC)", self.date.clone()),
            ("command", self.command.clone()),
            ("machine", format!("nproc {}, {}", self.nproc, self.cpu)),
            ("kernel", self.kernel.clone()),
            (
                "load average (1/5/15 min)",
                format!("{} before, {} after", self.load_before, self.load_after),
            ),
            ("daemon", daemon),
            ("daemon log level", self.daemon_log.clone()),
            (
                "bench build",
                if cfg!(debug_assertions) {
                    "debug (not representative)"
                } else {
                    "release"
                }
                .to_owned(),
            ),
            (
                "clients",
                "reqwest, one pooled HTTP/1.1 keep-alive client per side; direct = HTTPS + \
                 bearer to the in-process test upstream, proxy = plain HTTP to mcpproxyd"
                    .to_owned(),
            ),
            (
                "proxy to upstream",
                format!(
                    "{} (mcpproxyd offers h2 and http/1.1 by ALPN)",
                    self.proxy_upstream_versions
                ),
            ),
            ("settings", self.settings.clone()),
            ("run time", format!("{:.1} s", self.elapsed.as_secs_f64())),
        ]
    }

    pub(super) fn text(&self) -> String {
        let mut out = String::new();
        for (k, v) in self.facts() {
            let _ = writeln!(out, "{:<26} {v}", format!("{k}:"));
        }
        out.push('\n');
        let cells = self.cells();
        let mut widths = Self::HEADERS.map(str::len);
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.len());
            }
        }
        let line = |row: &[String]| {
            let mut s = String::new();
            for (i, (c, w)) in row.iter().zip(widths).enumerate() {
                if i < 2 {
                    let _ = write!(s, "{c:<w$}  ");
                } else {
                    let _ = write!(s, "{c:>w$}  ");
                }
            }
            s.trim_end().to_owned()
        };
        let headers = Self::HEADERS.map(str::to_owned);
        let _ = writeln!(out, "{}", line(&headers));
        let _ = writeln!(out, "{}", "-".repeat(widths.iter().sum::<usize>() + 10));
        for row in &cells {
            let _ = writeln!(out, "{}", line(row));
        }
        out.push_str(
            "\nRates: higher is better (ratio < 1 = the proxy is slower). Latencies: lower is \
             better.\nThe machine may be shared and noisy: compare the ratios of one run, not \
             absolute numbers across runs.\n",
        );
        out
    }

    pub(super) fn markdown(&self) -> String {
        let mut out = String::new();
        for (k, v) in self.facts() {
            let v = if k == "command" { format!("`{v}`") } else { v };
            let _ = writeln!(out, "- {k}: {v}");
        }
        out.push('\n');
        let _ = writeln!(out, "| {} |", Self::HEADERS.join(" | "));
        let _ = writeln!(out, "|---|---|--:|--:|--:|--:|");
        for row in self.cells() {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        out.push_str(
            "\nRates: higher is better (ratio < 1 = the proxy is slower). Latencies: lower is \
             better. The machine may be shared and noisy: compare the ratios of one run, not \
             absolute numbers across runs.\n",
        );
        out
    }
}

pub(super) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
pub(super) fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}
