//! The `oxtree` command: a thin CLI over the `oxtree` library, spelled like `ostree` so that
//! scripts written for ostree run unchanged.
//!
//! Exit codes are ostree's: 0 success, 1 any failure (usage errors included; fsck finding
//! problems too), so a script that tests `$? -eq 1` behaves the same. With
//! `OXTREE_DETAILED_EXIT_CODES=1` in the environment oxtree tells failures apart: 2 usage
//! error; 3 a ref or object that was asked for does not exist (also a ref the remote's
//! summary does not list); 4 verification failed: a signature, a commit binding, the
//! timestamp (downgrade) check, a static delta that does not match its signed commit, or an
//! update graph.

// stdout buffered as ostree's (C stdio's) is: see out.rs. These shadow std's macros in every
// module below.
mod out;
macro_rules! print {
    ($($arg:tt)*) => { $crate::out::print(format_args!($($arg)*)) };
}
macro_rules! println {
    () => { $crate::out::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::out::println(format_args!($($arg)*)) };
}

mod cmd;
mod gvtext;
mod output;
mod progress;
mod timefmt;

use clap::{Parser, Subcommand};
use cmd::{Exit, Global};
use std::path::{Path, PathBuf};

const EXIT_FAILURE: i32 = 1;
const EXIT_USAGE: i32 = 2;
const EXIT_NOT_FOUND: i32 = 3;
const EXIT_VERIFICATION: i32 = 4;

/// The exit code for a failure of this kind: ostree's 1, unless the user asked for detailed
/// codes with `OXTREE_DETAILED_EXIT_CODES=1`.
fn failure_code(detailed: i32) -> i32 {
    let on =
        std::env::var_os("OXTREE_DETAILED_EXIT_CODES").is_some_and(|v| !v.is_empty() && v != "0");
    if on {
        detailed
    } else {
        EXIT_FAILURE
    }
}

