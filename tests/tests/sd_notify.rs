//! The daemon under a service manager: notifications in order, watchdog pings, socket
//! activation, and structured journald records without secrets.

use std::os::unix::net::UnixDatagram;

use mcpproxy_tests::admin::get_json;
use mcpproxy_tests::daemon::{bin_path, proxy_client, raw_get, Setup, TestDaemon, WAIT};
use mcpproxy_tests::upstream::{self, UpstreamOptions};
use mcpproxy_tests::wait;
use tokio::process::Command;

/// Receives notification datagrams, as systemd's notify socket would.
struct NotifySocket {
    sock: tokio::net::UnixDatagram,
    seen: Vec<String>,
}

impl NotifySocket {
    fn bind(path: &std::path::Path) -> NotifySocket {
        let std_sock = UnixDatagram::bind(path).unwrap();
        std_sock.set_nonblocking(true).unwrap();
        NotifySocket {
            sock: tokio::net::UnixDatagram::from_std(std_sock).unwrap(),
            seen: Vec::new(),
        }
    }

    /// Waits for a datagram containing `needle` (a line such as `READY=1`); returns it.
    async fn wait_for(&mut self, needle: &str) -> String {
        let mut buf = vec![0u8; 65536];
        loop {
            let n = tokio::time::timeout(WAIT, self.sock.recv(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("no {needle:?} notification; seen: {:?}", self.seen))
                .unwrap();
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            self.seen.push(msg.clone());
            if msg.lines().any(|l| l == needle || l.starts_with(needle)) {
                return msg;
            }
        }
    }
}

#[tokio::test]
async fn notifies_ready_status_reloading_watchdog_and_stopping_in_order() {
    let up = upstream::start(UpstreamOptions::default()).await.unwrap();
    let setup = Setup::new().unwrap();
    let config = setup
        .write_config(&setup.static_config(&up, "").unwrap())
        .unwrap();
    let notify_path = setup.path("notify.sock");
    let mut notify = NotifySocket::bind(&notify_path);
    let mut cmd = Command::new(bin_path("mcpproxyd"));
    cmd.arg("--config")
        .arg(&config)
        .arg("--port")
        .arg("0")
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "2000000");
    let mut d = TestDaemon::spawn(cmd).await.unwrap();

    let ready = notify.wait_for("READY=1").await;
    let status = ready.lines().find(|l| l.starts_with("STATUS=")).unwrap();
    assert!(status.contains(&format!("serving {}", d.addr)), "{status}");
    notify.wait_for("WATCHDOG=1").await;

    d.signal("HUP").await.unwrap();
    let reloading = notify.wait_for("RELOADING=1").await;
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    notify.wait_for("READY=1").await;

