//! `tools/list` results with the denied tools taken out, so an agent is never offered a tool it
//! may not call. JSON responses are held whole up to [`MAX_FILTERED`]; event streams go
//! through [`crate::proxy::sse::Rewriter::filtering`], one event held at a time up to the same
//! cap. Over the cap the response fails closed: the body ends with an error.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use serde_json::Value;

use tokio::sync::mpsc;

use crate::proxy::body::{BoxError, ProxyBody};
use crate::proxy::legacy_denial::{LegacySessions, Registration};
use crate::proxy::policy::ServerPolicy;
use crate::proxy::sse::{EventFilter, Rewriter};

/// The largest JSON response or SSE event held to filter (a catalog of a few hundred tools
/// with long descriptions fits).
pub const MAX_FILTERED: usize = 8 << 20;

/// A held response was over [`MAX_FILTERED`].
#[derive(Debug, thiserror::Error)]
#[error("a tools/list response exceeded {MAX_FILTERED} bytes; it was not passed on unfiltered")]
pub struct ListTooLarge;

/// The JSON-RPC text with denied tools removed from every `result.tools`, or `None` when it
/// holds no tool list (then it passes unchanged). A list is always written anew, so the
/// client reads exactly what was checked (no duplicate keys, no second reading).
pub fn filter_text(text: &str, policy: &ServerPolicy) -> Option<String> {
    let mut value: Value = serde_json::from_str(text).ok()?;
    let changed = match &mut value {
        Value::Array(items) => {
            items
                .iter_mut()
                // Every message is filtered: no short-circuit.
                .map(|v| filter_message(v, policy))
                .filter(|&had_list| had_list)
                .count()
                > 0
        }
        v => filter_message(v, policy),
    };
    changed.then(|| value.to_string())
}

/// Filters one message; true when it carried a tool list.
fn filter_message(message: &mut Value, policy: &ServerPolicy) -> bool {
    let Some(Value::Array(tools)) = message.get_mut("result").and_then(|r| r.get_mut("tools"))
    else {
        return false;
    };
    // A tool without a string name cannot be checked: it is not offered.
    tools.retain(|t| {
        t.get("name")
            .and_then(Value::as_str)
            .is_some_and(|name| policy.tool_allowed(name).is_allowed())
    });
    true
}

/// A legacy endpoint registration made by the filter, handed to the body after a feed.
type Injector = (mpsc::Receiver<Bytes>, Registration);

/// A response body passed through a filtering [`Rewriter`], chunk by chunk. On a legacy
/// transport's GET stream it also carries the proxy's own answers to denied POSTs
/// ([`crate::proxy::legacy_denial`]), sent between two events.
pub struct SseFiltered {
    inner: ProxyBody,
    rewriter: Rewriter,
    slot: Arc<Mutex<Option<Injector>>>,
    injector: Option<Injector>,
    /// The last bytes sent ended an event (or none were sent yet).
    at_boundary: bool,
}

impl SseFiltered {
    /// `legacy`: the registry and this stream's local path, for GET streams.
    pub fn new(
        inner: ProxyBody,
        policy: ServerPolicy,
        legacy: Option<(Arc<LegacySessions>, String)>,
    ) -> SseFiltered {
        let slot: Arc<Mutex<Option<Injector>>> = Arc::default();
        let filled = slot.clone();
        let filter: EventFilter = Box::new(move |kind, data: &str| {
            if kind == Some("endpoint") {
                if let Some((sessions, path)) = &legacy {
                    if let Some(injector) = sessions.register(path, data) {
                        *filled.lock().unwrap_or_else(|e| e.into_inner()) = Some(injector);
                    }
                }
                return None;
            }
            filter_text(data, &policy)
        });
        SseFiltered {
            inner,
            rewriter: Rewriter::filtering(filter, MAX_FILTERED),
            slot,
            injector: None,
            at_boundary: true,
        }
    }
}

fn ends_event(out: &[u8]) -> bool {
    out.ends_with(b"\n\n") || out.ends_with(b"\r\n\r\n") || out.ends_with(b"\r\r")
}

impl Body for SseFiltered {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.at_boundary {
                if let Some((rx, _)) = this.injector.as_mut() {
                    if let Poll::Ready(Some(event)) = rx.poll_recv(cx) {
                        return Poll::Ready(Some(Ok(Frame::data(event))));
                    }
                }
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let fed = this.rewriter.feed(data);
                        if let Some(injector) =
                            this.slot.lock().unwrap_or_else(|e| e.into_inner()).take()
                        {
                            this.injector = Some(injector);
                        }
                        match fed {
                            Ok(out) if out.is_empty() => continue,
                            Ok(out) => {
                                this.at_boundary = ends_event(&out);
                                return Poll::Ready(Some(Ok(Frame::data(out))));
                            }
                            Err(e) => return Poll::Ready(Some(Err(Box::new(e)))),
                        }
                    }
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                other => return other,
            }
        }
    }
}

