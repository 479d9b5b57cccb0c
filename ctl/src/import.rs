//! `import-aliyun`: hands the login of Alibaba Cloud's `aliyun mcp-proxy` (its plaintext
//! `~/.aliyun/.mcpproxy_config`) to the daemon, then offers to delete the plaintext. The one
//! file this tool ever reads.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use mcpproxyd_api::{ImportAliyun, Imported};

use crate::client::{self, Client};
use crate::error::CtlError;
use crate::{exit, Env};

pub struct Args<'a> {
    pub profile: Option<&'a str>,
    pub file: Option<&'a Path>,
    pub delete: bool,
    pub json: bool,
}

/// `~/.aliyun/.mcpproxy_config`.
pub fn default_file(home: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    home.map(|h| Path::new(h).join(".aliyun").join(".mcpproxy_config"))
}

pub async fn import(
    client: &Client,
    args: Args<'_>,
    env: &Env,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, CtlError> {
    let path = match args
        .file
        .map(Path::to_path_buf)
        .or_else(|| default_file(env.home.as_deref()))
    {
        Some(p) => p,
        None => {
            return Err(CtlError::Input(
                "no --file given and $HOME is not set".into(),
            ))
        }
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| CtlError::Input(format!("cannot read {}: {e}", path.display())))?;
    let file: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        CtlError::Input(format!("{} is not JSON: line {}", path.display(), e.line()))
    })?;
    let request = ImportAliyun {
        profile: args.profile.map(str::to_string),
        file,
    };
    let body = client.post_json("/v1/import/aliyun", &request).await?;
    let imported: Imported = client::parse("POST /v1/import/aliyun", &body)?;
    if args.json {
        crate::output::print_json("POST /v1/import/aliyun", &body, out)?;
    } else {
        writeln!(
            out,
            "imported the aliyun mcp-proxy login (application {}) into profile `{}`",
            imported.app_id, imported.profile
        )
        .map_err(CtlError::output)?;
    }
    let delete = args.delete || (env.stdin_is_terminal && ask(&path, input, err)?);
    if delete {
        std::fs::remove_file(&path)
            .map_err(|e| CtlError::Input(format!("cannot delete {}: {e}", path.display())))?;
        writeln!(err, "deleted {}", path.display()).map_err(CtlError::output)?;
    } else {
        writeln!(
            err,
            "the tokens are also still in plaintext in {}: delete it (`rm {}`) once the proxy works",
            path.display(),
            path.display()
        )
        .map_err(CtlError::output)?;
    }
    Ok(exit::OK)
}

fn ask(path: &Path, input: &mut dyn BufRead, err: &mut dyn Write) -> Result<bool, CtlError> {
    write!(
        err,
        "delete the plaintext file {} now? [y/N] ",
        path.display()
    )
    .map_err(CtlError::output)?;
    err.flush().map_err(CtlError::output)?;
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| CtlError::io("cannot read the answer", e))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES"))
}
