//! `oxtree agent` end to end on a real sysroot, a real `oxtree serve` remote with a signed
//! graph next to the repository, and (for the fleet lock) a real etcd behind `oxtree
//! fleetlock serve`. A reboot is what the configured reboot command does (it writes a line
//! to a log) followed by what the next boot would see: the test finalizes the staged
//! deployment with `oxtree admin finalize-staged` and changes the boot id.
//!
//! Shown here: kill -9 in each state resumes without staging twice, rebooting twice or
//! leaking the fleet lock; a release the machine rolled back from is never staged again
//! (and the slot is kept) until `unblock`; refused graphs stage nothing; a stopped etcd
//! means no reboot; preflight, hooks, consent, drop-ins and metrics.

#[path = "common/agent.rs"]
mod agent_common;
mod common;

use agent_common::{Etcd, FleetLockServer};
use base64::Engine;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const STREAM: &str = "testos/stable";
const NODE: &str = "node-a";

fn keypair(dir: &Path) -> (String, String) {
    let pem = dir.join("key.pem");
    run_ok(
        Path::new("openssl"),
        &["genpkey", "-algorithm", "ed25519", "-out", s(&pem)],
    );
    let der = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl")
            .stdout
    };
    let sk = der(&["pkey", "-in", s(&pem), "-outform", "DER"]);
    let pk = der(&["pkey", "-in", s(&pem), "-pubout", "-outform", "DER"]);
    let mut secret = sk[sk.len() - 32..].to_vec();
    secret.extend_from_slice(&pk[pk.len() - 32..]);
    let b64 = base64::engine::general_purpose::STANDARD;
    (b64.encode(secret), b64.encode(&pk[pk.len() - 32..]))
}

struct Fleet {
    tmp: TestDir,
    srv: PathBuf,
    tree: PathBuf,
    sysroot: PathBuf,
    conf: PathBuf,
    secret: String,
    server: Server,
    agent: Option<Child>,
}

impl Fleet {
    fn t(&self) -> &Path {
        self.tmp.path()
    }

    fn graph_file(&self) -> PathBuf {
        self.srv.join(format!("graph/{STREAM}.json"))
    }

    /// A sysroot running v1 from a signed remote with a signed graph.
    fn new(extra_config: &str) -> Fleet {
        let tmp = tempdir();
        let t = tmp.path().to_path_buf();
        let (secret, public) = keypair(&t);
        let tree = t.join("tree");
        os_tree(&tree);
        let srv = t.join("srv");
        ox(&["init", &format!("--repo={}", s(&srv)), "--mode=archive"]);
        let server = Server::start(&srv);
        let f = Fleet {
            tmp,
            srv,
            tree,
            sysroot: t.join("sysroot"),
            conf: t.join("agent.d"),
            secret,
            server,
            agent: None,
        };
        f.release("1.0", true);
        let sr = &f.sysroot;
        std::fs::create_dir_all(sr).expect("mkdir");
        let sa = format!("--sysroot={}", s(sr));
        let ra = format!("--repo={}", s(&sr.join("ostree/repo")));
        ox(&["admin", "init-fs", s(sr)]);
        ox(&["admin", "os-init", &sa, "testos"]);
        ox(&[
            "remote",
            "add",
            &ra,
            "--no-gpg-verify",
            "--set=sign-verify=true",
            &format!("--set=verification-ed25519-key={public}"),
            "origin",
            &f.server.url,
            STREAM,
        ]);
        ox(&["pull", &ra, "origin", STREAM]);
        ox(&[
            "admin",
            "deploy",
            &sa,
            "--os=testos",
            "--karg=root=LABEL=root",
            &format!("origin:{STREAM}"),
        ]);
        std::fs::write(t.join("boot_id"), "boot-1\n").expect("boot id");
        std::fs::create_dir_all(&f.conf).expect("mkdir");
        std::fs::write(
            f.conf.join("10-test.toml"),
            format!(
                r#"[agent]
steady_interval_secs = 1
retry_secs = 1
timeout_secs = 10
state_dir = "{t}/state"
run_dir = "{t}/run"
sysroot = "{t}/sysroot"
boot_id_path = "{t}/boot_id"

[identity]
node_uuid = "{NODE}"
rollout_wariness = 0.5

[reboot]
command = ["/bin/sh", "-c", "echo reboot >> {t}/reboots.log"]
motd_path = "{t}/motd"
consent_file = "{t}/consent"

[preflight]
min_free_repo_mib = 1
min_free_boot_mib = 1

[hooks]
dir = "{t}/hooks"
retry_secs = 1
{extra_config}"#,
                t = s(&t)
            ),
        )
        .expect("config");
        f
    }

