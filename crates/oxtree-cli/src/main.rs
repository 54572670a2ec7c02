//! The `oxtree` command: a thin CLI over the `oxtree` library, spelled like `ostree` so that
//! scripts written for ostree run unchanged.
//!
//! Exit codes: 0 success; 1 failure (including fsck finding problems); 2 usage error;
//! 3 a ref or object that was asked for does not exist; 4 signature verification failed.

mod gvtext;
mod timefmt;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use oxtree::object::{Checksum, ObjectType};
use oxtree::repo::{
    CheckoutOptions, CommitOptions, FsckOptions, PathEntry, PruneOptions, PullLocalOptions,
    RefName, StatOverride,
};
use oxtree::{Repo, RepoMode};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

const EXIT_FAILURE: i32 = 1;
const EXIT_NOT_FOUND: i32 = 3;
const EXIT_VERIFICATION: i32 = 4;

#[derive(Parser)]
#[command(
    name = "oxtree",
    about = "Content-addressed OS trees, compatible with OSTree repositories",
    long_about = "oxtree stores operating-system trees in an OSTree-compatible repository: commit a \
                  directory, check it out by hardlinks, verify and prune. Commands and options are \
                  spelled as in ostree(1).",
    disable_version_flag = true
)]
struct Cli {
    /// Print version information and the feature list (in ostree's format).
    #[arg(long)]
    version: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Args, Clone)]
