//! Files that hold secrets (the token signing key, the field keyring): readable by the
//! service's user only, and never seen half-written.

use std::io::Write;
use std::path::Path;

/// Writes `contents` under a temporary name beside `path` (mode 0600) and syncs it.
fn write_temporary(path: &Path, contents: &[u8]) -> std::io::Result<std::path::PathBuf> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("secret");
    let temporary = path.with_file_name(format!(".{name}.{}", uuid::Uuid::now_v7().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temporary).and_then(|mut out| {
        out.write_all(contents)?;
        out.sync_all()
    });
    match written {
        Ok(()) => Ok(temporary),
        Err(error) => {
            let _ = std::fs::remove_file(&temporary);
            Err(error)
        }
    }
}

/// Makes the new name survive a crash.
fn sync_directory(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(dir) = std::fs::File::open(dir)
    {
        let _ = dir.sync_all();
    }
}

/// Creates `path` holding `contents` unless it exists; says whether it was created. Of two
/// processes creating it at once, one wins and the other finds the winner's file: the file is
/// hard-linked into place, which fails when the name is taken.
pub(crate) fn create(path: &Path, contents: &[u8]) -> std::io::Result<bool> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let temporary = write_temporary(path, contents)?;
    let linked = std::fs::hard_link(&temporary, path);
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => {
            sync_directory(path);
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Replaces `path` with `contents` atomically: readers see the old file or the new one.
pub(crate) fn replace(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let temporary = write_temporary(path, contents)?;
    let renamed = std::fs::rename(&temporary, path);
    if renamed.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    renamed?;
    sync_directory(path);
    Ok(())
}
