//! Strict extraction of a files-engine tarball into a (private, empty)
//! folder: every entry lands inside it, or the whole extraction fails.
//!
//! `tar`'s own `unpack` skips an entry whose path holds `..` without a
//! word, strips a leading `/`, and recreates FIFOs and device nodes. A
//! restore must not: an entry that would land outside the folder (`..`,
//! an absolute path, a path through a symlink the archive made) and a
//! special file (FIFO, character or block device) fail the extraction,
//! naming the entry, and the caller restores nothing.

use std::io::Read;
use std::path::{Component, Path};

use anyhow::{bail, Context};
use tar::EntryType;

/// Extracts the tar stream `reader` into the folder `dst`; `what` names
/// the archive in errors.
pub fn unpack_strict(reader: impl Read, dst: &Path, what: &str) -> anyhow::Result<()> {
    let dst = dst
        .canonicalize()
        .with_context(|| format!("open {}", dst.display()))?;
    let mut archive = tar::Archive::new(reader);
    // Folders last, deepest first, as `tar` does, so a read-only folder
    // does not block its own content.
    let mut folders = Vec::new();
    for entry in archive
        .entries()
        .with_context(|| format!("read the tar {what}"))?
    {
        let mut entry = entry.with_context(|| format!("read the tar {what}"))?;
        let name = entry.path()?.into_owned();
        let kind = entry.header().entry_type();
        check_entry(&name, kind).with_context(|| format!("{what}: entry {}", name.display()))?;
        if kind.is_pax_global_extensions() {
            continue;
        }
        if kind.is_dir() {
            folders.push(entry);
            continue;
        }
        unpack_one(&mut entry, &dst, what)?;
    }
    folders.sort_by(|a, b| b.path_bytes().cmp(&a.path_bytes()));
    for mut entry in folders {
        unpack_one(&mut entry, &dst, what)?;
    }
    Ok(())
}

/// Refuses an entry whose path leaves the folder or whose kind is not a
/// file, folder or link.
fn check_entry(name: &Path, kind: EntryType) -> anyhow::Result<()> {
    if name
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        bail!("the path leaves the target folder (`..` or absolute); refusing the archive");
    }
    let special = match kind {
        EntryType::Fifo => Some("a FIFO"),
        EntryType::Char => Some("a character device"),
        EntryType::Block => Some("a block device"),
        EntryType::Regular
        | EntryType::Continuous
        | EntryType::GNUSparse
        | EntryType::Directory
        | EntryType::Symlink
        | EntryType::Link
        | EntryType::XGlobalHeader => None,
        _ => Some("an entry of an unknown kind"),
    };
    if let Some(kind) = special {
        bail!("{kind}; a restore creates only files, folders and links");
    }
    Ok(())
}

fn unpack_one<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    dst: &Path,
    what: &str,
) -> anyhow::Result<()> {
    let name = entry.path()?.into_owned();
    let inside = entry
        .unpack_in(dst)
        .with_context(|| format!("{what}: extract {}", name.display()))?;
    if !inside {
        bail!(
            "{what}: entry {} would land outside the target folder; refusing the archive",
            name.display()
        );
    }
    Ok(())
}
