//! The threads that serve proxy connections: one single-threaded runtime per core. The accept
//! loops hand each new connection to the next worker, and everything the connection does runs
//! on that worker's thread: its HTTP server, its requests, and the upstream connections they
//! open (each worker has its own, see `proxy::pool`). Nothing a request waits for wakes
//! another thread, as the shared work-stealing runtime did several times per request.
//!
//! The rest of the daemon (admin socket, refreshes, reloads, signals) stays on the main
//! runtime.

use std::cell::Cell;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::state::{Heartbeat, WorkerBeat};

/// The most worker threads, whatever the machine has.
pub const MAX_WORKERS: usize = 64;

thread_local! {
    /// This thread's worker number, from 1; 0 on any other thread.
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// The current thread's worker number (from 1), or 0 off the workers: which of a pool's
/// per-worker sets of connections a request uses.
pub fn current() -> usize {
    WORKER.with(Cell::get)
}

/// How many workers the daemon runs: one per core, at most [`MAX_WORKERS`].
pub fn count() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_WORKERS)
}

/// A connection that can move to another runtime: out as the std socket, in again on the
/// worker's (a tokio socket is registered with the runtime that made it).
pub trait Portable: Sized {
    type Std: Send + 'static;
    fn into_std(self) -> io::Result<Self::Std>;
    fn from_std(s: Self::Std) -> io::Result<Self>;
}

impl Portable for tokio::net::TcpStream {
    type Std = std::net::TcpStream;
    fn into_std(self) -> io::Result<Self::Std> {
        // Still non-blocking, as `from_std` needs it.
        tokio::net::TcpStream::into_std(self)
    }
    fn from_std(s: Self::Std) -> io::Result<Self> {
        tokio::net::TcpStream::from_std(s)
    }
}

impl Portable for tokio::net::UnixStream {
    type Std = std::os::unix::net::UnixStream;
    fn into_std(self) -> io::Result<Self::Std> {
        tokio::net::UnixStream::into_std(self)
    }
    fn from_std(s: Self::Std) -> io::Result<Self> {
        tokio::net::UnixStream::from_std(s)
    }
}

/// Work handed to a worker: run on its thread, inside its runtime (so `tokio::spawn` there
/// spawns onto it).
pub type Job = Box<dyn FnOnce() + Send>;

/// The worker threads.
pub struct Workers {
    queues: Vec<mpsc::UnboundedSender<Job>>,
    next: AtomicUsize,
    threads: Vec<JoinHandle<()>>,
    done: CancellationToken,
}

impl Workers {
    /// `configured` workers, or [`count`], each ticking its own heartbeat (the watchdog's
    /// health check looks at them).
    pub fn start(configured: Option<usize>, heartbeat: &Heartbeat) -> io::Result<Workers> {
        let n = configured.unwrap_or_else(count).clamp(1, MAX_WORKERS);
        Workers::with((0..n).map(|_| Some(heartbeat.worker())).collect())
    }

    /// One worker per entry, with its heartbeat if it has one.
    fn with(beats: Vec<Option<WorkerBeat>>) -> io::Result<Workers> {
        let n = beats.len();
        let done = CancellationToken::new();
        let mut queues = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        for (i, beat) in (1..=n).zip(beats) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                // The worker's held log lines go out whenever it has nothing left to run.
                .on_thread_park(crate::control::log_hold::flush)
                .build()?;
            let (tx, rx) = mpsc::unbounded_channel();
            let done = done.clone();
            let thread = std::thread::Builder::new()
                .name(format!("proxy-{i}"))
                .spawn(move || {
                    WORKER.with(|w| w.set(i));
                    // Held lines, those of tasks dropped with the runtime too, are written
                    // when the thread ends.
                    crate::control::log_hold::hold_on_this_thread();
                    runtime.block_on(run(rx, done, beat));
                })?;
            queues.push(tx);
            threads.push(thread);
        }
        Ok(Workers {
            queues,
            next: AtomicUsize::new(0),
            threads,
            done,
        })
    }

    /// Runs `job` on the next worker, in turn.
    pub fn hand(&self, job: Job) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.queues.len();
        // A worker only stops after `stop`, when nothing is handed any more.
        let _ = self.queues[i].send(job);
    }

    /// Ends the workers once the connections they serve have ended (the caller has closed or
    /// given up on them), and waits for their threads.
    pub async fn stop(self) {
        self.done.cancel();
        drop(self.queues);
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

/// A worker's life: run what it is handed until told to stop. Tasks still running then (none
/// after a graceful shutdown) are dropped with the runtime.
async fn run(
    mut jobs: mpsc::UnboundedReceiver<Job>,
    done: CancellationToken,
    beat: Option<WorkerBeat>,
) {
    // A thread stuck in one task stops ticking: the watchdog then stops being pinged.
    let mut tick = tokio::time::interval(crate::control::systemd::HEARTBEAT);
    loop {
        tokio::select! {
            job = jobs.recv() => match job {
                Some(job) => job(),
                None => break,
            },
            _ = tick.tick() => {
                if let Some(beat) = &beat {
                    beat.alive();
                }
            }
            _ = done.cancelled() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn jobs_run_in_turn_on_the_workers_own_runtimes() {
        let heartbeat = Heartbeat::default();
        let workers = Workers::start(Some(2), &heartbeat).unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let tx = Arc::new(tx);
        for _ in 0..4 {
            let tx = tx.clone();
            workers.hand(Box::new(move || {
                // Spawned onto the worker's runtime, so it runs on the worker's thread.
                tokio::spawn(async move {
                    let _ = tx.send(current());
                });
            }));
        }
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(rx.recv().await.unwrap());
        }
        seen.sort_unstable();
        assert_eq!(seen, vec![1, 1, 2, 2]);
        assert_eq!(current(), 0);
        let (stalest, age) = heartbeat.stalest_worker().unwrap();
        assert!(
            stalest <= 2 && age < std::time::Duration::from_secs(5),
            "{stalest} {age:?}"
        );
        workers.stop().await;
    }
}
