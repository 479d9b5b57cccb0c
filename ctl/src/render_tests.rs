//! Tests of [`super`]: sample answers in, key lines out.

use super::*;
use mcpproxyd_api::{
    AclSummary, ConfigInfo, Counters, ProfileState, ProfileStatus, ToolVerdict, UpstreamStatus,
};

const NOW: u64 = 1_748_786_587; // 2025-06-01 14:03:07 UTC

fn sample_status() -> Status {
    Status {
        version: "0.1.0".into(),
        pid: 4242,
        started_at: NOW - 11_520,
        uptime_seconds: 11_520,
        listen: vec!["127.0.0.1:8088".into(), "[::1]:8088".into()],
        config: ConfigInfo {
            source: "/etc/mcpproxyd/mcpproxyd.toml".into(),
            loaded_at: NOW - 300,
            last_reload_error: None,
        },
        upstreams: vec![UpstreamStatus {
            name: "alibaba".into(),
            mount: "/".into(),
            url: "https://openapi-mcp.cn-hangzhou.aliyuncs.com".into(),
            auth: "alibaba".into(),
            catalog: "alibaba".into(),
            servers: 12,
        }],
        profiles: vec![
            ProfileStatus {
                name: "alibaba".into(),
                kind: "alibaba".into(),
                state: ProfileState::Valid,
                valid_until: Some(NOW + 2 * 3600 + 13 * 60),
                refresh_at: Some(NOW + 3600 + 50 * 60),
                last_error: None,
                warning: Some("the login expires in 30h; run `mcpproxyctl login --profile alibaba` before then".into()),
                detail: "OAuth app aliyun-cli-mcp-proxy, region CN".into(),
                needed_scopes: vec![],
            },
            ProfileStatus {
                name: "github".into(),
                kind: "oauth".into(),
                state: ProfileState::NeedsLogin,
                valid_until: Some(NOW - 600),
                refresh_at: None,
                last_error: Some("invalid_grant: refresh token expired".into()),
                warning: None,
                detail: "https://github.com/login/oauth".into(),
                needed_scopes: vec![],
            },
        ],
        token_store: "keyring (survives reboot)".into(),
        acl: AclSummary {
            allowed: vec!["ecs".into(), "nosuch".into()],
            blocked: vec!["ram".into()],
            unresolved: vec!["nosuch".into()],
        },
        counters: Counters {
            requests: 1234,
            denied: 5,
            open_streams: 2,
            tool_denied: 3,
        },
        listen_unix: vec![],
        client_keys: Default::default(),
    }
}

fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
}

#[test]
fn status_shows_the_daemon_at_a_glance() {
    let text = status(&sample_status(), NOW);
    assert_eq!(
        text.lines().next().unwrap(),
        "mcpproxyd 0.1.0, pid 4242, up 3h 12m"
    );
    assert!(line_with(&text, "listening").ends_with("127.0.0.1:8088, [::1]:8088"));
    assert!(line_with(&text, "config").ends_with("/etc/mcpproxyd/mcpproxyd.toml, loaded 5m ago"));
    assert!(line_with(&text, "token store").ends_with("keyring (survives reboot)"));
    assert!(!text.contains("last reload"));
    let upstream = line_with(&text, "→");
    assert!(upstream.contains("alibaba  / → https://openapi-mcp.cn-hangzhou.aliyuncs.com"));
    assert!(upstream.contains("auth alibaba, catalog alibaba, 12 servers"));
    assert!(line_with(&text, "counters")
        .ends_with("1234 requests, 5 denied (3 tool calls), 2 open streams"));
}

#[test]
fn status_shows_each_profile_in_words_with_times() {
    let text = status(&sample_status(), NOW);
    assert_eq!(
        line_with(&text, "alibaba (alibaba)"),
        "  alibaba (alibaba): valid, valid until 2025-06-01 16:16 UTC (in 2h 13m), \
         refresh in 1h 50m"
    );
    assert!(text.contains("    OAuth app aliyun-cli-mcp-proxy, region CN\n"));
    let github = line_with(&text, "github (oauth)");
    assert!(github.contains(": needs login, expired 2025-06-01 13:53 UTC (10m ago)"));
    assert!(github.ends_with("[needs attention]"));
    assert!(text.contains("    last error: invalid_grant: refresh token expired\n"));
    assert!(text.contains(
        "    ! the login expires in 30h; run `mcpproxyctl login --profile alibaba` before then\n"
    ));
}

