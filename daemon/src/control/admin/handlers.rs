//! Admin request routing: strict bodies, JSON errors, every action logged with the caller.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use mcpproxyd_api::{self as api, codes};

use super::peer::PeerCred;
use super::reply::{error, json, read_json, Failure, Resp};
use super::{auth, views};
use crate::state::Shared;

pub async fn handle(
    shared: Arc<Shared>,
    peer: PeerCred,
    req: Request<Incoming>,
) -> Result<Resp, Infallible> {
    let method = req.method().clone();
    // For the log line: the admin socket's callers are local processes too.
    let path = crate::control::logging::escape(req.uri().path(), 512);
    let response = route(&shared, req).await.unwrap_or_else(error);
    let status = response.status().as_u16();
    if method == Method::GET {
        tracing::debug!(uid = peer.uid, pid = peer.pid, method = %method, path = %path, status, "admin request");
    } else {
        tracing::info!(uid = peer.uid, pid = peer.pid, method = %method, path = %path, status, "admin action");
    }
    Ok(response)
}

/// What an admin request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Status,
    Servers,
    Reload,
    AclCheck,
    Metrics,
    Login,
    LoginStatus,
    LoginCode,
    LoginCancel,
    Logout,
    Revoke,
    ImportAliyun,
    AppFix,
    KeysList,
    KeysAdd,
    KeyRevoke,
}

/// Every admin path, spelled once, with the methods it takes and what each asks for. A `{id}`
/// segment is a login id (ASCII letters and digits); any other `{...}` segment is one
/// non-empty path segment.
const ROUTES: &[(&str, &[(Method, Route)])] = &[
    ("/v1/status", &[(Method::GET, Route::Status)]),
    ("/v1/servers", &[(Method::GET, Route::Servers)]),
    ("/v1/reload", &[(Method::POST, Route::Reload)]),
    ("/v1/acl/check", &[(Method::POST, Route::AclCheck)]),
    ("/v1/metrics", &[(Method::GET, Route::Metrics)]),
    ("/v1/login", &[(Method::POST, Route::Login)]),
    ("/v1/login/{id}", &[(Method::GET, Route::LoginStatus)]),
    ("/v1/login/{id}/code", &[(Method::POST, Route::LoginCode)]),
    (
        "/v1/login/{id}/cancel",
        &[(Method::POST, Route::LoginCancel)],
    ),
    ("/v1/logout", &[(Method::POST, Route::Logout)]),
    ("/v1/revoke", &[(Method::POST, Route::Revoke)]),
    ("/v1/import/aliyun", &[(Method::POST, Route::ImportAliyun)]),
    ("/v1/app/fix", &[(Method::POST, Route::AppFix)]),
    (
        "/v1/keys",
        &[
            (Method::GET, Route::KeysList),
            (Method::POST, Route::KeysAdd),
        ],
    ),
    (
        "/v1/keys/{name}/revoke",
        &[(Method::POST, Route::KeyRevoke)],
    ),
];

