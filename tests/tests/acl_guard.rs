//! End to end through the real daemon: the DNS-rebinding guard (Host, Origin, CORS,
//! absolute-form targets), the path normal form, routing by mount and the ACL. Requests go
//! out as raw bytes, so nothing normalises them on the way; every refusal is checked three
//! ways: the status and JSON code, the upstream never seeing it, and the log line.

use std::net::SocketAddr;

use mcpproxy_tests::daemon::{run_once, Setup, TestDaemon, WAIT};
use mcpproxy_tests::upstream::{self, RecordedRequest, TestUpstream, UpstreamOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ECS: &str = "/accounts/1/custom/ecs/id/ECS01";
const OSS: &str = "/accounts/1/custom/oss/id/OSS01";
const RAM: &str = "/accounts/1/custom/ram/id/RAM01";
const ORIGIN: &str = "http://localhost:3000";

/// `[[upstream.servers]]` for ecs, oss, ram, and s1/s10 (bases that share a text prefix), with
/// upstream paths under `base` (the upstream URL's path).
fn servers(base: &str) -> String {
    let list = [
        ("ecs", "ECS01", ECS),
        ("oss", "OSS01", OSS),
        ("ram", "RAM01", RAM),
        ("s1", "S1", "/x/s1"),
        ("s10", "S10", "/x/s10"),
    ];
    list.iter()
        .map(|(name, id, p)| {
            format!(
                "[[upstream.servers]]\nname = \"{name}\"\nid = \"{id}\"\n\
                 mcp = \"{base}{p}/mcp\"\nsse = \"{base}{p}/sse\"\n"
            )
        })
        .collect()
}

/// A test upstream and a daemon in front of it (the setup keeps the config dir alive).
struct Env {
    up: TestUpstream,
    d: TestDaemon,
    _setup: Setup,
}

async fn start_with(extra: &str, args: &[&str], edit: impl FnOnce(String) -> String) -> Env {
    let up = upstream::start(UpstreamOptions::default()).await.unwrap();
    let setup = Setup::new().unwrap();
    let config = edit(setup.static_config(&up, extra).unwrap());
    let d = TestDaemon::start(&setup.write_config(&config).unwrap(), args)
        .await
        .unwrap();
    Env {
        up,
        d,
        _setup: setup,
    }
}

async fn start(extra: &str, args: &[&str]) -> Env {
    start_with(extra, args, |c| c).await
}

/// A request as raw text, `Connection: close`; `headers` must include any `Host`.
fn request(method: &str, target: &str, headers: &[(&str, &str)]) -> String {
    let mut text = format!("{method} {target} HTTP/1.1\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text + "Content-Length: 0\r\nConnection: close\r\n\r\n"
}

/// What came back for one request, and what the upstream received meanwhile.
struct Reply {
    status: u16,
    head: String,
    body: String,
    client: SocketAddr,
    forwarded: Vec<RecordedRequest>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn error(&self) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}{}", self.head, self.body));
        v["error"].clone()
    }
}

/// Sends `text` on a fresh connection and reads until the daemon closes it.
async fn send(env: &Env, text: &str) -> Reply {
    let before = env.up.requests().len();
    let mut s = TcpStream::connect(env.d.addr).await.unwrap();
    let client = s.local_addr().unwrap();
    s.write_all(text.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(WAIT, s.read_to_end(&mut buf)).await;
    read.expect("no answer in time").unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Reply {
        status: head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        head: head.to_string(),
        body: body.to_string(),
        client,
        forwarded: env.up.requests().split_off(before),
    }
}

/// [`send`] of [`request`].
async fn send_req(env: &Env, method: &str, target: &str, headers: &[(&str, &str)]) -> Reply {
    send(env, &request(method, target, headers)).await
}

/// `POST target` with the daemon's own address as Host (POST: no endpoint opens a stream).
async fn post(env: &Env, target: &str) -> Reply {
    let host = env.d.addr.to_string();
    send(env, &request("POST", target, &[("Host", &host)])).await
}

/// Forwarded exactly once, to `path` (the upstream's answer, whatever it was, came back).
fn assert_forwarded(r: &Reply, path: &str) {
    let paths: Vec<_> = r.forwarded.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, [path], "{}", r.head);
}

