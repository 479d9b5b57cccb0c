//! The signer against numbers published by Alibaba Cloud, not produced by us:
//! - the worked example of "V3 request structure and signature" (alibabacloud.com/help/en/sdk/
//!   product-overview/v3-request-structure-and-signature, section "Fixed parameter values");
//! - the V3 unit tests of Alibaba's own SDK core, aliyun/darabonba-openapi
//!   `python/tests/test_utils.py` (`test_get_authorization`, `test_get_canonical_query_string`,
//!   `test_get_encode_path`, `test_get_encode_param`).

use std::time::{Duration, UNIX_EPOCH};

use secrecy::SecretString;

use super::*;

fn key(id: &str, secret: &str) -> AccessKey {
    AccessKey {
        id: id.into(),
        secret: SecretString::from(secret.to_string()),
        security_token: None,
        source: "test".into(),
    }
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// === The documentation's worked example ===

const DOC_CANONICAL: &str = "POST
/
ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai
host:ecs.cn-shanghai.aliyuncs.com
x-acs-action:RunInstances
x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
x-acs-date:2023-10-26T10:22:32Z
x-acs-signature-nonce:3156853299f313e23d1673dc12e1703d
x-acs-version:2014-05-26

host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

const DOC_STRING_TO_SIGN: &str =
    "ACS3-HMAC-SHA256\n7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259";

const DOC_SIGNATURE: &str = "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0";

fn doc_query() -> Vec<(String, String)> {
    // Given out of order on purpose: the signer sorts.
    pairs(&[
        ("RegionId", "cn-shanghai"),
        (
            "ImageId",
            "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
        ),
    ])
}

fn doc_request(query: &[(String, String)]) -> Request<'_> {
    Request {
        method: "POST",
        host: "ecs.cn-shanghai.aliyuncs.com",
        path: "/",
        query,
        headers: &[],
        body: b"",
        action: "RunInstances",
        version: "2014-05-26",
        date: "2023-10-26T10:22:32Z",
        nonce: "3156853299f313e23d1673dc12e1703d",
    }
}

#[test]
fn documented_example_step_by_step() {
    assert_eq!(sha256_hex(b""), EMPTY_SHA256);
    let headers = pairs(&[
        ("host", "ecs.cn-shanghai.aliyuncs.com"),
        ("x-acs-action", "RunInstances"),
        ("x-acs-content-sha256", EMPTY_SHA256),
        ("x-acs-date", "2023-10-26T10:22:32Z"),
        ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
        ("x-acs-version", "2014-05-26"),
    ]);
    let canonical = canonical_request("POST", "/", &doc_query(), &headers, EMPTY_SHA256);
    assert_eq!(canonical.request, DOC_CANONICAL);
    assert_eq!(
        canonical.signed_headers,
        "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version"
    );
    assert_eq!(string_to_sign(&canonical.request), DOC_STRING_TO_SIGN);
    assert_eq!(
        signature("YourAccessKeySecret", DOC_STRING_TO_SIGN),
        DOC_SIGNATURE
    );
}

