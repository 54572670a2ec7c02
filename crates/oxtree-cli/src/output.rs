//! Output helpers shared by the commands: sizes as GLib prints them, JSON strings.

pub fn human_size(b: u64) -> String {
    const UNITS: [&str; 7] = ["bytes", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if b == 1 {
        "1 byte".to_string()
    } else if u == 0 {
        format!("{b} bytes")
    } else {
        // GLib puts a no-break space between the number and a unit (but not before "bytes").
        format!("{v:.1}\u{a0}{}", UNITS[u])
    }
}

pub fn json_str(s: &str) -> String {
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

/// Print `v` as one line of JSON on stdout (`--json`).
pub fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(v)?);
    Ok(())
}

/// An I/O error as C's `strerror` words it ("No such file or directory"), for messages
/// that quote ostree's (GLib prints errno texts without Rust's " (os error N)").
pub fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s,
    }
}
