//! Code packages: a directory zipped in memory, or a ready-made `.zip`.
//!
//! The zip of a directory is deterministic: entries in byte order of their
//! relative paths, `/`-separated, a fixed timestamp (1980-01-01), and modes
//! normalised to 0755 (executable by anyone before) or 0644, so the same tree
//! gives the same bytes — and so the same `codeSha256` — on every machine.
//! The executable bit is kept so that a `bootstrap` stays runnable.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::error::CliError;

/// Directory names never packaged.
const SKIPPED_DIRS: [&str; 1] = [".git"];

const MODE_EXEC: u32 = 0o755;
const MODE_FILE: u32 = 0o644;
const MODE_DIR: u32 = 0o755;

/// The zip bytes for `path`: a directory is zipped, a `.zip` file is read
/// and checked to be a readable zip. Anything else is a usage error.
pub fn load(path: &Path) -> Result<Vec<u8>, CliError> {
    let meta = fs::metadata(path).map_err(|e| {
        CliError::usage(format!("cannot read {}: {}", path.display(), io_reason(&e)))
    })?;
    if meta.is_dir() {
        return zip_dir(path);
    }
    if !meta.is_file() || !has_zip_extension(path) {
        return Err(CliError::usage(format!(
            "{} is neither a directory nor a .zip file",
            path.display()
        )));
    }
    let bytes = fs::read(path).map_err(|e| {
        CliError::usage(format!("cannot read {}: {}", path.display(), io_reason(&e)))
    })?;
    zip::ZipArchive::new(Cursor::new(&bytes))
        .map_err(|e| CliError::usage(format!("{} is not a valid zip file: {e}", path.display())))?;
    Ok(bytes)
}

/// The default function name for a code path: the directory's name, or the
/// zip file's name without `.zip`.
pub fn default_name(path: &Path) -> Result<String, CliError> {
    let abs = fs::canonicalize(path).map_err(|e| {
        CliError::usage(format!("cannot read {}: {}", path.display(), io_reason(&e)))
    })?;
    let name = if abs.is_dir() {
        abs.file_name()
    } else {
        abs.file_stem()
    };
    name.and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| {
            CliError::usage(format!(
                "cannot derive a function name from {}; pass --name",
                path.display()
            ))
        })
}

fn has_zip_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        _ => e.to_string(),
    }
}

/// One thing to put in the zip.
enum Entry {
    Dir,
    File { source: PathBuf, executable: bool },
}

/// Zips the contents of `dir` (not `dir` itself) in memory.
pub fn zip_dir(dir: &Path) -> Result<Vec<u8>, CliError> {
    let mut entries = BTreeMap::new();
    let root = fs::canonicalize(dir).map_err(|e| {
        CliError::usage(format!("cannot read {}: {}", dir.display(), io_reason(&e)))
    })?;
    let mut stack = vec![root.clone()];
    collect(&root, "", &mut stack, &mut entries)?;
    if !entries.values().any(|e| matches!(e, Entry::File { .. })) {
        return Err(CliError::usage(format!(
            "{} holds no files to package",
            dir.display()
        )));
    }

    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let base = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(DateTime::default());
    for (name, entry) in &entries {
        let fail = |e: &dyn std::fmt::Display| CliError::usage(format!("cannot zip {name}: {e}"));
        match entry {
            Entry::Dir => zip
                .add_directory(name.as_str(), base.unix_permissions(MODE_DIR))
                .map_err(|e| fail(&e))?,
            Entry::File { source, executable } => {
                let mode = if *executable { MODE_EXEC } else { MODE_FILE };
                let data = fs::read(source).map_err(|e| {
                    CliError::usage(format!(
                        "cannot read {}: {}",
                        source.display(),
                        io_reason(&e)
                    ))
                })?;
                // Small files are stored: deflate would only grow them.
                let options = if data.len() < 64 {
                    base.compression_method(CompressionMethod::Stored)
                } else {
                    base
                };
                zip.start_file(name.as_str(), options.unix_permissions(mode))
                    .map_err(|e| fail(&e))?;
                zip.write_all(&data).map_err(|e| fail(&e))?;
            }
        }
    }
    let cursor = zip
        .finish()
        .map_err(|e| CliError::usage(format!("cannot finish the zip: {e}")))?;
    Ok(cursor.into_inner())
}

/// Walks `dir`, recording every file and directory under its zip name
/// (`prefix` + name, directories ending in `/`). Symbolic links are
/// followed; a link back into a directory being walked is refused.
fn collect(
    dir: &Path,
    prefix: &str,
    stack: &mut Vec<PathBuf>,
    out: &mut BTreeMap<String, Entry>,
) -> Result<(), CliError> {
    let read = fs::read_dir(dir).map_err(|e| {
        CliError::usage(format!("cannot read {}: {}", dir.display(), io_reason(&e)))
    })?;
    for item in read {
        let item = item.map_err(|e| {
            CliError::usage(format!("cannot read {}: {}", dir.display(), io_reason(&e)))
        })?;
        let path = item.path();
        let file_name = item.file_name();
        let name = file_name.to_str().ok_or_else(|| {
            CliError::usage(format!(
                "cannot package {}: the file name is not UTF-8",
                path.display()
            ))
        })?;
        let meta = fs::metadata(&path).map_err(|e| {
            CliError::usage(format!("cannot read {}: {}", path.display(), io_reason(&e)))
        })?;
        let zip_name = format!("{prefix}{name}");
        if meta.is_dir() {
            if SKIPPED_DIRS.contains(&name) {
                continue;
            }
            let real = fs::canonicalize(&path).map_err(|e| {
                CliError::usage(format!("cannot read {}: {}", path.display(), io_reason(&e)))
            })?;
            if stack.contains(&real) {
                return Err(CliError::usage(format!(
                    "cannot package {}: a symbolic link loops back to {}",
                    path.display(),
                    real.display()
                )));
            }
            let dir_name = format!("{zip_name}/");
            stack.push(real);
            collect(&path, &dir_name, stack, out)?;
            stack.pop();
            out.insert(dir_name, Entry::Dir);
        } else if meta.is_file() {
            out.insert(
                zip_name,
                Entry::File {
                    source: path,
                    executable: is_executable(&meta),
                },
            );
        }
        // Sockets, FIFOs and devices have no place in a code package.
    }
    Ok(())
}

