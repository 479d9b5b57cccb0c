//! Human output: pure functions from the daemon's answers (and the time now) to text.

use std::fmt::Write as _;

use mcpproxyd_api::{
    Access, AclSummary, AclVerdict, LoggedOut, LoginPhase, LoginStatus, PolicyInfo, ProfileStatus,
    Reloaded, Revoked, ServerInfo, Servers, Status,
};

use crate::time::{relative, span, utc};

/// `status`: everything at a glance.
pub fn status(s: &Status, now: u64) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "mcpproxyd {}, pid {}, up {}",
        s.version,
        s.pid,
        span(s.uptime_seconds)
    );
    field(&mut o, "listening", &list(&s.listen, "(no listener)"));
    if !s.listen_unix.is_empty() {
        field(&mut o, "unix sockets", &s.listen_unix.join(", "));
    }
    field(
        &mut o,
        "config",
        &format!(
            "{}, loaded {}",
            s.config.source,
            relative(s.config.loaded_at, now)
        ),
    );
    if let Some(e) = &s.config.last_reload_error {
        field(
            &mut o,
            "last reload",
            &format!("FAILED, previous configuration kept: {e}"),
        );
    }
    field(&mut o, "token store", &s.token_store);

    o.push_str("\nupstreams\n");
    if s.upstreams.is_empty() {
        o.push_str("  (none)\n");
    }
    let width = s.upstreams.iter().map(|u| u.name.len()).max().unwrap_or(0);
    for u in &s.upstreams {
        let _ = writeln!(
            o,
            "  {:width$}  {} → {}  (auth {}, catalog {}, {})",
            u.name,
            u.mount,
            u.url,
            u.auth,
            u.catalog,
            count(u.servers, "server", "servers")
        );
    }

    o.push_str("\nauth profiles\n");
    if s.profiles.is_empty() {
        o.push_str("  (none)\n");
    }
    for p in &s.profiles {
        profile(&mut o, p, now);
    }

    o.push_str("\nacl\n");
    acl(&mut o, &s.acl);
    crate::keys::status_section(&mut o, &s.client_keys, now);

    o.push('\n');
    field(
        &mut o,
        "counters",
        &format!(
            "{} requests, {} denied ({} tool calls), {} open streams",
            s.counters.requests, s.counters.denied, s.counters.tool_denied, s.counters.open_streams
        ),
    );
    o
}

fn profile(o: &mut String, p: &ProfileStatus, now: u64) {
    let mut line = format!("  {} ({}): {}", p.name, p.kind, p.state.words());
    if let Some(until) = p.valid_until {
        let verb = if until > now {
            "valid until"
        } else {
            "expired"
        };
        let _ = write!(line, ", {verb} {} ({})", utc(until), relative(until, now));
    }
    if let Some(at) = p.refresh_at {
        if at > now {
            let _ = write!(line, ", refresh {}", relative(at, now));
        } else {
            let _ = write!(line, ", refresh overdue (due {})", relative(at, now));
        }
    }
    if p.state.needs_attention() {
        line.push_str("  [needs attention]");
    }
    let _ = writeln!(o, "{line}");
    if !p.detail.is_empty() {
        let _ = writeln!(o, "    {}", p.detail);
    }
    if let Some(e) = &p.last_error {
        let _ = writeln!(o, "    last error: {e}");
    }
    if let Some(w) = &p.warning {
        let _ = writeln!(o, "    ! {w}");
    }
}

fn acl(o: &mut String, a: &AclSummary) {
    let mark = |entries: &[String]| -> Vec<String> {
        entries
            .iter()
            .map(|e| {
                if a.unresolved.contains(e) {
                    format!("{e} (unresolved)")
                } else {
                    e.clone()
                }
            })
            .collect()
    };
    let allowed = if a.allowed.is_empty() {
        "everything not blocked (no allowed list)".to_string()
    } else {
        mark(&a.allowed).join(", ")
    };
    let blocked = list(&mark(&a.blocked), "(none)");
    let _ = writeln!(o, "  allowed  {allowed}");
    let _ = writeln!(o, "  blocked  {blocked}");
    if !a.unresolved.is_empty() {
        let _ = writeln!(
            o,
            "  ! {} no catalogued server: {}",
            if a.unresolved.len() == 1 {
                "1 entry matches"
            } else {
                "these entries match"
            },
            a.unresolved.join(", ")
        );
    }
}

