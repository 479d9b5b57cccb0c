//! What a tool policy costs, in the same run: the JSON-RPC workload through two more daemons
//! whose configs have a `[[policy]]`: one naming the server the workload calls (**on**: the
//! body is read whole and parsed, `tools/call` decided, the answer audited), one naming another
//! server (**off**: policies exist, this server's bodies stream as before), against the main
//! daemon, which has no policy at all (**none**).

use std::fmt::Write as _;

use anyhow::Context;

use super::daemon::Daemon;
use super::load::{http1_client, rpc_call, rpc_run, Samples, Side};
use super::{Args, Env, RPC_PATH};
use crate::daemon::Setup;

/// The catalogued servers of the policy daemons: `rpc` is the workload's path.
const SERVERS: &str = "[[upstream.servers]]\nname = \"rpc\"\nmcp = \"/raw/rpc\"\n\
    [[upstream.servers]]\nname = \"other\"\nmcp = \"/raw/other\"\n\n";

/// A read-only policy over `server`.
fn policy(server: &str) -> String {
    format!(
        "[[policy]]\nname = \"bench\"\nservers = [\"{server}\"]\nread_only = true\n\
         blocked_tools = [\"*Secret*\"]\n"
    )
}

/// The policy daemons and the rows, rendered.
pub(super) struct PolicyBench {
    daemons: Vec<(Daemon, Setup)>,
    rows: Vec<(String, String, [f64; 3])>,
}

pub(super) async fn measure(args: &Args, env: &Env) -> anyhow::Result<PolicyBench> {
    let mut daemons = Vec::new();
    let mut sides = vec![env.proxy.clone()];
    for (name, server) in [("policy off", "other"), ("policy on", "rpc")] {
        let setup = Setup::new()?;
        let extra = format!(
            "{SERVERS}{}\n[log]\nlevel = {:?}\n",
            policy(server),
            args.daemon_log
        );
        let config = setup.write_config(&setup.static_config(&env.upstream, &extra)?)?;
        let daemon = Daemon::start(&env.daemon_bin, &config, setup.dir.path()).await?;
        sides.push(Side {
            name,
            client: http1_client(crate::tls::client_config_with_roots(
                rustls::RootCertStore::empty(),
            ))?,
            base: format!("http://{}", daemon.addr),
            auth: None,
        });
        daemons.push((daemon, setup));
    }
    // A failure quotes the daemon's last log lines (sides[0] is the main daemon).
    let hint = |i: usize| match i {
        0 => env.daemon.stderr_hint(),
        i => daemons[i - 1].0.stderr_hint(),
    };
    // As the main daemon's warm-up (at most 64): a fresh daemon's first burst at c=256 can
    // meet the 502 of BENCHMARKS.md (h2's DATA-frame budget on a still-narrow window).
    let warm_conc = args.concurrency.iter().copied().max().unwrap_or(1).min(64);
    for (i, s) in sides.iter().enumerate() {
        rpc_call(s).await.with_context(|| {
            format!(
                "first request ({}) through {RPC_PATH} failed{}",
                s.name,
                hint(i)
            )
        })?;
        rpc_run(s, args.warmup.max(warm_conc), warm_conc)
            .await
            .with_context(|| format!("warm-up at c={warm_conc}{}", hint(i)))?;
    }
    let mut rows = Vec::new();
    for &conc in &args.concurrency {
        let mut samples: Vec<Samples> = Vec::new();
        for (i, s) in sides.iter().enumerate() {
            let run = rpc_run(s, args.requests, conc).await;
            samples.push(run.with_context(|| format!("c={conc}{}", hint(i)))?);
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
    Ok(PolicyBench { daemons, rows })
}

impl PolicyBench {
    pub(super) async fn stop(&mut self) {
        for (daemon, _) in &mut self.daemons {
            daemon.stop().await;
        }
    }

    /// The table as Markdown (`markdown` false: aligned plain text).
    pub(super) fn render(&self, markdown: bool) -> String {
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
            "Tool policy cost (two more daemons, same upstream; none = the main daemon):\n\n",
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
