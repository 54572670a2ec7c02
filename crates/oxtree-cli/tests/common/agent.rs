//! Helpers for the update agent's and FleetLock's tests: a private etcd (Debian's
//! `etcd-server`, the real thing) on free loopback ports, `oxtree fleetlock serve` in
//! front of it, and raw HTTP requests. Included with `#[path]` by the test files that
//! need it.
#![allow(dead_code)]

use super::common::{free_port, oxtree_bin, s};
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private etcd: its own data dir, client and peer ports on 127.0.0.1; stopped on drop.
pub struct Etcd {
    child: Option<Child>,
    pub dir: PathBuf,
    pub client_port: u16,
    peer_port: u16,
    pub url: String,
}

pub fn require_etcd() {
    let ok = Command::new("etcd")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "etcd is not installed: the README's test command installs it (apt-get install -y etcd-server etcd-client)"
    );
}

impl Etcd {
    pub fn start(dir: &Path) -> Etcd {
        require_etcd();
        let mut e = Etcd {
            child: None,
            dir: dir.to_path_buf(),
            client_port: free_port(),
            peer_port: free_port(),
            url: String::new(),
        };
        e.url = format!("http://127.0.0.1:{}", e.client_port);
        e.restart();
        e
    }

    /// Start (again, on the same ports and data) after `stop`.
    pub fn restart(&mut self) {
        std::fs::create_dir_all(&self.dir).expect("mkdir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("etcd.log"))
            .expect("log");
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new("etcd")
            .args([
                "--name",
                "oxtree-test",
                "--data-dir",
                s(&self.dir.join("data")),
                "--listen-client-urls",
                &self.url,
                "--advertise-client-urls",
                &self.url,
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
                "--initial-cluster",
                &format!("oxtree-test={peer}"),
            ])
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = http(&self.url, "POST", "/v3/kv/range", &[], br#"{"key":"AA=="}"#)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not start: {}",
                std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    pub fn etcdctl(&self, args: &[&str]) -> String {
        let o = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.url))
            .args(args)
            .output()
            .expect("etcdctl (apt-get install -y etcd-client)");
        assert!(
            o.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `oxtree fleetlock serve --config FILE` on a free port; killed on drop.
pub struct FleetLockServer {
    child: Child,
    pub url: String,
    pub config: PathBuf,
}

impl FleetLockServer {
    pub fn start(dir: &Path, etcd_url: &str, groups: &str) -> FleetLockServer {
        std::fs::create_dir_all(dir).expect("mkdir");
        let config = dir.join("airlock.toml");
        std::fs::write(
            &config,
            format!(
                "# airlock's config format\n[service]\naddress = \"127.0.0.1\"\nport = 0\ntls = false\n\n\
                 [status]\nenabled = false\n\n[etcd3]\nendpoints = [ \"{etcd_url}\" ]\ntransaction_timeout_ms = 3000\n\n{groups}"
            ),
        )
        .expect("write config");
        let mut child = Command::new(oxtree_bin())
            .args(["fleetlock", "serve", "--config", s(&config)])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn fleetlock serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(u) = line.split("listening on ").nth(1) {
                    let _ = tx.send(u.trim().to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("fleetlock serve did not start");
        FleetLockServer { child, url, config }
    }
}

impl Drop for FleetLockServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request over a fresh connection: (status, body).
pub fn http(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let hostport = base.trim_start_matches("http://").trim_end_matches('/');
    let mut c = std::net::TcpStream::connect(hostport)?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    c.write_all(req.as_bytes())?;
    c.write_all(body)?;
    let mut resp = Vec::new();
    c.read_to_end(&mut resp)?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    // Chunked bodies (axum without a length): keep only the JSON part.
    let body = match (body.find('{'), body.rfind('}')) {
        (Some(a), Some(b)) if b >= a => body[a..=b].to_string(),
        _ => body,
    };
    Ok((status, body))
}
