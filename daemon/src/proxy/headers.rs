//! Which headers cross the proxy in each direction, and the one response header rewritten: a
//! `Location` on the upstream's own origin.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop headers (RFC 9110 §7.6.1) and friends that never cross the proxy.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The header names listed in `Connection` (hop-by-hop by the sender's say); none, and no
/// allocation, without one.
fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect()
}

/// A hop-by-hop header, one named in `Connection`, or one of `also_drop`.
fn hop_by_hop(name: &HeaderName, named: &[HeaderName], also_drop: &[HeaderName]) -> bool {
    HOP_BY_HOP.contains(name) || also_drop.contains(name) || named.contains(name)
}

/// Removes the hop-by-hop headers, those named in `Connection` and `also_drop`, in place.
/// The names are compared first: a map without any (the usual case) is left untouched.
fn strip_hop_by_hop(headers: &mut HeaderMap, also_drop: &[HeaderName]) {
    let named = connection_named(headers);
    let gone: Vec<HeaderName> = headers
        .keys()
        .filter(|n| hop_by_hop(n, &named, also_drop))
        .cloned()
        .collect();
    for name in gone {
        headers.remove(name);
    }
}

/// The headers sent upstream: the client's end-to-end headers without its `Authorization`
/// (the proxy sets its own), `Host` (set from the upstream URL), `Origin` (checked here; the
/// upstream sees the proxy as its client) and `Expect` (answered by the proxy's server).
pub fn request_headers(client: &HeaderMap, bearer: &str) -> Result<HeaderMap, InvalidToken> {
    let named = connection_named(client);
    // Built from the headers that cross (their values are shared, not copied) rather than
    // copied whole and trimmed: a look-up per dropped name costs more than the comparisons.
    let mut out = HeaderMap::with_capacity(client.keys_len() + 2);
    for (name, value) in client {
        // The proxy is the upstream's client: what a local app claims about earlier hops is
        // not passed on as if the proxy vouched for it.
        if hop_by_hop(name, &named, &REQUEST_DROPS) || is_forwarding(name) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    // Event streams are scanned for `endpoint` events, which needs them uncompressed.
    let wants_sse = client
        .get_all(header::ACCEPT)
        .iter()
        .any(|v| names_event_stream(v.as_bytes()));
    if wants_sse {
        out.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
    }
    out.insert(header::AUTHORIZATION, bearer_value(bearer)?);
    Ok(out)
}

/// `text/event-stream` in an `Accept` value, in any case: found by memchr's search when the
/// value is in lower case (as clients send it), else compared window by window.
fn names_event_stream(value: &[u8]) -> bool {
    const TYPE: &[u8] = b"text/event-stream";
    if !value.iter().any(u8::is_ascii_uppercase) {
        return memchr::memmem::find(value, TYPE).is_some();
    }
    value
        .windows(TYPE.len())
        .any(|w| w.eq_ignore_ascii_case(TYPE))
}

/// What the proxy drops from requests on top of the hop-by-hop headers.
const REQUEST_DROPS: [HeaderName; 4] = [
    header::AUTHORIZATION,
    header::HOST,
    header::ORIGIN,
    header::EXPECT,
];

/// `Bearer TOKEN`, marked sensitive (never in HPACK's table, never in Debug): built in one
/// buffer.
fn bearer_value(token: &str) -> Result<HeaderValue, InvalidToken> {
    let mut buf = bytes::BytesMut::with_capacity(7 + token.len());
    buf.extend_from_slice(b"Bearer ");
    buf.extend_from_slice(token.as_bytes());
    let mut value = HeaderValue::from_maybe_shared(buf.freeze()).map_err(|_| InvalidToken)?;
    value.set_sensitive(true);
    Ok(value)
}

/// `Forwarded`, `X-Forwarded-*` and `X-Real-IP`: what a client says about the hops before it.
fn is_forwarding(name: &HeaderName) -> bool {
    let n = name.as_str();
    n == "forwarded" || n == "x-real-ip" || n.starts_with("x-forwarded-")
}

/// Points a `Location` on the upstream's own origin at the proxy (mapped as an SSE `endpoint`
/// is), or drops it when it names a path outside the upstream's base: the client holds no
/// credentials for the upstream, and must not learn to go round the proxy. `Location`s on other
/// origins are left alone.
pub fn rewrite_location(
    headers: &mut HeaderMap,
    upstream_url: &url::Url,
    map: &crate::proxy::sse::EndpointMap,
) {
    let Some(value) = headers.get(header::LOCATION) else {
        return;
    };
    let Some(target) = value.to_str().ok().and_then(|v| upstream_url.join(v).ok()) else {
        headers.remove(header::LOCATION);
        return;
    };
    if target.origin() != upstream_url.origin() {
        return;
    }
    match map
        .rewrite(target.as_str())
        .and_then(|v| HeaderValue::from_str(&v).ok())
    {
        Some(local) => {
            headers.insert(header::LOCATION, local);
        }
        None => {
            headers.remove(header::LOCATION);
        }
    }
}

/// Removes every upstream response header that carries `token` (an upstream, or anything
/// between, reflecting the request's `Authorization`): the client must never read it back.
pub fn drop_echoed_token(headers: &mut HeaderMap, token: &str) {
    if token.is_empty() {
        return;
    }
    let echoed: Vec<HeaderName> = headers
        .iter()
        .filter(|(_, v)| {
            v.as_bytes()
                .windows(token.len())
                .any(|w| w == token.as_bytes())
        })
        .map(|(n, _)| n.clone())
        .collect();
    for name in echoed {
        headers.remove(name);
    }
}

/// The token has bytes that cannot go in a header.
#[derive(Debug, thiserror::Error)]
#[error("the access token has characters that cannot be sent in a header")]
pub struct InvalidToken;

/// The headers sent back to the client: the upstream's end-to-end headers without
/// `WWW-Authenticate` (a local app must not start an OAuth flow against the upstream's
/// authorization server) and `Alt-Svc` (it would advertise the upstream's protocols for the
/// proxy's address).
pub fn response_headers(upstream: &mut HeaderMap) {
    strip_hop_by_hop(
        upstream,
        &[header::WWW_AUTHENTICATE, HeaderName::from_static("alt-svc")],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_stream_is_found_in_accept_in_any_case() {
        for (value, want) in [
            ("application/json, text/event-stream", true),
            ("text/event-stream", true),
            ("TEXT/Event-Stream;q=0.9", true),
            ("application/json, Text/event-streaM", true),
            ("application/json", false),
            ("text/event-strea", false),
            ("TEXT/EVENT-STREAMS", true),
            ("", false),
        ] {
            assert_eq!(names_event_stream(value.as_bytes()), want, "{value}");
        }
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn request_headers_replace_authorization_and_drop_hop_by_hop() {
        let h = request_headers(
            &map(&[
                ("authorization", "Bearer client-secret"),
                ("host", "127.0.0.1:8088"),
                ("origin", "http://localhost:3000"),
                ("connection", "keep-alive, x-private"),
                ("x-private", "1"),
                ("te", "trailers"),
                ("mcp-session-id", "s1"),
                ("mcp-protocol-version", "2025-06-18"),
                ("last-event-id", "7"),
                ("accept", "application/json, text/event-stream"),
                ("accept-encoding", "gzip"),
                ("content-type", "application/json"),
                ("x-multi", "a"),
                ("x-multi", "b"),
            ]),
            "proxy-token",
        )
        .unwrap();
        let multi: Vec<_> = h.get_all("x-multi").iter().collect();
        assert_eq!(multi, ["a", "b"], "repeated headers cross whole, in order");
        assert_eq!(h.get_all("authorization").iter().count(), 1);
        assert_eq!(h["authorization"], "Bearer proxy-token");
        assert!(h["authorization"].is_sensitive());
        for gone in ["host", "origin", "connection", "x-private", "te"] {
            assert!(!h.contains_key(gone), "{gone}");
        }
        for kept in [
            "mcp-session-id",
            "mcp-protocol-version",
            "last-event-id",
            "accept",
            "content-type",
        ] {
            assert!(h.contains_key(kept), "{kept}");
        }
        assert_eq!(h["accept-encoding"], "identity");
    }

    #[test]
    fn client_claims_about_earlier_hops_are_dropped() {
        let h = request_headers(
            &map(&[
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-host", "evil.example"),
                ("x-forwarded-proto", "https"),
                ("forwarded", "for=203.0.113.9"),
                ("x-real-ip", "203.0.113.9"),
                ("x-forwardedness", "kept: not a forwarding header"),
            ]),
            "t",
        )
        .unwrap();
        for gone in [
            "x-forwarded-for",
            "x-forwarded-host",
            "x-forwarded-proto",
            "forwarded",
            "x-real-ip",
        ] {
            assert!(!h.contains_key(gone), "{gone}");
        }
        assert!(h.contains_key("x-forwardedness"));
    }

    #[test]
    fn locations_on_the_upstream_point_at_the_proxy_or_go() {
        let up = url::Url::parse("https://up.example:8443/base").unwrap();
        let m = crate::proxy::sse::EndpointMap {
            upstream_origin: "https://up.example:8443".into(),
            upstream_base: "/base".into(),
            mount: "/gh".into(),
            proxy_origin: "http://127.0.0.1:8088".into(),
        };
        let after = |loc: &str| {
            let mut h = map(&[("location", loc)]);
            rewrite_location(&mut h, &up, &m);
            h.get("location").map(|v| v.to_str().unwrap().to_string())
        };
        assert_eq!(
            after("https://up.example:8443/base/x?y=1").as_deref(),
            Some("http://127.0.0.1:8088/gh/x?y=1")
        );
        assert_eq!(
            after("/base/x").as_deref(),
            Some("http://127.0.0.1:8088/gh/x")
        );
        assert_eq!(after("https://up.example:8443/elsewhere"), None);
        assert_eq!(after("//up.example:8443/elsewhere"), None);
        assert_eq!(
            after("https://login.example/authorize").as_deref(),
            Some("https://login.example/authorize")
        );
    }

    #[test]
    fn a_reflected_token_never_reaches_the_client() {
        let mut h = map(&[
            ("x-echo-authorization", "Bearer sekrit-token"),
            ("x-debug", "saw sekrit-token here"),
            ("content-type", "application/json"),
        ]);
        drop_echoed_token(&mut h, "sekrit-token");
        assert!(!h.contains_key("x-echo-authorization"));
        assert!(!h.contains_key("x-debug"));
        assert!(h.contains_key("content-type"));
    }

    #[test]
    fn response_headers_lose_www_authenticate() {
        let mut h = map(&[
            ("www-authenticate", "Bearer resource_metadata=\"x\""),
            ("mcp-session-id", "s1"),
            ("transfer-encoding", "chunked"),
            ("content-type", "text/event-stream"),
        ]);
        response_headers(&mut h);
        assert!(!h.contains_key("www-authenticate"));
        assert!(!h.contains_key("transfer-encoding"));
        assert_eq!(h["mcp-session-id"], "s1");
    }
}
