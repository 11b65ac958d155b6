//! Output files that must not be inputs: `convert x.log -o x.log` would truncate its own input
//! (and `ship` replaying its dead-letter file would append to the file it reads). The check
//! compares device and inode, so a hard link, a symbolic link or another spelling of the path
//! is caught too, also when the input is a file inside an input directory.

use crate::source::Input;
use std::collections::HashSet;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Directory levels searched below an input directory (a directory of build directories,
/// each with its `json/`, is three deep).
const MAX_DEPTH: usize = 8;

/// The input `output` is, if it is one: `Some(path of that input file)`.
pub fn output_is_input(output: &Path, inputs: &[Input]) -> Option<PathBuf> {
    let out = std::fs::metadata(output).ok()?;
    let key = (out.dev(), out.ino());
    for i in inputs {
        let Input::Path(p) = i else { continue };
        let Ok(m) = std::fs::metadata(p) else {
            continue;
        };
        if (m.dev(), m.ino()) == key {
            return Some(p.clone());
        }
        if m.is_dir() {
            let mut seen = HashSet::new();
            if let Some(f) = find_inode(p, key, 0, &mut seen) {
                return Some(f);
            }
        }
    }
    None
}

/// `output` inside one of the input directories (whether or not it exists yet): for
/// `--follow`, which would read what it writes.
pub fn output_inside_input_dir(output: &Path, inputs: &[Input]) -> Option<PathBuf> {
    let parent = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let parent = parent.canonicalize().ok()?;
    inputs.iter().find_map(|i| match i {
        Input::Path(p) if p.is_dir() => {
            let d = p.canonicalize().ok()?;
            parent.starts_with(&d).then(|| p.clone())
        }
        _ => None,
    })
}

fn find_inode(
    dir: &Path,
    key: (u64, u64),
    depth: usize,
    seen: &mut HashSet<(u64, u64)>,
) -> Option<PathBuf> {
    let m = std::fs::metadata(dir).ok()?;
    if depth > MAX_DEPTH || !seen.insert((m.dev(), m.ino())) {
        return None;
    }
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let path = e.path();
        let Ok(m) = std::fs::metadata(&path) else {
            continue;
        };
        if (m.dev(), m.ino()) == key {
            return Some(path);
        }
        if m.is_dir() {
            if let Some(f) = find_inode(&path, key, depth + 1, seen) {
                return Some(f);
            }
        }
    }
    None
}

/// A file written under a temporary name in its directory and renamed over `path` by
/// [`commit`](Self::commit): readers never see it half written, and a failed run leaves
/// what was at `path` untouched. Dropped without commit, the temporary file is removed.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<std::fs::File>,
}

impl AtomicFile {
    pub fn create(path: &Path) -> io::Result<AtomicFile> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "output".into());
        let mut n = 0u32;
        loop {
            let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
            {
                Ok(file) => {
                    // The new file keeps the permissions of the one it replaces.
                    if let Ok(m) = std::fs::metadata(path) {
                        let _ = file.set_permissions(m.permissions());
                    }
                    return Ok(AtomicFile {
                        path: path.to_path_buf(),
                        tmp,
                        file: Some(file),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 100 => n += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// The file being written (under its temporary name).
    pub fn file_mut(&mut self) -> &mut std::fs::File {
        self.file.as_mut().expect("not committed")
    }

    /// Flushes to disk and renames over the target.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self.file.take().expect("committed once");
        file.sync_all()?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_mut().expect("not committed").write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.as_mut().expect("not committed").write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("not committed").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_input_by_inode_through_links_and_directories() {
        let d = tempfile::tempdir().unwrap();
        let build = d.path().join("b");
        std::fs::create_dir_all(build.join("json")).unwrap();
        let log = build.join("json/x.jsonl");
        std::fs::write(&log, "{}").unwrap();
        let hard = d.path().join("hard");
        std::fs::hard_link(&log, &hard).unwrap();
        let inputs = [Input::Path(d.path().join("b"))];
        assert_eq!(output_is_input(&hard, &inputs), Some(log.clone()));
        assert_eq!(output_is_input(&d.path().join("new"), &inputs), None);
        let other = d.path().join("other");
        std::fs::write(&other, "x").unwrap();
        assert_eq!(output_is_input(&other, &inputs), None);
        // A directory that links to itself is searched once.
        std::os::unix::fs::symlink(".", build.join("self")).unwrap();
        assert_eq!(output_is_input(&other, &inputs), None);
    }

    #[test]
    fn atomic_file_replaces_on_commit_and_leaves_nothing_on_drop() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("out.jsonl");
        std::fs::write(&p, "old").unwrap();
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"half").unwrap();
        drop(f);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"new").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
