//! A canned daemon for the integration tests: a real hyper server on a Unix socket in a tempdir,
//! in-process, answering fixed JSON; and ways to run the CLI against it.
#![allow(dead_code)] // Each test file uses a different part.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::os::unix::net::UnixListener as StdUnixListener;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use mcpproxyctl::Env;

/// What the canned daemon saw of one request.
#[derive(Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub host: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
}

type Routes = HashMap<(String, String), VecDeque<(u16, String)>>;

/// `(method, path)` → `(status, body)`, the query ignored; anything else is a 404 error body.
/// A route given several answers gives them in order, and the last one from then on.
pub struct CannedDaemon {
    routes: Routes,
}

impl CannedDaemon {
    pub fn new() -> CannedDaemon {
        CannedDaemon {
            routes: HashMap::new(),
        }
    }

    pub fn route(mut self, method: &str, path: &str, status: u16, body: &str) -> Self {
        self.routes
            .entry((method.to_string(), path.to_string()))
            .or_default()
            .push_back((status, body.to_string()));
        self
    }

    /// Binds `dir/admin.sock` (before returning, so clients never race the bind) and serves it
    /// from a thread of its own, as a daemon would from its own process.
    pub fn serve(self, dir: &Path) -> (PathBuf, mpsc::Receiver<Seen>) {
        let path = dir.join("admin.sock");
        let listener = StdUnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let (seen_tx, seen_rx) = mpsc::channel();
        let routes = Arc::new(Mutex::new(self.routes));
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::UnixListener::from_std(listener).unwrap();
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    let (routes, seen_tx) = (routes.clone(), seen_tx.clone());
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (routes, seen_tx) = (routes.clone(), seen_tx.clone());
                        async move { Ok::<_, Infallible>(answer(&routes, &seen_tx, req).await) }
                    });
                    tokio::spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        (path, seen_rx)
    }
}

async fn answer(
    routes: &Mutex<Routes>,
    seen: &mpsc::Sender<Seen>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let header = |name| {
        req.headers()
            .get(name)
            .map(|v: &hyper::header::HeaderValue| v.to_str().unwrap().to_string())
    };
    let (method, path) = (req.method().to_string(), req.uri().path().to_string());
    let query = req.uri().query().map(String::from);
    let (host, content_type) = (header("host"), header("content-type"));
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let (status, body_out) = {
        let mut routes = routes.lock().unwrap();
        match routes.get_mut(&(method.clone(), path.clone())) {
            Some(answers) if answers.len() > 1 => answers.pop_front().unwrap(),
            Some(answers) => answers.front().unwrap().clone(),
            None => (
                404,
                r#"{"error":{"code":"not_found","message":"no such endpoint"}}"#.into(),
            ),
        }
    };
    // The test may be done with the daemon already; it has nothing more to learn then.
    let _ = seen.send(Seen {
        method,
        path,
        query,
        host,
        content_type,
        body: String::from_utf8(body.to_vec()).unwrap(),
    });
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(body_out)))
        .unwrap()
}

/// Runs the CLI in-process with `--socket socket`, `env` and `input` as stdin; returns
/// (exit code, stdout, stderr).
pub fn ctl_with(socket: &Path, env: &Env, input: &str, args: &[&str]) -> (u8, String, String) {
    let mut argv = vec!["mcpproxyctl", "--socket", socket.to_str().unwrap()];
    argv.extend_from_slice(args);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = mcpproxyctl::run(argv, env, &mut input.as_bytes(), &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

/// Runs the CLI in-process with `--socket socket`, no environment and empty stdin.
pub fn ctl(socket: &Path, args: &[&str]) -> (u8, String, String) {
    ctl_with(socket, &Env::default(), "", args)
}

/// All the requests seen so far.
pub fn seen_so_far(seen: &mpsc::Receiver<Seen>) -> Vec<Seen> {
    seen.try_iter().collect()
}