/// `status --check`: one line for each auth profile that needs an operator.
pub fn attention(s: &Status) -> Vec<String> {
    s.profiles
        .iter()
        .filter(|p| p.state.needs_attention())
        .map(|p| {
            let mut line = format!("auth profile {}: {}", p.name, p.state.words());
            if let Some(e) = &p.last_error {
                let _ = write!(line, " (last error: {e})");
            }
            line
        })
        .collect()
}

/// `status --check` when no profile needs an operator.
pub fn check_passed(s: &Status) -> String {
    format!(
        "ok: {}, none needs attention\n",
        count(s.profiles.len(), "auth profile", "auth profiles")
    )
}

/// `servers`: one row per server, its URLs beneath.
pub fn servers(s: &Servers) -> String {
    if s.servers.is_empty() {
        return "no servers in the catalog\n".to_string();
    }
    let rows: Vec<[String; 4]> = s
        .servers
        .iter()
        .map(|v| [v.name.clone(), v.id.clone(), v.upstream.clone(), access(v)])
        .collect();
    let header = ["NAME", "ID", "UPSTREAM", "ACCESS"].map(String::from);
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            rows.iter()
                .chain([&header])
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut o = String::new();
    let row = |o: &mut String, r: &[String; 4]| {
        let _ = writeln!(
            o,
            "{:w0$}  {:w1$}  {:w2$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    };
    row(&mut o, &header);
    for (v, r) in s.servers.iter().zip(&rows) {
        row(&mut o, r);
        for (label, url) in [("mcp", &v.mcp_url), ("sse", &v.sse_url)] {
            if let Some(url) = url {
                let _ = writeln!(o, "  {label}  {url}");
            }
        }
        for p in &v.policies {
            let _ = writeln!(o, "  policy  {}", policy(p));
        }
    }
    let tally = |a: Access| s.servers.iter().filter(|v| v.access == a).count();
    let _ = writeln!(
        o,
        "\n{}: {} allowed, {} blocked, {} not in the allowed list",
        count(s.servers.len(), "server", "servers"),
        tally(Access::Allowed),
        tally(Access::Blocked),
        tally(Access::NotAllowed)
    );
    o
}

/// A tool policy in one line: `ecs-read-only: read-only, allowed Describe*, blocked *Delete*`.
fn policy(p: &PolicyInfo) -> String {
    let mut parts = Vec::new();
    if p.read_only {
        parts.push("read-only".to_string());
    }
    if !p.allowed_tools.is_empty() {
        parts.push(format!("allowed {}", p.allowed_tools.join(" ")));
    }
    if !p.blocked_tools.is_empty() {
        parts.push(format!("blocked {}", p.blocked_tools.join(" ")));
    }
    format!("{}: {}", p.name, parts.join(", "))
}

fn access(v: &ServerInfo) -> String {
    let words = match v.access {
        Access::Allowed => "allowed",
        Access::Blocked => "blocked",
        Access::NotAllowed => "not in the allowed list",
    };
    match &v.rule {
        Some(rule) => format!("{words} (rule: {rule})"),
        None => words.to_string(),
    }
}

/// `reload`: where from, and what waits for a restart.
pub fn reloaded(r: &Reloaded) -> String {
    let mut o = format!("configuration reloaded from {}\n", r.source);
    for setting in &r.needs_restart {
        let _ = writeln!(o, "{setting} changed: restart mcpproxyd to apply");
    }
    o
}

/// `acl check`: the verdict, the rule and the reason.
pub fn verdict(v: &AclVerdict) -> String {
    let mut o = format!(
        "{}: {}\n",
        if v.allowed { "allowed" } else { "denied" },
        v.path
    );
    field(&mut o, "decision", &v.decision);
    field(&mut o, "rule", v.rule.as_deref().unwrap_or("(none)"));
    field(&mut o, "reason", &v.reason);
    if let Some(u) = &v.upstream {
        field(&mut o, "upstream", u);
    }
    if let Some(s) = &v.server {
        field(&mut o, "server", s);
    }
    if let Some(k) = &v.key {
        field(&mut o, "client key", k);
    }
    if let Some(t) = &v.tool {
        let words = if t.allowed { "allowed" } else { "denied" };
        field(&mut o, "tool", &format!("{} {words}: {}", t.tool, t.reason));
    }
    o
}

/// `login` succeeded: the seed's words, and how long the new token lasts.
pub fn login_succeeded(s: &LoginStatus, now: u64) -> String {
    let mut o = String::from("OAuth login successful!\n");
    match s.valid_until {
        Some(until) => {
            let _ = writeln!(
                o,
                "profile {}: token valid until {} ({})",
                s.profile,
                utc(until),
                relative(until, now)
            );
        }
        None => {
            let _ = writeln!(o, "profile {}: the token does not expire", s.profile);
        }
    }
    o
}

/// `login` ended without a token: why (one line, without the program's name).
pub fn login_failed(s: &LoginStatus) -> String {
    let what = match s.status {
        LoginPhase::Expired => "login expired",
        LoginPhase::Pending => "login still pending",
        LoginPhase::Failed | LoginPhase::Succeeded => "login failed",
    };
    match s.message.as_deref().filter(|m| !m.is_empty()) {
        Some(m) => format!("{what} (profile {}): {m}", s.profile),
        None => format!("{what} (profile {})", s.profile),
    }
}

/// `logout`: whether there was a token to wipe.
pub fn logged_out(l: &LoggedOut) -> String {
    format!(
        "profile {} logged out ({})\n",
        l.profile,
        if l.had_token {
            "token wiped"
        } else {
            "no token was held"
        }
    )
}

/// What to do when the authorization server may still honour the tokens.
pub const REVOKE_BY_HAND: &str = "revoke the application's authorization in the provider's console";

/// `revoke`: the local wipe, then what the authorization server did.
pub fn revoked(r: &Revoked) -> String {
    let mut o = if r.wiped {
        format!(
            "profile {}: token wiped from memory and the store, its open streams closed; \
             requests are refused until `mcpproxyctl login`\n",
            r.profile
        )
    } else {
        format!("profile {}: the token was NOT wiped\n", r.profile)
    };
    let server = match r.server.as_str() {
        "revoked" => "revoked".to_string(),
        "not_supported" => format!(
            "not supported by the server (it has no revocation endpoint); the tokens stay \
             valid there until they expire: {REVOKE_BY_HAND}"
        ),
        "nothing_to_revoke" => "nothing to revoke (no token was held)".to_string(),
        "failed" => format!(
            "FAILED: {}",
            r.server_error.as_deref().unwrap_or("no reason given")
        ),
        other => match &r.server_error {
            Some(e) => format!("{other}: {e}"),
            None => other.to_string(),
        },
    };
    let _ = writeln!(o, "server revocation: {server}");
    if revoke_incomplete(r) && r.server != "not_supported" {
        let _ = writeln!(o, "{REVOKE_BY_HAND}");
    }
    o
}

/// The revocation needs an operator: not wiped, or the server's revocation failed.
pub fn revoke_incomplete(r: &Revoked) -> bool {
    !r.wiped || r.server == "failed" || r.server_error.is_some()
}

fn field(o: &mut String, label: &str, value: &str) {
    let _ = writeln!(o, "{label:<12} {value}");
}

fn list(items: &[String], empty: &str) -> String {
    if items.is_empty() {
        empty.to_string()
    } else {
        items.join(", ")
    }
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