struct RepoArg {
    /// Path to the repository (default: $OSTREE_REPO, the current directory if it is a repo,
    /// else /sysroot/ostree/repo).
    #[arg(long, value_name = "PATH")]
    repo: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a new, empty repository.
    Init {
        #[command(flatten)]
        repo: RepoArg,
        /// Repository mode: bare, bare-user, bare-user-only or archive (archive-z2).
        #[arg(long, default_value = "bare")]
        mode: String,
    },
    /// Commit a directory (or a tar archive) as a new revision.
    Commit(Box<CommitArgs>),
    /// Check out a commit into a directory.
    Checkout {
        #[command(flatten)]
        repo: RepoArg,
        /// User mode: do not change file ownership or set xattrs.
        #[arg(short = 'U', long = "user-mode")]
        user_mode: bool,
        /// Keep existing directories and overwrite existing files.
        #[arg(long)]
        union: bool,
        /// Check out only this path of the commit.
        #[arg(long, value_name = "PATH")]
        subpath: Option<String>,
        /// Fail rather than copy when a file cannot be hardlinked.
        #[arg(long)]
        require_hardlinks: bool,
        /// Copy files instead of hardlinking them.
        #[arg(short = 'C', long)]
        force_copy: bool,
        /// Ref or commit checksum.
        commit: String,
        /// Destination directory (default: the commit argument's name).
        destination: Option<PathBuf>,
    },
    /// List refs, or create and delete them.
    Refs {
        #[command(flatten)]
        repo: RepoArg,
        /// Delete the given refs.
        #[arg(long)]
        delete: bool,
        /// Create a ref NAME pointing at the commit given as the argument.
        #[arg(long, value_name = "NAME")]
        create: Option<String>,
        /// Show the checksum beside each ref.
        #[arg(long)]
        list: bool,
        /// Refs (with --delete), a prefix to filter by, or the commit (with --create).
        args: Vec<String>,
    },
    /// Print the commit checksum a ref or revision resolves to.
    RevParse {
        #[command(flatten)]
        repo: RepoArg,
        rev: String,
    },
    /// Show the history of a ref.
    Log {
        #[command(flatten)]
        repo: RepoArg,
        /// Also show each commit's OpenPGP signatures, checked with this remote's keys.
        #[arg(long, value_name = "REMOTE")]
        gpg_verify_remote: Option<String>,
        rev: String,
    },
    /// Show a commit.
    Show {
        #[command(flatten)]
        repo: RepoArg,
        /// Print only the value of this commit metadata key.
        #[arg(long, value_name = "KEY")]
        print_metadata_key: Option<String>,
        /// Verify the commit's OpenPGP signatures with this remote's keys and print them.
        #[arg(long, value_name = "REMOTE")]
        gpg_verify_remote: Option<String>,
        rev: String,
    },
    /// List the files in a commit.
    Ls {
        #[command(flatten)]
        repo: RepoArg,
        /// Recurse into directories.
        #[arg(short = 'R', long)]
        recursive: bool,
        /// Only list the directory itself, not its contents.
        #[arg(short = 'd', long)]
        dironly: bool,
        /// Print object checksums.
        #[arg(short = 'C', long)]
        checksum: bool,
        rev: String,
        paths: Vec<String>,
    },
    /// Print the contents of a file in a commit.
    Cat {
        #[command(flatten)]
        repo: RepoArg,
        rev: String,
        paths: Vec<String>,
    },
    /// Compare two commits: A added, D deleted, M modified.
    Diff {
        #[command(flatten)]
        repo: RepoArg,
        rev1: String,
        rev2: String,
    },
    /// Verify every object, ref and reference between objects.
    Fsck {
        #[command(flatten)]
        repo: RepoArg,
        /// Remove corrupt objects.
        #[arg(long)]
        delete: bool,
        /// Only print errors.
        #[arg(short, long)]
        quiet: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete unreachable objects.
    Prune {
        #[command(flatten)]
        repo: RepoArg,
        /// Only keep what refs reach (by default every commit is kept).
        #[arg(long)]
        refs_only: bool,
        /// History depth to keep from each ref (-1 = all).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        depth: i64,
        /// Keep commits newer than DATE (e.g. "2020-01-01" or "7 days ago"); implies --refs-only.
        #[arg(long, value_name = "DATE")]
        keep_younger_than: Option<String>,
        /// Only report what would be deleted.
        #[arg(long)]
        no_prune: bool,
    },
    /// Manage remote repositories (add, list, delete, show-url, refs, summary).
    Remote {
        #[command(subcommand)]
        cmd: RemoteCmd,
    },
    /// Download commits from a remote over HTTP: `pull REMOTE[:REF] [REF…]`.
    Pull(PullArgs),
    /// Static deltas: generate and list (clients pulling use them by themselves).
    StaticDelta {
        #[command(subcommand)]
        cmd: StaticDeltaCmd,
    },
    /// Regenerate (-u) or show (--view) the repository summary.
    Summary {
        #[command(flatten)]
        repo: RepoArg,
        /// Regenerate the summary file.
        #[arg(short = 'u', long)]
        update: bool,
        /// Print the summary.
        #[arg(long)]
        view: bool,
        /// Sign the summary with this base64 ed25519 secret key (writes summary.sig).
        #[arg(long, value_name = "KEY")]
        sign: Vec<String>,
        /// Signature type for --sign (only ed25519).
        #[arg(long, default_value = "ed25519")]
        sign_type: String,
    },
    /// Serve a repository over HTTP for pulls (a static file server).
    Serve {
        #[command(flatten)]
        repo: RepoArg,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
        /// Port to listen on (0 picks a free one and prints it).
        #[arg(long, short = 'p', default_value_t = 8080)]
        port: u16,
        /// Do not print an access-log line per request.
        #[arg(long)]
        quiet: bool,
    },
    /// Sign a commit with ed25519 keys, or verify its signatures (--verify).
    Sign {
        #[command(flatten)]
        repo: RepoArg,
        /// Verify instead of sign: KEYs are base64 public keys.
        #[arg(long)]
        verify: bool,
        /// Signature type (only ed25519).
        #[arg(short = 's', long, default_value = "ed25519")]
        sign_type: String,
        /// Read keys (base64, one per line) from FILE.
        #[arg(long, value_name = "FILE")]
        keys_file: Option<PathBuf>,
        /// Revoked public keys (base64, one per line) never accepted by --verify.
        #[arg(long, value_name = "FILE")]
        revoked_file: Option<PathBuf>,
        commit: String,
        /// Base64 keys: secret keys (64 bytes) to sign, public keys (32 bytes) to verify.
        keys: Vec<String>,
    },
    /// Add OpenPGP signatures to a commit: `gpg-sign COMMIT KEY-ID…`.
    GpgSign {
        #[command(flatten)]
        repo: RepoArg,
        /// GnuPG home directory holding the keys.
        #[arg(long, value_name = "HOMEDIR")]
        gpg_homedir: Option<PathBuf>,
        /// Read secret keys from this file (armored or binary) instead of GnuPG.
        #[arg(long, value_name = "FILE")]
        gpg_key_file: Option<PathBuf>,
        commit: String,
        #[arg(required = true)]
        key_ids: Vec<String>,
    },
    /// Manage bootable deployments (init-fs, os-init, status; deploy comes next).
    Admin {
        #[command(subcommand)]
        cmd: AdminCmd,
    },
    /// Copy commits from another local repository.
    PullLocal {
        #[command(flatten)]
        repo: RepoArg,
        /// Write refs as refs/remotes/REMOTE/… instead of refs/heads/….
        #[arg(long)]
        remote: Option<String>,
        /// History depth to copy (-1 = all).
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        depth: i64,
        src_repo: PathBuf,
        refs: Vec<String>,
    },
}

#[derive(Subcommand)]
enum StaticDeltaCmd {
    /// Write the delta from --from (or, with --empty, from nothing) to --to into deltas/;
    /// then run `summary -u` so clients find it.
    Generate {
        #[command(flatten)]
        repo: RepoArg,
        /// Start commit (REV); default: the parent of --to.
        #[arg(long, value_name = "REV")]
        from: Option<String>,
        /// A scratch delta: everything --to needs.
        #[arg(long, conflicts_with = "from")]
        empty: bool,
        /// Target commit (REV).
        #[arg(long, value_name = "REV")]
        to: String,
        /// Regular files above this many MiB are left out, fetched as plain objects.
        #[arg(long, value_name = "MB", default_value_t = 4)]
        min_fallback_size: u64,
        /// A new part starts after this many MiB.
        #[arg(long, value_name = "MB", default_value_t = 32)]
        max_chunk_size: u64,
        /// Files replacing one at the same path are sent as bsdiff patches up to this many
        /// MiB (0: never; costs ~9× the old file's size in memory).
        #[arg(long, value_name = "MB", default_value_t = 32)]
        max_bsdiff_size: u64,
    },
    /// List the static deltas: FROM-TO, or TO for scratch deltas.
    List {
        #[command(flatten)]
        repo: RepoArg,
    },
}

#[derive(Subcommand)]
enum RemoteCmd {
    /// Add a remote: NAME URL [BRANCH…].
    Add {
        #[command(flatten)]
        repo: RepoArg,
        /// Do not verify GPG signatures (needed until oxtree verifies signatures).
        #[arg(long)]
        no_gpg_verify: bool,
        /// Do nothing if the remote exists.
        #[arg(long)]
        if_not_exists: bool,
        /// Set a config option KEY=VALUE for the remote.
        #[arg(long, value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Import OpenPGP public keys from FILE into the remote's keyring.
        #[arg(long, value_name = "FILE")]
        gpg_import: Option<PathBuf>,
        name: String,
        url: String,
        branches: Vec<String>,
    },
    /// Delete a remote.
    Delete {
        #[command(flatten)]
        repo: RepoArg,
        /// Do nothing if the remote does not exist.
        #[arg(long)]
        if_exists: bool,
        name: String,
    },
    /// List remotes.
    List {
        #[command(flatten)]
        repo: RepoArg,
        /// Show URLs too.
        #[arg(short = 'u', long = "show-urls")]
        show_urls: bool,
    },
    /// Import OpenPGP public keys (binary or armored) into a remote's keyring.
    GpgImport {
        #[command(flatten)]
        repo: RepoArg,
        /// Key file to import (repeatable).
        #[arg(short = 'k', long = "keyring", value_name = "FILE", required = true)]
        keyring: Vec<PathBuf>,
        name: String,
    },
    /// Print a remote's URL.
    ShowUrl {
        #[command(flatten)]
        repo: RepoArg,
        name: String,
    },
    /// List the refs a remote's summary offers.
    Refs {
        #[command(flatten)]
        repo: RepoArg,
        name: String,
    },
    /// Show a remote's summary.
    Summary {
        #[command(flatten)]
        repo: RepoArg,
        name: String,
    },
}

#[derive(Args, Clone)]
struct SysrootArg {
    /// Path to the physical root (default /).
    #[arg(long, value_name = "PATH", default_value = "/")]
    sysroot: PathBuf,
}

#[derive(Subcommand)]
enum AdminCmd {
    /// Create the top-level layout of a new physical root in DIR.
    InitFs { dir: PathBuf },
    /// Create a stateroot (an OS name with its own /var).
    #[command(alias = "stateroot-init")]
    OsInit {
        #[command(flatten)]
        sysroot: SysrootArg,
        stateroot: String,
    },
    /// Deploy a ref or commit of the system repo as the new default (checkout by hardlinks,
    /// /etc merge, kernel copy, Boot Loader Spec entries, atomic switch).
    Deploy {
        #[command(flatten)]
        sysroot: SysrootArg,
        /// Stateroot to deploy into.
        #[arg(long)]
        os: Option<String>,
        /// Kernel arguments, replacing the inherited ones (repeatable).
        #[arg(long, value_name = "KEY=VALUE")]
        karg: Vec<String>,
        /// Kernel arguments appended to the inherited ones (repeatable).
        #[arg(long, value_name = "KEY=VALUE")]
        karg_append: Vec<String>,
        /// Use the running kernel's command line (/proc/cmdline) as the kernel arguments.
        #[arg(long)]
        karg_proc_cmdline: bool,
        /// Keep every existing deployment.
        #[arg(long)]
        retain: bool,
        /// Also keep the rollback deployment (the one after the booted one).
        #[arg(long)]
        retain_rollback: bool,
        /// Prepare now; switch at shutdown (`admin finalize-staged`, run by the finalize service).
        #[arg(long)]
        stage: bool,
        /// REF or CHECKSUM.
        refspec: String,
    },
    /// Make the rollback (previous) deployment the default.
    Rollback {
        #[command(flatten)]
        sysroot: SysrootArg,
        /// Only if the default deployment ran out of boot tries (run early at boot): then
        /// the newest deployment that did not fail becomes the default.
        #[arg(long)]
        if_failed: bool,
    },
    /// Boot counting: run the health checks, and if all pass mark the booted deployment
    /// good (its entry stops counting down). A failing check leaves it unconfirmed, exits 1,
    /// and the bootloader falls back once its tries run out.
    BootComplete {
        #[command(flatten)]
        sysroot: SysrootArg,
        /// The deployment to mark, when not running on the sysroot (tests, image builds).
        #[arg(long)]
        index: Option<usize>,
        /// Directory of health checks: executables run in name order; any failing one
        /// means the boot is not good.
        #[arg(long, value_name = "DIR", default_value = "/etc/oxtree/health.d")]
        health_dir: PathBuf,
        /// Mark good without running the health checks.
        #[arg(long)]
        skip_health_checks: bool,
    },
    /// Early boot (systemd unit): make sure /var is the stateroot's (bind-mounted when the
    /// root switcher left that to the booted system, as ostree's does).
    Remount {},
    /// Remove the deployment at INDEX (as listed by status, from 0).
    Undeploy {
        #[command(flatten)]
        sysroot: SysrootArg,
        index: usize,
    },
    /// Pin the deployment at INDEX so it is never removed automatically (--unpin undoes).
    Pin {
        #[command(flatten)]
        sysroot: SysrootArg,
        #[arg(long)]
        unpin: bool,
        index: usize,
    },
    /// Pull the default deployment's origin and deploy it if it changed.
    Upgrade {
        #[command(flatten)]
        sysroot: SysrootArg,
        /// Only pull; do not deploy.
        #[arg(long)]
        pull_only: bool,
        /// Only deploy what was already pulled.
        #[arg(long)]
        deploy_only: bool,
        /// Accept a commit older than the deployed one.
        #[arg(long)]
        allow_downgrade: bool,
        /// Prepare the new deployment now; switch to it at shutdown (the finalize service),
        /// with the /etc merge done then, so edits made until the reboot are kept.
        #[arg(long)]
        stage: bool,
        /// Also keep the rollback deployment (the one after the booted one).
        #[arg(long)]
        retain_rollback: bool,
        /// Reboot into the new deployment when done.
        #[arg(long, short = 'r')]
        reboot: bool,
    },
    /// Deploy another ref (REMOTE:REF is pulled first); later upgrades follow it.
    Switch {
        #[command(flatten)]
        sysroot: SysrootArg,
        /// Reboot into it when done.
        #[arg(long, short = 'r')]
        reboot: bool,
        refspec: String,
    },
    /// Edit the default deployment's kernel arguments.
    Kargs {
        #[command(subcommand)]
        cmd: KargsCmd,
    },
    /// Early boot (initramfs): make the deployment named by `ostree=` the new root at
    /// --sysroot (also run as `ostree-prepare-root SYSROOT`).
    PrepareRoot {
        /// Where the physical root is mounted.
        #[arg(long, default_value = "/sysroot")]
        sysroot: PathBuf,
        /// Kernel command line to read instead of /proc/cmdline.
        #[arg(long)]
        cmdline: Option<String>,
        /// Directory for the ostree-booted marker.
        #[arg(long, default_value = "/run")]
        run_dir: PathBuf,
    },
    /// Switch to the staged deployment (run at shutdown by the finalize service).
    FinalizeStaged {
        #[command(flatten)]
        sysroot: SysrootArg,
        /// Only wait until stopped (ostree's ostree-finalize-staged-hold.service runs this
        /// to keep /boot busy until the finalize is done).
        #[arg(long)]
        hold: bool,
    },
    /// Remove deployments and boot files no longer in the boot configuration.
    Cleanup {
        #[command(flatten)]
        sysroot: SysrootArg,
    },
    /// List deployments: the default first, with their version and origin.
    Status {
        #[command(flatten)]
        sysroot: SysrootArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum KargsCmd {
    /// Change the kernel arguments of the default deployment (written as a new boot config).
    EditInPlace {
        #[command(flatten)]
        sysroot: SysrootArg,
        /// Append KEY=VALUE.
        #[arg(long, value_name = "KEY=VALUE")]
        append: Vec<String>,
        /// Delete KEY or KEY=VALUE.
        #[arg(long, value_name = "KEY[=VALUE]")]
        delete: Vec<String>,
        /// Replace the value of KEY.
        #[arg(long, value_name = "KEY=VALUE")]
        replace: Vec<String>,
    },
}

#[derive(Args)]
struct PullArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Parent commits to fetch too (-1 = all history).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    depth: i64,
    /// Fetch only the commit objects (history), not their trees.
    #[arg(long)]
    commit_metadata_only: bool,
    /// Write refs/heads/REF instead of refs/remotes/REMOTE/REF.
    #[arg(long)]
    mirror: bool,
    /// Only resolve refs and show what would change.
    #[arg(long)]
    dry_run: bool,
    /// Fetch objects one by one even where the server has a static delta (by default a
    /// listed delta is used: a few requests instead of one per changed file).
    #[arg(long)]
    disable_static_deltas: bool,
    /// Only this subpath of the tree (not supported yet).
    #[arg(long)]
    subpath: Option<String>,
    /// Concurrent requests.
    #[arg(long, default_value_t = 32)]
    fetchers: usize,
    /// Seconds without progress before a request is retried.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// Refuse commits older than the ref's current commit.
    #[arg(long, short = 'T')]
    timestamp_check: bool,
    /// With --timestamp-check: accept an older commit anyway.
    #[arg(long)]
    allow_downgrade: bool,
    /// REMOTE or REMOTE:REF.
    remote: String,
    refs: Vec<String>,
}

#[derive(Args)]
struct CommitArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Branch (ref) to point at the new commit.
    #[arg(short = 'b', long)]
    branch: Option<String>,
    /// One-line subject.
    #[arg(short = 's', long)]
    subject: Option<String>,
    /// Full description.
    #[arg(short = 'm', long)]
    body: Option<String>,
    /// Read the description from FILE.
    #[arg(short = 'F', long, value_name = "FILE")]
    body_file: Option<PathBuf>,
    /// Parent commit checksum, or "none".
    #[arg(long)]
    parent: Option<String>,
    /// Create a commit without writing a ref.
    #[arg(long)]
    orphan: bool,
    /// Do not add the ostree.ref-binding metadata.
    #[arg(long)]
    no_bindings: bool,
    /// Add a ref to the ref binding.
    #[arg(long, value_name = "BRANCH")]
    bind_ref: Vec<String>,
    /// dir=PATH or tar=TARFILE: the tree to commit.
    #[arg(long, value_name = "dir=PATH|tar=FILE")]
    tree: Vec<String>,
    /// Add a KEY=VALUE string to the commit metadata.
    #[arg(long, value_name = "KEY=VALUE")]
    add_metadata_string: Vec<String>,
    /// Add KEY=VALUE metadata, VALUE in GVariant text format (e.g. true, 42, 'str', uint64 7).
    #[arg(long, value_name = "KEY=VALUE")]
    add_metadata: Vec<String>,
    /// Set every file's uid.
    #[arg(long)]
    owner_uid: Option<u32>,
    /// Set every file's gid.
    #[arg(long)]
    owner_gid: Option<u32>,
    /// Canonical permissions (uid/gid 0, modes masked to 0755, no xattrs), as bare-user-only.
    #[arg(long)]
    canonical_permissions: bool,
    /// Do not import extended attributes.
    #[arg(long)]
    no_xattrs: bool,
    /// File of paths (one per line, from the tree root) to leave out.
    #[arg(long, value_name = "PATH")]
    skip_list: Option<PathBuf>,
    /// File of mode changes: lines `+MODE /path` (add bits) or `=MODE /path` (set), MODE in decimal.
    #[arg(long, value_name = "PATH")]
    statoverride: Option<PathBuf>,
    /// Commit timestamp (ISO 8601, e.g. 2020-01-01T00:00:00Z), instead of now.
    #[arg(long)]
    timestamp: Option<String>,
    /// fsync policy: true or false.
    #[arg(long, value_name = "POLICY")]
    fsync: Option<String>,
    /// Add ostree.sizes metadata.
    #[arg(long)]
    generate_sizes: bool,
    /// Print KEY: VALUE lines instead of just the checksum.
    #[arg(long)]
    table_output: bool,
    /// Sign the commit with this base64 ed25519 secret key (repeatable).
    #[arg(long, value_name = "KEY")]
    sign: Vec<String>,
    /// Signature type for --sign (only ed25519).
    #[arg(long, default_value = "ed25519")]
    sign_type: String,
    /// Sign the commit with this OpenPGP key (fingerprint or key id; repeatable).
    #[arg(long, value_name = "KEY-ID")]
    gpg_sign: Vec<String>,
    /// GnuPG home directory holding the --gpg-sign keys (exported with gpg).
    #[arg(long, value_name = "HOMEDIR")]
    gpg_homedir: Option<PathBuf>,
    /// Read --gpg-sign secret keys from this file (armored or binary) instead of GnuPG.
    #[arg(long, value_name = "FILE")]
    gpg_key_file: Option<PathBuf>,
    /// Directory to commit (instead of --tree=dir=).
    path: Option<PathBuf>,
}

fn main() {
    #[cfg(feature = "failpoints")]
    if let Err(e) = configure_failpoints() {
        eprintln!("error: {e:#}");
        std::process::exit(EXIT_FAILURE);
    }
    // Installed as `ostree-prepare-root` in an initramfs, behave as that program does.
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
        std::process::exit(code);
    }
    if personality.is_some_and(|n| n == "ostree-prepare-root") {
        let sysroot = std::env::args_os()
            .nth(1)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/sysroot"));
        let code = match prepare_root(sysroot, None, PathBuf::from("/run")) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("ostree-prepare-root (oxtree): error: {}", error_chain(&e));
                EXIT_FAILURE
            }
        };
        std::process::exit(code);
    }
    let cli = Cli::parse_from(hoist_global_options(std::env::args_os().collect()));
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            let lib = e.downcast_ref::<oxtree::Error>();
            if let Some(h) = lib.and_then(oxtree::Error::hint) {
                eprintln!("hint: {h}");
            }
            if lib.is_some_and(oxtree::Error::is_not_found) {
                EXIT_NOT_FOUND
            } else if lib.is_some_and(oxtree::Error::is_verification) {
                EXIT_VERIFICATION
            } else {
                EXIT_FAILURE
            }
        }
    };
    std::process::exit(code);
}