#[derive(Parser)]
#[command(
    name = "oxtree",
    about = "Content-addressed OS trees, compatible with OSTree repositories",
    long_about = "oxtree stores operating-system trees in an OSTree-compatible repository: commit a \
                  directory, check it out by hardlinks, verify and prune. Commands and options are \
                  spelled as in ostree(1).",
    disable_version_flag = true,
    // As GLib's option parser does: a repeated option takes its last value (wrappers put
    // defaults before the caller's own options); list options still accumulate.
    args_override_self = true
)]
struct Cli {
    /// Print version information and the feature list (in ostree's format).
    #[arg(long)]
    version: bool,
    /// Path to the repository (default: the current directory if it is a repo, $OSTREE_REPO,
    /// else /ostree/repo).
    #[arg(long, global = true, value_name = "PATH")]
    repo: Option<PathBuf>,
    /// Print debug information during command processing.
    #[arg(short = 'v', long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a new, empty repository.
    Init(cmd::repo::InitArgs),
    /// Commit a directory (or a tar archive) as a new revision.
    Commit(Box<cmd::commit::CommitArgs>),
    /// Read and change the repository configuration: get KEY | set KEY VALUE | unset KEY.
    Config(cmd::config::ConfigArgs),
    /// Write a commit as a tar archive.
    Export(cmd::export::ExportArgs),
    /// Check out a commit into a directory.
    Checkout(cmd::checkout::CheckoutArgs),
    /// Print the object checksum of a file or directory on disk.
    Checksum(cmd::checksum::ChecksumArgs),
    /// List refs, or create and delete them.
    Refs(cmd::refs::RefsArgs),
    /// Print the commit checksum a ref or revision resolves to.
    RevParse(cmd::refs::RevParseArgs),
    /// Show the history of a ref.
    Log(cmd::show::LogArgs),
    /// Show a commit.
    Show(cmd::show::ShowArgs),
    /// List the files in a commit.
    Ls(cmd::show::LsArgs),
    /// Print the contents of a file in a commit.
    Cat(cmd::show::CatArgs),
    /// Compare two commits: A added, D deleted, M modified.
    Diff(cmd::show::DiffArgs),
    /// Verify every object, ref and reference between objects.
    Fsck(cmd::repo::FsckArgs),
    /// Delete unreachable objects.
    Prune(cmd::repo::PruneArgs),
    /// Manage remote repositories (add, list, delete, show-url, refs, summary).
    Remote {
        #[command(subcommand)]
        cmd: cmd::remote::RemoteCmd,
    },
    /// Download commits from a remote over HTTP: `pull REMOTE[:REF] [REF…]`.
    Pull(cmd::pull::PullArgs),
    /// Copy commits from another local repository.
    PullLocal(cmd::pull::PullLocalArgs),
    /// Reset a REF to a previous COMMIT.
    Reset(cmd::reset::ResetArgs),
    /// Static deltas: generate and list (clients pulling use them by themselves).
    StaticDelta {
        #[command(subcommand)]
        cmd: cmd::static_delta::StaticDeltaCmd,
    },
    /// Regenerate (-u) or show (--view) the repository summary.
    Summary(cmd::summary::SummaryArgs),
    /// Copy the refs to a USB stick: MOUNT-PATH COLLECTION-ID REF [COLLECTION-ID REF…].
    CreateUsb(cmd::p2p::CreateUsbArgs),
    /// Find remotes (mounted filesystems, configured remotes) to serve the given refs.
    FindRemotes(cmd::p2p::FindRemotesArgs),
    /// Serve a repository over HTTP for pulls (a static file server).
    Serve(cmd::serve::ServeArgs),
    /// Sign a commit with ed25519 keys, or verify its signatures (--verify).
    Sign(cmd::sign::SignArgs),
    /// Add OpenPGP signatures to a commit: `gpg-sign COMMIT KEY-ID…`.
    GpgSign(cmd::sign::GpgSignArgs),
    /// Manage bootable deployments: deploy, upgrade, rollback, status, …
    Admin(cmd::admin::AdminArgs),
    /// The update agent: runs it; status, check-now, reboot-now, hold, skip, unblock.
    Agent(cmd::agent::AgentArgs),
    /// FleetLock reboot coordination: `serve` (semaphores in etcd), lock, unlock, status.
    Fleetlock {
        #[command(subcommand)]
        cmd: cmd::fleetlock::FleetlockCmd,
    },
    /// Write, edit and sign a static update graph (read by `oxtree agent`).
    Graph {
        #[command(subcommand)]
        cmd: cmd::graph::GraphCmd,
    },
    /// Bootable disk images: `image build` (GPT, ESP with systemd-boot, ext4 sysroot).
    Image {
        #[command(subcommand)]
        cmd: cmd::image::ImageCmd,
    },
    /// Man pages and shell completions (for packaging).
    #[command(hide = true)]
    Generate(cmd::generate::GenerateArgs),
    /// ostree's test HTTP server, run as `ostree trivial-httpd` runs it: the
    /// `ostree-trivial-httpd` of ostree's tests (Debian: ostree-tests), with these arguments.
    /// ostree's own test suite starts its server this way.
    #[command(hide = true, disable_help_flag = true)]
    TrivialHttpd {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

/// Where ostree 2022.7 (its `PKGLIBEXECDIR`) finds its test HTTP server.
const TRIVIAL_HTTPD: &str = "/usr/libexec/libostree/ostree-trivial-httpd";

/// `trivial-httpd ARGS…`: replace this process by ostree's test server, as ostree does
/// (`execvp`); an error only when it cannot be run.
fn trivial_httpd(args: &[std::ffi::OsString]) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    out::flush();
    let e = std::process::Command::new(TRIVIAL_HTTPD).args(args).exec();
    Err(cmd::Hinted {
        msg: format!("execvp({TRIVIAL_HTTPD}): {}", io_message(&e)),
        hint: "it comes with ostree's tests (Debian: apt-get install ostree-tests); `oxtree serve` serves a repository without it".into(),
    }
    .into())
}

/// An I/O error as C's strerror says it (no " (os error N)").
fn io_message(e: &std::io::Error) -> String {
    let s = e.to_string();
    s.split(" (os error").next().unwrap_or(&s).to_string()
}

/// Exit with `code`, standard output written out first.
fn exit(code: i32) -> ! {
    out::flush();
    std::process::exit(code)
}

fn main() {
    // Like ostree (and every C program), die quietly of SIGPIPE when the reader goes away
    // (`oxtree refs | head`); Rust ignores it by default and println! would then panic.
    // SAFETY: called first thing in main, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // The work runs where deep directory trees have room: a thread and a rayon pool with
    // large stacks (address space, touched only when a tree is that deep; see
    // oxtree::stack, which turns what is deeper still into an error).
    oxtree::stack::use_big_rayon_stacks();
    let worker = std::thread::Builder::new()
        .name("oxtree".into())
        .stack_size(oxtree::stack::BIG_STACK)
        .spawn(real_main);
    match worker.map(|w| w.join()) {
        Ok(Ok(())) => {}
        Ok(Err(_)) => exit(101), // a panic, already reported
        Err(_) => real_main(),   // no thread to be had: here, then
    }
}

fn real_main() {
    #[cfg(feature = "failpoints")]
    if let Err(e) = configure_failpoints() {
        eprintln!("error: {e:#}");
        exit(EXIT_FAILURE);
    }
    let argv0 = std::env::args_os().next().map(PathBuf::from);
    let personality = argv0.as_deref().and_then(Path::file_name);
    // Installed as ostree's `ostree-remount` (run by the stock ostree-remount.service).
    if personality.is_some_and(|n| n == "ostree-remount") {
        let code = match oxtree::sysroot::remount::setup_var() {
            Ok(Some(v)) => {
                println!("Mounted {} on /var", v.display());
                0
            }
            Ok(None) => 0,
            Err(e) => {
                eprintln!("ostree-remount (oxtree): error: {}", error_chain(&e.into()));
                EXIT_FAILURE
            }
        };
        exit(code);
    }
    // Installed as `ostree-prepare-root` in an initramfs, behave as that program does.
    if personality.is_some_and(|n| n == "ostree-prepare-root") {
        let sysroot = std::env::args_os()
            .nth(1)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/sysroot"));
        let code = match cmd::admin::prepare_root(sysroot, None, PathBuf::from("/run")) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("ostree-prepare-root (oxtree): error: {}", error_chain(&e));
                EXIT_FAILURE
            }
        };
        exit(code);
    }
    // `--version` after a command (`ostree refs --version`) prints the version too: GLib's
    // option parser takes it before anything else is checked. (oxtree's own `graph`
    // commands have a --version option of their own.)
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let graph = argv
        .iter()
        .find(|a| !a.as_encoded_bytes().starts_with(b"-"))
        .is_some_and(|a| a == "graph");
    if !graph
        && argv
            .iter()
            .take_while(|a| *a != "--")
            .any(|a| a == "--version")
    {
        print_version();
        exit(0);
    }
    let argv = ostree_argv(std::env::args_os().collect());
    let parsed = parse_cli(&argv).or_else(|e| {
        if e.use_stderr() {
            flags_given_values(&argv).ok_or(e)
        } else {
            Err(e)
        }
    });
    let cli = match parsed {
        Ok(cli) => cli,
        // --help (exit 0) and usage errors (exit 1, as ostree; 2 with detailed codes).
        Err(e) => {
            if !e.use_stderr() {
                let _ = e.print();
                exit(0);
            }
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                    | clap::error::ErrorKind::MissingSubcommand
            ) {
                // ostree: its usage on stderr, then which subcommand is missing.
                let (path, mut group) = command_path(&argv);
                eprintln!("{}", group.render_help());
                let parent = (!path.is_empty()).then(|| path.join(" "));
                eprintln!("error: {}", no_subcommand(parent.as_deref()));
                exit(failure_code(EXIT_USAGE));
            }
            // An unknown command NAME runs `ostree-NAME` from PATH with the arguments after
            // it, as ostree's extension commands (`ostree-rs-ext`, `ostree env` …).
            if e.kind() == clap::error::ErrorKind::InvalidSubcommand {
                run_extension();
                // ostree: the usage of the command it was looked for in, then the error.
                let (path, mut group) = command_path(&argv);
                eprintln!("{}", group.render_help());
                let bad = match e.get(clap::error::ContextKind::InvalidSubcommand) {
                    Some(clap::error::ContextValue::String(s)) => s.clone(),
                    _ => String::new(),
                };
                if path.is_empty() {
                    eprintln!("error: Unknown command '{bad}'");
                } else {
                    eprintln!("error: Unknown \"{}\" subcommand '{bad}'", path.join(" "));
                }
                exit(failure_code(EXIT_USAGE));
            }
            match ostree_usage_error(&e) {
                Some(line) => {
                    eprintln!("error: {line}");
                    eprintln!("hint: see `oxtree --help` or `oxtree COMMAND --help`");
                }
                None => {
                    let _ = e.print();
                }
            }
            exit(failure_code(EXIT_USAGE));
        }
    };
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            if let Some(Exit(code)) = e.downcast_ref::<Exit>() {
                exit(if *code == 0 { 0 } else { failure_code(*code) });
            }
            eprintln!("error: {}", error_chain(&e));
            let lib = e.downcast_ref::<oxtree::Error>();
            if let Some(h) = lib.and_then(oxtree::Error::hint) {
                eprintln!("hint: {h}");
            }
            if let Some(h) = e.downcast_ref::<cmd::Hinted>() {
                eprintln!("hint: {}", h.hint);
            }
            failure_code(if lib.is_some_and(oxtree::Error::is_not_found) {
                EXIT_NOT_FOUND
            } else if lib.is_some_and(oxtree::Error::is_verification) {
                EXIT_VERIFICATION
            } else {
                EXIT_FAILURE
            })
        }
    };
    exit(code);
}