/// Refused by the proxy itself: status and JSON code, nothing forwarded, and a log line naming
/// the client, the path and the rule (`None`: no ACL rule; the field is empty or the code).
async fn assert_refused(
    env: &Env,
    r: &Reply,
    status: u16,
    code: &str,
    path: &str,
    rule: Option<&str>,
) {
    let ctx = format!("{path}:\n{}\n\n{}", r.head, r.body);
    assert_eq!(r.status, status, "{ctx}");
    assert_eq!(r.error()["code"], code, "{ctx}");
    assert!(r.forwarded.is_empty(), "{ctx}\nforwarded {:?}", r.forwarded);
    let client = format!("client={} ", r.client);
    let line = env
        .d
        .wait_for_line(|l| l.contains(&client) && l.contains("request refused"))
        .await
        .unwrap_or_else(|e| panic!("no refusal logged for {client}: {e}"));
    let has = |name: &str, value: &str| {
        [format!(" {name}={value} "), format!(" {name}=\"{value}\" ")]
            .iter()
            .any(|f| line.contains(f.as_str()))
    };
    assert!(has("path", path), "path {path} not in {line}");
    assert!(has("status", &status.to_string()), "{line}");
    assert!(has("code", code), "code {code} not in {line}");
    match rule {
        Some(rule) => assert!(has("rule", rule), "rule {rule} not in {line}"),
        None => assert!(has("rule", "") || has("rule", code), "no rule in {line}"),
    }
}

/// Refused by the ACL: 403 `access_denied` naming `rule` in the body and the log.
async fn assert_denied(env: &Env, target: &str, rule: &str) {
    let r = post(env, target).await;
    let path = target.split('?').next().unwrap();
    assert_refused(env, &r, 403, "access_denied", path, Some(rule)).await;
    assert_eq!(r.error()["rule"], rule, "{target}");
}

/// Refused with 400 for not being in normal form.
async fn assert_not_normal(env: &Env, path: &str) {
    let r = post(env, path).await;
    assert_refused(env, &r, 400, "path_not_normal", path, None).await;
}

/// `POST target` is forwarded as `POST path`.
async fn assert_post_forwarded(env: &Env, target: &str, path: &str) -> Reply {
    let r = post(env, target).await;
    assert_forwarded(&r, path);
    r
}

#[tokio::test]
async fn host_must_be_a_proxy_address_or_an_extra_host() {
    let env = start("[listen]\nextra_hosts = [\"172.17.0.1:8088\"]\n", &[]).await;
    let port = env.d.addr.port();
    let up_host = env.up.addr().to_string();
    let aliases = ["127.0.0.1", "localhost", "LocalHost", "[::1]"].map(|h| format!("{h}:{port}"));
    // The extra host is only a header value: the test never connects to the Docker bridge.
    for host in aliases
        .iter()
        .map(String::as_str)
        .chain(["172.17.0.1:8088"])
    {
        let r = send_req(&env, "GET", "/raw/echo", &[("Host", host)]).await;
        assert_eq!(r.status, 200, "{host}:\n{}", r.head);
        assert_forwarded(&r, "/raw/echo");
        // The upstream is addressed by its own name, never by the client's Host.
        let sent = r.forwarded[0].header("host");
        assert!(sent.is_none_or(|h| h == up_host), "{host}: {sent:?}");
    }
    for host in [
        "evil.example".to_string(),
        format!("evil.example:{port}"),
        format!("127.0.0.1:{}", port ^ 1),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "172.17.0.1:9999".to_string(),
        "172.17.0.1".to_string(),
        format!("localhost:{port}@evil.example"),
        format!("user@localhost:{port}"),
        format!("127.0.0.1:{port}.evil.example"),
    ] {
        let r = send_req(&env, "GET", "/raw/echo", &[("Host", &host)]).await;
        assert_refused(&env, &r, 403, "host_not_allowed", "/raw/echo", None).await;
        let message = r.error()["message"].as_str().unwrap().to_string();
        assert!(message.contains("DNS rebinding"), "{message}");
    }
    let ours = env.d.addr.to_string();
    let two = [("Host", ours.as_str()), ("Host", "evil.example")];
    let r = send_req(&env, "GET", "/raw/echo", &two).await;
    assert_refused(&env, &r, 400, "duplicate_header", "/raw/echo", None).await;
    let r = send_req(&env, "GET", "/raw/echo", &[]).await;
    assert_refused(&env, &r, 400, "missing_host", "/raw/echo", None).await;
}

