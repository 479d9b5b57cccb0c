//! Per-request pipeline of the test upstream: record, authenticate, route.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use super::{catalog, legacy, oauth_front, raw, RecordedRequest, Shared};

/// Response body of every route (rmcp's own type, so its answers pass through).
pub(crate) type RespBody = BoxBody<Bytes, Infallible>;

/// The request as routes see it: the body counts bytes into the request's record.
pub(crate) type Req = Request<CountingBody>;

const WELL_KNOWN_PRM: &str = "/.well-known/oauth-protected-resource";

pub(crate) async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, Infallible> {
    let index = record(&shared, &req);
    let req = req.map(|inner| CountingBody {
        inner,
        shared: shared.clone(),
        index,
    });
    let path = req.uri().path();
    if oauth_front::serves(&shared, path) {
        return Ok(oauth_front::forward(&shared, req).await);
    }
    if path == WELL_KNOWN_PRM || path.starts_with(&format!("{WELL_KNOWN_PRM}/")) {
        return Ok(protected_resource_metadata(&shared, path));
    }
    if !authorized(&shared, &req) {
        return Ok(unauthorized(&shared));
    }
    if let Some(scope) = bearer(&req).and_then(|t| shared.resource.missing_scope(t)) {
        return Ok(insufficient_scope(&shared, scope));
    }
    Ok(route(&shared, req).await)
}

async fn route(shared: &Arc<Shared>, req: Req) -> Response<RespBody> {
    let path = req.uri().path();
    let json_query = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "json=1"));
    if path.starts_with("/raw/") {
        raw::handle(shared, req).await
    } else if path.ends_with("/catalog-mcp") && is(&req, Method::POST) {
        catalog::handle(shared, req).await
    } else if path.ends_with("/mcp-demo")
        || path.ends_with("/mcp-json")
        || (path.ends_with("/mcp") && json_query)
    {
        shared.mcp_stateless.handle(req).await
    } else if path.ends_with("/mcp") {
        shared.mcp.handle(req).await
    } else if path.ends_with("/sse") {
        legacy::open(shared, req)
    } else if path.ends_with("/message") {
        legacy::post(shared, req).await
    } else {
        json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({ "error": "not_found", "path": path }),
        )
    }
}

fn record(shared: &Shared, req: &Request<Incoming>) -> usize {
    let entry = RecordedRequest {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().map(str::to_owned),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body_len: 0,
        version: format!("{:?}", req.version()),
    };
    let index = {
        let mut records = shared.records();
        records.push(entry);
        records.len() - 1
    };
    shared.requests_seen.send_modify(|n| *n += 1);
    index
}

/// Exactly one `Authorization` header, exactly `Bearer <token>`.
fn authorized(shared: &Shared, req: &Req) -> bool {
    let mut values = req.headers().get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    match &shared.validator {
        Some(v) => value
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(|t| (v.0)(t)),
        None => value.as_bytes() == format!("Bearer {}", shared.token).as_bytes(),
    }
}

fn unauthorized(shared: &Shared) -> Response<RespBody> {
    let mut resp = json(
        StatusCode::UNAUTHORIZED,
        &serde_json::json!({
            "error": "invalid_token",
            "error_description": "missing or wrong bearer token",
        }),
    );
    let r = &shared.resource;
    let mut params = Vec::new();
    if !r.challenge_without_metadata {
        params.push(format!(
            "resource_metadata=\"{}{WELL_KNOWN_PRM}\"",
            shared.base_url
        ));
    }
    if let Some(scope) = &r.challenge_scope {
        params.push(format!("scope=\"{scope}\""));
    }
    if params.is_empty() {
        params.push("error=\"invalid_token\"".into());
    }
    let challenge = format!("Bearer {}", params.join(", "));
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        challenge.parse().expect("base URL is a valid header value"),
    );
    resp
}

fn bearer(req: &Req) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ")
}

/// 403 asking for `scope` (RFC 6750 §3.1; MCP Scope Challenge Handling).
fn insufficient_scope(shared: &Shared, scope: &str) -> Response<RespBody> {
    let mut resp = json(
        StatusCode::FORBIDDEN,
        &serde_json::json!({ "error": "insufficient_scope" }),
    );
    let challenge = format!(
        "Bearer error=\"insufficient_scope\", scope=\"{scope}\", resource_metadata=\"{}{WELL_KNOWN_PRM}\"",
        shared.base_url
    );
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        challenge
            .parse()
            .expect("scope and base URL are valid header values"),
    );
    resp
}

/// RFC 9728 metadata; the resource is the base URL plus any path after the well-known prefix.
fn protected_resource_metadata(shared: &Shared, path: &str) -> Response<RespBody> {
    let Some(issuer) = &shared.authorization_server else {
        return json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({ "error": "not_found" }),
        );
    };
    let suffix = &path[WELL_KNOWN_PRM.len()..];
    let r = &shared.resource;
    if r.metadata_at_root_only && !suffix.is_empty() {
        return json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({ "error": "not_found" }),
        );
    }
    let mut doc = serde_json::json!({
        "resource": r.resource_override.clone().unwrap_or_else(|| format!("{}{suffix}", shared.base_url)),
        "authorization_servers": [issuer],
        "bearer_methods_supported": ["header"],
    });
    if !r.scopes_supported.is_empty() {
        doc["scopes_supported"] = serde_json::json!(r.scopes_supported);
    }
    json(StatusCode::OK, &doc)
}

/// A complete JSON response.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<RespBody> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(value.to_string()))
        .expect("static response parts are valid")
}

/// A complete body.
pub(crate) fn full(bytes: impl Into<Bytes>) -> RespBody {
    Full::new(bytes.into()).boxed()
}

/// 405 with `Allow`.
pub(crate) fn method_not_allowed(allow: &'static str) -> Response<RespBody> {
    let mut resp = json(
        StatusCode::METHOD_NOT_ALLOWED,
        &serde_json::json!({ "error": "method_not_allowed" }),
    );
    resp.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    resp
}

/// Whether `req` has method `m`.
pub(crate) fn is(req: &Req, m: Method) -> bool {
    *req.method() == m
}

/// The request body, adding each data frame's length to the request's record.
pub(crate) struct CountingBody {
    inner: Incoming,
    shared: Arc<Shared>,
    index: usize,
}

impl Body for CountingBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                if let Some(entry) = this.shared.records().get_mut(this.index) {
                    entry.body_len += data.len();
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
