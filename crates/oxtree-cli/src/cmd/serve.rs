//! `serve`: the repository over HTTP, for pulls.

use super::Global;
use anyhow::Result;
use clap::Args;

/// Serve a repository over HTTP for pulls (a static file server).
#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Port to listen on (0 picks a free one and prints it).
    #[arg(long, short = 'p', default_value_t = 8080)]
    pub port: u16,
    /// Do not print an access-log line per request.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(g: &Global, a: ServeArgs) -> Result<()> {
    let ServeArgs { bind, port, quiet } = a;
    let path = g.repo_path();
    oxtree::serve::serve(
        &path,
        &oxtree::serve::ServeOptions {
            bind,
            port,
            log: !quiet,
        },
        |addr| {
            eprintln!(
                "serving {} on http://{addr}/ (Ctrl-C stops)",
                path.display()
            );
        },
    )?;
    Ok(())
}