#[tokio::test]
async fn origin_must_be_configured_and_gets_cors_answers() {
    let env = start(
        &format!("[listen]\nallowed_origins = [\"{ORIGIN}\"]\n"),
        &[],
    )
    .await;
    let host = env.d.addr.to_string();
    let r = send_req(&env, "GET", "/raw/echo", &[("Host", &host)]).await;
    assert_eq!(r.status, 200, "no Origin is fine: {}", r.head);
    assert!(r.header("access-control-allow-origin").is_none());

    let with_origin = [("Host", host.as_str()), ("Origin", ORIGIN)];
    let r = send_req(&env, "GET", "/raw/echo", &with_origin).await;
    assert_eq!(r.status, 200, "{}", r.head);
    assert_forwarded(&r, "/raw/echo");
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    let exposed = r.header("access-control-expose-headers").unwrap_or("");
    assert!(
        exposed.to_ascii_lowercase().contains("mcp-session-id"),
        "{exposed}"
    );

    for origin in [
        "http://evil.example",
        "null",
        "http://localhost:3001",
        "https://localhost:3000",
        "http://localhost:3000.evil.example",
    ] {
        let headers = [("Host", host.as_str()), ("Origin", origin)];
        let r = send_req(&env, "GET", "/raw/echo", &headers).await;
        assert_refused(&env, &r, 403, "origin_not_allowed", "/raw/echo", None).await;
        assert!(
            r.header("access-control-allow-origin").is_none(),
            "{origin}"
        );
    }

    // Preflights: answered by the proxy for a configured origin, never forwarded.
    let preflight = |origin: &'static str, host: &str| {
        let headers = [
            ("Host", host),
            ("Origin", origin),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "content-type, mcp-session-id",
            ),
        ];
        request("OPTIONS", "/accounts/1/mcp", &headers)
    };
    let r = send(&env, &preflight(ORIGIN, &host)).await;
    assert_eq!(r.status, 204, "{}", r.head);
    assert!(r.forwarded.is_empty(), "{:?}", r.forwarded);
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    let methods = r.header("access-control-allow-methods").unwrap_or("");
    assert!(methods.contains("POST"), "{methods}");
    let allowed = r.header("access-control-allow-headers").unwrap_or("");
    assert!(
        allowed.to_ascii_lowercase().contains("mcp-session-id"),
        "{allowed}"
    );
    let r = send(&env, &preflight("http://evil.example", &host)).await;
    assert_refused(&env, &r, 403, "origin_not_allowed", "/accounts/1/mcp", None).await;
    let r = send(&env, &preflight(ORIGIN, "evil.example")).await;
    assert_refused(&env, &r, 403, "host_not_allowed", "/accounts/1/mcp", None).await;
}

