//! OpenAPI Explorer's `ListApiMcpServers` (2024-11-30): `GET /apimcpservers`, paged with
//! `maxResults` (default 20, at most 100) and an opaque `nextToken`.

use serde_json::{json, Value};

use super::{ListingFault, Reply};

pub const VERSION: &str = "2024-11-30";
pub const ACTION: &str = "ListApiMcpServers";
pub const PATH: &str = "/apimcpservers";

const DEFAULT_PAGE: usize = 20;
const MAX_PAGE: usize = 100;
/// The token a [`ListingFault::RepeatToken`] server hands out every time.
const STUCK_TOKEN: &str = "tok-stuck";

/// One page for `params`; `origin` is `https://HOST:PORT`, which the server URLs use.
pub(crate) fn handle(
    count: usize,
    account: &str,
    origin: &str,
    fault: ListingFault,
    params: &[(String, String)],
) -> Reply {
    let get = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    if fault == ListingFault::Unavailable {
        return Reply::error(
            503,
            "ServiceUnavailable",
            "The request has failed due to a temporary failure of the server.",
        );
    }
    let size = match get("maxResults").map(str::parse::<usize>) {
        None => DEFAULT_PAGE,
        Some(Ok(n)) if (1..=MAX_PAGE).contains(&n) => n,
        Some(_) => {
            return Reply::error(
                400,
                "InvalidParameter.MaxResults",
                "maxResults must be between 1 and 100",
            )
        }
    };
    let start = match get("nextToken").filter(|t| !t.is_empty()) {
        None => 0,
        Some(STUCK_TOKEN) if fault == ListingFault::RepeatToken => size,
        Some(t) => match t.strip_prefix("tok-").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) if n <= count => n,
            _ => return Reply::error(400, "InvalidParameter.NextToken", "nextToken is invalid"),
        },
    };
    let end = (start + size).min(count);
    let servers: Vec<Value> = (start..end).map(|i| server(i, account, origin)).collect();
    let next = if fault == ListingFault::RepeatToken {
        STUCK_TOKEN.to_string()
    } else if end < count {
        format!("tok-{end}")
    } else {
        String::new()
    };
    Reply::ok(json!({
        "nextToken": next,
        "totalCount": count,
        "maxResults": size,
        "apiMcpServers": servers,
    }))
}

/// Name, id and base path of server `i`: `server-007`, `SRV007`,
/// `/accounts/ACCOUNT/custom/server-007/id/SRV007`.
pub fn server_names(i: usize, account: &str) -> (String, String, String) {
    let name = format!("server-{i:03}");
    let id = format!("SRV{i:03}");
    let base = format!("/accounts/{account}/custom/{name}/id/{id}");
    (name, id, base)
}

fn server(i: usize, account: &str, origin: &str) -> Value {
    let (name, id, base) = server_names(i, account);
    json!({
        "id": id,
        "name": name,
        "sourceType": "custom",
        "product": "Ecs",
        "description": format!("test server {i}"),
        "urls": { "mcp": format!("{origin}{base}/mcp"), "sse": format!("{origin}{base}/sse") },
    })
}
