//! The report: facts about the run and one table with three columns (direct, mcpproxyd,
//! nginx) and their ratios, as text, Markdown and JSON.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::Args;

#[derive(Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Kind {
    /// More is better; ratios against direct and mcpproxyd/nginx.
    Rate,
    /// Less is better; the time each proxy adds over direct, and their ratio.
    Latency,
    /// What the proxy process costs (memory, files, CPU): mcpproxyd/nginx.
    Cost,
    /// A count or an outcome shown as is.
    Plain,
}

#[derive(Serialize)]
pub(super) struct Row {
    pub(super) workload: String,
    pub(super) metric: String,
    pub(super) kind: Kind,
    pub(super) direct: Option<f64>,
    pub(super) mcpproxyd: Option<f64>,
    pub(super) nginx: Option<f64>,
}

#[derive(Serialize)]
pub(super) struct Report {
    pub(super) facts: Vec<(String, String)>,
    pub(super) rows: Vec<Row>,
    pub(super) notes: Vec<String>,
}

fn num(v: Option<f64>, prec: usize) -> String {
    v.map_or("-".to_owned(), |v| format!("{v:.prec$}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b.abs() > 1e-12 => format!("{:.2}x", a / b),
        _ => "-".to_owned(),
    }
}

impl Report {
    pub(super) fn new(args: &Args) -> Report {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("unknown".to_owned(), |(_, m)| m.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .map_or("unknown".to_owned(), |m| m.trim().to_owned());
        let mut r = Report {
            facts: Vec::new(),
            rows: Vec::new(),
            notes: Vec::new(),
        };
        r.fact("date (UTC)", utc_now());
        r.fact("command", std::env::args().collect::<Vec<_>>().join(" "));
        let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
        r.fact("machine", format!("nproc {nproc}, {cpu}, memory {mem}"));
        r.fact(
            "kernel",
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or("unknown".to_owned(), |s| s.trim().to_owned()),
        );
        r.fact("load average before (1/5/15 min)", loadavg());
        r.fact(
            "mode",
            if args.quick {
                "--quick (tiny: proves the harness, numbers mean nothing)"
            } else {
                "full"
            },
        );
        r.fact(
            "bench build",
            if cfg!(debug_assertions) {
                "debug (not representative)"
            } else {
                "release"
            },
        );
        r.fact("daemon log level", &args.daemon_log);
        r
    }

    pub(super) fn fact(&mut self, key: &str, value: impl Into<String>) {
        self.facts.push((key.to_owned(), value.into()));
    }

    /// Whether a fact named `key` was recorded.
    pub(super) fn has_fact(&self, key: &str) -> bool {
        self.facts.iter().any(|(k, _)| k == key)
    }

    pub(super) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    pub(super) fn row(&mut self, workload: &str, metric: &str, kind: Kind, v: [Option<f64>; 3]) {
        self.rows.push(Row {
            workload: workload.to_owned(),
            metric: metric.to_owned(),
            kind,
            direct: v[0],
            mcpproxyd: v[1],
            nginx: v[2],
        });
    }

    pub(super) fn latency(&mut self, workload: &str, metric: &str, v: [Option<Duration>; 3]) {
        let ms = v.map(|d| d.map(|d| d.as_secs_f64() * 1000.0));
        self.row(workload, &format!("{metric} (ms)"), Kind::Latency, ms);
    }

    pub(super) const HEADERS: [&'static str; 8] = [
        "workload",
        "metric",
        "direct",
        "mcpproxyd",
        "nginx",
        "mcpproxyd vs direct",
        "nginx vs direct",
        "mcpproxyd / nginx",
    ];

    fn cells(&self) -> Vec<[String; 8]> {
        self.rows
            .iter()
            .map(|r| {
                let (d, m, n) = (r.direct, r.mcpproxyd, r.nginx);
                let (prec, vs_m, vs_n, m_n) = match r.kind {
                    Kind::Rate => (1, ratio(m, d), ratio(n, d), ratio(m, n)),
                    Kind::Latency => {
                        let added = |x: Option<f64>| Some(x? - d?);
                        let show = |x: Option<f64>| {
                            added(x).map_or("-".to_owned(), |a| format!("{a:+.3} ms"))
                        };
                        // A ratio of added times only means something when both are > 0.
                        let positive = |x: Option<f64>| added(x).filter(|a| *a > 0.0);
                        (3, show(m), show(n), ratio(positive(m), positive(n)))
                    }
                    Kind::Cost => (1, String::new(), String::new(), ratio(m, n)),
                    Kind::Plain => (0, String::new(), String::new(), String::new()),
                };
                [
                    r.workload.clone(),
                    r.metric.clone(),
                    num(d, prec),
                    num(m, prec),
                    num(n, prec),
                    vs_m,
                    vs_n,
                    m_n,
                ]
            })
            .collect()
    }

    const LEGEND: &'static str = "Rates: higher is better. Latency rows: the vs-direct columns \
         are the time each proxy adds; mcpproxyd / nginx is the ratio of the added times (< 1 = \
         mcpproxyd adds less). Cost rows: mcpproxyd / nginx < 1 = mcpproxyd is cheaper. The \
         machine may be shared and noisy: compare the ratios of one run, not absolute numbers \
         across runs.";

    pub(super) fn text(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.facts {
            let _ = writeln!(out, "{:<34} {v}", format!("{k}:"));
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
        let _ = writeln!(out, "{}", line(&Self::HEADERS.map(str::to_owned)));
        let _ = writeln!(out, "{}", "-".repeat(widths.iter().sum::<usize>() + 14));
        for row in &cells {
            let _ = writeln!(out, "{}", line(row));
        }
        let _ = writeln!(out, "\n{}", Self::LEGEND);
        for n in &self.notes {
            let _ = writeln!(out, "- {n}");
        }
        out
    }

    pub(super) fn markdown(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.facts {
            let v = if k == "command" {
                format!("`{v}`")
            } else {
                v.clone()
            };
            let _ = writeln!(out, "- {k}: {v}");
        }
        out.push('\n');
        let _ = writeln!(out, "| {} |", Self::HEADERS.join(" | "));
        let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|--:|");
        for row in self.cells() {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        let _ = writeln!(out, "\n{}\n", Self::LEGEND);
        for n in &self.notes {
            let _ = writeln!(out, "- {n}");
        }
        out
    }

    pub(super) fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
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