    /// Commit a release on the server (signed), add it to the graph with a finished
    /// rollout and re-sign the graph.
    fn release(&self, version: &str, first: bool) -> String {
        write(
            &self.tree.join("usr/lib/release"),
            format!("{version}\n").as_bytes(),
            0o644,
        );
        let sv = format!("--repo={}", s(&self.srv));
        let c = ox(&[
            "commit",
            &sv,
            "-b",
            STREAM,
            "-s",
            version,
            &format!("--add-metadata-string=version={version}"),
            &format!("--sign={}", self.secret),
            s(&self.tree),
        ]);
        ox(&["summary", &sv, "-u"]);
        let g = self.graph_file();
        std::fs::create_dir_all(g.parent().expect("parent")).expect("mkdir");
        if first {
            ox(&["graph", "init", s(&g), "--stream", STREAM]);
        }
        ox(&["graph", "add", &sv, s(&g), &c]);
        ox(&[
            "graph",
            "rollout",
            s(&g),
            version,
            "--start=@0",
            "--start-fraction=1.0",
        ]);
        self.sign_graph();
        c
    }

    fn sign_graph(&self) {
        ox(&["graph", "sign", s(&self.graph_file()), &self.secret]);
    }

    fn cd(&self) -> String {
        format!("--config-dir={}", s(&self.conf))
    }

