//! `login`'s countdown on stderr: how the time left is shown, on a terminal or in a log.

use crate::time;

/// The countdown on stderr: redrawn in place each second on a terminal; elsewhere (a log, a
/// pipe) one line about every 30 seconds.
#[derive(Debug)]
pub struct Countdown {
    label: String,
    terminal: bool,
    /// The seconds left when something was last written.
    last: Option<u64>,
    /// The width of the line on the terminal.
    width: usize,
}

/// How many seconds apart the lines of a countdown not on a terminal are.
pub const LINE_EVERY_SECS: u64 = 30;

impl Countdown {
    pub fn new(label: &str, terminal: bool) -> Countdown {
        Countdown {
            label: label.to_string(),
            terminal,
            last: None,
            width: 0,
        }
    }

    /// What to write with `remaining` seconds left, if anything.
    pub fn update(&mut self, remaining: u64) -> Option<String> {
        let line = format!("{} {} left", self.label, time::countdown(remaining));
        if self.terminal {
            if self.last == Some(remaining) {
                return None;
            }
            self.last = Some(remaining);
            let width = line.chars().count();
            let pad = " ".repeat(self.width.saturating_sub(width));
            self.width = width;
            Some(format!("\r{line}{pad}"))
        } else {
            match self.last {
                Some(last) if last.saturating_sub(remaining) < LINE_EVERY_SECS => None,
                _ => {
                    self.last = Some(remaining);
                    Some(format!("{line}\n"))
                }
            }
        }
    }

    /// What to write when the wait is over: on a terminal, the line is cleared.
    pub fn finish(&mut self) -> Option<String> {
        if self.terminal && self.width > 0 {
            let blank = " ".repeat(self.width);
            self.width = 0;
            Some(format!("\r{blank}\r"))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_countdown_redraws_in_place_on_a_terminal() {
        let mut c = Countdown::new("waiting for the browser login…", true);
        assert_eq!(
            c.update(600).unwrap(),
            "\rwaiting for the browser login… 10m 00s left"
        );
        assert_eq!(c.update(600), None, "nothing new to draw");
        assert_eq!(
            c.update(581).unwrap(),
            "\rwaiting for the browser login… 9m 41s left "
        );
        assert_eq!(
            c.update(59).unwrap(),
            "\rwaiting for the browser login… 59s left   "
        );
        let width = "waiting for the browser login… 59s left".chars().count();
        assert_eq!(c.finish().unwrap(), format!("\r{}\r", " ".repeat(width)));
        assert_eq!(c.finish(), None);
    }

    #[test]
    fn the_countdown_writes_a_line_every_30s_elsewhere() {
        let mut c = Countdown::new("waiting…", false);
        assert_eq!(c.update(600).unwrap(), "waiting… 10m 00s left\n");
        for remaining in (571..600).rev() {
            assert_eq!(c.update(remaining), None, "{remaining}");
        }
        assert_eq!(c.update(570).unwrap(), "waiting… 9m 30s left\n");
        assert_eq!(c.update(569), None);
        assert_eq!(c.update(0).unwrap(), "waiting… 0s left\n");
        assert_eq!(c.finish(), None);
    }
}