fn print_version() {
    println!("oxtree:");
    println!(" Version: '{}'", env!("CARGO_PKG_VERSION"));
    println!(" Features:");
    for f in ["libarchive", "release"] {
        println!("  - {f}");
    }
}

fn repo_path(r: &RepoArg) -> PathBuf {
    if let Some(p) = &r.repo {
        return p.clone();
    }
    if let Some(p) = std::env::var_os("OSTREE_REPO") {
        return PathBuf::from(p);
    }
    if Path::new("objects").is_dir() && Path::new("config").is_file() {
        return PathBuf::from(".");
    }
    PathBuf::from("/sysroot/ostree/repo")
}

fn cmd_static_delta(cmd: StaticDeltaCmd) -> Result<()> {
    match cmd {
        StaticDeltaCmd::Generate {
            repo,
            from,
            empty,
            to,
            min_fallback_size,
            max_chunk_size,
            max_bsdiff_size,
        } => {
            let repo = open(&repo)?;
            let to = repo.resolve_rev(&to)?;
            let from = match (from, empty) {
                (_, true) => None,
                (Some(f), false) => Some(repo.resolve_rev(&f)?),
                (None, false) => Some(repo.load_commit(&to)?.parent.ok_or_else(|| {
                    anyhow::anyhow!("{to} has no parent: give --from=REV, or --empty")
                })?),
            };
            let r = repo.generate_static_delta(
                from.as_ref(),
                &to,
                &oxtree::repo::DeltaOptions {
                    max_chunk_size: max_chunk_size.max(1) << 20,
                    min_fallback_size: min_fallback_size << 20,
                    max_bsdiff_size: max_bsdiff_size << 20,
                },
            )?;
            println!(
                "Generated static delta {}: {} objects ({} as bsdiff patches) in {} part(s), {} ({} uncompressed), {} fallback(s)",
                r.name,
                r.objects,
                r.patched,
                r.parts,
                human_size(r.size),
                human_size(r.uncompressed_size),
                r.fallbacks
            );
            println!("Run `oxtree summary -u` so clients find it.");
        }
        StaticDeltaCmd::List { repo } => {
            for (f, t) in open(&repo)?.list_static_deltas()? {
                println!("{}", oxtree::delta::delta_name(f.as_ref(), &t));
            }
        }
    }
    Ok(())
}

fn open(r: &RepoArg) -> Result<Repo> {
    Ok(Repo::open(&repo_path(r))?)
}