    fn start(&mut self, hang_in: Option<&str>) {
        assert!(self.agent.is_none());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.t().join("agent.log"))
            .expect("log");
        let mut cmd = Command::new(oxtree_bin());
        cmd.args(["agent", &self.cd(), "run"])
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(h) = hang_in {
            cmd.env("OXTREE_AGENT_HANG_IN", h);
        }
        self.agent = Some(cmd.spawn().expect("start agent"));
    }

    /// `start`, in a private mount namespace where the directory `keys` is the system's
    /// ostree key directory (/etc/ostree, or /usr/share/ostree): its revocation lists.
    fn start_with_system_keys(&mut self, keys: &Path) {
        assert!(self.agent.is_none());
        let target = ["/etc/ostree", "/usr/share/ostree"]
            .into_iter()
            .find(|p| Path::new(p).is_dir())
            .expect("neither /etc/ostree nor /usr/share/ostree exists (is ostree installed?)");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.t().join("agent.log"))
            .expect("log");
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount --bind \"$1\" \"$2\" && shift 2 && exec \"$@\"")
            .arg("sh")
            .arg(keys)
            .arg(target)
            .arg(oxtree_bin())
            .args(["agent", &self.cd(), "run"])
            .stdout(Stdio::null())
            .stderr(log);
        self.agent = Some(cmd.spawn().expect("start agent in a mount namespace"));
    }

    /// The public key of the release key (the last 32 bytes of the secret).
    fn public(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        let sk = b64.decode(&self.secret).expect("base64");
        b64.encode(&sk[32..])
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.agent.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    fn status(&self) -> serde_json::Value {
        let out = ox(&["agent", &self.cd(), "status", "--json"]);
        serde_json::from_str(&out).expect("status JSON")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.t().join("agent.log")).unwrap_or_default()
    }

    /// Wait until the persisted state is `name` (and `pred` holds).
    fn wait_for(&self, name: &str, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let st = self.status();
            if st["state"] == name && pred(&st) {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "agent never reached {name}; status {st:#}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn reboots(&self) -> usize {
        std::fs::read_to_string(self.t().join("reboots.log"))
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// What a reboot does: the finalize service switches to the staged deployment and the
    /// next boot has another id. `rollback` = the new deployment failed and the bootloader
    /// fell back (as boot counting does).
    fn reboot(&mut self, n: usize, rollback: bool) {
        self.kill9();
        let sa = format!("--sysroot={}", s(&self.sysroot));
        ox(&["admin", "finalize-staged", &sa]);
        if rollback {
            ox(&["admin", "rollback", &sa]);
        }
        std::fs::write(self.t().join("boot_id"), format!("boot-{n}\n")).expect("boot id");
    }

    fn default_version(&self) -> String {
        let sr = oxtree::sysroot::Sysroot::new(&self.sysroot);
        let d = sr.deployments().expect("deployments");
        let c = d.first().expect("a deployment").checksum;
        sr.repo()
            .expect("repo")
            .load_commit(&c)
            .expect("commit")
            .version()
            .unwrap_or_default()
            .to_string()
    }

    fn staged(&self) -> Option<String> {
        oxtree::sysroot::Sysroot::new(&self.sysroot)
            .read_staged()
            .expect("staged")
            .map(|m| m.checksum.to_hex())
    }

    /// Deployment directories checked out so far (a second staging adds one).
    fn checkouts(&self) -> usize {
        std::fs::read_dir(self.sysroot.join("ostree/deploy/testos/deploy"))
            .expect("deploy dir")
            .flatten()
            .filter(|e| e.path().is_dir())
            .count()
    }

    /// The metrics as a scraper reads them. Right after a restart the socket file can still
    /// be the killed agent's (connections refused) until the new one binds it: wait for that.
    fn metrics(&self) -> String {
        use std::io::Read;
        let path = self.t().join("run/metrics.promsock");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut s = loop {
            match std::os::unix::net::UnixStream::connect(&path) {
                Ok(s) => break s,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "metrics socket: {e}\n{}",
                        self.log()
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read metrics");
        out
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn holders(etcd: &Etcd) -> Vec<String> {
    let v = etcd.etcdctl(&[
        "get",
        "com.coreos.airlock/groups/default/v1/semaphore",
        "--print-value-only",
    ]);
    if v.trim().is_empty() {
        return Vec::new();
    }
    let j: serde_json::Value = serde_json::from_str(v.trim()).expect("airlock JSON");
    j["holders"]
        .as_array()
        .expect("holders")
        .iter()
        .map(|h| h.as_str().unwrap_or_default().to_string())
        .collect()
}

fn fleet_lock_config(url: &str, consent: bool) -> String {
    format!(
        "\n[updates]\nstrategy = \"fleet_lock\"\nconsent = {consent}\n[updates.fleet_lock]\nbase_url = \"{url}\"\n"
    )
}

#[test]
fn kill_dash_nine_in_every_state_resumes_without_double_staging_or_a_leaked_lock() {
    let tmp = tempdir();
    let etcd = Etcd::start(&tmp.path().join("etcd"));
    let fl = FleetLockServer::start(
        &tmp.path().join("fl"),
        &etcd.url,
        "[lock]\ndefault_group_name = \"default\"\ndefault_slots = 1\n",
    );
    let mut f = Fleet::new(&fleet_lock_config(&fl.url, true));
    let v2 = f.release("2.0", false);
    // steady → checking: killed while checking.
    f.start(Some("checking"));
    f.wait_for("checking", |_| true);
    f.kill9();
    // checking → available: killed before staging.
    f.start(Some("available"));
    f.wait_for("available", |_| true);
    f.kill9();
    assert_eq!(f.staged(), None);
    // Killed after staging but before the state says so: the resumed agent adopts the
    // staged deployment instead of staging again.
    f.start(Some("staged-unrecorded"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while f.staged().is_none() {
        assert!(Instant::now() < deadline, "never staged:\n{}", f.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    while !f.log().contains("hanging in staged-unrecorded") {
        assert!(
            Instant::now() < deadline,
            "never reached the hook:\n{}",
            f.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    f.kill9();
    assert_eq!(f.status()["state"], "available");
    let checkouts = f.checkouts();
    // available → staged (adopted): killed right after.
    f.start(Some("staged"));
    f.wait_for("staged", |_| true);
    f.kill9();
    assert_eq!(f.staged().as_deref(), Some(v2.as_str()));
    assert_eq!(f.checkouts(), checkouts, "staged a second time");
    // staged → waiting (consent mode: the reboot waits for the operator).
    f.start(Some("waiting"));
    let st = f.wait_for("waiting", |_| true);
    assert!(
        st["detail"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("consent"),
        "{st}"
    );
    f.kill9();
    assert_eq!(f.checkouts(), checkouts, "resuming did not stage again");
    assert!(
        holders(&etcd).is_empty(),
        "no slot is taken before the gates pass"
    );
    // waiting → rebooting: the operator consents; killed before the reboot command ran.
    f.start(Some("rebooting"));
    f.wait_for("waiting", |_| true);
    ox(&["agent", &f.cd(), "reboot-now"]);
    f.wait_for("rebooting", |_| true);
    f.kill9();
    assert_eq!(f.reboots(), 0);
    assert_eq!(holders(&etcd), [NODE], "the slot is held across the reboot");
    // Resumed in rebooting, same boot: the reboot command runs, once.
    f.start(None);
    f.wait_for("rebooting", |st| st["detail"]["issued_at"].is_number());
    std::thread::sleep(Duration::from_millis(1500));
    f.kill9();
    f.start(None);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(f.reboots(), 1, "rebooted twice:\n{}", f.log());
    assert_eq!(f.checkouts(), checkouts, "staged twice");
    // The reboot: v2 boots. Killed in verifying, before the slot is released.
    f.reboot(2, false);
    assert_eq!(f.default_version(), "2.0");
    f.start(Some("verifying"));
    f.wait_for("verifying", |_| true);
    f.kill9();
    assert_eq!(holders(&etcd), [NODE]);
    // Resumed: the boot is good, the slot is released, steady on v2.
    f.start(None);
    let st = f.wait_for("steady", |st| st["booted_version"] == "2.0");
    assert!(holders(&etcd).is_empty(), "lock leaked: {st}");
    assert_eq!(f.reboots(), 1);
    assert_eq!(f.staged(), None);
    // Killed in steady: resumes steady, nothing to do.
    f.kill9();
    f.start(None);
    ox(&["agent", &f.cd(), "check-now"]);
    f.wait_for("steady", |st| st["last_check"].is_number());
    assert_eq!(f.reboots(), 1);
    // This process's first check shows in its metrics, and it is steady again (a check
    // of its own timer may be under way when the metrics are read: `checking` for a moment).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut m = f.metrics();
    while !(m.contains("oxtree_agent_graph_nodes_count 2")
        && m.contains("oxtree_agent_state{state=\"steady\"} 1"))
    {
        assert!(Instant::now() < deadline, "{m}");
        std::thread::sleep(Duration::from_millis(100));
        m = f.metrics();
    }
    assert!(m.contains("oxtree_agent_state{state=\"steady\"} 1"), "{m}");
    assert!(m.contains("oxtree_agent_update_checks_total"), "{m}");
}

#[test]
fn a_rolled_back_release_is_never_staged_again_and_keeps_the_slot_until_unblock() {
    let tmp = tempdir();
    let etcd = Etcd::start(&tmp.path().join("etcd"));
    let fl = FleetLockServer::start(
        &tmp.path().join("fl"),
        &etcd.url,
        "[lock]\ndefault_group_name = \"default\"\ndefault_slots = 1\n",
    );
    let mut f = Fleet::new(&fleet_lock_config(&fl.url, false));
    let v3 = f.release("3.0", false);
    f.start(None);
    f.wait_for("rebooting", |st| st["detail"]["issued_at"].is_number());
    assert_eq!(f.reboots(), 1);
    // v3 fails; the machine comes back on 1.0.
    f.reboot(2, true);
    assert_eq!(f.default_version(), "1.0");
    f.start(None);
    let st = f.wait_for("rolled-back", |st| st["last_check"].is_number());
    assert_eq!(st["rolled_back"]["version"], "3.0", "{st}");
    assert_eq!(st["fleet_lock_slot_kept"], true);
    assert!(st["denied"][&v3]["reason"]
        .as_str()
        .unwrap_or_default()
        .contains("rolled back"));
    // Several checks later: still not staged again, still holding the slot (a bad canary
    // halts the fleet: another machine cannot reboot).
    for _ in 0..3 {
        ox(&["agent", &f.cd(), "check-now"]);
        std::thread::sleep(Duration::from_millis(300));
    }
    f.wait_for("rolled-back", |_| true);
    assert_eq!(f.staged(), None, "rolled-back release staged again");
    assert_eq!(f.reboots(), 1);
    assert_eq!(holders(&etcd), [NODE]);
    let other =
        oxtree::fleetlock::Client::new(&fl.url, "node-b", "default", Duration::from_secs(5))
            .expect("client");
    assert!(
        other.pre_reboot().is_err(),
        "the next cohort must not reboot"
    );
    let text = ox(&["agent", &f.cd(), "status"]);
    assert!(text.contains("Rolled back: 3.0"), "{text}");
    // The operator unblocks: the slot is released and 3.0 is offered again.
    ox(&["agent", &f.cd(), "unblock"]);
    f.wait_for("rebooting", |st| st["detail"]["issued_at"].is_number());
    assert_eq!(f.staged().as_deref(), Some(v3.as_str()));
    assert_eq!(f.reboots(), 2);
}

#[test]
fn refused_graphs_stage_nothing_with_a_clear_reason() {
    let mut f = Fleet::new("");
    let graph = f.graph_file();
    let sig = PathBuf::from(format!("{}.sig", s(&graph)));
    let serial = |st: &serde_json::Value| st["graph_seen"][STREAM]["serial"].as_u64();
    // Checks only on `check-now`, so the graph files can be swapped without a race.
    std::fs::write(
        f.conf.join("20-slow.toml"),
        "[agent]\nsteady_interval_secs = 3600\n",
    )
    .expect("write");
    // Serial 1 (only 1.0) is accepted, then serial 2 of the same graph.
    f.start(None);
    f.wait_for("steady", |st| serial(st) == Some(1));
    let (s1, s1sig) = (
        std::fs::read(&graph).expect("graph"),
        std::fs::read(&sig).expect("sig"),
    );
    f.sign_graph();
    ox(&["agent", &f.cd(), "check-now"]);
    f.wait_for("steady", |st| serial(st) == Some(2));
    let expect_refused = |f: &Fleet, what: &str| {
        ox(&["agent", &f.cd(), "check-now"]);
        let st = f.wait_for("steady", |st| {
            st["last_error"].as_str().is_some_and(|e| e.contains(what))
        });
        assert_eq!(f.staged(), None, "{what}: staged anyway");
        st
    };
    // Replayed: the serial-1 graph again, after serial 2.
    std::fs::write(&graph, &s1).expect("write");
    std::fs::write(&sig, &s1sig).expect("write");
    let st = expect_refused(&f, "replayed");
    assert!(
        st["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("serial 1 is lower than 2"),
        "{st}"
    );
    // 2.0 is released (serial 3). Unsigned:
    f.release("2.0", false);
    let (new, new_sig) = (
        std::fs::read(&graph).expect("graph"),
        std::fs::read(&sig).expect("sig"),
    );
    std::fs::remove_file(&sig).expect("rm sig");
    expect_refused(&f, "not signed");
    // Tampered: the 2.0 node renamed after signing.
    let text = String::from_utf8(new.clone()).expect("utf8");
    let tampered = text.replacen("\"2.0\"", "\"2.1\"", 1);
    assert_ne!(tampered, text);
    std::fs::write(&graph, tampered).expect("write");
    std::fs::write(&sig, &new_sig).expect("write");
    expect_refused(&f, "tampered");
    // Expired (a freeze attack): re-signed with an expiry in the past.
    std::fs::write(&graph, &new).expect("write");
    ox(&["graph", "sign", s(&graph), &f.secret, "--expires=@1000"]);
    expect_refused(&f, "expired");
    let m = f.metrics();
    // Refusals repeat at every check, so each reason counts at least once.
    for reason in ["unsigned", "bad_signature", "expired", "replayed"] {
        let prefix = format!("oxtree_agent_graph_rejected_total{{reason=\"{reason}\"}} ");
        let n: u64 = m
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!(n >= 1, "{reason}: {m}");
    }
    let text = ox(&["agent", &f.cd(), "status"]);
    assert!(
        text.contains("Last error: update graph") && text.contains("expired"),
        "{text}"
    );
    // A good, newer graph: the update is staged.
    f.sign_graph();
    ox(&["agent", &f.cd(), "check-now"]);
    f.wait_for("rebooting", |_| true);
    assert!(f.staged().is_some());
}

#[test]
fn etcd_down_means_no_reboot() {
    let tmp = tempdir();
    let mut etcd = Etcd::start(&tmp.path().join("etcd"));
    let fl = FleetLockServer::start(
        &tmp.path().join("fl"),
        &etcd.url,
        "[lock]\ndefault_group_name = \"default\"\ndefault_slots = 1\n",
    );
    let mut f = Fleet::new(&fleet_lock_config(&fl.url, false));
    f.release("2.0", false);
    etcd.stop();
    f.start(None);
    let st = f.wait_for("waiting", |st| st["detail"]["gate"] == "fleet_lock");
    assert!(
        st["detail"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("500"),
        "{st}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(f.reboots(), 0, "rebooted without the lock");
    assert!(f
        .metrics()
        .contains("oxtree_agent_reboot_blocked_total{gate=\"fleet_lock\"}"));
    etcd.restart();
    f.wait_for("rebooting", |_| true);
    assert_eq!(holders(&etcd), [NODE]);
}

#[test]
fn preflight_hooks_hold_and_skip() {
    let mut f = Fleet::new("");
    let v2 = f.release("2.0", false);
    // Not enough room in the repository: nothing staged, retried with back-off.
    let big = f.conf.join("20-tight.toml");
    std::fs::write(&big, "[preflight]\nmin_free_repo_mib = 1000000000\n").expect("write");
    f.start(None);
    let st = f.wait_for("available", |st| {
        st["detail"]["attempts"].as_u64() >= Some(2)
    });
    assert!(
        st["detail"]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("min_free_repo_mib"),
        "{st}"
    );
    assert_eq!(f.staged(), None);
    // One agent at a time.
    let (_, e) = ox_fail(&["agent", &f.cd(), "run"]);
    assert!(e.contains("another oxtree agent is running"), "{e}");
    f.kill9();
    std::fs::remove_file(&big).expect("rm");
    // A pre-reboot hook asks to retry later twice, then lets the reboot go.
    let hooks = f.t().join("hooks/pre-reboot.d");
    std::fs::create_dir_all(&hooks).expect("mkdir");
    let count = f.t().join("hook-count");
    write(
        &hooks.join("10-busy"),
        format!(
            "#!/bin/sh\necho x >> {c}\n[ $(wc -l < {c}) -ge 3 ] && exit 0\nexit 21\n",
            c = s(&count)
        )
        .as_bytes(),
        0o755,
    );
    // A hold in the future comes first.
    ox(&["agent", &f.cd(), "hold", "--until=1 hour"]);
    f.start(None);
    let st = f.wait_for("held", |_| true);
    assert!(
        st["detail"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("held until"),
        "{st}"
    );
    assert_eq!(
        f.staged().as_deref(),
        Some(v2.as_str()),
        "staging does not wait for the hold"
    );
    assert!(std::fs::read_to_string(f.t().join("motd"))
        .unwrap_or_default()
        .contains("2.0"));
    ox(&["agent", &f.cd(), "hold", "--clear"]);
    f.wait_for("rebooting", |st| st["detail"]["issued_at"].is_number());
    let runs = std::fs::read_to_string(&count)
        .expect("count")
        .lines()
        .count();
    assert_eq!(runs, 3, "21, 21, then 0");
    assert_eq!(f.reboots(), 1);
    // After the reboot into 2.0, 3.0 is skipped by the operator; a pre-stage hook aborts 4.0.
    f.reboot(2, false);
    ox(&["agent", &f.cd(), "skip", "3.0"]);
    f.release("3.0", false);
    f.start(None);
    f.wait_for("steady", |st| {
        st["booted_version"] == "2.0" && st["last_check"].is_number()
    });
    assert_eq!(f.staged(), None, "skipped release staged");
    f.kill9();
    let pre = f.t().join("hooks/pre-stage.d");
    std::fs::create_dir_all(&pre).expect("mkdir");
    write(&pre.join("10-no"), b"#!/bin/sh\nexit 1\n", 0o755);
    f.release("4.0", false);
    f.start(None);
    let st = f.wait_for("steady", |st| {
        st["aborted"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == "4.0"))
    });
    assert!(
        st["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("aborted"),
        "{st}"
    );
    assert_eq!(f.staged(), None);
}

#[test]
fn config_drop_ins_mask_warn_and_dump() {
    let f = Fleet::new("");
    let etc = f.t().join("etc.d");
    let run = f.t().join("run.d");
    std::fs::create_dir_all(&etc).expect("mkdir");
    std::fs::create_dir_all(&run).expect("mkdir");
    std::fs::write(etc.join("50-strategy.toml"), "[updates]\nstrategy = \"periodic\"\n[[updates.periodic.window]]\ndays = [\"Sat\"]\nstart_time = \"02:00\"\nlength_minutes = 60\n").expect("write");
    std::fs::write(run.join("60-more.toml"), "[[updates.periodic.window]]\ndays = [\"Sun\"]\nstart_time = \"03:00\"\nlength_minutes = 30\n[identity]\ngroup = \"workers\"\n").expect("write");
    // A .yaml drop-in is not read, and says so loudly.
    std::fs::write(
        etc.join("70-oops.yaml"),
        "updates:\n  strategy: immediate\n",
    )
    .expect("write");
    // /run masks /etc's 80-masked.toml.
    std::fs::write(etc.join("80-masked.toml"), "[updates]\nenabled = false\n").expect("write");
    std::os::unix::fs::symlink("/dev/null", run.join("80-masked.toml")).expect("symlink");
    let dirs = [
        format!("--config-dir={}", s(&f.conf)),
        format!("--config-dir={}", s(&etc)),
        format!("--config-dir={}", s(&run)),
    ];
    let o = run_raw(
        &oxtree_bin(),
        &["agent", &dirs[0], &dirs[1], &dirs[2], "config", "--dump"],
    );
    assert!(o.status.success(), "{o:?}");
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("70-oops.yaml") && err.contains("not a *.toml file"),
        "{err}"
    );
    assert!(
        out.contains(&format!(
            "updates.strategy = \"periodic\"    # {}",
            s(&etc.join("50-strategy.toml"))
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "updates.periodic.window[1].days = [\"Sun\"]    # {}",
            s(&run.join("60-more.toml"))
        )),
        "{out}"
    );
    assert!(
        out.contains("updates.enabled = true    # default"),
        "masked file applied: {out}"
    );
    assert!(out.contains("# masked"), "{out}");
    assert!(
        out.contains(&format!(
            "identity.group = \"workers\"    # {}",
            s(&run.join("60-more.toml"))
        )),
        "{out}"
    );
    // The warning also shows in status.
    let st = run_ok(
        &oxtree_bin(),
        &["agent", &dirs[0], &dirs[1], &dirs[2], "status"],
    );
    assert!(
        st.contains("Config warning") && st.contains("70-oops.yaml"),
        "{st}"
    );
    // A bad key names its file.
    std::fs::write(
        run.join("90-typo.toml"),
        "[updates]\nstrategyy = \"immediate\"\n",
    )
    .expect("write");
    let (_, e) = ox_fail(&["agent", &dirs[0], &dirs[1], &dirs[2], "config"]);
    assert!(e.contains("90-typo.toml") && e.contains("strategyy"), "{e}");
}

/// A Cincinnati graph is unsigned: whatever it offers, the agent stages only a commit made
/// for the stream the machine follows (its ref binding) and no older than the booted one
/// (as `admin upgrade`), and says why it refused. A newer release of the stream is staged.
#[test]
fn an_unsigned_cincinnati_graph_cannot_move_the_machine_back_or_to_another_stream() {
    let mut f = Fleet::new("");
    let sv = format!("--repo={}", s(&f.srv));
    let booted = oxtree::sysroot::Sysroot::new(&f.sysroot)
        .deployments()
        .expect("deployments")[0]
        .checksum
        .to_hex();
    let signed = format!("--sign={}", f.secret);
    // Validly signed, but older than the booted 1.0 (and bound to no ref).
    let old = ox(&[
        "commit",
        &sv,
        "--orphan",
        "--no-bindings",
        "--timestamp=2000-01-01T00:00:00Z",
        "--add-metadata-string=version=0.9",
        &signed,
        s(&f.tree),
    ]);
    // Validly signed and newer, but made for another stream.
    let other = ox(&[
        "commit",
        &sv,
        "-b",
        "testos/devel",
        "--add-metadata-string=version=9.9",
        &signed,
        s(&f.tree),
    ]);
    let cin = f.srv.join("graph/cin/v1/graph");
    std::fs::create_dir_all(cin.parent().expect("parent")).expect("mkdir");
    let offer = |version: &str, payload: &str| {
        let node = |v: &str, p: &str, age: u32| {
            serde_json::json!({"version": v, "payload": p, "metadata": {
                "org.fedoraproject.coreos.releases.age_index": age.to_string(),
                "org.fedoraproject.coreos.scheme": "checksum"}})
        };
        let g = serde_json::json!({
            "nodes": [node("1.0", &booted, 0), node(version, payload, 1)],
            "edges": [[0, 1]]
        });
        std::fs::write(&cin, g.to_string()).expect("write graph");
    };
    std::fs::write(
        f.conf.join("30-cincinnati.toml"),
        format!(
            "[agent]\nsteady_interval_secs = 3600\nmax_attempts = 1\n\n[cincinnati]\nbase_url = \"{}/graph/cin\"\n",
            f.server.url
        ),
    )
    .expect("write");
    let refused = |f: &Fleet, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let st = f.status();
            if st["last_error"].as_str().is_some_and(|e| e.contains(what)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no refusal ({what}): {st:#}\n{}",
                f.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(f.staged(), None, "{what}: staged anyway");
    };
    offer("0.9", &old);
    f.start(None);
    refused(&f, "chronologically older");
    offer("9.9", &other);
    ox(&["agent", &f.cd(), "check-now"]);
    refused(&f, "ref binding");
    let rr = oxtree::sysroot::Sysroot::new(&f.sysroot)
        .repo()
        .expect("repo")
        .resolve_rev(&format!("origin:{STREAM}"))
        .expect("remote ref")
        .to_hex();
    assert_eq!(rr, booted, "the remote-tracking ref was moved");
    // The stream's own next release goes through.
    let v2 = f.release("2.0", false);
    offer("2.0", &v2);
    ox(&["agent", &f.cd(), "check-now"]);
    f.wait_for("rebooting", |_| true);
    assert_eq!(f.staged().as_deref(), Some(v2.as_str()));
}

/// A key listed in ostree's revocation list (revoked.ed25519) counts for nothing in the
/// agent either, as in a pull: a graph signed only by it is refused (it could offer an old
/// release as the newest, or a serial so high that every later graph looks replayed), and
/// so would be a commit. Nothing is staged.
#[test]
fn a_revoked_key_signs_no_graph_the_agent_accepts() {
    let mut f = Fleet::new("");
    let keys = f.t().join("system-keys");
    write(
        &keys.join("revoked.ed25519"),
        format!("{}\n", f.public()).as_bytes(),
        0o644,
    );
    f.release("2.0", false);
    f.start_with_system_keys(&keys);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = f.status();
        if st["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("update graph") && e.contains("refused"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not refused: {st:#}\n{}",
            f.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(f.staged(), None);
    assert!(f.status()["graph_seen"].get(STREAM).is_none());
}
