//! Standard output buffered as C's stdio buffers it, which is what ostree's output is:
//! line by line on a terminal, in 4 KiB blocks into a pipe or a file, flushed at exit.
//!
//! Rust's stdout writes every line as it ends. Into a pipe whose reader is gone
//! (`ostree log REF | head -1`), the next line then kills the process with SIGPIPE (exit
//! 141), which fails a script under `set -o pipefail`; ostree, whose short output is still
//! in its buffer when `head` exits, and written in one go before it does, exits 0. The
//! crate's `print!`/`println!` (the macros in main.rs, which shadow std's) come here, as do
//! the commands that write to standard output directly ([`stdout`]). Long-running commands
//! (the agent, `serve`) write line by line, as they log ([`line_buffered`]).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

/// glibc's buffer for a pipe or a file (`st_blksize`, 4 KiB).
const BLOCK: usize = 4096;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Not yet decided (standard output is looked at on the first write).
    Unknown,
    /// A line at a time, straight to Rust's standard output.
    Lines,
    /// Blocks, held here.
    Blocks,
}

struct Out {
    mode: Mode,
    buf: Vec<u8>,
}

static OUT: Mutex<Out> = Mutex::new(Out {
    mode: Mode::Unknown,
    buf: Vec::new(),
});

fn lock() -> std::sync::MutexGuard<'static, Out> {
    OUT.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Out {
    fn mode(&mut self) -> Mode {
        if self.mode == Mode::Unknown {
            self.mode = if std::io::stdout().is_terminal() {
                Mode::Lines
            } else {
                Mode::Blocks
            };
        }
        self.mode
    }

    fn write(&mut self, data: &[u8]) {
        match self.mode() {
            // (A write error — a closed pipe with SIGPIPE ignored, a full disk — is ignored,
            // as printf's is: the exit code is the command's.)
            Mode::Lines | Mode::Unknown => {
                let _ = std::io::stdout().write_all(data);
            }
            Mode::Blocks => {
                self.buf.extend_from_slice(data);
                if self.buf.len() >= BLOCK {
                    self.flush();
                }
            }
        }
    }

    fn flush(&mut self) {
        if !self.buf.is_empty() {
            let mut so = std::io::stdout().lock();
            let _ = so.write_all(&self.buf);
            let _ = so.flush();
            self.buf.clear();
        }
    }
}

/// What `print!` and `println!` write.
pub fn print(args: std::fmt::Arguments<'_>) {
    let mut o = lock();
    match args.as_str() {
        Some(s) => o.write(s.as_bytes()),
        None => o.write(args.to_string().as_bytes()),
    }
}

/// What `println!` writes: the line and its end under one lock (threads do not split it).
pub fn println(args: std::fmt::Arguments<'_>) {
    let mut o = lock();
    let mut line = match args.as_str() {
        Some(s) => s.to_string(),
        None => args.to_string(),
    };
    line.push('\n');
    o.write(line.as_bytes());
}

/// Write out what is held (before exit, and before another program takes over standard
/// output).
pub fn flush() {
    lock().flush();
}

/// From now on a line at a time (a command that runs until stopped, and logs).
pub fn line_buffered() {
    let mut o = lock();
    o.flush();
    o.mode = Mode::Lines;
}

/// Standard output for commands that write to it directly (`cat`, `export`, `show`'s
/// listings): through the same buffer, so that nothing printed before comes after.
pub fn stdout() -> Stdout {
    Stdout
}

pub struct Stdout;

impl Write for Stdout {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        lock().write(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