/// The ostree release oxtree is a drop-in for.
const OSTREE_COMPAT_VERSION: &str = "2022.7";

/// `--version` in ostree's format. Scripts test the feature list (`ostree --version | grep
/// -q gpgme`), so it names, under ostree's feature names, only what oxtree really has:
/// HTTP(S) pulls (`libcurl`), OpenPGP verification and signing (`gpgme`), ed25519 signatures
/// (`sign-ed25519`), tar commit/export (`libarchive`), the systemd units (`systemd`),
/// collection IDs with `create-usb` and `find-remotes` (`p2p`).
///
/// The first key is ostree's, `libostree:`, with the ostree release whose command line and
/// formats oxtree follows (the oracle its tests run against): scripts read the first
/// `Version:` to decide what the installed ostree can do. oxtree's own version follows under
/// its own key.
fn print_version() {
    println!("libostree:");
    println!(" Version: '{OSTREE_COMPAT_VERSION}'");
    println!(" Features:");
    for f in [
        "libcurl",
        "gpgme",
        "sign-ed25519",
        "libarchive",
        "systemd",
        "release",
        "p2p",
    ] {
        println!("  - {f}");
    }
    println!("oxtree:");
    println!(" Version: '{}'", env!("CARGO_PKG_VERSION"));
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    if cli.version {
        print_version();
        return Ok(0);
    }
    let Some(c) = cli.cmd else {
        // As ostree: the usage on stderr, and an error line.
        eprintln!("{}", cli_command().render_help());
        eprintln!("error: {}", no_subcommand(None));
        return Ok(failure_code(EXIT_USAGE));
    };
    // `summary` keeps -v for --view, as ostree; its --verbose is its own flag.
    let verbose = cli.verbose || matches!(&c, Cmd::Summary(a) if a.verbose);
    if verbose {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(std::io::stderr)
            .with_target(false)
            .without_time()
            .init();
    }
    let g = &Global {
        repo: cli.repo,
        sysroot: None,
        esp: None,
    };
    match c {
        Cmd::Init(a) => cmd::repo::init(g, a),
        Cmd::Commit(a) => cmd::commit::run(g, *a),
        Cmd::Config(a) => cmd::config::run(g, a),
        Cmd::Export(a) => cmd::export::run(g, a),
        Cmd::Checkout(a) => cmd::checkout::run(g, a),
        Cmd::Checksum(a) => cmd::checksum::run(g, a),
        Cmd::Refs(a) => cmd::refs::refs(g, a),
        Cmd::RevParse(a) => cmd::refs::rev_parse(g, a),
        Cmd::Log(a) => cmd::show::log(g, a),
        Cmd::Show(a) => cmd::show::show(g, a),
        Cmd::Ls(a) => cmd::show::ls(g, a),
        Cmd::Cat(a) => cmd::show::cat(g, a),
        Cmd::Diff(a) => cmd::show::diff(g, a),
        Cmd::Fsck(a) => cmd::repo::fsck(g, a),
        Cmd::Prune(a) => cmd::repo::prune(g, a),
        Cmd::Remote { cmd } => cmd::remote::run(g, cmd),
        Cmd::Pull(a) => cmd::pull::pull(g, a),
        Cmd::PullLocal(a) => cmd::pull::pull_local(g, a),
        Cmd::Reset(a) => cmd::reset::run(g, a),
        Cmd::StaticDelta { cmd } => cmd::static_delta::run(g, cmd),
        Cmd::Summary(a) => cmd::summary::run(g, a),
        Cmd::CreateUsb(a) => cmd::p2p::create_usb(g, a),
        Cmd::FindRemotes(a) => cmd::p2p::find_remotes(g, a),
        Cmd::Serve(a) => cmd::serve::run(g, a),
        Cmd::Sign(a) => cmd::sign::sign(g, a),
        Cmd::GpgSign(a) => cmd::sign::gpg_sign_cmd(g, a),
        Cmd::Admin(a) => cmd::admin::run(g, a),
        Cmd::Agent(a) => cmd::agent::run(a),
        Cmd::Fleetlock { cmd } => cmd::fleetlock::run(cmd),
        Cmd::Graph { cmd } => cmd::graph::run(g, cmd),
        Cmd::Image { cmd } => cmd::image::run(g, cmd),
        Cmd::Generate(a) => cmd::generate::run(a, cli_command()),
        Cmd::TrivialHttpd { args } => trivial_httpd(&args),
    }?;
    Ok(0)
}