    d.signal("TERM").await.unwrap();
    notify.wait_for("STOPPING=1").await;
    assert_eq!(d.wait_exit().await.unwrap().code(), Some(0));
    // Order: READY before the first RELOADING, STOPPING last of the state changes.
    let states: Vec<&str> = notify
        .seen
        .iter()
        .flat_map(|m| m.lines())
        .filter(|l| ["READY=1", "RELOADING=1", "STOPPING=1"].contains(l))
        .collect();
    assert_eq!(states, ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"]);
}

#[tokio::test]
async fn takes_the_proxy_and_admin_sockets_from_systemd() {
    let up = upstream::start(UpstreamOptions::default()).await.unwrap();
    let setup = Setup::new().unwrap();
    let config = setup
        .write_config(&setup.static_config(&up, "").unwrap())
        .unwrap();
    // A free port, chosen by the kernel, for systemd-socket-activate to listen on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let admin = setup.path("admin.sock");
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.arg(format!("--listen=127.0.0.1:{port}"))
        .arg(format!("--listen={}", admin.display()))
        .arg("--fdname=proxy:admin")
        .arg(bin_path("mcpproxyd"))
        .arg("--config")
        .arg(&config);
    // systemd-socket-activate starts the daemon on the first connection.
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let first = async {
        wait::poll("systemd-socket-activate listens", || async {
            tokio::net::TcpStream::connect(addr).await.ok()
        })
        .await
        .unwrap();
    };
    let (d, ()) = tokio::join!(TestDaemon::spawn(cmd), first);
    let d = d.unwrap();
    assert_eq!(d.addr, addr, "the banner names the passed socket");
    let (status, _) = raw_get(addr, "/raw/echo", &addr.to_string()).await.unwrap();
    assert_eq!(status, 200);
    let (status, s) = get_json(&admin, "/v1/status").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(s["listen"][0], addr.to_string());
    d.wait_for_log("passed by systemd").await.unwrap();
}

#[tokio::test]
async fn journald_records_carry_the_fields_and_no_secret() {
    let up = upstream::start(UpstreamOptions::default()).await.unwrap();
    let setup = Setup::new().unwrap();
    let text = setup
        .static_config(
            &up,
            "[[upstream.servers]]\nname = \"ecs\"\nid = \"E1\"\nmcp = \"/x/ecs/mcp\"\n\
             [log]\ntarget = \"journald\"\n[acl]\nblocked_servers = [\"/blocked\"]\n",
        )
        .unwrap();
    let config = setup.write_config(&text).unwrap();
    let journal_path = setup.path("journal.sock");
    let journal = UnixDatagram::bind(&journal_path).unwrap();
    journal.set_read_timeout(Some(WAIT)).unwrap();
    let mut cmd = Command::new(bin_path("mcpproxyd"));
    cmd.arg("--config")
        .arg(&config)
        .arg("--port")
        .arg("0")
        .env("MCPPROXYD_JOURNAL_SOCKET", &journal_path);
    let d = TestDaemon::spawn(cmd).await.unwrap();
    let r = proxy_client()
        .get(d.url("/x/ecs/mcp?session=SECRETQUERY"))
        .header("authorization", "Bearer client-secret-token")
        .send()
        .await
        .unwrap();
    assert!(r.status().as_u16() > 0);
    let r = proxy_client()
        .get(d.url("/blocked/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A tool call: its method and tool name are recorded, its arguments never.
    let r = proxy_client()
        .post(d.url("/x/ecs/mcp-demo"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"SECRETARGUMENT"}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let mut records = Vec::new();
    let mut buf = vec![0u8; 65536];
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        let n = journal.recv(&mut buf).unwrap();
        let rec = String::from_utf8_lossy(&buf[..n]).into_owned();
        records.push(rec);
        let seen = |needle: &str| records.iter().any(|r| r.contains(needle));
        if seen("MCP_DECISION=denied") && seen("MCP_SERVER=ecs") && seen("MCP_TOOL=echo") {
            break;
        }
    }
    let all = records.join("\n----\n");
    let proxied = records
        .iter()
        .find(|r| r.contains("MCP_SERVER=ecs"))
        .unwrap_or_else(|| panic!("{all}"));
    for field in [
        "MCP_DECISION=allowed",
        "MCP_STATUS=",
        "MCP_CLIENT=127.0.0.1:",
        "MCP_LATENCY_MS=",
        "PRIORITY=6",
        "SYSLOG_IDENTIFIER=mcpproxyd",
    ] {
        assert!(proxied.contains(field), "{field} missing in {proxied}");
    }
    let denied = records
        .iter()
        .find(|r| r.contains("MCP_DECISION=denied"))
        .unwrap();
    assert!(denied.contains("MCP_RULE=blocked:/blocked"), "{denied}");
    let call = records
        .iter()
        .find(|r| r.contains("MCP_TOOL=echo"))
        .unwrap_or_else(|| panic!("{all}"));
    assert!(call.contains("MCP_RPC_METHOD=tools/call"), "{call}");
    for secret in [
        "SECRETQUERY",
        "client-secret-token",
        "SECRETARGUMENT",
        up.token(),
    ] {
        assert!(!all.contains(secret), "{secret} reached the journal");
    }
}
