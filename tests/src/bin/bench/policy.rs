//! What a tool policy costs, in the same run: the JSON-RPC workload through a second daemon
//! whose config has a `[[policy]]`, to a server the policy applies to (**on**: the body is read
//! whole and parsed, `tools/call` decided, the answer audited) and to one it does not apply to
//! (**off**: policies exist, this server's bodies stream as before), against the first daemon,
//! which has no policy at all (**none**).

use std::fmt::Write as _;

use anyhow::Context;
use mcpproxy_tests::daemon::Setup;

use super::{http1_client, rpc_call, rpc_run, Args, Daemon, Env, Samples, Side};

/// The two catalogued servers of the second daemon; the policy names `on`.
const CONFIG: &str = "[[upstream.servers]]\nname = \"on\"\nmcp = \"/pol/on/mcp-demo\"\n\
    [[upstream.servers]]\nname = \"off\"\nmcp = \"/pol/off/mcp-demo\"\n\n\
    [[policy]]\nname = \"bench\"\nservers = [\"on\"]\nread_only = true\nblocked_tools = [\"*Secret*\"]\n";

/// The second daemon and its rows, rendered.
pub struct PolicyBench {
    daemon: Daemon,
    _setup: Setup,
    rows: Vec<(String, String, [f64; 3])>,
}

pub async fn measure(
    args: &Args,
    env: &Env,
    daemon_bin: &std::path::Path,
) -> anyhow::Result<PolicyBench> {
    let setup = Setup::new()?;
    let extra = format!("{CONFIG}\n[log]\nlevel = {:?}\n", args.daemon_log);
    let config = setup.write_config(&setup.static_config(&env.upstream, &extra)?)?;
    let daemon = Daemon::start(daemon_bin, &config, setup.dir.path()).await?;
    let side = |name, path: &str| -> anyhow::Result<Side> {
        Ok(Side {
            name,
            client: http1_client(mcpproxy_tests::tls::client_config_with_roots(
                rustls::RootCertStore::empty(),
            ))?,
            base: format!("http://{}{path}", daemon.addr),
            auth: None,
        })
    };
    let sides = [
        env.proxy.clone(),
        side("policy off", "/pol/off")?,
        side("policy on", "/pol/on")?,
    ];
    let warm_conc = args.concurrency.iter().copied().max().unwrap_or(1);
    for s in &sides {
        rpc_call(s).await.with_context(|| {
            format!("first request ({}) failed{}", s.name, daemon.stderr_hint())
        })?;
        rpc_run(s, args.warmup.max(warm_conc), warm_conc).await?;
    }
    let mut rows = Vec::new();
    for &conc in &args.concurrency {
        let mut samples: Vec<Samples> = Vec::new();
        for s in &sides {
            samples.push(rpc_run(s, args.requests, conc).await?);
        }
        let label = format!("JSON-RPC tools/call, c={conc}");
        let n = args.requests as f64;
        let ms = |s: &Samples, q| s.quantile(q).as_secs_f64() * 1000.0;
        rows.push((
            label.clone(),
            "requests/s".into(),
            [0, 1, 2].map(|i| samples[i].per_second(n)),
        ));
        for (name, q) in [("p50 latency (ms)", 0.5), ("p99 latency (ms)", 0.99)] {
            rows.push((
                label.clone(),
                name.into(),
                [0, 1, 2].map(|i| ms(&samples[i], q)),
            ));
        }
        println!("  done: policy none/off/on, c={conc}");
    }
    Ok(PolicyBench {
        daemon,
        _setup: setup,
        rows,
    })
}

impl PolicyBench {
    pub async fn stop(&mut self) {
        self.daemon.stop().await;
    }

    /// The table as Markdown (`text` false: aligned plain text).
    pub fn render(&self, markdown: bool) -> String {
        let headers = [
            "workload",
            "metric",
            "none",
            "policy off",
            "policy on",
            "on/none",
            "added by on",
        ];
        let cells: Vec<[String; 7]> = self
            .rows
            .iter()
            .map(|(w, m, [none, off, on])| {
                let rate = m == "requests/s";
                let f = |v: f64| {
                    if rate {
                        format!("{v:.1}")
                    } else {
                        format!("{v:.3}")
                    }
                };
                let added = if rate {
                    String::new()
                } else {
                    format!("{:+.3} ms", on - none)
                };
                [
                    w.clone(),
                    m.clone(),
                    f(*none),
                    f(*off),
                    f(*on),
                    format!("{:.2}x", on / none.max(1e-9)),
                    added,
                ]
            })
            .collect();
        let mut out = String::from(
            "\nTool policy cost (one more daemon, same upstream; none = the proxy above):\n\n",
        );
        if markdown {
            let _ = writeln!(out, "| {} |", headers.join(" | "));
            let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|");
            for c in &cells {
                let _ = writeln!(out, "| {} |", c.join(" | "));
            }
            return out;
        }
        let mut widths = headers.map(str::len);
        for c in &cells {
            for (w, v) in widths.iter_mut().zip(c) {
                *w = (*w).max(v.len());
            }
        }
        for row in std::iter::once(headers.map(str::to_owned)).chain(cells) {
            let mut line = String::new();
            for (i, (v, w)) in row.iter().zip(widths).enumerate() {
                if i < 2 {
                    let _ = write!(line, "{v:<w$}  ");
                } else {
                    let _ = write!(line, "{v:>w$}  ");
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        out
    }
}
