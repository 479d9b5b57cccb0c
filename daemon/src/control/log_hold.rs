//! Lines held on a proxy worker thread and written together when the thread goes idle.
//!
//! Every proxied request logs two lines at info (`proxied`, and `tool call finished` for a tool
//! call); written one `write(2)` each, they were a quarter of the worker's syscalls and about
//! 5 µs of system time per request under load (measured in BENCHMARKS.md). Held, they go out
//! in one write when the worker's runtime has nothing left to run (its park hook), which under
//! load gathers a dozen lines per write, and at light load is right after the answer went out.
//!
//! What is never held back: a warning or an error (it goes out at once, after what was held, in
//! order); anything logged off the proxy workers (the admin socket, refreshes, reloads, the
//! shutdown); and more than [`HOLD_MAX`] bytes. What a crash can lose: the lines of requests
//! answered since the worker last went idle, at most [`HOLD_MAX`] bytes per worker.

use std::cell::RefCell;

/// The most bytes held, and so the largest write (but for a single longer line): a pipe (the
/// journal's stream, a container runtime's) takes writes up to `PIPE_BUF` whole, so lines from
/// different threads never land inside each other.
pub const HOLD_MAX: usize = 4096;

/// Lines waiting to be written, in order.
#[derive(Debug, Default)]
pub struct Hold {
    buf: Vec<u8>,
}

impl Hold {
    /// Takes one line (ending with `\n`); `write` gets what must go out now: the lines held
    /// before when this one would not fit, this one at once if it is `urgent` (with those held
    /// before it) or longer than [`HOLD_MAX`] by itself.
    pub fn line(&mut self, line: &[u8], urgent: bool, mut write: impl FnMut(&[u8])) {
        if self.buf.len() + line.len() > HOLD_MAX {
            self.flush(&mut write);
        }
        if line.len() > HOLD_MAX {
            write(line);
            return;
        }
        self.buf.extend_from_slice(line);
        if urgent {
            self.flush(write);
        }
    }

    /// Writes what is held, if anything.
    pub fn flush(&mut self, mut write: impl FnMut(&[u8])) {
        if !self.buf.is_empty() {
            write(&self.buf);
            self.buf.clear();
        }
    }
}

/// This thread's held lines, when it holds them; written when the thread ends.
struct ThreadHold(Option<Hold>);

impl Drop for ThreadHold {
    fn drop(&mut self) {
        if let Some(hold) = &mut self.0 {
            hold.flush(super::log_line::write_stderr);
        }
    }
}

thread_local! {
    static HELD: RefCell<ThreadHold> = const { RefCell::new(ThreadHold(None)) };
}

/// From now on, this thread's stderr lines below warning are held until [`flush`] (a proxy
/// worker calls it as it starts, and [`flush`] from its runtime's park hook).
pub fn hold_on_this_thread() {
    HELD.with(|h| {
        h.borrow_mut().0.get_or_insert_with(Hold::default);
    });
}

/// Runs `f` on this thread's hold; `None` when the thread holds no lines (or its hold is in
/// use, or gone with the thread).
fn with_hold<R>(f: impl FnOnce(&mut Hold) -> R) -> Option<R> {
    HELD.try_with(|h| {
        let mut h = h.try_borrow_mut().ok()?;
        h.0.as_mut().map(f)
    })
    .ok()
    .flatten()
}

/// Writes this thread's held lines.
pub fn flush() {
    with_hold(|hold| hold.flush(super::log_line::write_stderr));
}

/// Hands `line` to this thread's hold; false when the thread does not hold lines (the caller
/// writes it itself).
pub fn offer(line: &[u8], urgent: bool) -> bool {
    with_hold(|hold| hold.line(line, urgent, super::log_line::write_stderr)).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: usize, fill: u8) -> Vec<u8> {
        let mut l = vec![fill; n - 1];
        l.push(b'\n');
        l
    }

    #[test]
    fn lines_wait_for_a_flush_and_come_out_in_order_in_one_write() {
        let mut hold = Hold::default();
        let mut writes: Vec<Vec<u8>> = Vec::new();
        hold.line(b"one\n", false, |w| writes.push(w.to_vec()));
        hold.line(b"two\n", false, |w| writes.push(w.to_vec()));
        assert!(writes.is_empty());
        hold.flush(|w| writes.push(w.to_vec()));
        assert_eq!(writes, vec![b"one\ntwo\n".to_vec()]);
        // Nothing held: nothing written.
        hold.flush(|w| writes.push(w.to_vec()));
        assert_eq!(writes.len(), 1);
    }

    #[test]
    fn an_urgent_line_goes_out_at_once_after_what_was_held() {
        let mut hold = Hold::default();
        let mut writes: Vec<Vec<u8>> = Vec::new();
        hold.line(b"info\n", false, |w| writes.push(w.to_vec()));
        hold.line(b"warn\n", true, |w| writes.push(w.to_vec()));
        assert_eq!(writes, vec![b"info\nwarn\n".to_vec()]);
        hold.flush(|w| writes.push(w.to_vec()));
        assert_eq!(writes.len(), 1);
    }

    #[test]
    fn no_write_is_over_the_cap_but_a_single_longer_line() {
        let mut hold = Hold::default();
        let mut writes: Vec<Vec<u8>> = Vec::new();
        let mut sent = Vec::new();
        for i in 0..100 {
            let l = line(200 + i, b'a' + (i % 26) as u8);
            sent.extend_from_slice(&l);
            hold.line(&l, false, |w| writes.push(w.to_vec()));
        }
        let long = line(HOLD_MAX + 10, b'L');
        sent.extend_from_slice(&long);
        hold.line(&long, false, |w| writes.push(w.to_vec()));
        hold.line(b"last\n", false, |w| writes.push(w.to_vec()));
        sent.extend_from_slice(b"last\n");
        hold.flush(|w| writes.push(w.to_vec()));
        assert!(writes.len() > 5, "{}", writes.len());
        for w in &writes {
            assert!(w.len() <= HOLD_MAX || w == &long, "{}", w.len());
            assert_eq!(w.last(), Some(&b'\n'), "writes end on a line's end");
        }
        assert_eq!(writes.concat(), sent, "every line once, in order");
    }

    #[test]
    fn a_thread_that_does_not_hold_writes_itself_and_one_that_does_holds() {
        std::thread::spawn(|| {
            assert!(!offer(b"direct\n", false));
            hold_on_this_thread();
            assert!(offer(b"held\n", false));
            HELD.with(|h| {
                let mut h = h.borrow_mut();
                let hold = h.0.as_mut().unwrap();
                assert_eq!(hold.buf, b"held\n");
                // Not to stderr at the thread's end.
                hold.buf.clear();
            });
        })
        .join()
        .unwrap();
    }
}
