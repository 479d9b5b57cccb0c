//! Tool call counters, by upstream, server and tool: calls, their outcomes, and policy denials.
//! Tool names come from clients, so the number of label sets is capped ([`MAX_SERIES`]); past
//! the cap new tools count under the tool name `other`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// The most distinct (upstream, server, tool) label sets kept.
pub const MAX_SERIES: usize = 2000;

/// How a tool call ended, as the proxy saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// A result without `isError: true`.
    Ok,
    /// A result with `isError: true`.
    ToolError,
    /// A JSON-RPC error response.
    RpcError,
    /// Refused by a tool policy; never sent upstream.
    Denied,
    /// The response ended (or the client left) before an outcome was seen.
    Unknown,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ToolError => "tool_error",
            Outcome::RpcError => "rpc_error",
            Outcome::Denied => "denied",
            Outcome::Unknown => "unknown",
        }
    }
}

type Key = (String, String, String, Outcome);

#[derive(Debug, Default)]
pub struct ToolMetrics {
    calls: Mutex<BTreeMap<Key, u64>>,
}

impl ToolMetrics {
    /// One tool call ended with `outcome`.
    pub fn call(&self, upstream: &str, server: &str, tool: &str, outcome: Outcome) {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let mut key = (upstream.into(), server.into(), tool.into(), outcome);
        if !calls.contains_key(&key) && calls.len() >= MAX_SERIES {
            key.2 = "other".into();
        }
        *calls.entry(key).or_default() += 1;
    }

    /// Tool calls refused by policy, over all servers (for `status`).
    pub fn denied(&self) -> u64 {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls
            .iter()
            .filter(|(k, _)| k.3 == Outcome::Denied)
            .map(|(_, v)| v)
            .sum()
    }

    /// Appends the Prometheus text of these counters.
    pub fn render(&self, out: &mut String, esc: fn(&str) -> String) {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(
            out,
            "# HELP mcpproxyd_tool_calls_total Tool calls, by upstream, server, tool and outcome (ok, tool_error, rpc_error, denied, unknown)."
        );
        let _ = writeln!(out, "# TYPE mcpproxyd_tool_calls_total counter");
        for ((u, s, t, o), v) in calls.iter() {
            let _ = writeln!(
                out,
                "mcpproxyd_tool_calls_total{{upstream=\"{}\",server=\"{}\",tool=\"{}\",outcome=\"{}\"}} {v}",
                esc(u),
                esc(s),
                esc(t),
                o.label()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_caps() {
        let m = ToolMetrics::default();
        m.call("u", "s", "echo", Outcome::Ok);
        m.call("u", "s", "echo", Outcome::Ok);
        m.call("u", "s", "DeleteX", Outcome::Denied);
        assert_eq!(m.denied(), 1);
        let mut out = String::new();
        m.render(&mut out, |s| s.replace('"', "\\\""));
        assert!(out.contains(
            "mcpproxyd_tool_calls_total{upstream=\"u\",server=\"s\",tool=\"echo\",outcome=\"ok\"} 2"
        ));
        for i in 0..MAX_SERIES {
            m.call("u", "s", &format!("t{i}"), Outcome::Ok);
        }
        m.call("u", "s", "one-too-many", Outcome::Ok);
        let mut out = String::new();
        m.render(&mut out, |s| s.to_string());
        assert!(!out.contains("one-too-many"));
        assert!(out.contains("tool=\"other\""));
    }
}