/// Whether `path` fits `pattern` segment by segment; `Some(param)` carries the `{...}` segment.
fn fits(pattern: &str, path: &str) -> Option<Option<String>> {
    let (mut want, mut got) = (pattern.split('/'), path.split('/'));
    let mut param = None;
    loop {
        match (want.next(), got.next()) {
            (None, None) => return Some(param),
            (Some(w), Some(seg)) if w.starts_with('{') && w.ends_with('}') => {
                let ok = !seg.is_empty()
                    && (w != "{id}" || seg.bytes().all(|b| b.is_ascii_alphanumeric()));
                if !ok {
                    return None;
                }
                param = Some(seg.to_string())
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return None,
        }
    }
}

async fn route(shared: &Shared, req: Request<Incoming>) -> Result<Resp, Failure> {
    let path = req.uri().path().to_string();
    let Some((pattern, methods, param)) = ROUTES
        .iter()
        .find_map(|(p, m)| fits(p, &path).map(|param| (*p, *m, param)))
    else {
        return Err(Failure(
            StatusCode::NOT_FOUND,
            codes::NOT_FOUND,
            format!("no admin endpoint {path}"),
        ));
    };
    let Some(route) = methods
        .iter()
        .find(|(m, _)| m == req.method())
        .map(|(_, r)| *r)
    else {
        let allowed: Vec<&str> = methods.iter().map(|(m, _)| m.as_str()).collect();
        let allowed = allowed.join(", ");
        let mut r = error(Failure(
            StatusCode::METHOD_NOT_ALLOWED,
            codes::METHOD_NOT_ALLOWED,
            format!("{pattern} takes {allowed}"),
        ));
        if let Ok(v) = HeaderValue::from_str(&allowed) {
            r.headers_mut().insert(ALLOW, v);
        }
        return Ok(r);
    };
    // The `{id}` or `{name}` segment of the path, where the route has one.
    let segment = param.unwrap_or_default();
    match route {
        Route::Status => Ok(json(StatusCode::OK, &views::status(shared))),
        Route::Servers => Ok(json(StatusCode::OK, &views::servers(shared))),
        Route::Metrics => Ok(metrics_text(shared)),
        Route::Reload => {
            let _: Option<EmptyBody> = read_json(req).await?;
            reload(shared)
        }
        Route::AclCheck => {
            let check: api::AclCheck = read_json(req).await?.ok_or_else(|| {
                Failure(
                    StatusCode::BAD_REQUEST,
                    codes::BAD_REQUEST,
                    "the request needs a JSON body: {\"path\": \"/...\"}".into(),
                )
            })?;
            Ok(json(StatusCode::OK, &views::acl_check(shared, &check)))
        }
        Route::Login => auth::login(shared, read_json(req).await?.unwrap_or_default()).await,
        Route::LoginStatus => {
            let wait = wait_param(req.uri().query());
            auth::login_status(shared, &segment, wait).await
        }
        Route::LoginCode => {
            let body: api::LoginCode = read_json(req).await?.unwrap_or_default();
            auth::login_code(shared, &segment, body).await
        }
        Route::LoginCancel => {
            let _: Option<EmptyBody> = read_json(req).await?;
            super::device::cancel(shared, &segment).await
        }
        Route::Logout => auth::logout(shared, read_json(req).await?.unwrap_or_default()).await,
        Route::Revoke => auth::revoke(shared, read_json(req).await?.unwrap_or_default()).await,
        Route::ImportAliyun => {
            let body: api::ImportAliyun = read_json(req).await?.ok_or_else(|| {
                Failure(
                    StatusCode::BAD_REQUEST,
                    codes::BAD_REQUEST,
                    "send {\"file\": <the JSON of ~/.aliyun/.mcpproxy_config>}".into(),
                )
            })?;
            auth::import_aliyun(shared, body).await
        }
        Route::AppFix => auth::app_fix(shared, read_json(req).await?.unwrap_or_default()).await,
        Route::KeysList => Ok(super::keys::list(shared)),
        Route::KeysAdd => {
            let body: api::KeyAdd = read_json(req).await?.ok_or_else(|| {
                Failure(
                    StatusCode::BAD_REQUEST,
                    codes::BAD_REQUEST,
                    "send {\"name\": \"...\", \"servers\": [...], \"tools\": [...], \"expires\": \"30d\"}".into(),
                )
            })?;
            super::keys::add(shared, body).await
        }
        Route::KeyRevoke => {
            let _: Option<EmptyBody> = read_json(req).await?;
            super::keys::revoke(shared, &segment).await
        }
    }
}

/// `?wait=SECONDS`, at most a minute.
fn wait_param(query: Option<&str>) -> std::time::Duration {
    let secs = query
        .into_iter()
        .flat_map(|q| url::form_urlencoded::parse(q.as_bytes()))
        .find(|(k, _)| k == "wait")
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .unwrap_or(0);
    std::time::Duration::from_secs(secs.min(60))
}

/// `POST /v1/reload` takes no parameters; `{}` or nothing.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyBody {}

fn reload(shared: &Shared) -> Result<Resp, Failure> {
    match crate::control::systemd::reload(shared, "admin") {
        Ok(r) => {
            let source = shared.current().config.source.to_string();
            Ok(json(
                StatusCode::OK,
                &api::Reloaded {
                    source,
                    needs_restart: r.needs_restart,
                },
            ))
        }
        Err(e) => Err(Failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            codes::INVALID_CONFIG,
            format!("{e}; the running configuration is unchanged"),
        )),
    }
}

fn metrics_text(shared: &Shared) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(views::metrics(shared))));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// The metrics-only TCP listener: `GET /metrics`, nothing else.
pub async fn metrics_only(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    Ok(match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => metrics_text(&shared),
        _ => error(Failure(
            StatusCode::NOT_FOUND,
            codes::NOT_FOUND,
            "only GET /metrics is served here".into(),
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_fit_their_pattern_on_whole_segments() {
        assert_eq!(fits("/v1/status", "/v1/status"), Some(None));
        assert_eq!(fits("/v1/status", "/v1/status/"), None);
        assert_eq!(fits("/v1/login", "/v1/login/"), None);
        assert_eq!(
            fits("/v1/login/{id}", "/v1/login/ab12"),
            Some(Some("ab12".into()))
        );
        assert_eq!(
            fits("/v1/login/{id}/code", "/v1/login/ab12/code"),
            Some(Some("ab12".into()))
        );
        assert_eq!(fits("/v1/login/{id}", "/v1/login/"), None);
        assert_eq!(fits("/v1/login/{id}", "/v1/login/a-b"), None);
        assert_eq!(fits("/v1/login/{id}/code", "/v1/login/ab/codes"), None);
    }

    #[test]
    fn every_path_and_route_is_listed_once() {
        let routes: Vec<Route> = ROUTES
            .iter()
            .flat_map(|(_, m)| m.iter().map(|(_, r)| *r))
            .collect();
        for (i, (p, methods)) in ROUTES.iter().enumerate() {
            assert!(!methods.is_empty(), "{p} takes no method");
            assert!(
                ROUTES[..i].iter().all(|(q, _)| q != p),
                "{p} is listed twice"
            );
        }
        for (i, r) in routes.iter().enumerate() {
            assert!(!routes[..i].contains(r), "{r:?} is listed twice");
        }
    }

    #[test]
    fn other_parameters_are_one_segment() {
        assert_eq!(
            fits("/v1/x/{name}/y", "/v1/x/a-b.c/y"),
            Some(Some("a-b.c".into()))
        );
        assert_eq!(fits("/v1/x/{name}/y", "/v1/x//y"), None);
    }
}
