//! The effective configuration as TOML, for `--check-config`; secrets are never included.

use toml::{Table, Value};

use super::units::{format_duration, format_size};
use super::*;

fn s(v: impl ToString) -> Value {
    Value::String(v.to_string())
}

fn list<T: std::fmt::Display>(items: &[T]) -> Value {
    Value::Array(items.iter().map(s).collect())
}

fn opt_path(p: &Option<PathBuf>) -> Value {
    s(p.as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default())
}

fn margin(m: RefreshMargin) -> Value {
    match m {
        RefreshMargin::Auto => s("auto"),
        RefreshMargin::Fixed(d) => s(format_duration(d)),
    }
}

pub(super) fn render(c: &Config) -> String {
    let mut root = Table::new();

    let mut listen = Table::new();
    listen.insert("addresses".into(), list(&c.listen.addresses));
    listen.insert(
        "allow_public_bind".into(),
        Value::Boolean(c.listen.allow_public_bind),
    );
    listen.insert("extra_hosts".into(), list(&c.listen.extra_hosts));
    listen.insert("allowed_origins".into(), list(&c.listen.allowed_origins));
    super::validate_listen::render(&c.listen, &mut listen);
    root.insert("listen".into(), Value::Table(listen));

    let mut admin = Table::new();
    admin.insert("socket".into(), opt_path(&c.admin.socket));
    admin.insert(
        "metrics_address".into(),
        s(c.admin
            .metrics_address
            .map(|a| a.to_string())
            .unwrap_or_default()),
    );
    admin.insert("group".into(), s(c.admin.group.clone().unwrap_or_default()));
    root.insert("admin".into(), Value::Table(admin));

    let mut store = Table::new();
    let kind = match c.store.kind {
        StoreKind::Auto => "auto",
        StoreKind::Keyring => "keyring",
        StoreKind::File => "file",
    };
    store.insert("kind".into(), s(kind));
    store.insert("dir".into(), opt_path(&c.store.dir));
    root.insert("store".into(), Value::Table(store));

    let l = &c.limits;
    let mut limits = Table::new();
    for (k, d) in [
        ("connect_timeout", l.connect_timeout),
        ("header_read_timeout", l.header_read_timeout),
        ("response_header_timeout", l.response_header_timeout),
        ("stream_idle_timeout", l.stream_idle_timeout),
        ("idle_timeout", l.idle_timeout),
        ("body_read_timeout", l.body_read_timeout),
        ("shutdown_grace", l.shutdown_grace),
        ("login_timeout", l.login_timeout),
        ("refresh_token_warning", l.refresh_token_warning),
    ] {
        limits.insert(k.into(), s(format_duration(d)));
    }
    limits.insert(
        "max_request_body".into(),
        s(format_size(l.max_request_body)),
    );
    limits.insert(
        "retry_body_limit".into(),
        s(format_size(l.retry_body_limit)),
    );
    limits.insert(
        "max_connections".into(),
        Value::Integer(l.max_connections as i64),
    );
    if let Some(n) = l.workers {
        limits.insert("workers".into(), Value::Integer(n as i64));
    }
    root.insert("limits".into(), Value::Table(limits));

    let mut log = Table::new();
    let target = match c.log.target {
        LogTarget::Auto => "auto",
        LogTarget::Journald => "journald",
        LogTarget::Stderr => "stderr",
    };
    log.insert("target".into(), s(target));
    log.insert("level".into(), s(&c.log.level));
    log.insert("audit_rpc".into(), Value::Boolean(c.log.audit_rpc));
    root.insert("log".into(), Value::Table(log));

    let mut acl = Table::new();
    acl.insert("allowed_servers".into(), list(&c.acl.allowed));
    acl.insert("blocked_servers".into(), list(&c.acl.blocked));
    root.insert("acl".into(), Value::Table(acl));
    if !c.policies.is_empty() {
        root.insert("policy".into(), super::validate_policy::render(&c.policies));
    }

    let upstreams = c.upstreams.iter().map(upstream).map(Value::Table).collect();
    root.insert("upstream".into(), Value::Array(upstreams));

    let mut auth = Table::new();
    for (name, p) in &c.auth {
        auth.insert(name.clone(), Value::Table(profile(p)));
    }
    root.insert("auth".into(), Value::Table(auth));

    let mut out = format!("# effective configuration from {}\n", c.source);
    out.push_str(&toml::to_string(&root).unwrap_or_else(|e| format!("# cannot render: {e}\n")));
    out
}

