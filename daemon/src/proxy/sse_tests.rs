//! Unit tests of [`super`] (sse.rs).

use super::*;

fn map() -> EndpointMap {
    EndpointMap {
        upstream_origin: "https://up.example:8443".into(),
        upstream_base: "/base".into(),
        mount: "/gh".into(),
        proxy_origin: "http://127.0.0.1:8088".into(),
    }
}

fn run(chunks: &[&str]) -> (Vec<String>, String) {
    let mut r = Rewriter::new(map());
    let outs: Vec<String> = chunks
        .iter()
        .map(|c| {
            String::from_utf8(
                r.feed(Bytes::copy_from_slice(c.as_bytes()))
                    .unwrap()
                    .to_vec(),
            )
            .unwrap()
        })
        .collect();
    let all = outs.concat();
    (outs, all)
}

#[test]
fn rewrites_relative_and_absolute_endpoints() {
    let m = map();
    assert_eq!(
        m.rewrite("/base/message?sessionId=1"),
        Some("/gh/message?sessionId=1".into())
    );
    assert_eq!(
        m.rewrite("https://up.example:8443/base/s/message?x=1"),
        Some("http://127.0.0.1:8088/gh/s/message?x=1".into())
    );
    assert_eq!(m.rewrite("https://other.example/base/message"), None);
    assert_eq!(m.rewrite("/elsewhere/message"), None);
    assert_eq!(m.rewrite("message?x=1"), None);
}

#[test]
fn endpoint_event_is_rewritten_even_when_split_everywhere() {
    let event = "event: endpoint\r\ndata: /base/message?sessionId=abc\r\n\r\n";
    let expected = "event: endpoint\r\ndata: /gh/message?sessionId=abc\r\n\r\n";
    for split in 0..event.len() {
        let (_, all) = run(&[&event[..split], &event[split..]]);
        assert_eq!(all, expected, "split at {split}");
    }
    let bytes: Vec<String> = event.chars().map(String::from).collect();
    let refs: Vec<&str> = bytes.iter().map(String::as_str).collect();
    assert_eq!(run(&refs).1, expected);
}

#[test]
fn other_events_pass_once_their_type_or_end_is_known() {
    let (outs, all) = run(&[
        "event: message\ndata: {\"a\"",
        ":1}\n\n",
        "data: two\n",
        "\n",
    ]);
    assert_eq!(outs[0], "event: message\ndata: {\"a\"");
    assert_eq!(outs[1], ":1}\n\n");
    assert_eq!(
        outs[2], "",
        "no event line yet: it may still turn out an endpoint"
    );
    assert_eq!(outs[3], "data: two\n\n");
    assert_eq!(all, "event: message\ndata: {\"a\":1}\n\ndata: two\n\n");
}

#[test]
fn an_endpoint_event_with_data_first_is_rewritten_even_when_split_everywhere() {
    let event = "id: 1\r\ndata: /base/message?sessionId=abc\r\nevent: endpoint\r\n\r\n";
    let expected = "id: 1\r\ndata: /gh/message?sessionId=abc\r\nevent: endpoint\r\n\r\n";
    for split in 0..event.len() {
        let (_, all) = run(&[&event[..split], &event[split..]]);
        assert_eq!(all, expected, "split at {split}");
    }
    let (_, all) = run(&["data: /base/m\nevent:endpoint\n\ndata: x\n\n"]);
    assert_eq!(all, "data: /gh/m\nevent:endpoint\n\ndata: x\n\n");
}

#[test]
fn an_oversized_event_that_turns_out_an_endpoint_fails_closed() {
    let mut r = Rewriter::new(map());
    let big = format!("data: /base/{}\n", "a".repeat(MAX_HELD_EVENT));
    let passed = r.feed(Bytes::from(big.clone())).unwrap();
    assert_eq!(passed.len(), big.len(), "too big to hold: passed on");
    assert!(r.feed(Bytes::from_static(b"event: endpoint\n\n")).is_err());
    // The same size with another type passes whole, and the next event is scanned anew.
    let mut r = Rewriter::new(map());
    r.feed(Bytes::from(big.clone())).unwrap();
    let rest = r
        .feed(Bytes::from_static(
            b"event: message\n\nevent: endpoint\ndata: /base/m\n\n",
        ))
        .unwrap();
    assert_eq!(
        rest,
        Bytes::from_static(b"event: message\n\nevent: endpoint\ndata: /gh/m\n\n")
    );
    // Split inside the late event line.
    let mut r = Rewriter::new(map());
    r.feed(Bytes::from(format!("{big}event: end"))).unwrap();
    assert!(r.feed(Bytes::from_static(b"point\n\n")).is_err());
}