fn run(cli: Cli) -> Result<i32> {
    if cli.version {
        print_version();
        return Ok(0);
    }
    let Some(cmd) = cli.cmd else {
        use clap::CommandFactory;
        Cli::command().print_help()?;
        return Ok(2);
    };
    match cmd {
        Cmd::Init { repo, mode } => {
            let m = RepoMode::parse(&mode).ok_or_else(|| {
                anyhow!("invalid mode {mode:?}: use bare, bare-user, bare-user-only or archive")
            })?;
            Repo::create(&repo_path(&repo), m)?;
        }
        Cmd::Commit(a) => cmd_commit(*a)?,
        Cmd::Checkout {
            repo,
            user_mode,
            union,
            subpath,
            require_hardlinks,
            force_copy,
            commit,
            destination,
        } => {
            let repo = open(&repo)?;
            let c = repo.resolve_rev(&commit)?;
            let dest = destination.unwrap_or_else(|| PathBuf::from(&commit));
            let progress = std::sync::Arc::new(oxtree::progress::Progress::default());
            let opts = CheckoutOptions {
                user_mode,
                union,
                subpath,
                require_hardlinks,
                force_copy,
                progress: Some(progress.clone()),
            };
            with_progress("checking out", &progress, true, || {
                repo.checkout(&c, &dest, &opts)
            })?;
        }
        Cmd::Refs {
            repo,
            delete,
            create,
            list,
            args,
        } => {
            let repo = open(&repo)?;
            if let Some(name) = create {
                let [target] = args.as_slice() else {
                    bail!("--create=NAME needs exactly one commit argument")
                };
                let c = repo.resolve_rev(target)?;
                let r = RefName::parse(&name)?;
                if repo.read_ref(&r)?.is_some() {
                    bail!("ref {name} already exists; delete it first with `oxtree refs --delete {name}`");
                }
                repo.set_ref(&r, Some(&c))?;
            } else if delete {
                if args.is_empty() {
                    bail!("--delete needs the refs to delete");
                }
                for a in &args {
                    repo.set_ref(&RefName::parse(a)?, None)?;
                }
            } else {
                let prefix = args.first().map(String::as_str).unwrap_or("");
                for (r, c) in repo.list_refs()? {
                    let name = r.to_string();
                    if name.starts_with(prefix) {
                        if list {
                            println!("{name} {c}");
                        } else {
                            println!("{name}");
                        }
                    }
                }
            }
        }
        Cmd::RevParse { repo, rev } => println!("{}", open(&repo)?.resolve_rev(&rev)?),
        Cmd::Log {
            repo,
            gpg_verify_remote,
            rev,
        } => {
            let repo = open(&repo)?;
            let mut cur = Some(repo.resolve_rev(&rev)?);
            while let Some(c) = cur {
                match repo.load_commit(&c) {
                    Ok(cm) => {
                        print_commit(&c, &cm);
                        if let Some(remote) = &gpg_verify_remote {
                            print_gpg_report(&repo, &c, remote)?;
                            println!();
                        }
                        cur = cm.parent;
                    }
                    Err(oxtree::Error::ObjectMissing { .. }) => {
                        println!("<< History beyond this commit not fetched >>");
                        break;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Cmd::Show {
            repo,
            print_metadata_key,
            gpg_verify_remote,
            rev,
        } => {
            let repo = open(&repo)?;
            let c = repo.resolve_rev(&rev)?;
            let cm = repo.load_commit(&c)?;
            if let Some(k) = print_metadata_key {
                let v = cm
                    .meta(&k)
                    .ok_or_else(|| anyhow!("no such metadata key {k:?} in commit {c}"))?;
                println!("{}", gvtext::print(v));
            } else {
                print_commit(&c, &cm);
                if let Some(remote) = gpg_verify_remote {
                    if !print_gpg_report(&repo, &c, &remote)? {
                        return Err(oxtree::Error::Signature {
                            commit: c,
                            msg: "no good OpenPGP signature".into(),
                        }
                        .into());
                    }
                }
            }
        }
        Cmd::Ls {
            repo,
            recursive,
            dironly,
            checksum,
            rev,
            paths,
        } => {
            let repo = open(&repo)?;
            let c = repo.resolve_rev(&rev)?;
            let paths = if paths.is_empty() {
                vec!["/".to_string()]
            } else {
                paths
            };
            for p in paths {
                cmd_ls(&repo, &c, &p, recursive, dironly, checksum)?;
            }
        }
        Cmd::Cat { repo, rev, paths } => {
            let repo = open(&repo)?;
            let c = repo.resolve_rev(&rev)?;
            let mut out = std::io::stdout().lock();
            for p in paths {
                let (ty, csum, _) = lookup_path(&repo, &c, &p)?;
                if ty != ObjectType::File {
                    bail!("{p}: is a directory");
                }
                let mut fc = repo.read_file(&csum)?;
                std::io::copy(&mut fc.payload, &mut out).with_context(|| format!("reading {p}"))?;
            }
            out.flush()?;
        }
        Cmd::Diff { repo, rev1, rev2 } => {
            let repo = open(&repo)?;
            let a = repo.load_commit(&repo.resolve_rev(&rev1)?)?;
            let b = repo.load_commit(&repo.resolve_rev(&rev2)?)?;
            let mut out = Vec::new();
            diff_dirs(
                &repo,
                Some((a.root_tree, a.root_meta)),
                Some((b.root_tree, b.root_meta)),
                "",
                &mut out,
            )?;
            for (k, p) in out {
                println!("{k}    {p}");
            }
        }
        Cmd::Fsck {
            repo,
            delete,
            quiet,
            json,
        } => {
            let repo = open(&repo)?;
            if !quiet && !json {
                println!("Validating refs...");
                println!("Enumerating objects...");
            }
            let progress = std::sync::Arc::new(oxtree::progress::Progress::default());
            let show = !quiet && !json;
            let rep = with_progress("verifying objects", &progress, show, || {
                repo.fsck(&FsckOptions {
                    delete,
                    progress: Some(progress.clone()),
                })
            })?;
            if json {
                let errs: Vec<String> = rep.errors.iter().map(|e| json_str(e)).collect();
                println!(
                    "{{\"objects\":{},\"commits\":{},\"partial_commits\":{},\"ok\":{},\"errors\":[{}]}}",
                    rep.objects_checked,
                    rep.commits,
                    rep.partial_commits,
                    rep.ok(),
                    errs.join(",")
                );
            } else {
                for e in &rep.errors {
                    eprintln!("error: {e}");
                }
                for (ty, c) in &rep.deleted {
                    eprintln!("deleted corrupt object {c}.{ty}");
                }
                if !quiet {
                    if rep.partial_commits > 0 {
                        println!("{} partial commits not verified", rep.partial_commits);
                    }
                    if rep.ok() {
                        println!(
                            "object fsck of {} commits completed successfully - no errors found.",
                            rep.commits
                        );
                    }
                }
            }
            if !rep.ok() {
                if !json {
                    eprintln!("error: fsck found {} problem(s)", rep.errors.len());
                    eprintln!("hint: `oxtree fsck --delete` removes corrupt objects; pull or commit again to restore them");
                }
                return Ok(EXIT_FAILURE);
            }
        }
        Cmd::Prune {
            repo,
            refs_only,
            depth,
            keep_younger_than,
            no_prune,
        } => {
            let repo = open(&repo)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs();
            let keep = keep_younger_than
                .map(|s| timefmt::parse_relative(&s, now))
                .transpose()
                .map_err(|e| anyhow!(e))?;
            let rep = repo.prune(&PruneOptions {
                refs_only,
                depth,
                keep_younger_than: keep,
                no_prune,
            })?;
            println!("Total objects: {}", rep.total);
            if rep.deleted == 0 {
                println!("No unreachable objects");
            } else if no_prune {
                println!(
                    "Would delete: {} objects, would free: {}",
                    rep.deleted,
                    human_size(rep.freed_bytes)
                );
            } else {
                println!(
                    "Deleted {} objects, {} freed",
                    rep.deleted,
                    human_size(rep.freed_bytes)
                );
            }
        }
        Cmd::Remote { cmd } => cmd_remote(cmd)?,
        Cmd::StaticDelta { cmd } => cmd_static_delta(cmd)?,
        Cmd::Admin { cmd } => cmd_admin(cmd)?,
        Cmd::GpgSign {
            repo,
            gpg_homedir,
            gpg_key_file,
            commit,
            key_ids,
        } => {
            let repo = open(&repo)?;
            let c = repo.resolve_rev(&commit)?;
            gpg_sign(
                &repo,
                &c,
                &key_ids,
                gpg_homedir.as_deref(),
                gpg_key_file.as_deref(),
            )?;
        }
        Cmd::Sign {
            repo,
            verify,
            sign_type,
            keys_file,
            revoked_file,
            commit,
            keys,
        } => {
            if sign_type != "ed25519" {
                bail!("signature type {sign_type:?} is not supported (only ed25519)");
            }
            let repo = open(&repo)?;
            let c = repo.resolve_rev(&commit)?;
            let mut keys = keys;
            if let Some(f) = &keys_file {
                keys.extend(oxtree::sign::read_key_lines(f)?);
            }
            if keys.is_empty() {
                bail!("no keys: give them as arguments or with --keys-file");
            }
            if verify {
                let pks = keys
                    .iter()
                    .map(|k| oxtree::sign::parse_public_key(k))
                    .collect::<oxtree::Result<Vec<_>>>()?;
                let revoked = match &revoked_file {
                    Some(f) => oxtree::sign::read_key_lines(f)?
                        .iter()
                        .map(|k| oxtree::sign::parse_public_key(k))
                        .collect::<oxtree::Result<Vec<_>>>()?,
                    None => Vec::new(),
                };
                match repo.verify_commit_ed25519(&c, &pks, &revoked)? {
                    Some(k) => println!(
                        "Signature verified successfully with key '{}'",
                        oxtree::sign::public_key_base64(&k)
                    ),
                    None => {
                        return Err(oxtree::Error::Signature {
                            commit: c,
                            msg: "no valid ed25519 signature from the given keys".into(),
                        }
                        .into());
                    }
                }
            } else {
                for k in &keys {
                    repo.sign_commit(&c, &oxtree::sign::parse_secret_key(k)?)?;
                }
            }
        }
        Cmd::Pull(a) => cmd_pull(a)?,
        Cmd::Summary {
            repo,
            update,
            view,
            sign,
            sign_type,
        } => {
            let mut repo = open(&repo)?;
            if !sign.is_empty() && sign_type != "ed25519" {
                bail!("--sign-type={sign_type}: only ed25519 is supported");
            }
            if update {
                let keys = sign
                    .iter()
                    .map(|k| oxtree::sign::parse_secret_key(k))
                    .collect::<oxtree::Result<Vec<_>>>()?;
                repo.regenerate_summary_signed(&keys)?;
            } else if !sign.is_empty() {
                bail!("--sign goes with -u (the summary is signed when it is regenerated)");
            }
            if view || !update {
                let s = repo.read_summary()?.ok_or_else(|| {
                    anyhow!("no summary file; generate one with `oxtree summary -u`")
                })?;
                print_summary(&s);
            }
        }
        Cmd::Serve {
            repo,
            bind,
            port,
            quiet,
        } => {
            let path = repo_path(&repo);
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
        }
        Cmd::PullLocal {
            repo,
            remote,
            depth,
            src_repo,
            refs,
        } => {
            let repo = open(&repo)?;
            let src = Repo::open(&src_repo)?;
            let refs = if refs.is_empty() {
                src.list_refs()?
                    .into_keys()
                    .filter(|r| r.remote.is_none())
                    .map(|r| r.name)
                    .collect()
            } else {
                refs
            };
            let n = repo.pull_local(&src, &refs, &PullLocalOptions { depth, remote })?;
            println!("{n} objects copied");
        }
    }
    Ok(0)
}

fn cmd_commit(a: CommitArgs) -> Result<()> {
    let mut repo = open(&a.repo)?;
    if let Some(f) = &a.fsync {
        repo.set_fsync(!matches!(f.as_str(), "false" | "no" | "0"));
    }
    let mut trees: Vec<String> = a.tree.clone();
    if let Some(p) = &a.path {
        trees.push(format!("dir={}", p.display()));
    }
    let tree = match trees.as_slice() {
        [] => bail!("no tree to commit: give a directory or --tree=dir=PATH"),
        [one] => one.clone(),
        _ => {
            bail!("several --tree arguments (overlays) are not supported yet; commit a single tree")
        }
    };
    if a.branch.is_none() && !a.orphan {
        bail!("a branch is required: use -b BRANCH, or --orphan for a commit without a ref");
    }
    let branch = a.branch.as_deref().map(RefName::parse).transpose()?;
    let mut body = a.body.clone().unwrap_or_default();
    if let Some(f) = &a.body_file {
        body = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
    }
    let mut metadata = Vec::new();
    for kv in &a.add_metadata_string {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow!("--add-metadata-string {kv:?}: expected KEY=VALUE"))?;
        metadata.push((k.to_string(), oxtree::gvariant::Value::str(v)));
    }
    for kv in &a.add_metadata {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow!("--add-metadata {kv:?}: expected KEY=VALUE"))?;
        metadata.push((
            k.to_string(),
            gvtext::parse(v).map_err(|e| anyhow!("--add-metadata {k}: {e}"))?,
        ));
    }
    if !a.no_bindings {
        let mut binds: Vec<String> = a.branch.iter().cloned().collect();
        binds.extend(a.bind_ref.iter().cloned());
        binds.sort();
        binds.dedup();
        if !binds.is_empty() {
            metadata.push((
                "ostree.ref-binding".into(),
                oxtree::gvariant::Value::Array(
                    oxtree::gvariant::Type::Str,
                    binds
                        .into_iter()
                        .map(oxtree::gvariant::Value::Str)
                        .collect(),
                ),
            ));
        }
    }
    let parent = match a.parent.as_deref() {
        None => None,
        Some("none") => Some(None),
        Some(p) => Some(Some(repo.resolve_rev(p)?)),
    };
    let mut opts = CommitOptions {
        subject: a.subject.clone().unwrap_or_default(),
        body,
        timestamp: a
            .timestamp
            .as_deref()
            .map(timefmt::parse)
            .transpose()
            .map_err(|e| anyhow!(e))?,
        parent: parent.flatten(),
        metadata,
        owner_uid: a.owner_uid,
        owner_gid: a.owner_gid,
        canonical_permissions: a.canonical_permissions,
        no_xattrs: a.no_xattrs,
        generate_sizes: a.generate_sizes,
        progress: Some(std::sync::Arc::new(oxtree::progress::Progress::default())),
        ed25519_keys: Vec::new(),
        skip_list: HashSet::new(),
        statoverride: HashMap::new(),
    };
    if let Some(f) = &a.skip_list {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading skip list {}", f.display()))?;
        opts.skip_list = text
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
    }
    if let Some(f) = &a.statoverride {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading statoverride file {}", f.display()))?;
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
            let (m, p) = line.split_once(' ').ok_or_else(|| {
                anyhow!(
                    "{}:{}: malformed statoverride line (no space)",
                    f.display(),
                    i + 1
                )
            })?;
            let ov = if let Some(v) = m.strip_prefix('=') {
                StatOverride::Set(
                    v.parse()
                        .with_context(|| format!("{}:{}: bad mode", f.display(), i + 1))?,
                )
            } else {
                StatOverride::Add(
                    m.trim_start_matches('+')
                        .parse()
                        .with_context(|| format!("{}:{}: bad mode", f.display(), i + 1))?,
                )
            };
            opts.statoverride.insert(p.to_string(), ov);
        }
    }
    if !a.sign.is_empty() && a.sign_type != "ed25519" {
        bail!("--sign-type={}: only ed25519 is supported", a.sign_type);
    }
    opts.ed25519_keys = a
        .sign
        .iter()
        .map(|k| oxtree::sign::parse_secret_key(k))
        .collect::<oxtree::Result<_>>()?;
    let bind = if a.orphan { None } else { branch.as_ref() };
    // Like ostree: without --parent, a commit to an existing branch follows its head.
    if parent.is_none() {
        if let Some(b) = bind {
            opts.parent = repo.read_ref(b)?;
        }
    }
    let progress = opts.progress.clone().unwrap_or_default();
    let res = with_progress("committing files", &progress, true, || -> Result<_> {
        if let Some(tarfile) = tree.strip_prefix("tar=") {
            Ok(repo.commit_tar(Path::new(tarfile), bind, &opts)?)
        } else if let Some(dir) = tree.strip_prefix("dir=") {
            Ok(repo.commit_dir(Path::new(dir), bind, &opts)?)
        } else {
            bail!("--tree={tree}: expected dir=PATH or tar=FILE");
        }
    })?;
    if !a.gpg_sign.is_empty() {
        gpg_sign(
            &repo,
            &res.commit,
            &a.gpg_sign,
            a.gpg_homedir.as_deref(),
            a.gpg_key_file.as_deref(),
        )?;
    }
    if a.table_output {
        println!("Commit: {}", res.commit);
        println!("Metadata Total: {}", res.files + 2);
        println!("Content Total: {}", res.files);
        println!("Content Written: {}", res.files_written);
    } else {
        println!("{}", res.commit);
    }
    Ok(())
}

fn print_commit(c: &Checksum, cm: &oxtree::Commit) {
    println!("commit {c}");
    if let Some(p) = cm.parent {
        println!("Parent:  {p}");
    }
    println!("ContentChecksum:  {}", cm.content_checksum());
    println!("Date:  {}", timefmt::format(cm.timestamp));
    if let Some(v) = cm.version() {
        println!("Version: {v}");
    }
    println!();
    if !cm.subject.is_empty() {
        println!("    {}", cm.subject);
        println!();
    }
    if !cm.body.is_empty() {
        for l in cm.body.lines() {
            println!("    {l}");
        }
        println!();
    }
}

/// Find a path inside a commit: (type, checksum, dirmeta checksum for dirs).
fn lookup_path(
    repo: &Repo,
    commit: &Checksum,
    path: &str,
) -> Result<(ObjectType, Checksum, Checksum)> {
    Ok(match repo.lookup_path(commit, path)? {
        PathEntry::File(f) => (ObjectType::File, f, Checksum::default()),
        PathEntry::Dir { tree, meta } => (ObjectType::DirTree, tree, meta),
    })
}

fn ls_line(
    repo: &Repo,
    path: &str,
    ty: ObjectType,
    csum: &Checksum,
    meta: &Checksum,
    show_csum: bool,
) -> Result<()> {
    let p = if path.is_empty() { "/" } else { path };
    if ty == ObjectType::File {
        let fc = repo.read_file(csum)?;
        let h = &fc.header;
        let c = if h.is_symlink() { 'l' } else { '-' };
        let cs = if show_csum {
            format!("{csum} ")
        } else {
            String::new()
        };
        let tgt = if h.is_symlink() {
            format!(" -> {}", h.symlink_target)
        } else {
            String::new()
        };
        println!(
            "{c}0{:04o} {} {} {:6} {cs}{p}{tgt}",
            h.mode & 0o7777,
            h.uid,
            h.gid,
            fc.size
        );
    } else {
        let dm = repo.load_dirmeta(meta)?;
        let cs = if show_csum {
            format!("{csum} {meta} ")
        } else {
            String::new()
        };
        println!(
            "d0{:04o} {} {} {:6} {cs}{p}",
            dm.mode & 0o7777,
            dm.uid,
            dm.gid,
            0
        );
    }
    Ok(())
}

fn cmd_ls(
    repo: &Repo,
    commit: &Checksum,
    path: &str,
    recursive: bool,
    dironly: bool,
    show_csum: bool,
) -> Result<()> {
    let (ty, csum, meta) = lookup_path(repo, commit, path)?;
    let norm = path.trim_end_matches('/');
    ls_line(repo, norm, ty, &csum, &meta, show_csum)?;
    if ty == ObjectType::DirTree && !dironly {
        ls_dir(repo, &csum, norm, recursive, show_csum)?;
    }
    Ok(())
}

fn ls_dir(
    repo: &Repo,
    tree: &Checksum,
    prefix: &str,
    recursive: bool,
    show_csum: bool,
) -> Result<()> {
    let dt = repo.load_dirtree(tree)?;
    // ostree lists a directory's files, then its subdirectories, each in dirtree order.
    for (name, c) in &dt.files {
        ls_line(
            repo,
            &format!("{prefix}/{name}"),
            ObjectType::File,
            c,
            &Checksum::default(),
            show_csum,
        )?;
    }
    for (name, t, m) in &dt.dirs {
        let p = format!("{prefix}/{name}");
        ls_line(repo, &p, ObjectType::DirTree, t, m, show_csum)?;
        if recursive {
            ls_dir(repo, t, &p, true, show_csum)?;
        }
    }
    Ok(())
}

type DirRef = Option<(Checksum, Checksum)>;

fn diff_dirs(
    repo: &Repo,
    a: DirRef,
    b: DirRef,
    prefix: &str,
    out: &mut Vec<(char, String)>,
) -> Result<()> {
    let load = |d: DirRef| -> Result<oxtree::DirTree> {
        Ok(match d {
            Some((t, _)) => repo.load_dirtree(&t)?,
            None => oxtree::DirTree::default(),
        })
    };
    let (da, db) = (load(a)?, load(b)?);
    let mut names: Vec<&str> = da
        .files
        .iter()
        .map(|f| f.0.as_str())
        .chain(da.dirs.iter().map(|d| d.0.as_str()))
        .collect();
    names.extend(
        db.files
            .iter()
            .map(|f| f.0.as_str())
            .chain(db.dirs.iter().map(|d| d.0.as_str())),
    );
    names.sort_unstable();
    names.dedup();
    for n in names {
        let p = format!("{prefix}/{n}");
        let fa = da.files.iter().find(|f| f.0 == n).map(|f| f.1);
        let fb = db.files.iter().find(|f| f.0 == n).map(|f| f.1);
        let sa = da.dirs.iter().find(|d| d.0 == n).map(|d| (d.1, d.2));
        let sb = db.dirs.iter().find(|d| d.0 == n).map(|d| (d.1, d.2));
        match (fa, fb, sa, sb) {
            (Some(x), Some(y), _, _) if x != y => out.push(('M', p)),
            (Some(_), Some(_), _, _) => {}
            (None, None, Some(x), Some(y)) => {
                if x.1 != y.1 {
                    out.push(('M', p.clone()));
                }
                if x.0 != y.0 {
                    diff_dirs(repo, Some(x), Some(y), &p, out)?;
                }
            }
            (Some(_), None, None, Some(_)) | (None, Some(_), Some(_), None) => out.push(('M', p)),
            (Some(_), None, None, None) | (None, None, Some(_), None) => out.push(('D', p)),
            (None, Some(_), None, None) | (None, None, None, Some(_)) => out.push(('A', p)),
            _ => {}
        }
    }
    Ok(())
}

fn human_size(b: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} bytes")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn cmd_remote(cmd: RemoteCmd) -> Result<()> {
    match cmd {
        RemoteCmd::GpgImport {
            repo,
            keyring,
            name,
        } => {
            let repo = open(&repo)?;
            let mut n = 0;
            for k in &keyring {
                n += repo.remote_gpg_import(&name, k)?;
            }
            println!(
                "Imported {n} GPG key{} to remote \"{name}\"",
                if n == 1 { "" } else { "s" }
            );
        }
        RemoteCmd::Add {
            repo,
            no_gpg_verify,
            if_not_exists,
            set,
            gpg_import,
            name,
            url,
            branches,
        } => {
            let mut repo = open(&repo)?;
            let set = set
                .iter()
                .map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .ok_or_else(|| anyhow!("--set {kv:?}: expected KEY=VALUE"))
                })
                .collect::<Result<Vec<_>>>()?;
            repo.remote_add(
                &name,
                &url,
                &oxtree::repo::RemoteAddOptions {
                    branches,
                    set,
                    no_gpg_verify,
                    if_not_exists,
                },
            )?;
            if let Some(f) = gpg_import {
                let n = repo.remote_gpg_import(&name, &f)?;
                println!(
                    "Imported {n} GPG key{} to remote \"{name}\"",
                    if n == 1 { "" } else { "s" }
                );
            }
        }
        RemoteCmd::Delete {
            repo,
            if_exists,
            name,
        } => open(&repo)?.remote_delete(&name, if_exists)?,
        RemoteCmd::List { repo, show_urls } => {
            let repo = open(&repo)?;
            let names = repo.remote_names();
            let w = names.iter().map(String::len).max().unwrap_or(0);
            for n in names {
                if show_urls {
                    println!(
                        "{n:<w$}  {}",
                        repo.remote_option(&n, "url").unwrap_or_default()
                    );
                } else {
                    println!("{n}");
                }
            }
        }
        RemoteCmd::ShowUrl { repo, name } => println!("{}", open(&repo)?.remote_url(&name)?),
        RemoteCmd::Refs { repo, name } => {
            let s = fetch_remote_summary(&open(&repo)?, &name)?;
            for r in &s.refs {
                println!("{name}:{}", r.name);
            }
        }
        RemoteCmd::Summary { repo, name } => {
            print_summary(&fetch_remote_summary(&open(&repo)?, &name)?)
        }
    }
    Ok(())
}

