//! Metalink remotes (`url=metalink=URL`): an XML document (Metalink 3.0) names the
//! summary's size, its SHA-256 or SHA-512 digest and the URLs it can be fetched from. The
//! first URL that serves a summary of that size and digest is the repository (the URL
//! without its last component), and that summary, already verified, is the one the pull
//! uses. Texts are ostree's (`ostree-metalink.c`).
//!
//! Why roxmltree: a small, dependency-free, read-only XML parser; the document is a few
//! kilobytes and only read.

use crate::error::{Error, Result};
use sha2::Digest;

/// What a metalink document says about the file it describes.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Metalink {
    pub size: Option<u64>,
    /// Lowercase hex digests.
    pub sha256: Option<String>,
    pub sha512: Option<String>,
    /// By preference, highest first (document order among equals).
    pub urls: Vec<String>,
}

/// Parse a metalink document for the file `name` (ostree asks for `summary`).
pub(crate) fn parse(text: &str, name: &str) -> Result<Metalink> {
    // GLib's markup parser refuses a document not starting with an element (after the
    // XML declaration); its words.
    let body = text.trim_start();
    let body = match body.strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").map_or("", |(_, r)| r).trim_start(),
        None => body,
    };
    if !body.starts_with('<') {
        return Err(Error::Other(
            "Document must begin with an element (e.g. <book>)".into(),
        ));
    }
    // The parser recurses per level: a hostile document thousands of elements deep would
    // overflow the stack. A metalink is five deep.
    if nesting_depth(text) > MAX_DEPTH {
        return Err(Error::Other(format!(
            "metalink: elements nested more than {MAX_DEPTH} deep"
        )));
    }
    let doc =
        roxmltree::Document::parse(text).map_err(|e| Error::Other(format!("metalink: {e}")))?;
    let mut out = Metalink::default();
    let mut urls: Vec<(i64, String)> = Vec::new();
    let root = doc.root_element();
    let files = root
        .children()
        .filter(|n| n.has_tag_name_local("files"))
        .flat_map(|f| f.children())
        .filter(|n| n.has_tag_name_local("file") && n.attribute("name") == Some(name));
    for file in files {
        for part in file.children().filter(roxmltree::Node::is_element) {
            match part.tag_name().name() {
                "size" => {
                    let t = part.text().unwrap_or("").trim();
                    out.size = Some(
                        t.parse()
                            .map_err(|_| Error::Other(format!("Invalid metalink size '{t}'")))?,
                    );
                }
                "verification" => {
                    for h in part.children().filter(|n| n.has_tag_name_local("hash")) {
                        let ty = h.attribute("type").unwrap_or("");
                        let len = match ty {
                            "sha256" => 64,
                            "sha512" => 128,
                            _ => continue,
                        };
                        let v = h.text().unwrap_or("").trim().to_ascii_lowercase();
                        if v.len() != len || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                            return Err(Error::Other(format!("Invalid hash digest for {ty}")));
                        }
                        if ty == "sha256" {
                            out.sha256 = Some(v);
                        } else {
                            out.sha512 = Some(v);
                        }
                    }
                }
                "resources" => {
                    for u in part.children().filter(|n| n.has_tag_name_local("url")) {
                        let proto = u.attribute("protocol").unwrap_or("http");
                        if proto != "http" && proto != "https" {
                            continue;
                        }
                        let pref = u
                            .attribute("preference")
                            .and_then(|p| p.trim().parse().ok())
                            .unwrap_or(0);
                        let url = u.text().unwrap_or("").trim().to_string();
                        if !url.is_empty() {
                            urls.push((pref, url));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    if out.sha256.is_none() && out.sha512.is_none() {
        return Err(Error::Other(
            "No <verification> with known <hash type=> found".into(),
        ));
    }
    if urls.is_empty() {
        return Err(Error::Other("No <url method=> elements found".into()));
    }
    urls.sort_by_key(|(p, _)| std::cmp::Reverse(*p));
    out.urls = urls.into_iter().map(|(_, u)| u).collect();
    Ok(out)
}

/// Deeper than any metalink needs.
const MAX_DEPTH: usize = 64;

/// How deep elements nest in `text`, by a scan of its tags (`<x>` in, `</x>` out, `<x/>`,
/// `<?…?>` and `<!…>` neither); quoted `>` inside a tag may be miscounted, which only makes a
/// document count as deeper.
fn nesting_depth(text: &str) -> usize {
    let b = text.as_bytes();
    let (mut depth, mut max, mut i) = (0usize, 0usize, 0usize);
    while let Some(off) = b[i..].iter().position(|&c| c == b'<') {
        let start = i + off + 1;
        let end = b[start..]
            .iter()
            .position(|&c| c == b'>')
            .map_or(b.len(), |e| start + e);
        match b.get(start) {
            Some(b'/') => depth = depth.saturating_sub(1),
            Some(b'?' | b'!') => {}
            Some(_) if end > start && b[end - 1] == b'/' => {}
            Some(_) => {
                depth += 1;
                max = max.max(depth);
            }
            None => {}
        }
        i = end.min(b.len());
        if i >= b.len() {
            break;
        }
    }
    max
}

impl Metalink {
    /// Whether `data` is the file the document describes: ostree's checks and words.
    pub(crate) fn check(&self, data: &[u8]) -> std::result::Result<(), String> {
        if let Some(size) = self.size {
            if data.len() as u64 != size {
                return Err(format!(
                    "Expected size is {size} bytes but content is {} bytes",
                    data.len()
                ));
            }
        }
        let (want, got) = match (&self.sha512, &self.sha256) {
            (Some(w), _) => (w, hex(&sha2::Sha512::digest(data))),
            (None, Some(w)) => (w, hex(&sha2::Sha256::digest(data))),
            (None, None) => return Ok(()),
        };
        if *want != got {
            return Err(format!("Expected checksum is {want} but actual is {got}"));
        }
        Ok(())
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

trait TagName {
    fn has_tag_name_local(&self, name: &str) -> bool;
}

impl TagName for roxmltree::Node<'_, '_> {
    fn has_tag_name_local(&self, name: &str) -> bool {
        self.is_element() && self.tag_name().name() == name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<metalink version="3.0" xmlns="http://www.metalinker.org/">
  <deeply><nested>x</nested></deeply>
  <files>
    <file name="other"><verification><hash type="sha256">00</hash></verification></file>
    <file name="summary">
      <size>3</size>
      <verification>
        <hash type="md5">whatever</hash>
        <hash type="sha256">ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad</hash>
      </verification>
      <resources maxconnections="1">
        <url protocol="http" preference="98">http://c/summary</url>
        <url protocol="ftp" preference="100">ftp://x/summary</url>
        <url protocol="http" preference="100">http://a/summary</url>
      </resources>
    </file>
  </files>
</metalink>"#;

    #[test]
    fn parses_and_checks() {
        let m = parse(DOC, "summary").expect("parse");
        assert_eq!(m.size, Some(3));
        assert_eq!(m.urls, vec!["http://a/summary", "http://c/summary"]);
        assert_eq!(m.check(b"abc"), Ok(()));
        assert!(m
            .check(b"abcd")
            .expect_err("refused")
            .contains("content is 4 bytes"));
        let mut m2 = m;
        m2.size = None;
        assert!(m2
            .check(b"abd")
            .expect_err("refused")
            .starts_with("Expected checksum is ba78"));
    }

    #[test]
    fn refusals_in_ostree_words() {
        let e = |t: &str| parse(t, "summary").expect_err("refused").to_string();
        assert_eq!(
            e("bacon\n"),
            "Document must begin with an element (e.g. <book>)"
        );
        assert!(e(&DOC.replace("ba7816bf", "zz")).contains("Invalid hash digest for sha256"));
        assert!(e(&DOC.replace("sha256", "sha1")).contains("No <verification> with known"));
        let no_urls: String = DOC.lines().filter(|l| !l.contains("<url")).collect();
        assert!(e(&no_urls).contains("No <url method=> elements found"));
        assert!(e("<metalink><files><file name=\"summary\">").starts_with("metalink:"));
    }

    /// A hostile document: deep nesting and entity expansion end in an error, not a
    /// crash or a blow-up.
    #[test]
    fn hostile_documents() {
        let deep = format!(
            "<metalink>{}{}</metalink>",
            "<a>".repeat(200_000),
            "</a>".repeat(200_000)
        );
        assert!(parse(&deep, "summary").is_err());
        let laughs = r#"<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;"><!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;">]><metalink>&g;</metalink>"#;
        assert!(parse(laughs, "summary").is_err());
    }
}
