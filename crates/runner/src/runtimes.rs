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
pub(crate) const RUBY_BOOTSTRAP: &str = include_str!("../runtimes/ruby/bootstrap.rb");

/// The interpreters found on this machine.
#[derive(Debug, Clone)]
pub struct RuntimeCatalog {
    python: Option<PathBuf>,
    node: Option<PathBuf>,
    /// `bootstrap.pyc` once it is compiled, else `bootstrap.py`.
    python_script: String,
    /// `java` and `javac`, and the JDK's major version.
    java: Option<(PathBuf, PathBuf, u32)>,
    /// `ruby`, and its (major, minor) version.
    ruby: Option<(PathBuf, (u32, u32))>,
}

/// The (major, minor) version `ruby --version` reports (`(3, 1)` for
/// "ruby 3.1.2p20 (2022-04-12 revision 4491bb740a) [x86_64-linux-gnu]").
fn ruby_version(ruby: &Path) -> Option<(u32, u32)> {
    let out = std::process::Command::new(ruby)
        .arg("--version")
        .output()
        .ok()?;
    parse_ruby_version(&String::from_utf8_lossy(&out.stdout))
}

fn parse_ruby_version(text: &str) -> Option<(u32, u32)> {
    let version = text.strip_prefix("ruby ")?.split_whitespace().next()?;
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()?;
    Some((major, minor))
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
    /// Python is Debian's `/usr/bin/python3` (or `HOTSWAP_PYTHON`); Node,
    /// Java and Ruby are `node`, `java` (with `javac` beside it) and `ruby`
    /// on `PATH` (or `HOTSWAP_NODE`, `HOTSWAP_JAVA`, `HOTSWAP_RUBY`).
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
        let ruby = pick("HOTSWAP_RUBY", find_on_path("ruby")).and_then(|ruby| {
            // The absolute path: instances get a PATH of their own.
            let ruby = std::fs::canonicalize(&ruby).unwrap_or(ruby);
            let version = ruby_version(&ruby)?;
            Some((ruby, version))
        });
        Self {
            python,
            node,
            python_script: "bootstrap.py".into(),
            java,
            ruby,
        }
    }

    pub fn available(&self) -> Vec<Runtime> {
        Runtime::ALL
            .into_iter()
            .filter(|r| self.entry(*r, "").is_ok())
            .collect()
    }

    /// How to start an instance of `runtime` for a function whose handler is
    /// `handler`, or why it cannot run here.
    pub fn entry(&self, runtime: Runtime, handler: &str) -> Result<Entry, RunnerError> {
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
            RuntimeFamily::Ruby => match &self.ruby {
                Some((ruby, have)) if ruby_runtime_version(runtime) <= *have => {
                    Ok(Entry::Interpreter {
                        program: ruby.clone(),
                        // RubyGems is ~85 % of a plain `ruby -e 0` here
                        // (docs/benchmarks.md); the bootstrap loads it
                        // only when the function ships gems.
                        args: vec!["--disable-gems".into(), "{runtime}/bootstrap.rb".into()],
                    })
                }
                _ => Err(unavailable()),
            },
            RuntimeFamily::Provided => Ok(Entry::TaskExecutable("bootstrap".into())),
            // A Go function is its own compiled program (aws-lambda-go speaks
            // the Runtime API): the handler names it, as on AWS's go1.x.
            RuntimeFamily::Go => go_executable(handler).map(Entry::TaskExecutable),
            RuntimeFamily::Dotnet => Err(unavailable()),
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
        let rubies = [Runtime::Ruby30, Runtime::Ruby31, Runtime::Ruby32]
            .into_iter()
            .filter(|r| {
                self.ruby
                    .as_ref()
                    .is_some_and(|(_, have)| ruby_runtime_version(*r) <= *have)
            })
            .map(|r| r.to_string())
            .collect::<Vec<_>>();
        let rubies = rubies.join(", ");
        if !rubies.is_empty() {
            names.push(&rubies);
        }
        names.push("Go119..121");
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
        std::fs::write(dir.join("bootstrap.rb"), RUBY_BOOTSTRAP)?;
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

/// The executable a Go function's handler names inside its code package:
/// the handler itself (`hello`, `bin/hello`), or `bootstrap` when the handler
/// is empty or says so (the `provided.al2` convention).
fn go_executable(handler: &str) -> Result<String, RunnerError> {
    let name = handler.trim();
    if name.is_empty() {
        return Ok("bootstrap".into());
    }
    let inside = std::path::Path::new(name)
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if inside {
        Ok(name.to_owned())
    } else {
        Err(RunnerError::Code(format!(
            "Go handler '{name}' must name an executable inside the code package (a relative path without '..')"
        )))
    }
}

/// The Ruby (major, minor) a runtime names.
fn ruby_runtime_version(runtime: Runtime) -> (u32, u32) {
    match runtime {
        Runtime::Ruby30 => (3, 0),
        Runtime::Ruby31 => (3, 1),
        _ => (3, 2),
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

    fn bare() -> RuntimeCatalog {
        RuntimeCatalog {
            python: None,
            node: None,
            python_script: "bootstrap.py".into(),
            java: None,
            ruby: None,
        }
    }

    #[test]
    fn provided_and_go_always_java_ruby_and_dotnet_never() {
        let c = bare();
        assert!(matches!(
            c.entry(Runtime::Provided, "ignored"),
            Ok(Entry::TaskExecutable(b)) if b == "bootstrap"
        ));
        for runtime in [Runtime::Java17, Runtime::Ruby32, Runtime::Dotnet8] {
            let e = c.entry(runtime, "x.y").unwrap_err().to_string();
            assert!(e.contains("not available on any runner"), "{e}");
        }
        assert!(c.entry(Runtime::Python311, "app.handler").is_err());
        assert_eq!(
            c.available(),
            vec![
                Runtime::Go119,
                Runtime::Go120,
                Runtime::Go121,
                Runtime::Provided
            ]
        );
    }

    #[test]
    fn a_go_handler_names_an_executable_inside_the_package() {
        let c = bare();
        let exe = |h: &str| match c.entry(Runtime::Go121, h) {
            Ok(Entry::TaskExecutable(name)) => Ok(name),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.to_string()),
        };
        assert_eq!(exe("hello"), Ok("hello".into()));
        assert_eq!(exe("bin/hello"), Ok("bin/hello".into()));
        assert_eq!(exe(" "), Ok("bootstrap".into()));
        for bad in ["../hello", "/usr/bin/id", "bin/../../x", "./hello"] {
            assert!(
                exe(bad).unwrap_err().contains("inside the code package"),
                "{bad}"
            );
        }
    }

    #[test]
    fn ruby_runtimes_up_to_the_interpreters_version() {
        assert_eq!(
            parse_ruby_version(
                "ruby 3.1.2p20 (2022-04-12 revision 4491bb740a) [x86_64-linux-gnu]\n"
            ),
            Some((3, 1))
        );
        assert_eq!(
            parse_ruby_version("ruby 3.3.0 (2023-12-25) +YJIT"),
            Some((3, 3))
        );
        assert_eq!(parse_ruby_version("jruby 9.4"), None);
        let mut c = bare();
        c.ruby = Some(("/usr/bin/ruby3.1".into(), (3, 1)));
        match c.entry(Runtime::Ruby30, "lambda_function.lambda_handler") {
            Ok(Entry::Interpreter { program, args }) => {
                assert_eq!(program, Path::new("/usr/bin/ruby3.1"));
                assert_eq!(args, ["--disable-gems", "{runtime}/bootstrap.rb"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(c.entry(Runtime::Ruby31, "a.b").is_ok());
        let e = c.entry(Runtime::Ruby32, "a.b").unwrap_err().to_string();
        assert!(e.contains("Ruby30, Ruby31"), "{e}");
    }
}
