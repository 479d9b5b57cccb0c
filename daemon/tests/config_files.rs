//! The shipped config files parse, and mean what their comments say.

use std::path::PathBuf;

use mcpproxyd::config::{self, CatalogSource, Limits, Overrides, Source};

fn repo_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
}

#[test]
fn annotated_example_parses_to_the_defaults() {
    let path = repo_file("config/mcpproxyd.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let c = config::load_str(Source::File(path), &text, &Overrides::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.limits, Limits::default());
    assert_eq!(c.listen.addresses, vec!["127.0.0.1:8088".parse().unwrap()]);
    assert_eq!(c.upstreams.len(), 1);
    assert_eq!(c.upstreams[0].catalog, CatalogSource::Alibaba);
    assert_eq!(c.auth["alibaba"].kind(), "alibaba");
    // The example and the built-in defaults describe the same daemon.
    let defaults = config::load_str(Source::Defaults, "", &Overrides::default()).unwrap();
    assert_eq!(defaults.upstreams[0].url, c.upstreams[0].url);
    assert_eq!(defaults.limits, c.limits);
}

#[test]
fn example_mentions_every_key_of_the_schema() {
    let text = std::fs::read_to_string(repo_file("config/mcpproxyd.toml")).unwrap();
    for key in [
        "addresses",
        "allow_public_bind",
        "extra_hosts",
        "allowed_origins",
        "socket",
        "metrics_address",
        "group",
        "kind",
        "dir",
        "connect_timeout",
        "header_read_timeout",
        "response_header_timeout",
        "stream_idle_timeout",
        "max_request_body",
        "retry_body_limit",
        "max_connections",
        "shutdown_grace",
        "login_timeout",
        "refresh_token_warning",
        "target",
        "level",
        "audit_rpc",
        "allowed_servers",
        "blocked_servers",
        "servers",
        "upstreams",
        "allowed_tools",
        "blocked_tools",
        "read_only",
        "mutating_verbs",
        "name",
        "mount",
        "url",
        "auth",
        "ca_file",
        "catalog",
        "catalog_refresh",
        "allow_http",
        "proxy",
        "http_version",
        "id",
        "mcp",
        "sse",
        "region",
        "oauth_app_name",
        "scope",
        "refresh_margin",
        "redirect_uri",
        "signin_url",
        "oauth_url",
        "ims_endpoint",
        "access_key",
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "revocation_endpoint",
        "client_id",
        "scopes",
        "resource",
        "token_file",
        "credential",
    ] {
        assert!(
            text.lines().any(|l| l
                .trim_start_matches(['#', ' '])
                .starts_with(&format!("{key} ="))),
            "config/mcpproxyd.toml does not document `{key}`"
        );
    }
}

#[test]
fn demo_config_parses_once_its_files_exist() {
    let text = std::fs::read_to_string(repo_file("config/demo.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "demo-token\n").unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::write(dir.path().join("ca.pem"), "").unwrap();
    let text = text.replace("/tmp/mcpproxyd-demo", dir.path().to_str().unwrap());
    let c = config::load_str(Source::Defaults, &text, &Overrides::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.upstreams[0].servers.len(), 2);
    assert_eq!(c.upstreams[0].catalog, CatalogSource::Static);
}

#[test]
fn region_flag_moves_the_example_upstream_with_the_oauth_endpoints() {
    let path = repo_file("config/mcpproxyd.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let flags = Overrides {
        region: Some("INTL".into()),
        ..Default::default()
    };
    let c = config::load_str(Source::File(path), &text, &flags).unwrap_or_else(|e| panic!("{e}"));
    // INTL tokens must go to the INTL endpoint, never to the CN one.
    assert_eq!(
        c.upstreams[0].url.as_str(),
        "https://openapi-mcp.ap-southeast-1.aliyuncs.com/"
    );
    match &c.auth["alibaba"] {
        config::AuthProfile::Alibaba(a) => {
            assert_eq!(a.oauth_url.as_str(), "https://oauth.alibabacloud.com/")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn example_policy_parses_when_uncommented() {
    let text = std::fs::read_to_string(repo_file("config/mcpproxyd.toml")).unwrap();
    let start = text.find("# [[policy]]").expect("a [[policy]] example");
    let block: String = text[start..]
        .lines()
        .take_while(|l| l.starts_with("# "))
        .map(|l| format!("{}\n", &l[2..]))
        .collect();
    let c = config::load_str(Source::Defaults, &block, &Overrides::default())
        .unwrap_or_else(|e| panic!("{e}\n{block}"));
    assert_eq!(c.policies.len(), 1);
    assert_eq!(c.policies[0].name, "ecs-read-only");
    assert!(c.policies[0].read_only);
}