#[test]
fn documented_example_through_sign() {
    let query = doc_query();
    let added = sign(
        &doc_request(&query),
        &key("YourAccessKeyId", "YourAccessKeySecret"),
    );
    let get = |name: &str| {
        added
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(
        get("authorization"),
        Some(
            "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;\
             x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,\
             Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        )
    );
    assert_eq!(get("x-acs-content-sha256"), Some(EMPTY_SHA256));
    assert_eq!(get("x-acs-date"), Some("2023-10-26T10:22:32Z"));
    assert_eq!(get("x-acs-action"), Some("RunInstances"));
    assert_eq!(get("host"), None, "the client sends Host from the URL");
    assert_eq!(added.last().map(|(n, _)| n.as_str()), Some("authorization"));
}

#[test]
fn any_change_to_the_documented_request_changes_the_signature() {
    let query = doc_query();
    let base = doc_request(&query);
    let k = key("YourAccessKeyId", "YourAccessKeySecret");
    let auth = |r: &Request<'_>, k: &AccessKey| sign(r, k).pop().unwrap().1;
    let reference = auth(&base, &k);
    let other_query = pairs(&[("RegionId", "cn-beijing")]);
    let variants = [
        Request {
            method: "GET",
            ..base
        },
        Request {
            host: "ecs.cn-beijing.aliyuncs.com",
            ..base
        },
        Request { path: "/x", ..base },
        Request {
            query: &other_query,
            ..base
        },
        Request {
            body: b"{}",
            ..base
        },
        Request {
            nonce: "other",
            ..base
        },
    ];
    for v in &variants {
        assert_ne!(auth(v, &k), reference, "{v:?}");
    }
    assert_ne!(auth(&base, &key("YourAccessKeyId", "wrong")), reference);
}

// === Alibaba's SDK core unit tests ===

#[test]
fn sdk_get_authorization_vector() {
    // Repeated header names in two cases merge into one, values sorted and comma-joined; an
    // empty query value canonicalises as `empty=`.
    let query = pairs(&[("test", "ok"), ("empty", "")]);
    let headers = pairs(&[("x-acs-test", "http"), ("x-acs-TEST", "https")]);
    let payload = "55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23";
    let canonical = canonical_request("GET", "/", &query, &headers, payload);
    assert_eq!(
        canonical.request,
        format!("GET\n/\nempty=&test=ok\nx-acs-test:http,https\n\nx-acs-test\n{payload}")
    );
    assert_eq!(canonical.signed_headers, "x-acs-test");
    assert_eq!(
        signature("secret", &string_to_sign(&canonical.request)),
        "d16b30a7699ae9e43875b13195b2f81bcc3ed10c14a9b5eb780e51619aa50be1"
    );
}

#[test]
fn sdk_encoding_vectors() {
    assert_eq!(
        canonical_query(&pairs(&[("test", " ~/*-+")])),
        "test=%20~%2F%2A-%2B"
    );
    assert_eq!(encode_path("/path/ test"), "/path/%20test");
    assert_eq!(encode("a/b/c/ test"), "a%2Fb%2Fc%2F%20test");
}

// === Canonical ordering and encoding ===

#[test]
fn query_is_sorted_by_encoded_name_then_value() {
    let query = pairs(&[
        ("b", "2"),
        ("a", "z"),
        ("a", "y"),
        ("A", "1"),
        ("c d", "e f"),
    ]);
    assert_eq!(canonical_query(&query), "A=1&a=y&a=z&b=2&c%20d=e%20f");
    assert_eq!(canonical_query(&[]), "");
}

#[test]
fn encoding_is_rfc3986_utf8() {
    assert_eq!(encode("AZaz09-_.~"), "AZaz09-_.~");
    assert_eq!(encode("a+b=c&d"), "a%2Bb%3Dc%26d");
    assert_eq!(
        encode("http://127.0.0.1:8088/callback"),
        "http%3A%2F%2F127.0.0.1%3A8088%2Fcallback"
    );
    assert_eq!(encode("中"), "%E4%B8%AD");
    assert_eq!(encode("\"'!()"), "%22%27%21%28%29");
    assert_eq!(encode_path(""), "/");
    assert_eq!(encode_path("/apimcpservers"), "/apimcpservers");
}

#[test]
fn headers_are_lower_cased_trimmed_and_sorted() {
    let headers = pairs(&[
        ("X-Acs-Version", " 1 "),
        ("Content-Type", "application/json"),
        ("host", "h"),
    ]);
    let c = canonical_request("get", "/", &[], &headers, EMPTY_SHA256);
    assert_eq!(
        c.request,
        format!(
            "GET\n/\n\ncontent-type:application/json\nhost:h\nx-acs-version:1\n\n\
             content-type;host;x-acs-version\n{EMPTY_SHA256}"
        )
    );
}

#[test]
fn security_token_is_sent_and_signed() {
    let query = doc_query();
    let mut k = key("id", "secret");
    k.security_token = Some(SecretString::from("sts-token".to_string()));
    let added = sign(&doc_request(&query), &k);
    assert!(added
        .iter()
        .any(|(n, v)| n == "x-acs-security-token" && v == "sts-token"));
    let auth = &added.last().unwrap().1;
    assert!(auth.contains("x-acs-date;x-acs-security-token;x-acs-signature-nonce"));
}

#[test]
fn dates_are_utc_iso8601() {
    assert_eq!(acs_date(UNIX_EPOCH), "1970-01-01T00:00:00Z");
    let doc = UNIX_EPOCH + Duration::from_secs(1_698_315_752);
    assert_eq!(acs_date(doc), "2023-10-26T10:22:32Z");
    let leap = UNIX_EPOCH + Duration::from_secs(951_825_600 + 59);
    assert_eq!(acs_date(leap), "2000-02-29T12:00:59Z");
    assert_eq!(
        acs_date(UNIX_EPOCH + Duration::from_secs(4_102_444_799)),
        "2099-12-31T23:59:59Z"
    );
}

#[test]
fn nonces_are_fresh_hex() {
    let (a, b) = (new_nonce(), new_nonce());
    assert_eq!(a.len(), 32);
    assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a, b);
}