/// Test builds (feature `failpoints`) only: configure the library's failpoints from
/// `FAILPOINTS` (`NAME=ACTIONS;...`, the `fail` crate's syntax, as zincati reads it). The
/// shipped binary has no such code and ignores the variable.
#[cfg(feature = "failpoints")]
fn configure_failpoints() -> anyhow::Result<()> {
    use anyhow::anyhow;
    let Ok(spec) = std::env::var("FAILPOINTS") else {
        return Ok(());
    };
    for item in spec.split(';').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, actions) = item
            .split_once('=')
            .ok_or_else(|| anyhow!("FAILPOINTS: {item:?} is not NAME=ACTIONS"))?;
        fail::cfg(name, actions).map_err(|e| anyhow!("FAILPOINTS: {name}: {e}"))?;
    }
    Ok(())
}

/// An error with its causes, without repeating a cause that a message already quotes.
fn error_chain(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}

/// ostree finds its command (and an `admin`/`remote`/… subcommand) as the first argument
/// that is not an option, and reads every option wherever it stands: `ostree --repo=R --list
/// refs`, `ostree --sysroot=S admin status`, `ostree admin --os=X --sysroot=S config-diff`.
/// clap reads a command's options only after the command's name: the options written before
/// the last command word are moved after it. (`--repo PATH`/`--sysroot PATH`, with the value
/// apart, which ostree refuses there, keep working.)
fn ostree_argv(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let opt = |a: &std::ffi::OsString| {
        let a = a.to_string_lossy();
        a.starts_with('-') && a.len() > 1
    };
    // The usual order (`CMD [SUB] OPTIONS…`) needs nothing: no command tree is built.
    if args.get(1).is_none_or(|a| !opt(a)) && args.get(2).is_none_or(|a| !opt(a)) {
        return args;
    }
    let root = cli_command();
    let words: Vec<usize> = command_words(&root, &args)
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    let Some(&last) = words.last() else {
        return args;
    };
    let mut out = vec![args[0].clone()];
    let mut moved = Vec::new();
    for (j, a) in args.iter().enumerate().take(last + 1).skip(1) {
        if words.contains(&j) {
            out.push(a.clone());
        } else {
            moved.push(a.clone());
        }
    }
    out.extend(moved);
    out.extend(args[last + 1..].iter().cloned());
    out
}

