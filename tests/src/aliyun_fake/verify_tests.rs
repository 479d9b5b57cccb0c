//! The verifier against the worked example of Alibaba Cloud's "V3 request structure and
//! signature" page, and against tampering.

use http::HeaderValue;

use super::*;

/// The worked example of Alibaba Cloud's "V3 request structure and signature" page.
fn doc_headers(signature: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut set = |n: &'static str, v: &str| {
        h.insert(n, HeaderValue::from_str(v).unwrap());
    };
    set("host", "ecs.cn-shanghai.aliyuncs.com");
    set("x-acs-action", "RunInstances");
    set("x-acs-version", "2014-05-26");
    set("x-acs-date", "2023-10-26T10:22:32Z");
    set("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d");
    set(
        "x-acs-content-sha256",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
    set(
        "authorization",
        &format!(
            "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;\
             x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,\
             Signature={signature}"
        ),
    );
    set(
        "user-agent",
        "AlibabaCloud (Mac OS X; x86_64) Java/1.8.0_352-b08",
    );
    set("accept", "application/json");
    h
}

const DOC_SIGNATURE: &str = "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0";

fn doc_key(secret: &str) -> FakeKey {
    FakeKey {
        id: "YourAccessKeyId".into(),
        secret: secret.into(),
        security_token: None,
    }
}

fn doc_request(headers: &HeaderMap) -> Incoming<'_> {
    Incoming {
        method: "POST",
        raw_path: "/",
        raw_query:
            "RegionId=cn-shanghai&ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
        headers,
        authority: None,
        body: b"",
    }
}

#[test]
fn accepts_the_documented_example() {
    let headers = doc_headers(DOC_SIGNATURE);
    let now = parse_date("2023-10-26T10:25:00Z");
    assert_eq!(
        verify(&doc_request(&headers), &doc_key("YourAccessKeySecret"), now),
        Ok(())
    );
    let signed: Vec<String> = REQUIRED.iter().map(|s| s.to_string()).collect();
    let canonical = canonical_request(&doc_request(&headers), &signed).unwrap();
    assert!(canonical.starts_with(
        "POST\n/\nImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai\nhost:"
    ));
}

#[test]
fn refuses_a_wrong_secret_signature_or_query() {
    let headers = doc_headers(DOC_SIGNATURE);
    let wrong = verify(&doc_request(&headers), &doc_key("NotTheSecret"), None).unwrap_err();
    assert_eq!((wrong.status, wrong.code), (400, "SignatureDoesNotMatch"));
    let tampered_sig = doc_headers(&DOC_SIGNATURE.replace('0', "1"));
    let err = verify(
        &doc_request(&tampered_sig),
        &doc_key("YourAccessKeySecret"),
        None,
    )
    .unwrap_err();
    assert_eq!(err.code, "SignatureDoesNotMatch");
    let mut other_query = doc_request(&headers);
    other_query.raw_query = "RegionId=cn-beijing&ImageId=x";
    let err = verify(&other_query, &doc_key("YourAccessKeySecret"), None).unwrap_err();
    assert_eq!(err.code, "SignatureDoesNotMatch");
}

#[test]
fn refuses_stale_dates_unknown_keys_and_unsigned_headers() {
    let headers = doc_headers(DOC_SIGNATURE);
    let later = parse_date("2023-10-26T11:00:00Z");
    let err = verify(
        &doc_request(&headers),
        &doc_key("YourAccessKeySecret"),
        later,
    )
    .unwrap_err();
    assert_eq!(err.code, "InvalidTimeStamp.Expired");
    let mut other = doc_key("YourAccessKeySecret");
    other.id = "LTAIother".into();
    assert_eq!(
        verify(&doc_request(&headers), &other, None)
            .unwrap_err()
            .status,
        404
    );
    let mut extra = doc_headers(DOC_SIGNATURE);
    extra.insert("x-acs-extra", HeaderValue::from_static("1"));
    let err = verify(&doc_request(&extra), &doc_key("YourAccessKeySecret"), None).unwrap_err();
    assert_eq!(err.code, "IncompleteSignature");
}

#[test]
fn encoding_and_dates() {
    assert_eq!(encode(" ~/*-+".as_bytes()), "%20~%2F%2A-%2B");
    assert_eq!(decode("a%2Fb+c").unwrap(), b"a/b+c");
    assert_eq!(decode("%zz"), None);
    assert_eq!(
        parse_date("1970-01-02T00:00:01Z"),
        Some(UNIX_EPOCH + Duration::from_secs(86_401))
    );
    assert_eq!(
        parse_date("2023-10-26T10:22:32Z"),
        Some(UNIX_EPOCH + Duration::from_secs(1_698_315_752))
    );
    assert_eq!(parse_date("2023-10-26 10:22:32Z"), None);
    assert_eq!(parse_date("2023-13-26T10:22:32Z"), None);
}

#[test]
fn hmac_matches_rfc4231_case_2() {
    assert_eq!(
        hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}