fn fetch_remote_summary(repo: &Repo, name: &str) -> Result<oxtree::object::Summary> {
    use oxtree::pull::Fetcher;
    let url = repo.remote_url(name)?;
    let f = oxtree::pull::HttpFetcher::new(&url, std::time::Duration::from_secs(30))?;
    let mut resp = f
        .fetch("summary", 0)
        .map_err(|e| anyhow!("{}: {e:?}", f.describe("summary")))?
        .ok_or_else(|| anyhow!("remote {name} has no summary file ({}); its owner can create one with `oxtree summary -u`", f.describe("summary")))?;
    let mut b = Vec::new();
    use std::io::Read;
    (&mut resp.body)
        .take(oxtree::pull::MAX_METADATA_SIZE)
        .read_to_end(&mut b)?;
    oxtree::object::Summary::parse(&b)
        .map_err(|e| anyhow!("{}: invalid summary: {e}", f.describe("summary")))
}

fn print_summary(s: &oxtree::object::Summary) {
    for r in &s.refs {
        println!("* {}", r.name);
        println!("    Latest Commit ({} bytes):", r.commit_size);
        println!("      {}", r.checksum);
        if let Some(v) = r.version() {
            println!("    Version (ostree.commit.version): {v}");
        }
        if let Some(t) = r.timestamp() {
            println!(
                "    Timestamp (ostree.commit.timestamp): {}",
                timefmt::format(t)
            );
        }
        println!();
    }
    for (k, v) in &s.metadata {
        let shown = match (k.as_str(), v) {
            ("ostree.summary.last-modified", oxtree::gvariant::Value::U64(t)) => {
                timefmt::format(u64::from_be(*t))
            }
            _ => gvtext::print(v),
        };
        println!("{k}: {shown}");
    }
}

