use super::boot::warn_finalize_failure;
use crate::cmd::Global;
use crate::output::json_str;
use anyhow::Result;
use clap::Args;
use oxtree::object::Checksum;

/// List deployments: the default first, with their version and origin.
#[derive(Args)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn status(g: &Global, a: StatusArgs) -> Result<()> {
    let StatusArgs { json } = a;
    let sr = g.sysroot();
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
    Ok(())
}