/// A JSON response body held whole (up to [`MAX_FILTERED`]), then filtered.
pub struct JsonFiltered {
    inner: ProxyBody,
    policy: ServerPolicy,
    held: BytesMut,
    out: VecDeque<Frame<Bytes>>,
    done: bool,
}

impl JsonFiltered {
    pub fn new(inner: ProxyBody, policy: ServerPolicy) -> JsonFiltered {
        JsonFiltered {
            inner,
            policy,
            held: BytesMut::new(),
            out: VecDeque::new(),
            done: false,
        }
    }

    fn finish(&mut self) {
        let held = self.held.split().freeze();
        let filtered = std::str::from_utf8(&held)
            .ok()
            .and_then(|t| filter_text(t, &self.policy));
        self.out
            .push_front(Frame::data(filtered.map_or(held, Bytes::from)));
        self.done = true;
    }
}

impl Body for JsonFiltered {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(this.out.pop_front().map(Ok));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        if this.held.len() + data.len() > MAX_FILTERED {
                            this.done = true;
                            this.out.clear();
                            return Poll::Ready(Some(Err(Box::new(ListTooLarge))));
                        }
                        this.held.extend_from_slice(&data);
                    }
                    // Trailers wait until the held data has gone out.
                    Err(frame) => this.out.push_back(frame),
                },
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => this.finish(),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PolicyConfig;
    use crate::proxy::policy::ToolPolicies;
    use http_body_util::BodyExt;

    fn policy() -> ServerPolicy {
        let cfg = PolicyConfig {
            name: "p".into(),
            servers: vec!["*".into()],
            upstreams: vec![],
            allowed_tools: vec![],
            blocked_tools: vec!["*Delete*".into()],
            read_only: false,
            mutating_verbs: None,
        };
        ToolPolicies::new(&[cfg]).applied("u", None).owned()
    }

    const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"DescribeInstances"},{"name":"DeleteInstance"},{"title":"no name"},{"name":"echo","inputSchema":{}}],"nextCursor":"c"}}"#;

    #[test]
    fn removes_denied_and_nameless_tools() {
        let out: Value = serde_json::from_str(&filter_text(LIST, &policy()).unwrap()).unwrap();
        let names: Vec<&str> = out["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["DescribeInstances", "echo"]);
        assert_eq!(out["result"]["nextCursor"], "c");
        assert_eq!(out["id"], 1);
    }

    #[test]
    fn other_messages_are_untouched() {
        let p = policy();
        assert_eq!(
            filter_text(r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#, &p),
            None
        );
        assert_eq!(filter_text("not json", &p), None);
        assert_eq!(
            filter_text(
                r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
                &p
            ),
            None
        );
        let batch = format!("[{LIST},{{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{{}}}}]");
        assert!(!filter_text(&batch, &p).unwrap().contains("DeleteInstance"));
    }

    #[test]
    fn duplicate_tool_lists_are_written_once() {
        let dup = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"DeleteInstance"}],"tools":[{"name":"echo"}]}}"#;
        let out = filter_text(dup, &policy()).unwrap();
        assert!(!out.contains("DeleteInstance"), "{out}");
    }

    fn chunks(parts: &[&'static str]) -> ProxyBody {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p.as_bytes()))))
            .collect();
        http_body_util::StreamBody::new(futures_util::stream::iter(frames)).boxed()
    }

    #[tokio::test]
    async fn json_body_is_filtered_across_chunks() {
        let (a, b) = LIST.split_at(40);
        let body = JsonFiltered::new(chunks(&[a, b]), policy());
        let out = body.collect().await.unwrap().to_bytes();
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.contains("DescribeInstances") && !text.contains("DeleteInstance"));
    }

    #[tokio::test]
    async fn sse_body_is_filtered_per_event() {
        let body = SseFiltered::new(
            chunks(&[
                "event: message\ndata: ",
                LIST,
                "\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n\n",
            ]),
            policy(),
            None,
        );
        let out = body.collect().await.unwrap().to_bytes();
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.starts_with("event: message\ndata: {"), "{text}");
        assert!(!text.contains("DeleteInstance"));
        assert!(text.ends_with("data: {\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n\n"));
    }
}
