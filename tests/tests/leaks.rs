//! No process outlives the test that started it, whether the test passes or fails: the
//! harness kills its daemons when they are dropped, and a daemon whose terminal closes exits.

use mcpproxy_tests::daemon::{start_with_two_servers, TestDaemon};
use mcpproxy_tests::procs;

#[tokio::test]
async fn a_daemon_is_gone_once_its_test_has_passed() {
    let (_up, setup, d) = start_with_two_servers("").await.unwrap();
    let pid = d.pid();
    assert_eq!(procs::with_arg(&setup.path("mcpproxyd.toml")), [pid]);
    drop(d);
    procs::wait_exited(pid).await.unwrap();
    procs::wait_none_with_arg(&setup.path("mcpproxyd.toml"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_daemon_is_gone_once_its_test_has_failed() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let failing = tokio::spawn(async move {
        let (_up, _setup, d): (_, _, TestDaemon) = start_with_two_servers("").await.unwrap();
        tx.send(d.pid()).unwrap();
        panic!("a failing test, holding its daemon");
    });
    let pid = rx.await.unwrap();
    assert!(failing.await.unwrap_err().is_panic());
    procs::wait_exited(pid).await.unwrap();
}