#[tokio::test]
async fn absolute_form_targets_must_name_the_proxy() {
    let env = start("", &[]).await;
    let (host, port) = (env.d.addr.to_string(), env.d.addr.port());
    let ours = [("Host", host.as_str())];
    let target = format!("http://{host}/raw/echo?q=1");
    let r = send_req(&env, "GET", &target, &ours).await;
    assert_eq!(r.status, 200, "{}", r.head);
    assert_forwarded(&r, "/raw/echo");
    assert_eq!(r.forwarded[0].query.as_deref(), Some("q=1"));

    let evil = [("Host", "evil.example")];
    for (target, headers) in [
        ("http://evil.example/raw/echo".to_string(), &ours[..]),
        (format!("http://evil.example:{port}/raw/echo"), &ours),
        (format!("http://127.0.0.1:{}/raw/echo", port ^ 1), &ours),
        (format!("http://user@{host}/raw/echo"), &ours),
        (format!("https://{host}/raw/echo"), &ours),
        (format!("http://{host}/raw/echo"), &evil),
        // No Host at all: the target's authority alone must still be ours.
        ("http://evil.example/raw/echo".to_string(), &[]),
    ] {
        let r = send_req(&env, "GET", &target, headers).await;
        assert_refused(&env, &r, 403, "host_not_allowed", "/raw/echo", None).await;
    }
    let r = send_req(&env, "CONNECT", &host, &ours).await;
    assert_eq!(r.status, 400, "{}", r.head);
    assert_eq!(r.error()["code"], "bad_target");
    assert!(r.forwarded.is_empty());
}

#[tokio::test]
async fn paths_not_in_normal_form_are_refused_never_forwarded() {
    let env = start("", &[]).await;
    // Paths an upstream (or a framework in front of it) could read as another path.
    let paths = r"/a/../raw/echo /raw/./echo /raw/echo/. /raw/%2e%2e/x /raw/%2E./x /raw/.%2e/x
        /raw//echo //raw/echo /raw%2fecho /raw%2Fecho /raw%5cecho /raw\echo /raw/%00
        /r%61w/echo /raw/ech%6F /raw/%7Eecho /raw/%252e%252e/x /raw/..;/echo /raw;x/echo
        /raw/%3bx /raw/%zz /raw/%2";
    for path in paths.split_whitespace() {
        assert_not_normal(&env, path).await;
    }
    // The same request in normal form goes through, and so does a needed escape.
    assert_post_forwarded(&env, "/raw/echo", "/raw/echo").await;
    assert_post_forwarded(&env, "/raw/a%20b", "/raw/a%20b").await;
}

#[tokio::test]
async fn acl_allows_by_name_id_and_prefix_and_blocked_wins() {
    let acl = "[acl]\nallowed_servers = [\"ecs\", \"ram\", \"/x/s1\"]\n\
               blocked_servers = [\"RAM01\"]\n";
    let env = start(&format!("{}\n{acl}", servers("")), &[]).await;
    // A name covers everything under the server's base: mcp, sse and the message endpoint.
    for path in [
        &format!("{ECS}/mcp"),
        &format!("{ECS}/sse"),
        "/x/s1",
        "/x/s1/mcp/extra",
    ] {
        assert_post_forwarded(&env, path, path).await;
    }
    let message = format!("{ECS}/message");
    let r = assert_post_forwarded(&env, &format!("{message}?sessionId=1"), &message).await;
    assert_eq!(r.forwarded[0].query.as_deref(), Some("sessionId=1"));
    // `ram` is allowed by name, RAM01 blocked by ID: blocked wins on every endpoint.
    for ep in ["mcp", "sse", "message?sessionId=1"] {
        assert_denied(&env, &format!("{RAM}/{ep}"), "blocked:RAM01").await;
    }
    let denied = "/uncatalogued/mcp / /accounts/1/custom/ecs /accounts/1/custom/ecs/id/ECS01x/mcp
        /x/s10/mcp /x/s1x /X/s1/mcp /x/S1/mcp";
    for path in denied
        .split_whitespace()
        .chain([format!("{OSS}/mcp").as_str()])
    {
        assert_denied(&env, path, "not_allowed").await;
    }
}

