//! The legacy HTTP+SSE transport (MCP 2024-11-05), which rmcp has no server for.
//!
//! `GET …/sse` opens the stream and names the message URL in an `endpoint` event;
//! `POST …/message?sessionId=ID` takes a JSON-RPC message and answers 202, and the
//! reply comes as an `event: message` on the stream. Each session runs the same
//! rmcp [`TestTools`] service as Streamable HTTP, over a pair of channels.

use std::borrow::Cow;
use std::sync::Arc;

use futures_util::{stream, StreamExt};
use http::{header, Method, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::RoleServer;
use serde_json::json;
use tokio::sync::mpsc;

use super::router::{is, json, method_not_allowed, Req, RespBody};
use super::tools::TestTools;
use super::{random_hex, ClosedGuard, EndpointStyle, Shared, StreamKind};
use crate::sse::format_event;

/// Messages that may wait in either direction of one session.
const CHANNEL_CAPACITY: usize = 64;

pub(crate) fn open(shared: &Arc<Shared>, req: Req) -> Response<RespBody> {
    if !is(&req, Method::GET) {
        return method_not_allowed("GET");
    }
    let path = req.uri().path();
    let base = path.strip_suffix("/sse").unwrap_or(path);
    let id = random_hex();
    let endpoint = match shared.legacy_endpoint {
        EndpointStyle::Relative => format!("{base}/message?sessionId={id}"),
        EndpointStyle::Absolute => {
            format!("{}{base}/message?sessionId={id}", shared.base_url)
        }
    };

    let (to_server, from_client) = mpsc::channel(CHANNEL_CAPACITY);
    let (to_client, from_server) = mpsc::channel(CHANNEL_CAPACITY);
    shared.legacy_sessions().insert(id.clone(), to_server);
    let transport = ChannelTransport {
        tx: to_client,
        rx: from_client,
    };
    let ct = shared.shutdown.child_token();
    tokio::spawn(async move {
        // A session that fails its handshake simply ends; the stream then closes.
        if let Ok(running) =
            rmcp::service::serve_server_with_ct(TestTools::new(), transport, ct).await
        {
            let _ = running.waiting().await;
        }
    });

    let session = SessionGuard {
        id,
        closed: ClosedGuard::new(shared.clone(), StreamKind::Legacy),
    };
    let first = stream::once(async move { event("endpoint", endpoint) });
    let messages = stream::unfold((from_server, session), |(mut rx, mut session)| async move {
        match rx.recv().await {
            Some(message) => {
                let data = serde_json::to_string(&message).unwrap_or_default();
                Some((event("message", data), (rx, session)))
            }
            None => {
                session.closed.finish();
                None
            }
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(BodyExt::boxed(StreamBody::new(first.chain(messages))))
        .expect("static response parts are valid")
}

fn event(name: &str, data: String) -> Result<Frame<bytes::Bytes>, std::convert::Infallible> {
    Ok(Frame::data(format_event(Some(name), &data)))
}

pub(crate) async fn post(shared: &Arc<Shared>, req: Req) -> Response<RespBody> {
    if !is(&req, Method::POST) {
        return method_not_allowed("POST");
    }
    let id = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("sessionId="))
            .map(str::to_owned)
    });
    let Some(id) = id else {
        return json(
            StatusCode::BAD_REQUEST,
            &json!({ "error": "missing sessionId" }),
        );
    };
    let Some(tx) = shared.legacy_sessions().get(&id).cloned() else {
        return unknown_session();
    };
    let body = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return json(StatusCode::BAD_REQUEST, &json!({ "error": e.to_string() })),
    };
    let message: ClientJsonRpcMessage = match serde_json::from_slice(&body) {
        Ok(message) => message,
        Err(e) => {
            return json(
                StatusCode::BAD_REQUEST,
                &json!({ "error": "invalid JSON-RPC message", "detail": e.to_string() }),
            )
        }
    };
    if tx.send(message).await.is_err() {
        return unknown_session();
    }
    let mut resp = Response::new(super::router::full("Accepted"));
    *resp.status_mut() = StatusCode::ACCEPTED;
    resp
}

fn unknown_session() -> Response<RespBody> {
    json(
        StatusCode::NOT_FOUND,
        &json!({ "error": "unknown session" }),
    )
}

/// Unregisters the session when its stream goes, which ends the rmcp service too.
struct SessionGuard {
    id: String,
    closed: ClosedGuard,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.closed.shared().legacy_sessions().remove(&self.id);
    }
}

/// rmcp's side of a session: replies go to the SSE stream, POSTed messages come in.
struct ChannelTransport {
    tx: mpsc::Sender<ServerJsonRpcMessage>,
    rx: mpsc::Receiver<ClientJsonRpcMessage>,
}

impl Transport<RoleServer> for ChannelTransport {
    type Error = std::io::Error;

    fn name() -> Cow<'static, str> {
        "legacy-sse".into()
    }

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send + 'static {
        let tx = self.tx.clone();
        async move {
            tx.send(item)
                .await
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "stream closed"))
        }
    }

    fn receive(
        &mut self,
    ) -> impl std::future::Future<Output = Option<RxJsonRpcMessage<RoleServer>>> + Send {
        self.rx.recv()
    }

    fn close(&mut self) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send {
        self.rx.close();
        std::future::ready(Ok(()))
    }
}
