//! Progress on stderr while long work runs: a status line rewritten in place on a TTY, a
//! plain line every 5 s otherwise. The library only counts (`oxtree::progress`).

use crate::output::human_size;

/// Draw `line(elapsed)` on stderr until `done`: rewritten in place on a TTY, a plain line
/// every 5 s otherwise; `None` draws nothing (yet).
pub fn status_loop(
    done: &std::sync::atomic::AtomicBool,
    tty: bool,
    line: impl Fn(std::time::Duration) -> Option<String>,
) {
    let start = std::time::Instant::now();
    let mut last_plain = start;
    let mut shown = false;
    while !done.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let Some(line) = line(start.elapsed()) else {
            continue;
        };
        if tty {
            eprint!("\r\x1b[K{line}");
            shown = true;
        } else if last_plain.elapsed().as_secs() >= 5 {
            eprintln!("{line}");
            last_plain = std::time::Instant::now();
        }
    }
    if shown {
        eprint!("\r\x1b[K");
    }
}

/// Pull progress: objects, bytes and rate.
pub fn progress_loop(p: &oxtree::pull::PullProgress, tty: bool) {
    use std::sync::atomic::Ordering::Relaxed;
    status_loop(&p.done, tty, |el| {
        let (f, q, b) = (
            p.objects_fetched.load(Relaxed),
            p.objects_queued.load(Relaxed),
            p.bytes_fetched.load(Relaxed),
        );
        let rate = (b as f64 / el.as_secs_f64().max(0.001)) as u64;
        Some(format!(
            "receiving objects: {f}/{q}  {}  {}/s",
            human_size(b),
            human_size(rate)
        ))
    });
}

/// Run `f` while a status line shows `p` (nothing for operations that end within a second).
pub fn with_progress<T>(
    label: &str,
    p: &oxtree::progress::Progress,
    show: bool,
    f: impl FnOnce() -> T,
) -> T {
    use std::sync::atomic::Ordering::Relaxed;
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    std::thread::scope(|s| {
        if show {
            s.spawn(|| {
                status_loop(&p.finished, tty, |el| {
                    if el.as_secs() < 1 {
                        return None;
                    }
                    let (d, t, b) = (
                        p.done.load(Relaxed),
                        p.total.load(Relaxed),
                        p.bytes.load(Relaxed),
                    );
                    let mut line = format!("{label}: {d}/{t}");
                    if b > 0 {
                        line.push_str(&format!("  {}", human_size(b)));
                    }
                    Some(line)
                })
            });
        }
        let r = f();
        p.finish();
        r
    })
}