#[tokio::test]
async fn bypass_attempts_on_a_blocked_server_never_reach_it() {
    // Only a blocked list: a path the ACL failed to recognise as RAM01's would go through.
    let extra = format!("{}\n[acl]\nblocked_servers = [\"RAM01\"]\n", servers(""));
    let env = start(&extra, &[]).await;
    let oss = format!("{OSS}/mcp");
    assert_post_forwarded(&env, &oss, &oss).await;
    let ram = format!("{RAM}/mcp");
    assert_denied(&env, &ram, "blocked:RAM01").await;
    let attempts = r"/x/../ram/id/RAM01/mcp /x/%2e%2e/ram/id/RAM01/mcp /x/%2E%2E/ram/id/RAM01/mcp
        /ram/id/./RAM01/mcp /ram/id//RAM01/mcp /ram/id%2fRAM01/mcp /ram/id/RAM01%2Fmcp
        /ram/id/RAM01%5cmcp /ram/id/RAM01\mcp /ram/id/%52AM01/mcp /ram/id/RAM%301/mcp
        /ram/id/RAM01;/mcp /ram/id/RAM01%3b/mcp /ram/id/RAM01%252fmcp";
    for tail in attempts.split_whitespace() {
        assert_not_normal(&env, &format!("/accounts/1/custom{tail}")).await;
    }
    assert_not_normal(&env, &format!("/{ram}")).await;
    // Absolute-form targets are held to the same rules as paths.
    let host = env.d.addr.to_string();
    let ours = [("Host", host.as_str())];
    let r = send_req(&env, "POST", &format!("http://{host}{ram}"), &ours).await;
    assert_refused(&env, &r, 403, "access_denied", &ram, Some("blocked:RAM01")).await;
    let dotted = "/accounts/1/custom/x/../ram/id/RAM01/mcp";
    let r = send_req(&env, "POST", &format!("http://{host}{dotted}"), &ours).await;
    assert_refused(&env, &r, 400, "path_not_normal", dotted, None).await;
    let r = send_req(&env, "POST", &format!("http://evil.example{ram}"), &ours).await;
    assert_refused(&env, &r, 403, "host_not_allowed", &ram, None).await;
}

#[tokio::test]
async fn flags_replace_the_files_lists() {
    let acl = "[acl]\nallowed_servers = [\"ecs\"]\nblocked_servers = [\"RAM01\"]\n";
    let args = ["--allowed-servers", "oss,/x/s1", "--blocked-servers", "ecs"];
    let env = start(&format!("{}\n{acl}", servers("")), &args).await;
    assert_denied(&env, &format!("{ECS}/mcp"), "blocked:ecs").await;
    // The file's block on RAM01 is gone: ram is refused only for not being allowed.
    assert_denied(&env, &format!("{RAM}/mcp"), "not_allowed").await;
    let oss = format!("{OSS}/sse");
    assert_post_forwarded(&env, &oss, &oss).await;
    assert_post_forwarded(&env, "/x/s1/mcp", "/x/s1/mcp").await;
    assert_denied(&env, "/x/s10/mcp", "not_allowed").await;
}

#[tokio::test]
async fn mount_prefix_is_replaced_by_the_upstream_url_path() {
    let extra = format!("{}\n[acl]\nblocked_servers = [\"ram\"]\n", servers("/base"));
    let env = start_with(&extra, &[], |config| {
        let url = config.lines().find(|l| l.starts_with("url = ")).unwrap();
        let based = format!("{}/base\"", url.trim_end_matches('"'));
        config
            .replace(url, &based)
            .replace("name = \"test\"\n", "name = \"test\"\nmount = \"/gh\"\n")
    })
    .await;
    let r = assert_post_forwarded(&env, "/gh/raw/echo?x=1", "/base/raw/echo").await;
    assert_eq!(r.forwarded[0].query.as_deref(), Some("x=1"));
    assert_eq!(r.status, 404, "the upstream's own 404: {}", r.head);
    assert_post_forwarded(&env, "/gh", "/base").await;
    let ecs = format!("{ECS}/mcp");
    assert_post_forwarded(&env, &format!("/gh{ecs}"), &format!("/base{ecs}")).await;
    // Catalog paths are mapped to local ones before the ACL sees them.
    assert_denied(&env, &format!("/gh{RAM}/mcp"), "blocked:ram").await;
    for path in ["/ghx/raw/echo", "/raw/echo", "/base/raw/echo", "/"] {
        let r = post(&env, path).await;
        assert_refused(&env, &r, 404, "no_route", path, None).await;
    }
    for path in [
        "/gh/../raw/echo",
        "/gh%2fraw/echo",
        "/gh/..%2fx",
        "/gh//raw/echo",
    ] {
        assert_not_normal(&env, path).await;
    }
}