#[cfg(unix)]
fn is_executable(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &fs::Metadata) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn write(path: &Path, contents: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
    }

    #[cfg(unix)]
    fn chmod(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// name → (unix mode, contents) of every entry.
    fn unzip(bytes: &[u8]) -> BTreeMap<String, (Option<u32>, String)> {
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let mut out = BTreeMap::new();
        for i in 0..archive.len() {
            let mut f = archive.by_index(i).unwrap();
            let mut s = String::new();
            f.read_to_string(&mut s).unwrap();
            out.insert(f.name().to_owned(), (f.unix_mode(), s));
        }
        out
    }

    fn sample_tree() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(
            &root.join("app.py"),
            "def handler(event, context):\n    return event\n",
        );
        write(&root.join("bootstrap"), "#!/bin/sh\nexec ./app\n");
        write(&root.join("lib/util/helpers.py"), &"x = 1\n".repeat(100));
        write(&root.join(".env"), "A=1\n");
        write(&root.join(".git/HEAD"), "ref: refs/heads/main\n");
        fs::create_dir_all(root.join("empty")).unwrap();
        #[cfg(unix)]
        {
            chmod(&root.join("bootstrap"), 0o700);
            chmod(&root.join("app.py"), 0o600);
        }
        tmp
    }

    #[test]
    fn directory_round_trips_with_modes() {
        let tmp = sample_tree();
        let bytes = load(tmp.path()).unwrap();
        let entries = unzip(&bytes);
        let names: Vec<&str> = entries.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                ".env",
                "app.py",
                "bootstrap",
                "empty/",
                "lib/",
                "lib/util/",
                "lib/util/helpers.py"
            ]
        );
        assert_eq!(
            entries["app.py"].1,
            "def handler(event, context):\n    return event\n"
        );
        assert_eq!(entries["lib/util/helpers.py"].1, "x = 1\n".repeat(100));
        assert_eq!(entries[".env"].1, "A=1\n");
        #[cfg(unix)]
        {
            let mode = |n: &str| entries[n].0.unwrap() & 0o777;
            assert_eq!(mode("bootstrap"), 0o755);
            assert_eq!(mode("app.py"), 0o644);
            assert_eq!(mode("lib/"), 0o755);
        }
    }

    #[test]
    fn same_tree_gives_same_bytes() {
        let a = sample_tree();
        let b = sample_tree();
        let za = load(a.path()).unwrap();
        assert_eq!(za, load(a.path()).unwrap());
        assert_eq!(za, load(b.path()).unwrap());
        // A change of content or of the executable bit changes the bytes.
        write(&b.path().join("app.py"), "changed\n");
        assert_ne!(za, load(b.path()).unwrap());
    }

    #[test]
    fn zip_files_are_sent_as_is() {
        let tmp = sample_tree();
        let bytes = zip_dir(tmp.path()).unwrap();
        let file = tmp.path().join("code.ZIP");
        fs::write(&file, &bytes).unwrap();
        assert_eq!(load(&file).unwrap(), bytes);
        assert_eq!(default_name(&file).unwrap(), "code");
    }

    #[test]
    fn bad_paths_are_usage_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = load(&tmp.path().join("nope")).unwrap_err();
        assert_eq!(missing.exit_code(), crate::error::EXIT_USAGE);
        assert!(
            missing.to_string().contains("no such file or directory"),
            "{missing}"
        );

        let text = tmp.path().join("notes.txt");
        fs::write(&text, "hi").unwrap();
        assert!(load(&text)
            .unwrap_err()
            .to_string()
            .contains("neither a directory nor a .zip"));

        let fake = tmp.path().join("fake.zip");
        fs::write(&fake, "not a zip").unwrap();
        assert!(load(&fake)
            .unwrap_err()
            .to_string()
            .contains("not a valid zip"));

        let empty = tmp.path().join("empty");
        fs::create_dir(&empty).unwrap();
        assert!(load(&empty).unwrap_err().to_string().contains("no files"));
    }

    #[test]
    fn default_name_is_the_directory_name() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("image-resizer");
        write(&dir.join("app.py"), "");
        assert_eq!(default_name(&dir).unwrap(), "image-resizer");
        assert_eq!(default_name(&dir.join(".")).unwrap(), "image-resizer");
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_followed_and_loops_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("fn");
        write(&root.join("real.txt"), "real");
        std::os::unix::fs::symlink(root.join("real.txt"), root.join("link.txt")).unwrap();
        let entries = unzip(&load(&root).unwrap());
        assert_eq!(entries["link.txt"].1, "real");

        std::os::unix::fs::symlink(&root, root.join("loop")).unwrap();
        assert!(load(&root).unwrap_err().to_string().contains("loops back"));
    }
}