#[test]
fn everything_but_the_endpoint_is_byte_identical() {
    let stream = ": ping\n\nid: 7\nevent: message\ndata: x\n\nevent: endpoint\ndata: /base/m\n\nretry: 10\ndata: y\r\n\r\n";
    let (_, all) = run(&[stream]);
    assert_eq!(
        all,
        ": ping\n\nid: 7\nevent: message\ndata: x\n\nevent: endpoint\ndata: /gh/m\n\nretry: 10\ndata: y\r\n\r\n"
    );
}

#[test]
fn oversized_endpoint_event_fails_closed() {
    let mut r = Rewriter::new(map());
    r.feed(Bytes::from_static(b"event: endpoint\n")).unwrap();
    let big = Bytes::from(vec![b'a'; MAX_HELD_EVENT + 1]);
    assert!(r.feed(big).is_err());
}

#[test]
fn long_data_lines_are_not_held() {
    let mut r = Rewriter::new(map());
    let first = r.feed(Bytes::from_static(b"data: ")).unwrap();
    assert!(
        first.is_empty(),
        "the first line of an event is held until complete"
    );
    let out = r
        .feed(Bytes::from(vec![b'z'; MAX_HELD_EVENT + 10]))
        .unwrap();
    assert_eq!(out.len(), MAX_HELD_EVENT + 16);
}

fn upper(_kind: Option<&str>, data: &str) -> Option<String> {
    data.starts_with('{')
        .then(|| data.to_uppercase().replace('\n', ""))
}

#[test]
fn filtering_rewrites_every_event_and_leaves_endpoints() {
    let stream = ": ping\n\nid: 1\nevent: message\ndata: {\"a\":\ndata: 1}\n\nevent: endpoint\ndata: /base/m\n\ndata: {x}\r\n\r\n";
    let expected = ": ping\n\nid: 1\nevent: message\ndata: {\"A\":1}\n\nevent: endpoint\ndata: /base/m\n\ndata: {X}\r\n\r\n";
    for split in 0..stream.len() {
        let mut r = Rewriter::filtering(Box::new(upper), 1024);
        let mut all = Vec::new();
        for part in [&stream[..split], &stream[split..]] {
            all.extend_from_slice(&r.feed(Bytes::copy_from_slice(part.as_bytes())).unwrap());
        }
        assert_eq!(
            String::from_utf8(all).unwrap(),
            expected,
            "split at {split}"
        );
    }
}

#[test]
fn filtering_holds_each_event_until_complete() {
    let mut r = Rewriter::filtering(Box::new(upper), 1024);
    assert!(r.feed(Bytes::from_static(b"data: {a")).unwrap().is_empty());
    assert!(r.feed(Bytes::from_static(b"}\n")).unwrap().is_empty());
    assert_eq!(
        &r.feed(Bytes::from_static(b"\n")).unwrap()[..],
        b"data: {A}\n\n"
    );
}

#[test]
fn filtering_fails_closed_over_the_cap_even_on_the_first_line() {
    let mut r = Rewriter::filtering(Box::new(upper), MAX_HELD_EVENT * 2);
    let mut line = b"data: {".to_vec();
    line.extend(vec![b'a'; MAX_HELD_EVENT + 10]);
    assert!(
        r.feed(Bytes::from(line)).unwrap().is_empty(),
        "held, not passed"
    );
    let err = r.feed(Bytes::from(vec![b'a'; MAX_HELD_EVENT])).unwrap_err();
    assert_eq!(err.0, MAX_HELD_EVENT * 2);
    let mut r = Rewriter::filtering(Box::new(upper), 16);
    assert!(r
        .feed(Bytes::from_static(b"event: message\ndata: {0123456789}\n"))
        .is_err());
}

