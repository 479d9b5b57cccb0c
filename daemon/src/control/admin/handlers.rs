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
    let path = req.uri().path().to_string();
    let response = route(&shared, req).await.unwrap_or_else(error);
    let status = response.status().as_u16();
    if method == Method::GET {
        tracing::debug!(uid = peer.uid, pid = peer.pid, method = %method, path = %path, status, "admin request");
    } else {
        tracing::info!(uid = peer.uid, pid = peer.pid, method = %method, path = %path, status, "admin action");
    }
    Ok(response)
}

/// Known paths and the one method each takes.
const ROUTES: &[(&str, Method)] = &[
    ("/v1/status", Method::GET),
    ("/v1/servers", Method::GET),
    ("/v1/reload", Method::POST),
    ("/v1/acl/check", Method::POST),
    ("/v1/metrics", Method::GET),
    ("/v1/login", Method::POST),
    ("/v1/login/{id}", Method::GET),
    ("/v1/login/{id}/code", Method::POST),
    ("/v1/logout", Method::POST),
    ("/v1/revoke", Method::POST),
    ("/v1/import/aliyun", Method::POST),
    ("/v1/app/fix", Method::POST),
];

/// The route pattern of a path, and the login id it carries.
fn pattern(path: &str) -> (String, Option<String>) {
    if let Some(rest) = path.strip_prefix("/v1/login/") {
        let (id, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let valid = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric());
        if valid && tail.is_empty() {
            return ("/v1/login/{id}".into(), Some(id.to_string()));
        }
        if valid && tail == "code" {
            return ("/v1/login/{id}/code".into(), Some(id.to_string()));
        }
    }
    (path.to_string(), None)
}

async fn route(shared: &Shared, req: Request<Incoming>) -> Result<Resp, Failure> {
    let (path, login_id) = pattern(req.uri().path());
    let Some((_, allowed)) = ROUTES.iter().find(|(p, _)| *p == path) else {
        return Err(Failure(
            StatusCode::NOT_FOUND,
            codes::NOT_FOUND,
            format!("no admin endpoint {path}"),
        ));
    };
    if req.method() != allowed {
        let mut r = error(Failure(
            StatusCode::METHOD_NOT_ALLOWED,
            codes::METHOD_NOT_ALLOWED,
            format!("{path} takes {allowed}"),
        ));
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allowed.as_str()));
        return Ok(r);
    }
    match path.as_str() {
        "/v1/status" => Ok(json(StatusCode::OK, &views::status(shared))),
        "/v1/servers" => Ok(json(StatusCode::OK, &views::servers(shared))),
        "/v1/metrics" => Ok(metrics_text(shared)),
        "/v1/reload" => {
            let _: Option<EmptyBody> = read_json(req).await?;
            reload(shared)
        }
        "/v1/acl/check" => {
            let check: api::AclCheck = read_json(req).await?.ok_or_else(|| {
                Failure(
                    StatusCode::BAD_REQUEST,
                    codes::BAD_REQUEST,
                    "the request needs a JSON body: {\"path\": \"/...\"}".into(),
                )
            })?;
            Ok(json(StatusCode::OK, &views::acl_check(shared, &check)))
        }
        "/v1/login" => auth::login(shared, read_json(req).await?.unwrap_or_default()).await,
        "/v1/login/{id}" => {
            let wait = wait_param(req.uri().query());
            auth::login_status(shared, login_id.as_deref().unwrap_or(""), wait).await
        }
        "/v1/login/{id}/code" => {
            let body: api::LoginCode = read_json(req).await?.unwrap_or_default();
            auth::login_code(shared, login_id.as_deref().unwrap_or(""), body).await
        }
        "/v1/logout" => auth::logout(shared, read_json(req).await?.unwrap_or_default()).await,
        "/v1/revoke" => auth::revoke(shared, read_json(req).await?.unwrap_or_default()).await,
        "/v1/import/aliyun" => {
            let body: api::ImportAliyun = read_json(req).await?.ok_or_else(|| {
                Failure(
                    StatusCode::BAD_REQUEST,
                    codes::BAD_REQUEST,
                    "send {\"file\": <the JSON of ~/.aliyun/.mcpproxy_config>}".into(),
                )
            })?;
            auth::import_aliyun(shared, body).await
        }
        "/v1/app/fix" => auth::app_fix(shared, read_json(req).await?.unwrap_or_default()).await,
        _ => Err(Failure(StatusCode::NOT_FOUND, codes::NOT_FOUND, path)),
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
