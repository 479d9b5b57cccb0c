//! What the commands write for the user: a JSON answer printed pretty, and text flushed as it
//! is written (a prompt or a countdown must show before the wait).

use std::io::Write;

use serde_json::Value;

use crate::client;
use crate::error::CtlError;

/// Prints a JSON answer pretty; an answer that isn't JSON is the daemon's error.
pub(crate) fn print_json(what: &str, body: &[u8], out: &mut dyn Write) -> Result<(), CtlError> {
    let value: Value = client::parse(what, body)?;
    let text = serde_json::to_string_pretty(&value)
        .map_err(|e| CtlError::io("cannot format JSON", e.into()))?;
    emit(out, &format!("{text}\n"))
}

/// Writes `text` and flushes it.
pub(crate) fn emit(out: &mut dyn Write, text: &str) -> Result<(), CtlError> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(CtlError::output)
}
