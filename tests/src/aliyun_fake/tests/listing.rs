//! `ListApiMcpServers` paging and the catalog cache against the fake.

use mcpproxyd::alibaba::api::ApiError;
use mcpproxyd::alibaba::catalog_cache::{self, Fetched};
use mcpproxyd::alibaba::listing::{self, Lister, ListingError};

use super::*;

fn lister(fake: &AliyunFake) -> Lister {
    Lister::new(daemon_http(fake), endpoint(fake), daemon_key(fake))
}

fn listing_requests(fake: &AliyunFake) -> Vec<Recorded> {
    fake.requests()
        .into_iter()
        .filter(|r| r.path == "/apimcpservers")
        .collect()
}

#[tokio::test]
async fn every_page_is_read() {
    let fake = fake(|o| o.servers = 7).await;
    let entries = lister(&fake).page_size(3).list().await.unwrap();
    assert_eq!(entries.len(), 7);
    let requests = listing_requests(&fake);
    assert_eq!(requests.len(), 3);
    let tokens: Vec<Option<&str>> = requests
        .iter()
        .map(|r| r.query_value("nextToken"))
        .collect();
    assert_eq!(tokens, [None, Some("tok-3"), Some("tok-6")]);
    assert!(requests
        .iter()
        .all(|r| r.method == "GET" && r.query_value("maxResults") == Some("3") && r.status == 200));
    assert!(requests
        .iter()
        .all(|r| r.action.as_deref() == Some("ListApiMcpServers")));

    for (i, entry) in entries.iter().enumerate() {
        let (name, id, base) = fake.server(i);
        assert_eq!(
            (entry.name.as_str(), entry.id.as_str()),
            (name.as_str(), id.as_str())
        );
        assert_eq!(entry.mcp.as_deref(), Some(format!("{base}/mcp").as_str()));
        assert_eq!(entry.sse.as_deref(), Some(format!("{base}/sse").as_str()));
    }
    let servers = listing::to_servers(&entries);
    assert_eq!(servers[6].name, "server-006");
    assert_eq!(
        servers[6].mcp.as_deref(),
        Some("/accounts/1001/custom/server-006/id/SRV006/mcp")
    );
}

#[tokio::test]
async fn the_largest_page_is_the_default() {
    let fake = fake(|o| o.servers = 250).await;
    let entries = lister(&fake).list().await.unwrap();
    assert_eq!(entries.len(), 250);
    let requests = listing_requests(&fake);
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].query_value("maxResults"), Some("100"));
    // Out-of-range sizes are clamped, never sent.
    let clamped = lister(&fake).page_size(1000).list().await.unwrap();
    assert_eq!(clamped.len(), 250);
}

#[tokio::test]
async fn an_empty_catalog_is_one_request() {
    let fake = fake(|o| o.servers = 0).await;
    assert!(lister(&fake).list().await.unwrap().is_empty());
    assert_eq!(listing_requests(&fake).len(), 1);
}

#[tokio::test]
async fn a_repeated_page_token_stops_the_listing() {
    let fake = fake(|o| o.servers = 10).await;
    fake.set_listing_fault(ListingFault::RepeatToken);
    let err = lister(&fake).page_size(2).list().await.unwrap_err();
    assert!(
        matches!(err, ListingError::RepeatedToken { page: 2 }),
        "{err}"
    );
    assert_eq!(listing_requests(&fake).len(), 2);
}

#[tokio::test]
async fn an_outage_at_start_uses_the_last_good_list() {
    let fake = fake(|o| o.servers = 5).await;
    let state = tempfile::tempdir().unwrap();
    let lister = lister(&fake).page_size(2);

    let first = catalog_cache::fetch(&lister, state.path(), "alibaba")
        .await
        .unwrap();
    let Fetched::Fresh(listed) = &first else {
        panic!("{first:?}");
    };
    assert_eq!(listed.len(), 5);

    fake.set_listing_fault(ListingFault::Unavailable);
    let second = catalog_cache::fetch(&lister, state.path(), "alibaba")
        .await
        .unwrap();
    let Fetched::Cached { catalog, error } = &second else {
        panic!("{second:?}");
    };
    assert_eq!(&catalog.servers, listed);
    assert_eq!(catalog.endpoint, endpoint(&fake).as_str());
    let ListingError::Api(api) = error else {
        panic!("{error}");
    };
    assert_eq!(
        (api.status(), api.code()),
        (Some(503), Some("ServiceUnavailable"))
    );
    assert_eq!(second.servers().len(), 5);

    // The outage ends: a fresh list replaces the saved one.
    fake.set_listing_fault(ListingFault::None);
    fake.set_server_count(6);
    let third = catalog_cache::fetch(&lister, state.path(), "alibaba")
        .await
        .unwrap();
    assert!(matches!(&third, Fetched::Fresh(s) if s.len() == 6));
    let saved = catalog_cache::load(state.path(), "alibaba", endpoint(&fake).as_str())
        .unwrap()
        .unwrap();
    assert_eq!(saved.servers.len(), 6);
}

#[tokio::test]
async fn an_outage_without_a_saved_list_is_an_error() {
    let fake = fake(|_| {}).await;
    fake.set_listing_fault(ListingFault::Unavailable);
    let state = tempfile::tempdir().unwrap();
    let err = catalog_cache::fetch(&lister(&fake), state.path(), "alibaba")
        .await
        .unwrap_err();
    assert!(matches!(
        &err.listing,
        ListingError::Api(ApiError::Service { status: 503, .. })
    ));
    assert!(err.to_string().contains("no saved list"), "{err}");
}
