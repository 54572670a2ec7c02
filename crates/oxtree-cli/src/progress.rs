//! Progress on stderr while long work runs. On a terminal, an indicatif bar (with a rate and
//! an ETA once the total is known); otherwise a plain line every 5 s, which logs and CI
//! output can keep. The library only counts (`oxtree::progress`, `PullProgress`).

use crate::output::human_size;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// A snapshot of the counters: items done, items known, bytes.
struct Counts {
    done: u64,
    total: u64,
    bytes: u64,
}

/// Draw `counts()` under `label` until `finished`; nothing for work that ends within a
/// second.
fn draw(label: &str, finished: &AtomicBool, counts: impl Fn() -> Counts) {
    draw_every(label, finished, None, counts)
}

/// [`draw`], updating the bar (and printing the plain line) every `every` when given
/// (`pull --update-frequency`), else every 100 ms (plain lines every 5 s).
fn draw_every(
    label: &str,
    finished: &AtomicBool,
    every: Option<Duration>,
    counts: impl Fn() -> Counts,
) {
    let start = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {prefix} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(label.to_string());
    let mut last_plain = start;
    let mut last_draw = start;
    let mut shown = false;
    let tick = every
        .unwrap_or(Duration::from_millis(100))
        .min(Duration::from_millis(100));
    let mut last_tty = start;
    // The caller joins this thread when the work is done and wakes it then (`unpark`): a
    // sleep between looks at `finished` added half of it on average to every command
    // (50 ms at 100 ms, a third of a hardlink checkout; 2.5 ms at 5 ms, and 200 wake-ups a
    // second on two cores). It draws every `tick`.
    while !finished.load(Relaxed) {
        std::thread::park_timeout(tick);
        if start.elapsed() < Duration::from_secs(1) || last_draw.elapsed() < tick {
            continue;
        }
        last_draw = Instant::now();
        let c = counts();
        if tty && every.is_some_and(|e| last_tty.elapsed() < e) {
            continue;
        }
        if tty {
            last_tty = Instant::now();
            bar.set_length(c.total.max(c.done));
            bar.set_position(c.done);
            bar.set_prefix(human_size(c.bytes));
            shown = true;
        } else if last_plain.elapsed() >= every.unwrap_or(Duration::from_secs(5)) {
            let rate = c.bytes as f64 / start.elapsed().as_secs_f64().max(0.001);
            eprintln!(
                "{label}: {}/{}  {}  {}/s",
                c.done,
                c.total,
                human_size(c.bytes),
                human_size(rate as u64)
            );
            last_plain = Instant::now();
        }
    }
    if shown {
        bar.finish_and_clear();
    }
}

/// Pull progress: objects fetched of those found so far, bytes and rate.
pub fn progress_loop(p: &oxtree::pull::PullProgress, every: Option<Duration>) {
    draw_every("receiving objects", &p.done, every, || Counts {
        done: p.objects_fetched.load(Relaxed),
        total: p.objects_queued.load(Relaxed),
        bytes: p.bytes_fetched.load(Relaxed),
    });
}

/// Run `f` while a progress bar shows `p`.
pub fn with_progress<T>(
    label: &str,
    p: &oxtree::progress::Progress,
    show: bool,
    f: impl FnOnce() -> T,
) -> T {
    std::thread::scope(|s| {
        let drawer = show.then(|| {
            s.spawn(|| {
                draw(label, &p.finished, || Counts {
                    done: p.done.load(Relaxed),
                    total: p.total.load(Relaxed),
                    bytes: p.bytes.load(Relaxed),
                })
            })
        });
        let r = f();
        p.finish();
        if let Some(d) = drawer {
            d.thread().unpark();
        }
        r
    })
}
