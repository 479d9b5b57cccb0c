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

/// How many [`Outcome`]s there are: a tool's counters, indexed by `outcome as usize`.
const OUTCOMES: usize = 5;

/// The counters by upstream, then server, then tool (each map sorted, so the text comes out in
/// the order of the labels); looked up by `&str`, so a call that was counted before allocates
/// nothing.
#[derive(Debug, Default)]
struct Counts {
    by_upstream: BTreeMap<String, BTreeMap<String, BTreeMap<String, [u64; OUTCOMES]>>>,
    /// Label sets (with the outcome) counted at least once.
    series: usize,
}

impl Counts {
    fn get(&self, upstream: &str, server: &str, tool: &str) -> Option<&[u64; OUTCOMES]> {
        self.by_upstream.get(upstream)?.get(server)?.get(tool)
    }

    fn get_or_insert(&mut self, upstream: &str, server: &str, tool: &str) -> &mut [u64; OUTCOMES] {
        let servers = entry(&mut self.by_upstream, upstream);
        let tools = entry(servers, server);
        entry(tools, tool)
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &str, &str, Outcome, u64)> {
        self.by_upstream.iter().flat_map(|(u, servers)| {
            servers.iter().flat_map(move |(s, tools)| {
                tools.iter().flat_map(move |(t, counts)| {
                    ALL.iter()
                        .zip(counts)
                        .filter(|(_, n)| **n > 0)
                        .map(move |(o, n)| (u.as_str(), s.as_str(), t.as_str(), *o, *n))
                })
            })
        })
    }
}

/// Every outcome, in the order of their indexes.
const ALL: [Outcome; OUTCOMES] = [
    Outcome::Ok,
    Outcome::ToolError,
    Outcome::RpcError,
    Outcome::Denied,
    Outcome::Unknown,
];

/// `map[key]`, inserted as the default when missing (the key copied only then).
fn entry<'m, V: Default>(map: &'m mut BTreeMap<String, V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}

#[derive(Debug, Default)]
pub struct ToolMetrics {
    calls: Mutex<Counts>,
}

impl ToolMetrics {
    /// One tool call ended with `outcome`.
    pub fn call(&self, upstream: &str, server: &str, tool: &str, outcome: Outcome) {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let i = outcome as usize;
        // Looked up for the cap only once there are that many label sets.
        let capped = calls.series >= MAX_SERIES
            && calls
                .get(upstream, server, tool)
                .is_none_or(|counts| counts[i] == 0);
        let tool = if capped { "other" } else { tool };
        let counts = calls.get_or_insert(upstream, server, tool);
        counts[i] += 1;
        if counts[i] == 1 {
            calls.series += 1;
        }
    }

    /// Tool calls refused by policy, over all servers (for `status`).
    pub fn denied(&self) -> u64 {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls
            .iter()
            .filter(|(_, _, _, o, _)| *o == Outcome::Denied)
            .map(|(_, _, _, _, n)| n)
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
        for (u, s, t, o, v) in calls.iter() {
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

    #[test]
    fn outcome_indexes_follow_the_declaration() {
        for (i, o) in ALL.iter().enumerate() {
            assert_eq!(*o as usize, i);
        }
    }

    #[test]
    fn text_is_sorted_by_labels_then_outcome() {
        let m = ToolMetrics::default();
        m.call("b", "s", "t", Outcome::Unknown);
        m.call("a", "s2", "t", Outcome::Ok);
        m.call("a", "s1", "z", Outcome::RpcError);
        m.call("a", "s1", "z", Outcome::Ok);
        m.call("a", "s1", "y", Outcome::Denied);
        let mut out = String::new();
        m.render(&mut out, |s| s.to_string());
        let lines: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "mcpproxyd_tool_calls_total{upstream=\"a\",server=\"s1\",tool=\"y\",outcome=\"denied\"} 1",
                "mcpproxyd_tool_calls_total{upstream=\"a\",server=\"s1\",tool=\"z\",outcome=\"ok\"} 1",
                "mcpproxyd_tool_calls_total{upstream=\"a\",server=\"s1\",tool=\"z\",outcome=\"rpc_error\"} 1",
                "mcpproxyd_tool_calls_total{upstream=\"a\",server=\"s2\",tool=\"t\",outcome=\"ok\"} 1",
                "mcpproxyd_tool_calls_total{upstream=\"b\",server=\"s\",tool=\"t\",outcome=\"unknown\"} 1",
            ]
        );
        assert_eq!(m.denied(), 1);
    }
}