#[test]
fn status_summarises_the_acl_and_flags_unresolved_entries() {
    let text = status(&sample_status(), NOW);
    assert_eq!(
        line_with(&text, "  allowed  "),
        "  allowed  ecs, nosuch (unresolved)"
    );
    assert_eq!(line_with(&text, "  blocked  "), "  blocked  ram");
    assert_eq!(
        line_with(&text, "  ! 1 entry"),
        "  ! 1 entry matches no catalogued server: nosuch"
    );

    let mut s = sample_status();
    s.acl = AclSummary {
        allowed: vec![],
        blocked: vec![],
        unresolved: vec![],
    };
    let text = status(&s, NOW);
    assert!(line_with(&text, "  allowed  ").contains("everything not blocked"));
    assert_eq!(line_with(&text, "  blocked  "), "  blocked  (none)");
    assert!(
        !text.contains("  ! 1 entry"),
        "no unresolved entries, no flag"
    );
}

#[test]
fn status_shows_a_failed_reload() {
    let mut s = sample_status();
    s.config.last_reload_error = Some("mcpproxyd.toml:7: unknown key `lisen`".into());
    let text = status(&s, NOW);
    assert!(line_with(&text, "last reload").contains("FAILED"));
    assert!(line_with(&text, "last reload").ends_with("mcpproxyd.toml:7: unknown key `lisen`"));
}

#[test]
fn attention_names_the_profiles_that_need_an_operator() {
    assert_eq!(
        attention(&sample_status()),
        vec!["auth profile github: needs login (last error: invalid_grant: refresh token expired)"]
    );
    let mut s = sample_status();
    s.profiles.truncate(1);
    assert!(attention(&s).is_empty());
    assert_eq!(
        check_passed(&s),
        "ok: 1 auth profile, none needs attention\n"
    );
}

fn server(name: &str, id: &str, access: Access, rule: Option<&str>) -> ServerInfo {
    let base = format!("http://127.0.0.1:8088/accounts/1001/custom/{name}/id/{id}");
    ServerInfo {
        name: name.into(),
        id: id.into(),
        upstream: "alibaba".into(),
        mcp_url: Some(format!("{base}/mcp")),
        sse_url: Some(format!("{base}/sse")),
        access,
        rule: rule.map(String::from),
        policies: vec![],
    }
}

#[test]
fn servers_list_access_and_urls() {
    let list = Servers {
        servers: vec![
            server("ecs", "ECS01", Access::Allowed, Some("ecs")),
            server("ram", "RAM01", Access::Blocked, Some("ram")),
            server("rds", "RDS01", Access::NotAllowed, None),
        ],
    };
    let text = servers(&list);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "NAME  ID     UPSTREAM  ACCESS");
    assert_eq!(lines[1], "ecs   ECS01  alibaba   allowed (rule: ecs)");
    assert_eq!(
        lines[2],
        "  mcp  http://127.0.0.1:8088/accounts/1001/custom/ecs/id/ECS01/mcp"
    );
    assert_eq!(
        lines[3],
        "  sse  http://127.0.0.1:8088/accounts/1001/custom/ecs/id/ECS01/sse"
    );
    assert_eq!(lines[4], "ram   RAM01  alibaba   blocked (rule: ram)");
    assert_eq!(lines[7], "rds   RDS01  alibaba   not in the allowed list");
    assert!(text.ends_with("3 servers: 1 allowed, 1 blocked, 1 not in the allowed list\n"));
    assert_eq!(
        servers(&Servers { servers: vec![] }),
        "no servers in the catalog\n"
    );
}

#[test]
fn reload_names_the_file_and_what_needs_a_restart() {
    let text = reloaded(&Reloaded {
        source: "/etc/mcpproxyd/mcpproxyd.toml".into(),
        needs_restart: vec!["listen.addresses".into()],
    });
    assert_eq!(
        text,
        "configuration reloaded from /etc/mcpproxyd/mcpproxyd.toml\n\
         listen.addresses changed: restart mcpproxyd to apply\n"
    );
}

#[test]
fn verdicts_give_the_rule_and_the_reason() {
    let text = verdict(&AclVerdict {
        path: "/accounts/1001/custom/ram/id/RAM01/mcp".into(),
        allowed: false,
        decision: "blocked".into(),
        rule: Some("ram".into()),
        reason: "server ram is on the blocked list".into(),
        upstream: Some("alibaba".into()),
        server: Some("ram".into()),
        key: None,
        tool: None,
    });
    assert!(text.starts_with("denied: /accounts/1001/custom/ram/id/RAM01/mcp\n"));
    assert!(line_with(&text, "rule").ends_with(" ram"));
    assert!(line_with(&text, "reason").ends_with("server ram is on the blocked list"));
    assert!(line_with(&text, "upstream").ends_with("alibaba"));
}

fn login_status(phase: LoginPhase, message: Option<&str>, valid_until: Option<u64>) -> LoginStatus {
    LoginStatus {
        id: "0a1b".into(),
        profile: "github".into(),
        status: phase,
        message: message.map(String::from),
        valid_until,
        expires_at: NOW + 600,
    }
}