fn cmd_pull(a: PullArgs) -> Result<()> {
    if a.subpath.is_some() {
        bail!("--subpath is not supported by oxtree pull yet; pull the whole commit and use `checkout --subpath`");
    }
    let repo = open(&a.repo)?;
    let (remote, mut refs) = match a.remote.split_once(':') {
        Some((r, first)) => (r.to_string(), vec![first.to_string()]),
        None => (a.remote.clone(), Vec::new()),
    };
    refs.extend(a.refs.iter().cloned());
    let opts = oxtree::pull::PullOptions {
        depth: a.depth,
        commit_metadata_only: a.commit_metadata_only,
        mirror: a.mirror,
        dry_run: a.dry_run,
        fetchers: a.fetchers,
        timeout: std::time::Duration::from_secs(a.timeout),
        timestamp_check: a.timestamp_check && !a.allow_downgrade,
        disable_static_deltas: a.disable_static_deltas,
        ..Default::default()
    };
    let progress = oxtree::pull::PullProgress::default();
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let res = std::thread::scope(|s| {
        s.spawn(|| progress_loop(&progress, tty));
        let r = repo.pull(&remote, &refs, &opts, &progress);
        progress
            .done
            .store(true, std::sync::atomic::Ordering::Relaxed);
        r
    })?;
    for w in &res.warnings {
        eprintln!("warning: {w}");
    }
    if a.json {
        let refs: Vec<String> = res
            .refs
            .iter()
            .map(|(r, old, new)| {
                format!(
                    "{{\"ref\":{},\"old\":{},\"new\":\"{new}\"}}",
                    json_str(&r.to_string()),
                    old.map(|o| format!("\"{o}\"")).unwrap_or("null".into())
                )
            })
            .collect();
        println!(
            "{{\"refs\":[{}],\"deltas\":[{}],\"objects\":{},\"bytes\":{},\"requests\":{},\"seconds\":{:.3}}}",
            refs.join(","),
            res.deltas
                .iter()
                .map(|d| json_str(d))
                .collect::<Vec<_>>()
                .join(","),
            res.objects_fetched,
            res.bytes_fetched,
            res.requests,
            res.elapsed.as_secs_f64()
        );
    } else {
        for (r, old, new) in &res.refs {
            match old {
                Some(o) if o == new => println!("{r}: {new} (unchanged)"),
                Some(o) => println!("{r}: {o} -> {new}"),
                None => println!("{r}: {new}"),
            }
        }
        for d in &res.deltas {
            println!("static delta {d}");
        }
        println!(
            "{} objects, {} in {:.1} s ({} requests){}",
            res.objects_fetched,
            human_size(res.bytes_fetched),
            res.elapsed.as_secs_f64(),
            res.requests,
            if a.dry_run {
                " (dry run: nothing fetched)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

/// Draw `line(elapsed)` on stderr until `done`: rewritten in place on a TTY, a plain line
/// every 5 s otherwise; `None` draws nothing (yet).
fn status_loop(
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
fn progress_loop(p: &oxtree::pull::PullProgress, tty: bool) {
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
fn with_progress<T>(
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

/// Sign `commit` with OpenPGP keys from a key file or a GnuPG home.
fn gpg_sign(
    repo: &Repo,
    commit: &Checksum,
    key_ids: &[String],
    homedir: Option<&Path>,
    key_file: Option<&Path>,
) -> Result<()> {
    for id in key_ids {
        let keys = match key_file {
            Some(f) => oxtree::sign::gpg::load_secret_keys(
                &std::fs::read(f).with_context(|| format!("reading {}", f.display()))?,
                &f.display().to_string(),
            )?,
            None => oxtree::sign::gpg::load_secret_keys(
                &oxtree::sign::gpg::export_from_homedir(homedir, id)?,
                id,
            )?,
        };
        repo.gpg_sign_commit(commit, &keys, id)?;
    }
    Ok(())
}

fn cmd_admin(cmd: AdminCmd) -> Result<()> {
    use oxtree::sysroot::Sysroot;
    match cmd {
        AdminCmd::InitFs { dir } => {
            Sysroot::init_fs(&dir)?;
        }
        AdminCmd::Deploy {
            sysroot,
            os,
            mut karg,
            karg_append,
            karg_proc_cmdline,
            retain,
            retain_rollback,
            stage,
            refspec,
        } => {
            let sr = Sysroot::new(&sysroot.sysroot);
            if karg_proc_cmdline {
                let cmdline =
                    std::fs::read_to_string("/proc/cmdline").context("reading /proc/cmdline")?;
                // The bootloader's and ostree's own arguments are not the OS's to keep.
                karg.extend(
                    cmdline
                        .split_whitespace()
                        .filter(|a| {
                            !a.starts_with("BOOT_IMAGE=")
                                && !a.starts_with("initrd=")
                                && !a.starts_with("ostree=")
                        })
                        .map(str::to_string),
                );
            }
            let opts = oxtree::sysroot::DeployOptions {
                os,
                kargs: (!karg.is_empty()).then_some(karg),
                karg_append,
                retain,
                retain_rollback,
                stage,
            };
            let _lock = lock_sysroot(&sr)?;
            let d = sr.deploy(&refspec, &opts)?;
            if stage {
                println!(
                    "Staged {} {}; it becomes the default at shutdown (admin finalize-staged)",
                    d.stateroot,
                    d.dirname()
                );
                return Ok(());
            }
            println!(
                "Deployed {} {} (bootversion switched; {} is now the default)",
                d.stateroot,
                d.dirname(),
                refspec
            );
        }
        AdminCmd::PrepareRoot {
            sysroot,
            cmdline,
            run_dir,
        } => prepare_root(sysroot, cmdline, run_dir)?,
        AdminCmd::Cleanup { sysroot } => {
            let sr = Sysroot::new(&sysroot.sysroot);
            let _lock = lock_sysroot(&sr)?;
            let rep = sr.cleanup_and_prune()?;
            if rep.deleted > 0 {
                println!("Freed objects: {}", human_size(rep.freed_bytes));
            }
        }
        AdminCmd::FinalizeStaged { sysroot, hold } => {
            if hold {
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                }
            }
            let opts = oxtree::sysroot::DeployOptions::default();
            let sr = Sysroot::new(&sysroot.sysroot);
            let _lock = lock_sysroot(&sr)?;
            match sr.finalize_staged(&opts)? {
                Some(d) => println!(
                    "Finalized staged deployment {} {}",
                    d.stateroot,
                    d.dirname()
                ),
                None => println!("No staged deployment."),
            }
        }
        AdminCmd::Rollback { sysroot, if_failed } => {
            let sr = Sysroot::new(&sysroot.sysroot);
            let _lock = lock_sysroot(&sr)?;
            if if_failed {
                match sr.rollback_if_failed()? {
                    Some(d) => println!(
                        "Default deployment failed to boot; rolled back to '{}'",
                        d.dirname()
                    ),
                    None => println!("Default deployment has not failed; nothing to do."),
                }
            } else {
                let d = sr.rollback()?;
                println!("Moving '{}' to be first deployment", d.dirname());
            }
        }
        AdminCmd::BootComplete {
            sysroot,
            index,
            health_dir,
            skip_health_checks,
        } => {
            warn_finalize_failure(&Sysroot::new(&sysroot.sysroot));
            if !skip_health_checks {
                let failed = Sysroot::run_health_checks(&health_dir)?;
                if !failed.is_empty() {
                    for (check, why) in &failed {
                        eprintln!("health check failed: {check}: {why}");
                    }
                    bail!(
                        "{} health check(s) failed: this boot is not marked good; the bootloader \
                         counts it down and boots the previous deployment when its tries run out",
                        failed.len()
                    );
                }
            }
            let sr = Sysroot::new(&sysroot.sysroot);
            let _lock = lock_sysroot(&sr)?;
            match sr.boot_complete(index)? {
                Some(d) => println!("Marked {} as good", d.dirname()),
                None => println!("Deployment already marked good."),
            }
        }
        AdminCmd::Remount {} => match oxtree::sysroot::remount::setup_var()? {
            Some(v) => println!("Mounted {} on /var", v.display()),
            None => println!("/var is already mounted."),
        },
        AdminCmd::Undeploy { sysroot, index } => {
            let sr = Sysroot::new(&sysroot.sysroot);
            let _lock = lock_sysroot(&sr)?;
            let d = sr.undeploy(index)?;
            println!("Deleted deployment {}", d.dirname());
        }
        AdminCmd::Pin {
            sysroot,
            unpin,
            index,
        } => {
            let sr = Sysroot::new(&sysroot.sysroot);
            let _lock = lock_sysroot(&sr)?;
            sr.pin(index, !unpin)?;
            println!(
                "Deployment {index} is now {}",
                if unpin { "unpinned" } else { "pinned" }
            );
        }
        AdminCmd::Switch {
            sysroot,
            reboot,
            refspec,
        } => {
            let opts = oxtree::sysroot::DeployOptions::default();
            let sr = Sysroot::new(&sysroot.sysroot);
            let lock = lock_sysroot(&sr)?;
            let d = sr.switch(&refspec, &opts)?;
            drop(lock);
            println!(
                "Switched to {refspec}: {} {} is now the default",
                d.stateroot,
                d.dirname()
            );
            if reboot {
                reboot_now()?;
            }
        }
        AdminCmd::Upgrade {
            sysroot,
            pull_only,
            deploy_only,
            allow_downgrade,
            stage,
            retain_rollback,
            reboot,
        } => {
            let opts = oxtree::sysroot::DeployOptions {
                stage,
                retain_rollback,
                ..Default::default()
            };
            // Held across the pull and the deploy, as ostree holds it.
            let sr = Sysroot::new(&sysroot.sysroot);
            let lock = lock_sysroot(&sr)?;
            let (deployed, pulled) = sr.upgrade(pull_only, deploy_only, allow_downgrade, &opts)?;
            if let Some(p) = &pulled {
                for w in &p.warnings {
                    eprintln!("warning: {w}");
                }
                let how = match p.deltas.as_slice() {
                    [] => String::new(),
                    d => format!(" via static delta {}", d.join(", ")),
                };
                println!(
                    "Fetched {} objects, {} in {} requests{how}",
                    p.objects_fetched,
                    human_size(p.bytes_fetched),
                    p.requests
                );
            }
            match &deployed {
                Some(d) if stage => println!(
                    "Staged {} {}: it becomes the default at shutdown; reboot to use it",
                    d.stateroot,
                    d.dirname()
                ),
                Some(d) => println!(
                    "Upgraded: {} {} is now the default; reboot to use it",
                    d.stateroot,
                    d.dirname()
                ),
                None if pull_only => println!("Pulled."),
                None => println!("No update available."),
            }
            drop(lock);
            if deployed.is_some() && reboot {
                reboot_now()?;
            }
        }
        AdminCmd::Kargs {
            cmd:
                KargsCmd::EditInPlace {
                    sysroot,
                    append,
                    delete,
                    replace,
                },
        } => {
            let sr = Sysroot::new(&sysroot.sysroot);
            let _lock = lock_sysroot(&sr)?;
            let k = sr.kargs_edit(&append, &delete, &replace)?;
            println!("{}", k.join(" "));
        }
        AdminCmd::OsInit { sysroot, stateroot } => {
            Sysroot::new(&sysroot.sysroot).os_init(&stateroot)?;
            println!("ostree/deploy/{stateroot} initialized as OSTree root");
        }
        AdminCmd::Status { sysroot, json } => {
            let sr = Sysroot::new(&sysroot.sysroot);
            let deps = sr.deployments()?;
            let staged = sr.read_staged()?;
            warn_finalize_failure(&sr);
            if let (Some(m), false) = (&staged, json) {
                println!(
                    "  {} {}.{} (staged)",
                    m.stateroot, m.checksum, m.deployserial
                );
            }
            let repo = sr.repo().ok();
            let version = |c: &Checksum| {
                repo.as_ref()
                    .and_then(|r| r.load_commit(c).ok())
                    .and_then(|cm| cm.version().map(str::to_string))
            };
            let booted = deps.iter().position(|d| d.booted);
            if json {
                let items: Vec<String> = deps
                    .iter()
                    .map(|d| {
                        let mark = |b: bool| if b { "true" } else { "false" };
                        format!(
                            "{{\"failed\":{},\"tries_left\":{},\"index\":{},\"stateroot\":{},\"checksum\":\"{}\",\"serial\":{},\"bootcsum\":{},\"booted\":{},\"pinned\":{},\"version\":{},\"origin\":{}}}",
                            mark(d.failed()),
                            d.tries.map(|t| t.0.to_string()).unwrap_or("null".into()),
                            d.index,
                            json_str(&d.stateroot),
                            d.checksum,
                            d.deployserial,
                            json_str(&d.bootcsum),
                            mark(d.booted),
                            mark(d.pinned()),
                            version(&d.checksum).map(|v| json_str(&v)).unwrap_or("null".into()),
                            d.refspec().map(json_str).unwrap_or("null".into())
                        )
                    })
                    .collect();
                println!("{{\"deployments\":[{}]}}", items.join(","));
            } else if deps.is_empty() {
                if staged.is_none() {
                    println!("No deployments.");
                }
            } else {
                for d in &deps {
                    let mut marks = String::new();
                    // Relative to the booted deployment: newer ones are pending, the next older
                    // one is the rollback target.
                    // A deployment that failed to boot is neither.
                    if let Some(b) = booted {
                        let rollback = deps.iter().skip(b + 1).find(|r| !r.failed());
                        if d.index < b && !d.failed() {
                            marks.push_str(" (pending)");
                        } else if rollback.is_some_and(|r| r.index == d.index) {
                            marks.push_str(" (rollback)");
                        }
                    }
                    println!(
                        "{} {} {}{marks}",
                        if d.booted { "*" } else { " " },
                        d.stateroot,
                        d.dirname()
                    );
                    if let Some(v) = version(&d.checksum) {
                        // Commit metadata: no control characters reach the terminal.
                        println!("    Version: {}", v.escape_debug());
                    }
                    if d.pinned() {
                        println!("    Pinned: yes");
                    }
                    match d.tries {
                        Some((0, n)) => println!("    Boot: FAILED (no good boot in {n} tries)"),
                        Some((left, _)) => {
                            println!("    Boot: not yet confirmed ({left} tries left)")
                        }
                        None => {}
                    }
                    match d.refspec() {
                        Some(r) => println!("    origin refspec: {r}"),
                        None => println!("    origin: none"),
                    }
                }
            }
        }
    }
    Ok(())
}

/// Take the sysroot lock for a command that changes the sysroot, saying so on stderr when
/// another process (oxtree, ostree, rpm-ostree) holds it, as `ostree admin` does, and
/// waiting for it.
fn lock_sysroot(sr: &oxtree::sysroot::Sysroot) -> Result<oxtree::sysroot::SysrootLock<'_>> {
    Ok(sr.lock(|| eprintln!("Waiting for sysroot lock..."))?)
}

/// Print a commit's OpenPGP signatures as `ostree show --gpg-verify-remote` does; whether
/// one of them is good.
fn print_gpg_report(repo: &Repo, c: &Checksum, remote: &str) -> Result<bool> {
    use oxtree::sign::gpg::GpgStatus;
    let keys = repo.remote_gpg_keys(remote)?;
    let meta = repo.load_commitmeta_bytes(c)?;
    let data = repo.load_metadata(oxtree::ObjectType::Commit, c)?;
    let report = oxtree::sign::gpg::verify_meta(meta.as_deref(), &data, &keys)?;
    println!(
        "Found {} signature{}:",
        report.len(),
        if report.len() == 1 { "" } else { "s" }
    );
    for r in &report {
        println!();
        if let Some(t) = r.created {
            println!(
                "  Signature made {} using key ID {}",
                timefmt::format(t),
                r.key.as_deref().unwrap_or("?")
            );
        }
        let who = r
            .user
            .as_deref()
            .or(r.key.as_deref())
            .unwrap_or("unknown key");
        let status = match r.status {
            GpgStatus::Good => format!("Good signature from \"{who}\""),
            GpgStatus::ExpiredKey => format!("Signature from \"{who}\" made by an EXPIRED key"),
            GpgStatus::RevokedKey => format!("Signature from \"{who}\" made by a REVOKED key"),
            GpgStatus::Bad => format!("BAD signature from \"{who}\""),
            GpgStatus::UnknownKey => "Can't check signature: public key not found".to_string(),
        };
        println!("  {status}");
    }
    Ok(report.iter().any(|r| r.status == GpgStatus::Good))
}

/// `--reboot`: hand over to systemd (or plain `reboot` without it).
fn reboot_now() -> Result<()> {
    let ok = std::process::Command::new("systemctl")
        .arg("reboot")
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
        || std::process::Command::new("reboot")
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    if !ok {
        bail!("the deployment is ready, but rebooting failed: reboot by hand to use it");
    }
    Ok(())
}

/// Say so when the last staged deployment failed to finalize (pain point: a failure at
/// shutdown is otherwise invisible; the machine just boots the old deployment again).
fn warn_finalize_failure(sr: &oxtree::sysroot::Sysroot) {
    if let Some(why) = sr.finalize_failure() {
        eprintln!(
            "warning: the last staged deployment failed to finalize at shutdown, so the \
             upgrade did not happen: {why}\n  (journal: journalctl -b -1 -u \
             oxtree-finalize-staged; stage it again with `oxtree admin upgrade --stage`)"
        );
    }
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

/// ostree takes `--repo` before the command too (`ostree --repo=R refs`), and `--sysroot`
/// between `admin` and its command (`ostree admin --sysroot=S status`); scripts are full of
/// both. Move such options after the (sub)command, where oxtree's parser has them.
fn hoist_global_options(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    fn take(
        it: &mut std::iter::Peekable<std::vec::IntoIter<std::ffi::OsString>>,
        name: &str,
        held: &mut Vec<std::ffi::OsString>,
    ) {
        while let Some(a) = it.peek() {
            let s = a.to_string_lossy();
            if s.starts_with(&format!("{name}=")) {
                held.extend(it.next());
            } else if s == name {
                held.extend(it.next());
                held.extend(it.next());
            } else {
                break;
            }
        }
    }
    let mut it = args.into_iter().peekable();
    let mut out: Vec<std::ffi::OsString> = it.next().into_iter().collect();
    let mut held = Vec::new();
    take(&mut it, "--repo", &mut held);
    let cmd = it.next();
    // Commands with commands of their own: the options go after the inner one.
    let nested = cmd
        .as_ref()
        .is_some_and(|c| c == "admin" || c == "remote" || c == "static-delta");
    let is_admin = cmd.as_ref().is_some_and(|c| c == "admin");
    out.extend(cmd);
    if nested {
        if is_admin {
            take(&mut it, "--sysroot", &mut held);
        }
        let inner = it.next();
        let kargs = is_admin && inner.as_ref().is_some_and(|c| c == "kargs");
        out.extend(inner);
        if kargs {
            out.extend(it.next());
        }
    }
    out.extend(held);
    out.extend(it);
    out
}

/// Test builds (feature `failpoints`) only: configure the library's failpoints from
/// `FAILPOINTS` (`NAME=ACTIONS;...`, the `fail` crate's syntax, as zincati reads it). The
/// shipped binary has no such code and ignores the variable.
#[cfg(feature = "failpoints")]
fn configure_failpoints() -> Result<()> {
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

fn prepare_root(sysroot: PathBuf, cmdline: Option<String>, run_dir: PathBuf) -> Result<()> {
    let cmdline = match cmdline {
        Some(c) => c,
        None => std::fs::read_to_string("/proc/cmdline").context("reading /proc/cmdline")?,
    };
    let d = oxtree::sysroot::prepare_root::prepare_root(
        &oxtree::sysroot::prepare_root::PrepareRootOptions {
            sysroot: sysroot.clone(),
            cmdline,
            run_dir,
        },
    )?;
    println!(
        "oxtree: booting deployment {} as the root at {}",
        d.display(),
        sysroot.display()
    );
    Ok(())
}