/// The first argument that is not an option: the command named on the command line.
fn first_positional() -> Option<String> {
    std::env::args().skip(1).find(|a| !a.starts_with('-'))
}

/// GLib takes `--FLAG=VALUE` for an option without a value, and sets it whatever VALUE
/// says (`pull-local --gpg-verify=true`); clap refuses it. When the command line parses with
/// one such `=VALUE` left out, that is the command.
fn flags_given_values(argv: &[std::ffi::OsString]) -> Option<Cli> {
    let mut a = argv.to_vec();
    for i in 1..a.len() {
        if a[i] == "--" {
            break;
        }
        let Some(name) = a[i]
            .to_str()
            .and_then(|s| s.strip_prefix("--"))
            .and_then(|s| s.split_once('='))
            .map(|(n, _)| n.to_string())
        else {
            continue;
        };
        let saved = std::mem::replace(&mut a[i], format!("--{name}").into());
        if let Ok(cli) = parse_cli(&a) {
            return Some(cli);
        }
        a[i] = saved;
    }
    None
}

/// If the first word is not an option and `ostree-WORD` is an executable in PATH, replace
/// this process with it (argv[0] `ostree-WORD`, then the arguments after WORD), as ostree
/// runs its extension commands. Returns only when there is none (or it cannot be run).
fn run_extension() {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let Some(i) = args.iter().position(|a| !a.as_bytes().starts_with(b"-")) else {
        return;
    };
    let name = args[i].to_string_lossy();
    if name.is_empty() || name.contains('/') {
        return;
    }
    let prog = format!("ostree-{name}");
    let Some(path) = std::env::var_os("PATH") else {
        return;
    };
    let Some(found) = std::env::split_paths(&path)
        .map(|d| d.join(&prog))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| {
                m.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
            })
        })
    else {
        return;
    };
    out::flush();
    let err = std::process::Command::new(found)
        .arg0(&prog)
        .args(&args[i + 1..])
        .exec();
    eprintln!("error: running {prog}: {err}");
    exit(EXIT_FAILURE);
}