#[test]
fn a_login_says_the_seed_s_words_and_the_expiry() {
    let s = login_status(
        LoginPhase::Succeeded,
        Some("OAuth login successful!"),
        Some(NOW + 2 * 3600 + 59 * 60 + 30),
    );
    assert_eq!(
        login_succeeded(&s, NOW),
        "OAuth login successful!\n\
         profile github: token valid until 2025-06-01 17:02 UTC (in 2h 59m)\n"
    );
    let s = login_status(LoginPhase::Succeeded, None, None);
    assert_eq!(
        login_succeeded(&s, NOW),
        "OAuth login successful!\nprofile github: the token does not expire\n"
    );
}

#[test]
fn a_failed_login_says_why() {
    let s = login_status(
        LoginPhase::Failed,
        Some("the authorization server refused the login: access_denied"),
        None,
    );
    assert_eq!(
        login_failed(&s),
        "login failed (profile github): the authorization server refused the login: access_denied"
    );
    let s = login_status(LoginPhase::Expired, None, None);
    assert_eq!(login_failed(&s), "login expired (profile github)");
}

#[test]
fn logout_says_whether_a_token_was_held() {
    let mut l = LoggedOut {
        profile: "github".into(),
        had_token: true,
    };
    assert_eq!(logged_out(&l), "profile github logged out (token wiped)\n");
    l.had_token = false;
    assert_eq!(
        logged_out(&l),
        "profile github logged out (no token was held)\n"
    );
}

fn revocation(server: &str, server_error: Option<&str>) -> Revoked {
    Revoked {
        profile: "github".into(),
        wiped: true,
        server: server.into(),
        server_error: server_error.map(String::from),
    }
}

#[test]
fn revoke_reports_the_wipe_and_the_server() {
    let r = revocation("revoked", None);
    let text = revoked(&r);
    assert!(
        text.starts_with(
            "profile github: token wiped from memory and the store, its open streams closed;"
        ),
        "{text}"
    );
    assert!(text.ends_with("\nserver revocation: revoked\n"), "{text}");
    assert!(!revoke_incomplete(&r));

    let r = revocation("nothing_to_revoke", None);
    assert!(revoked(&r).ends_with("\nserver revocation: nothing to revoke (no token was held)\n"));
    assert!(!revoke_incomplete(&r));

    let r = revocation("not_supported", None);
    let text = revoked(&r);
    assert!(line_with(&text, "server revocation")
        .starts_with("server revocation: not supported by the server"));
    assert!(text.contains(REVOKE_BY_HAND));
    assert!(!revoke_incomplete(&r));
}

#[test]
fn a_failed_server_revocation_says_what_to_do() {
    let r = revocation("failed", Some("connection failed"));
    let text = revoked(&r);
    assert!(
        text.ends_with(
            "\nserver revocation: FAILED: connection failed\n\
         revoke the application's authorization in the provider's console\n"
        ),
        "{text}"
    );
    assert!(revoke_incomplete(&r));
    let mut r = revocation("revoked", None);
    r.wiped = false;
    assert!(revoked(&r).starts_with("profile github: the token was NOT wiped\n"));
    assert!(revoke_incomplete(&r));
}

#[test]
fn servers_show_their_tool_policies() {
    let mut ecs = server("ecs", "ECS01", Access::Allowed, None);
    ecs.policies = vec![PolicyInfo {
        name: "ecs-read-only".into(),
        allowed_tools: vec!["Describe*".into(), "List*".into()],
        blocked_tools: vec!["*Delete*".into()],
        read_only: true,
    }];
    let text = servers(&Servers { servers: vec![ecs] });
    assert_eq!(
        line_with(&text, "policy"),
        "  policy  ecs-read-only: read-only, allowed Describe* List*, blocked *Delete*"
    );
}

#[test]
fn verdicts_name_a_denied_tool() {
    let text = verdict(&AclVerdict {
        path: "/accounts/1001/custom/ecs/id/ECS01/mcp".into(),
        allowed: false,
        decision: "tool_denied".into(),
        rule: Some("ro:read_only".into()),
        reason: "denied by tool policy `ro`: read_only, `Delete` is a mutating verb".into(),
        upstream: Some("alibaba".into()),
        server: Some("ecs".into()),
        key: None,
        tool: Some(ToolVerdict {
            tool: "DeleteInstance".into(),
            allowed: false,
            policy: Some("ro".into()),
            reason: "denied by tool policy `ro`: read_only, `Delete` is a mutating verb".into(),
        }),
    });
    assert!(text.starts_with("denied: "));
    assert!(line_with(&text, "DeleteInstance")
        .contains("DeleteInstance denied: denied by tool policy `ro`"));
}
