//! Rules about what a code package (a function's or a layer's zip) may hold
//! that do not need the zip itself: pure, so that the control plane (at
//! upload) and the runner (at unpack) apply the very same rule.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

/// Longest symlink target kept, in bytes.
pub const MAX_LINK_TARGET: usize = 1024;

/// Whether a zip entry's Unix mode marks a symbolic link.
pub fn is_symlink_mode(mode: Option<u32>) -> bool {
    mode.is_some_and(|m| m & 0o170_000 == 0o120_000)
}

/// Checks a symlink of the package at `link` (relative to the package root,
/// already confined) pointing at `target`, and returns where it points,
/// relative to the root. A link must stay inside the package, as Lambda's
/// `/var/task` links do: its target is relative, and resolving it from the
/// link's directory never climbs above the root — nor climbs out of another
/// link of the package (`links`), whose own target could be shallower than
/// its path and so let `..` reach further than it seems.
pub fn confined_link_target(
    link: &Path,
    target: &str,
    links: &HashSet<PathBuf>,
) -> Result<PathBuf, String> {
    let shown = link.display();
    if target.is_empty() || target.len() > MAX_LINK_TARGET || target.contains('\0') {
        return Err(format!(
            "symlink '{shown}' has an empty, over-long or malformed target"
        ));
    }
    let mut at: Vec<std::ffi::OsString> = link
        .parent()
        .map(|p| p.iter().map(|c| c.to_os_string()).collect())
        .unwrap_or_default();
    for c in Path::new(target).components() {
        match c {
            Component::CurDir => {}
            Component::Normal(part) => at.push(part.to_os_string()),
            Component::ParentDir => {
                let here: PathBuf = at.iter().collect();
                if at.is_empty() || links.contains(&here) {
                    return Err(format!(
                        "symlink '{shown}' points outside the package ('{target}')"
                    ));
                }
                at.pop();
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "symlink '{shown}' has an absolute target ('{target}'); only links within the package are kept"
                ))
            }
        }
    }
    Ok(at.iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(link: &str, target: &str) -> Result<PathBuf, String> {
        confined_link_target(Path::new(link), target, &HashSet::new())
    }

    #[test]
    fn links_within_the_package_are_kept() {
        assert_eq!(check("lib/current", "v2").unwrap(), PathBuf::from("lib/v2"));
        assert_eq!(check("a/b/c", "../x/./y").unwrap(), PathBuf::from("a/x/y"));
        assert_eq!(check("top", "lib/..").unwrap(), PathBuf::from(""));
    }

    #[test]
    fn links_out_of_the_package_are_refused() {
        for (link, target) in [
            ("evil", "/etc/shadow"),
            ("evil", "../etc/shadow"),
            ("a/evil", "../../x"),
            ("a/evil", "b/../../../x"),
            ("evil", ""),
            ("evil", "a\0b"),
        ] {
            assert!(check(link, target).is_err(), "{link} -> {target:?}");
        }
        assert!(check("evil", &"a/".repeat(600)).is_err());
    }

    #[test]
    fn climbing_out_of_another_link_is_refused() {
        // a/b/up -> ../.. is the root itself; a/b/up/.. would be above it.
        let links: HashSet<PathBuf> = [PathBuf::from("a/b/up")].into();
        assert!(confined_link_target(Path::new("a/b/up"), "../..", &links).is_ok());
        assert!(confined_link_target(Path::new("y"), "a/b/up/..", &links).is_err());
        assert!(confined_link_target(Path::new("y"), "a/b/up/z", &links).is_ok());
    }

    #[test]
    fn modes() {
        assert!(is_symlink_mode(Some(0o120_777)));
        assert!(!is_symlink_mode(Some(0o100_644)));
        assert!(!is_symlink_mode(None));
    }
}
