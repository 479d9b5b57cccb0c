//! SSE `endpoint` rewriting: never panics, and the output is the same however the stream is
//! split (the first byte chooses the cut points).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mcpproxyd::proxy::sse::{EndpointMap, Rewriter};

fn rewriter() -> Rewriter {
    Rewriter::new(EndpointMap {
        upstream_origin: "https://up.example".into(),
        upstream_base: "/base".into(),
        mount: "/gh".into(),
        proxy_origin: "http://127.0.0.1:8088".into(),
    })
}

fn feed(chunks: &[&[u8]]) -> Option<Vec<u8>> {
    let mut r = rewriter();
    let mut out = Vec::new();
    for c in chunks {
        out.extend_from_slice(&r.feed(Bytes::copy_from_slice(c)).ok()?);
    }
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    let whole = feed(&[stream]);
    let step = usize::from(step).max(1);
    let chunks: Vec<&[u8]> = stream.chunks(step).collect();
    let split = feed(&chunks);
    assert_eq!(whole, split, "output depends on how the stream was split");
});