fn upstream(u: &Upstream) -> Table {
    let mut t = Table::new();
    t.insert("name".into(), s(&u.name));
    t.insert("mount".into(), s(&u.mount));
    t.insert("url".into(), s(&u.url));
    t.insert("auth".into(), s(&u.auth));
    t.insert("ca_file".into(), opt_path(&u.ca_file));
    let catalog = match u.catalog {
        CatalogSource::Alibaba => "alibaba",
        CatalogSource::Static => "static",
    };
    t.insert("catalog".into(), s(catalog));
    t.insert(
        "catalog_refresh".into(),
        s(format_duration(u.catalog_refresh)),
    );
    t.insert("allow_http".into(), Value::Boolean(u.allow_http));
    // A proxy URL may carry credentials: show only where it points.
    let proxy = u
        .proxy
        .as_ref()
        .map(|p| format!("{}://{}", p.scheme(), p.host_str().unwrap_or_default()))
        .unwrap_or_default();
    t.insert("proxy".into(), s(proxy));
    t.insert("http_version".into(), s(u.http_version.as_str()));
    let servers = u
        .servers
        .iter()
        .map(|srv| {
            let mut st = Table::new();
            st.insert("name".into(), s(&srv.name));
            st.insert("id".into(), s(&srv.id));
            st.insert("mcp".into(), s(srv.mcp.clone().unwrap_or_default()));
            st.insert("sse".into(), s(srv.sse.clone().unwrap_or_default()));
            Value::Table(st)
        })
        .collect();
    t.insert("servers".into(), Value::Array(servers));
    t
}

fn profile(p: &AuthProfile) -> Table {
    let mut t = Table::new();
    t.insert("kind".into(), s(p.kind()));
    let url = |u: &Option<Url>| s(u.as_ref().map(Url::to_string).unwrap_or_default());
    match p {
        AuthProfile::Static(st) => match &st.source {
            // The token itself is never shown.
            TokenSource::File(f) => {
                t.insert("token_file".into(), s(f.display()));
            }
            TokenSource::Credential(c) => {
                t.insert("credential".into(), s(c));
            }
        },
        AuthProfile::OAuth(o) => {
            t.insert("issuer".into(), url(&o.issuer));
            t.insert(
                "authorization_endpoint".into(),
                url(&o.authorization_endpoint),
            );
            t.insert("token_endpoint".into(), url(&o.token_endpoint));
            t.insert("revocation_endpoint".into(), url(&o.revocation_endpoint));
            t.insert(
                "client_id".into(),
                s(o.client_id.clone().unwrap_or_default()),
            );
            let (file, credential) = match o.client_secret.as_ref().map(|c| &c.source) {
                Some(TokenSource::File(f)) => (f.display().to_string(), String::new()),
                Some(TokenSource::Credential(n)) => (String::new(), n.clone()),
                None => (String::new(), String::new()),
            };
            t.insert("client_secret_file".into(), s(file));
            t.insert("client_secret_credential".into(), s(credential));
            let (file, credential) = match o.private_key.as_ref().map(|c| &c.source) {
                Some(TokenSource::File(f)) => (f.display().to_string(), String::new()),
                Some(TokenSource::Credential(n)) => (String::new(), n.clone()),
                None => (String::new(), String::new()),
            };
            t.insert("private_key_file".into(), s(file));
            t.insert("private_key_credential".into(), s(credential));
            let grant = match o.grant {
                GrantType::AuthorizationCode => "authorization_code",
                GrantType::ClientCredentials => "client_credentials",
            };
            t.insert("grant".into(), s(grant));
            t.insert("scopes".into(), list(&o.scopes));
            let resource = match &o.resource {
                Resource::Auto => "auto".to_string(),
                Resource::Off => "off".to_string(),
                Resource::Uri(u) => u.to_string(),
            };
            t.insert("resource".into(), s(resource));
            t.insert("refresh_margin".into(), margin(o.refresh_margin));
            t.insert("ca_file".into(), opt_path(&o.ca_file));
        }
        AuthProfile::Alibaba(a) => {
            t.insert("region".into(), s(a.region));
            t.insert("oauth_app_name".into(), s(&a.oauth_app_name));
            t.insert("scope".into(), s(&a.scope));
            t.insert("refresh_margin".into(), margin(a.refresh_margin));
            t.insert("redirect_uri".into(), url(&a.redirect_uri));
            t.insert("signin_url".into(), s(&a.signin_url));
            t.insert("oauth_url".into(), s(&a.oauth_url));
            t.insert("ims_endpoint".into(), s(&a.ims_endpoint));
            t.insert("access_key".into(), s(&a.access_key));
            t.insert("ca_file".into(), opt_path(&a.ca_file));
        }
    }
    t
}