#[test]
fn a_large_held_event_does_not_keep_its_buffer() {
    let mut r = Rewriter::filtering(Box::new(upper), MAX_HELD_EVENT);
    let big = format!("data: {}\n\n", "x".repeat(32 * 1024));
    let out = r.feed(Bytes::from(big)).unwrap();
    assert_eq!(out.len(), 32 * 1024 + 8);
    assert!(r.held.capacity() <= KEEP_HELD, "{}", r.held.capacity());
}

/// The scanner's state, to compare two rewriters.
fn state(r: &Rewriter) -> (Mode, Vec<u8>, bool, bool, Vec<u8>) {
    (
        r.mode,
        r.held.to_vec(),
        r.after_cr,
        r.line_start,
        r.line_head.clone(),
    )
}

#[test]
fn a_chunk_of_whole_events_without_an_endpoint_passes_as_the_byte_scan_would_send_it() {
    let chunks = [
        "data: 1\n\n",
        "data: 2\ndata: 3\n\n",
        ": a comment\nid: 7\ndata: 4\n\n\n",
        "\n\n",
        // Not whole, typed, with CRs: the byte scan, then back at an event's start.
        "data: 5\n",
        "\n",
        "event: endpoint\ndata: /base/message?sessionId=1\n\n",
        "data: 6\r\n\r\n",
        "data: the word event in the data\n\n",
        "data: 7\n\ndata: 8\n\n",
        "event: message\ndata: 9\n\n",
        "data: 10\n\n",
        "event: message\ndata: {\"a\":1}\n\nevent:ping\n\nid: 3\nevent: message\ndata: 11\n\n",
        // The word anywhere, even in the data of another type: the byte scan.
        "event: message\ndata: {\"endpoint\":2}\n\n",
        // A typed event split across chunks: the byte scan until its end.
        "event: mess",
        "age\ndata: 12\n\n",
        "event: endpoint\ndata: /base/message?sessionId=2\n\n",
        "event: message\ndata: 13\n\n",
    ];
    let mut fast = Rewriter::new(map());
    let mut slow = Rewriter::new(map());
    let mut took_the_fast_path = 0;
    for chunk in chunks {
        let bytes = Bytes::copy_from_slice(chunk.as_bytes());
        if fast.passes_whole(&bytes) {
            took_the_fast_path += 1;
        }
        let a = fast.feed(bytes.clone()).unwrap();
        let b = slow.scan(bytes).unwrap();
        assert_eq!(a, b, "after {chunk:?}");
        assert_eq!(state(&fast), state(&slow), "after {chunk:?}");
    }
    assert_eq!(took_the_fast_path, 10);
    // The endpoint events after the fast chunks were still rewritten.
    let (_, all) = run(&chunks);
    assert!(all.contains("data: /gh/message?sessionId=1\n"), "{all}");
    assert!(all.contains("data: /gh/message?sessionId=2\n"), "{all}");
}

#[test]
fn a_filtering_rewriter_never_passes_a_chunk_whole() {
    let filter: EventFilter = Box::new(|_, data| Some(data.replace('1', "one")));
    let mut r = Rewriter::filtering(filter, 1024);
    let bytes = Bytes::from_static(b"data: 1\n\n");
    assert!(!r.passes_whole(&bytes));
    assert_eq!(&r.feed(bytes).unwrap()[..], b"data: one\n\n");
}

#[test]
fn endpoint_is_found_wherever_it_is() {
    for text in [
        "endpoint",
        "event: endpoint\n\n",
        "data: {\"p\":\"endpoint\"}\n\n",
        "pp endpoint",
        "endendpoint",
        "x endpoint",
    ] {
        assert!(mentions_endpoint(text.as_bytes()), "{text:?}");
    }
    for text in [
        "",
        "p",
        "pe",
        "endpoin",
        "ndpoint",
        "end point",
        "event: message\ndata: p\n\n",
    ] {
        assert!(!mentions_endpoint(text.as_bytes()), "{text:?}");
    }
}
