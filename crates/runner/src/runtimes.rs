//! Which runtimes this runner can run, and how each one starts.

use std::path::{Path, PathBuf};

use hotswap_domain::runtime::RuntimeFamily;
use hotswap_domain::Runtime;
use hotswap_sandbox::Entry;

use crate::RunnerError;

/// Built-in bootstrap scripts, written to the runtime directory at start.
pub(crate) const PYTHON_BOOTSTRAP: &str = include_str!("../runtimes/python/bootstrap.py");
pub(crate) const NODE_BOOTSTRAP: &str = include_str!("../runtimes/node/bootstrap.js");
pub(crate) const JAVA_BOOTSTRAP: &str = include_str!("../runtimes/java/HotSwapBootstrap.java");

/// The interpreters found on this machine.
#[derive(Debug, Clone)]
pub struct RuntimeCatalog {
    python: Option<PathBuf>,
    node: Option<PathBuf>,
    /// `bootstrap.pyc` once it is compiled, else `bootstrap.py`.
    python_script: String,
    /// `java` and `javac`, and the JDK's major version.
    java: Option<(PathBuf, PathBuf, u32)>,
}

/// The major version `java -version` reports (`17` for "17.0.15").
fn java_major(java: &Path) -> Option<u32> {
    let out = std::process::Command::new(java)
        .arg("-version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stderr);
    let quoted = text.split('"').nth(1)?;
    let first = quoted.split('.').next()?;
    match first.parse::<u32>().ok()? {
        1 => quoted.split('.').nth(1)?.parse().ok(),
        n => Some(n),
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

impl RuntimeCatalog {
    /// Python is Debian's `/usr/bin/python3` (or `HOTSWAP_PYTHON`); Node is
    /// `node` on `PATH` (or `HOTSWAP_NODE`).
    pub fn detect() -> Self {
        let pick = |var: &str, default: Option<PathBuf>| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .filter(|p| is_executable(p))
                .or(default)
        };
        let python = pick(
            "HOTSWAP_PYTHON",
            Some(PathBuf::from("/usr/bin/python3")).filter(|p| is_executable(p)),
        );
        let node = pick("HOTSWAP_NODE", find_on_path("node"));
        let java = pick("HOTSWAP_JAVA", find_on_path("java")).and_then(|java| {
            let javac = java.with_file_name("javac");
            let major = java_major(&java)?;
            is_executable(&javac).then_some((java, javac, major))
        });
        Self {
            python,
            node,
            python_script: "bootstrap.py".into(),
            java,
        }
    }

    pub fn available(&self) -> Vec<Runtime> {
        Runtime::ALL
            .into_iter()
            .filter(|r| self.entry(*r).is_ok())
            .collect()
    }

    /// How to start an instance of `runtime`, or why it cannot run here.
    pub fn entry(&self, runtime: Runtime) -> Result<Entry, RunnerError> {
        let unavailable = || {
            RunnerError::RuntimeUnavailable(format!(
                "runtime {runtime} is not available on any runner (this runner has: {})",
                self.names()
            ))
        };
        match runtime.family() {
            RuntimeFamily::Python => self
                .python
                .clone()
                .map(|program| Entry::Interpreter {
                    program,
                    args: vec![
                        "-S".into(),
                        "-B".into(),
                        format!("{{runtime}}/{}", self.python_script),
                    ],
                })
                .ok_or_else(unavailable),
            RuntimeFamily::Node => self
                .node
                .clone()
                .map(|program| Entry::Interpreter {
                    program,
                    args: vec!["{runtime}/bootstrap.js".into()],
                })
                .ok_or_else(unavailable),
            RuntimeFamily::Java => match &self.java {
                Some((java, _, major)) if java_version(runtime) <= *major => {
                    Ok(Entry::Interpreter {
                        program: java.clone(),
                        args: [
                            "-XX:+UseSerialGC",
                            "-XX:TieredStopAtLevel=1",
                            "-Xshare:auto",
                            "-cp",
                            "{runtime}/java:{task}:{task}/lib/*",
                            "HotSwapBootstrap",
                        ]
                        .iter()
                        .map(|a| a.to_string())
                        .collect(),
                    })
                }
                _ => Err(unavailable()),
            },
            RuntimeFamily::Provided => Ok(Entry::TaskExecutable("bootstrap".into())),
            _ => Err(unavailable()),
        }
    }

    fn names(&self) -> String {
        let mut names = Vec::new();
        if self.python.is_some() {
            names.push("Python3x");
        }
        if self.node.is_some() {
            names.push("Node*");
        }
        if let Some((_, _, major)) = &self.java {
            names.push(if *major >= 21 {
                "Java11..21"
            } else if *major >= 17 {
                "Java11, Java17"
            } else {
                "Java11"
            });
        }
        names.push("Provided");
        names.join(", ")
    }

    /// Writes the built-in bootstraps into `dir`, and compiles the Python
    /// one with the runner's interpreter so that instances skip compiling it
    /// at every cold start (≈3 ms).
    pub(crate) fn install_bootstraps(&mut self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("bootstrap.py"), PYTHON_BOOTSTRAP)?;
        std::fs::write(dir.join("bootstrap.js"), NODE_BOOTSTRAP)?;
        std::fs::write(dir.join("HotSwapBootstrap.java"), JAVA_BOOTSTRAP)?;
        if let Some(python) = &self.python {
            let pyc = dir.join("bootstrap.pyc");
            let compiled = std::process::Command::new(python)
                .args(["-S", "-c", "import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)"])
                .arg(dir.join("bootstrap.py"))
                .arg(&pyc)
                .status();
            match compiled {
                Ok(s) if s.success() && pyc.exists() => self.python_script = "bootstrap.pyc".into(),
                other => tracing::warn!(
                    ?other,
                    "cannot precompile the Python bootstrap; instances compile it at start"
                ),
            }
        }
        Ok(())
    }
}

/// The Java version a runtime names.
fn java_version(runtime: Runtime) -> u32 {
    match runtime {
        Runtime::Java11 => 11,
        Runtime::Java17 => 17,
        _ => 21,
    }
}

impl RuntimeCatalog {
    /// Compiles the Java bootstrap into `{dir}/java` (once; about a second,
    /// so it happens at the first Java cold start, not at server start).
    pub(crate) fn compile_java_bootstrap(&self, dir: &Path) -> Result<(), String> {
        let (_, javac, _) = self.java.as_ref().ok_or("no JDK on this runner")?;
        let out_dir = dir.join("java");
        if out_dir.join("HotSwapBootstrap.class").exists() {
            return Ok(());
        }
        let out = std::process::Command::new(javac)
            .arg("-d")
            .arg(&out_dir)
            .arg(dir.join("HotSwapBootstrap.java"))
            .output()
            .map_err(|e| format!("cannot run javac: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "javac failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provided_always_and_java_never() {
        let c = RuntimeCatalog {
            python: None,
            node: None,
            python_script: "bootstrap.py".into(),
            java: None,
        };
        assert!(matches!(
            c.entry(Runtime::Provided),
            Ok(Entry::TaskExecutable(_))
        ));
        let e = c.entry(Runtime::Java17).unwrap_err().to_string();
        assert!(e.contains("not available on any runner"), "{e}");
        assert!(c.entry(Runtime::Python311).is_err());
        assert_eq!(c.available(), vec![Runtime::Provided]);
    }
}