/// ostree's words when no (sub)command is given: `admin` and `remote` name themselves.
fn no_subcommand(parent: Option<&str>) -> String {
    match parent {
        // (ostree's own wording for this one)
        Some("static-delta") | None => "No command specified".to_string(),
        Some(p) => format!("No \"{p}\" subcommand specified"),
    }
}

/// The command tree, shaped as ostree's help is (GLib's option parser): a command with
/// subcommands lists them under `Builtin Commands:` (`Builtin "admin" Commands:` below the
/// top), which scripts and ostree's own test-help read to find the commands; no `help`
/// pseudo-command. The program is named as it was run (`ostree` when installed as that).
fn cli_command() -> clap::Command {
    use clap::CommandFactory;
    fn shape(c: clap::Command, path: &str) -> clap::Command {
        // (A command that also runs without a subcommand, as `oxtree agent`, keeps clap's
        // plain `Commands:`: it is not one of ostree's command groups.)
        if !c.has_subcommands() || !(path.is_empty() || c.is_subcommand_required_set()) {
            return c;
        }
        let heading = if path.is_empty() {
            "Builtin Commands".to_string()
        } else {
            format!("Builtin \"{path}\" Commands")
        };
        let names: Vec<String> = c
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .collect();
        let mut c = c
            .subcommand_help_heading(heading)
            .disable_help_subcommand(true);
        for n in names {
            let sub = if path.is_empty() {
                n.clone()
            } else {
                format!("{path} {n}")
            };
            c = c.mut_subcommand(&n, |s| shape(s, &sub));
        }
        c
    }
    let mut c = shape(Cli::command(), "");
    // Read by a script (a pipe, a file), help is not wrapped: one line per command in the
    // `Builtin Commands:` lists, as GLib prints them. A terminal gets it wrapped to fit.
    {
        use std::io::IsTerminal;
        if !std::io::stdout().is_terminal() && !std::io::stderr().is_terminal() {
            c = c.term_width(10_000);
        }
    }
    if let Some(name) = std::env::args_os()
        .next()
        .as_deref()
        .map(Path::new)
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
    {
        c = c.bin_name(name.to_string()).name(name.to_string());
    }
    c
}

