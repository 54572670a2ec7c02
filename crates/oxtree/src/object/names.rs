//! Name validation: file names inside dirtrees (`ot_util_filename_validate`), ref names
//! (`OSTREE_REF_REGEXP`), remote names and collection IDs.

/// A dirtree entry name must be a single, safe path component.
pub fn validate_filename(name: &str) -> Result<(), String> {
    // ostree's words (ot_util_filename_validate), which its tests and scripts match.
    if name.is_empty() {
        return Err("Invalid empty filename".into());
    }
    if name == "." {
        return Err("Invalid self-referential filename '.'".into());
    }
    if name == ".." {
        return Err("Invalid path uplink filename '..'".into());
    }
    if name.contains('/') {
        return Err(format!("Invalid / in filename {name}"));
    }
    if name.contains('\0') {
        return Err(format!(
            "Invalid NUL in filename {}",
            name.replace('\0', "\\0")
        ));
    }
    Ok(())
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `[\w\d][-._\w\d]*` components joined by `/`.
pub fn validate_ref(r: &str) -> Result<(), String> {
    let ok = !r.is_empty()
        && r.split('/').all(|comp| {
            let mut cs = comp.chars();
            matches!(cs.next(), Some(c) if is_word(c))
                && cs.all(|c| is_word(c) || c == '-' || c == '.')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("invalid ref name {r:?}"))
    }
}

/// A remote name is one ref component.
pub fn validate_remote_name(r: &str) -> Result<(), String> {
    if !r.contains('/') && validate_ref(r).is_ok() {
        Ok(())
    } else {
        Err(format!("invalid remote name {r:?}"))
    }
}

/// A collection ID (`ostree_validate_collection_id`): a D-Bus interface name, i.e. at least
/// two `.`-separated elements of `[A-Za-z_][A-Za-z0-9_]*`, 255 bytes at most. The error is
/// ostree's text.
pub fn validate_collection_id(id: &str) -> Result<(), String> {
    let elem_ok = |e: &str| {
        let mut cs = e.chars();
        matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let elems: Vec<&str> = id.split('.').collect();
    if id.len() <= 255 && elems.len() >= 2 && elems.iter().all(|e| elem_ok(e)) {
        Ok(())
    } else {
        Err(format!("Invalid collection ID {id}"))
    }
}