#[tokio::test]
async fn check_config_names_acl_entries_missing_from_the_catalog() {
    let up = upstream::start(UpstreamOptions::default()).await.unwrap();
    let setup = Setup::new().unwrap();
    let check = |acl: &str, flags: &[&str]| {
        let extra = format!("{}\n[acl]\n{acl}", servers(""));
        let config = setup.static_config(&up, &extra).unwrap();
        let path = setup.write_config(&config).unwrap();
        let mut args = vec!["--config".to_string(), path.display().to_string()];
        args.push("--check-config".into());
        args.extend(flags.iter().map(|f| f.to_string()));
        async move { run_once(&args.iter().map(String::as_str).collect::<Vec<_>>()).await }
    };
    let unknown = "allowed_servers = [\"ecs\", \"nosuch\", \"/x/s1\"]\n";
    let (code, _, stderr) = check(unknown, &[]).await.unwrap();
    assert_eq!(code, 64, "{stderr}");
    assert!(stderr.contains("nosuch"), "{stderr}");

    let valid = "allowed_servers = [\"ecs\", \"OSS01\", \"/x/s1\"]\nblocked_servers = [\"ram\"]\n";
    let (code, stdout, stderr) = check(valid, &[]).await.unwrap();
    assert_eq!(code, 0, "{stderr}");
    let allowed = "allowed_servers = [\"ecs\", \"OSS01\", \"/x/s1\"]";
    assert!(stdout.contains(allowed), "{stdout}");
    assert!(stdout.contains("blocked_servers = [\"ram\"]"), "{stdout}");
    assert!(!stdout.contains(up.token()), "the token leaked: {stdout}");

    // Flags take part in the check too.
    let (code, _, stderr) = check(valid, &["--blocked-servers", "ghost"]).await.unwrap();
    assert_eq!(code, 64, "{stderr}");
    assert!(stderr.contains("ghost"), "{stderr}");
    let flags = ["--allowed-servers", "RAM01,s10"];
    let (code, stdout, stderr) = check(valid, &flags).await.unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("allowed_servers = [\"RAM01\", \"s10\"]"),
        "{stdout}"
    );
}

#[tokio::test]
async fn acl_treats_escapes_that_differ_only_in_hex_case_as_the_same_path() {
    // `%c3%a4` and `%C3%A4` are the same octets to every upstream (RFC 3986 6.2.2.1).
    let extra = "[[upstream.servers]]\nname = \"umlaut\"\nid = \"U1\"\nmcp = \"/x/%C3%A4/mcp\"\n\n\
                 [acl]\nblocked_servers = [\"umlaut\", \"/y/%e2%82%ac\"]\n";
    let env = start(extra, &[]).await;
    for path in ["/x/%C3%A4/mcp", "/x/%c3%a4/mcp", "/x/%C3%a4/sse"] {
        assert_denied(&env, path, "blocked:umlaut").await;
    }
    for path in ["/y/%e2%82%ac/mcp", "/y/%E2%82%AC/mcp", "/y/%E2%82%aC"] {
        assert_denied(&env, path, "blocked:/y/%e2%82%ac").await;
    }
    assert_post_forwarded(&env, "/x/%c3%a5/mcp", "/x/%c3%a5/mcp").await;
}