/// Parse a command line with [`cli_command`].
fn parse_cli(argv: &[std::ffi::OsString]) -> Result<Cli, clap::Error> {
    use clap::FromArgMatches;
    let mut c = cli_command();
    let mut m = c.try_get_matches_from_mut(argv)?;
    Cli::from_arg_matches_mut(&mut m).map_err(|e| e.format(&mut c))
}

/// The commands named on a command line that failed to parse (`admin instutil` of `ostree
/// admin instutil bogus`), and the innermost of them, whose usage ostree prints.
fn command_path(argv: &[std::ffi::OsString]) -> (Vec<String>, clap::Command) {
    let mut root = cli_command();
    root.build();
    let groups: Vec<(usize, &clap::Command)> = command_words(&root, argv)
        .into_iter()
        .take_while(|(_, c)| c.has_subcommands())
        .collect();
    let path = groups
        .iter()
        .map(|(i, _)| argv[*i].to_string_lossy().into_owned())
        .collect();
    let cmd = groups
        .last()
        .map_or_else(|| root.clone(), |(_, c)| (*c).clone());
    (path, cmd)
}

/// The command words of a command line, as ostree finds them (options anywhere, the value
/// of a separate `--repo PATH`/`--sysroot PATH` skipped): each word's index in `args` and
/// the (sub)command it names, from the top down, up to the first word that names none.
fn command_words<'a>(
    root: &'a clap::Command,
    args: &[std::ffi::OsString],
) -> Vec<(usize, &'a clap::Command)> {
    let mut cmd = root;
    let mut words = Vec::new();
    let mut i = 1;
    while i < args.len() {
        let a = args[i].to_string_lossy();
        if a == "--" {
            break;
        }
        if a.starts_with('-') && a.len() > 1 {
            if matches!(a.as_ref(), "--repo" | "--sysroot") {
                i += 1;
            }
            i += 1;
            continue;
        }
        match cmd.find_subcommand(a.as_ref()) {
            Some(sub) => {
                words.push((i, sub));
                cmd = sub;
                i += 1;
            }
            None => break,
        }
    }
    words
}

/// GLib's wording for the usage errors scripts meet most (ostree's option parser), where
/// clap's differs: an unknown option or command, an option without its value.
fn ostree_usage_error(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let ctx = |k: ContextKind| match e.get(k) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    // "--name <VALUE>" or "--name=<VALUE>" -> "--name"
    let option = |s: String| s.split([' ', '=']).next().map(str::to_string).unwrap_or(s);
    match e.kind() {
        ErrorKind::UnknownArgument => {
            let arg = ctx(ContextKind::InvalidArg)?;
            if arg.starts_with('-') {
                Some(format!("Unknown option {arg}"))
            } else {
                None
            }
        }
        // A missing positional argument, in ostree's words for the commands scripts run.
        ErrorKind::MissingRequiredArgument => match first_positional().as_deref()? {
            "log" => Some("A rev argument is required".into()),
            "ls" => Some("An COMMIT argument is required".into()),
            "cat" => Some("A COMMIT and at least one PATH argument are required".into()),
            "pull" => Some("REMOTE must be specified".into()),
            "pull-local" => Some("DESTINATION must be specified".into()),
            "checksum" => Some("A filename must be given".into()),
            _ => None,
        },
        ErrorKind::InvalidValue if ctx(ContextKind::InvalidValue).is_some_and(|v| v.is_empty()) => {
            Some(format!(
                "Missing argument for {}",
                option(ctx(ContextKind::InvalidArg)?)
            ))
        }
        ErrorKind::ValueValidation
            if std::error::Error::source(e)
                .is_some_and(|s| s.downcast_ref::<std::num::ParseIntError>().is_some()) =>
        {
            Some(format!(
                "Cannot parse integer value \u{201c}{}\u{201d} for {}",
                ctx(ContextKind::InvalidValue)?,
                option(ctx(ContextKind::InvalidArg)?)
            ))
        }
        _ => None,
    }
}
