//! `serve`: the repository over HTTP, for pulls.

use super::Global;
use anyhow::Result;
use clap::Args;
use std::time::Duration;

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
    /// Connections served at once; more wait until one ends.
    #[arg(long, default_value_t = 512)]
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers (also how long an idle
    /// keep-alive connection is kept).
    #[arg(long, default_value_t = 30)]
    pub header_timeout: u64,
    /// Seconds after which a connection on which nothing moves is closed.
    #[arg(long, default_value_t = 60)]
    pub idle_timeout: u64,
}

pub fn run(g: &Global, a: ServeArgs) -> Result<()> {
    super::ignore_sigpipe();
    let path = g.repo_path();
    oxtree::serve::serve(
        &path,
        &oxtree::serve::ServeOptions {
            bind: a.bind,
            port: a.port,
            log: !a.quiet,
            max_connections: a.max_connections,
            header_timeout: Duration::from_secs(a.header_timeout),
            idle_timeout: Duration::from_secs(a.idle_timeout),
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
