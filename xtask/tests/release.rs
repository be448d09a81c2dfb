//! `cargo xtask release` on a small fixture workspace with its own git
//! history: one core crate and two leaves that depend on it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Fixture {
    root: PathBuf,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let root =
            std::env::temp_dir().join(format!("xtask-release-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        let fixture = Fixture { root };

        fixture.write(
            "Cargo.toml",
            "[workspace]\nresolver = \"2\"\nmembers = [\"crates/*\"]\n\n[workspace.dependencies]\nfx-core = { path = \"crates/fx-core\", version = \"0.1.0\" }\n",
        );
        fixture.add_crate("fx-core", "");
        fixture.add_crate("fx-leaf-a", "fx-core = { workspace = true }\n");
        fixture.add_crate("fx-leaf-b", "fx-core = { workspace = true }\n");
        fixture.git(&["init", "--quiet", "--initial-branch=main"]);
        fixture.commit_all("Add the fixture workspace");
        for name in ["fx-core", "fx-leaf-a", "fx-leaf-b"] {
            fixture.git(&["tag", "-a", &format!("{name}-v0.1.0"), "-m", name]);
        }
        fixture
    }

    fn add_crate(&self, name: &str, deps: &str) {
        self.write(
            &format!("crates/{name}/Cargo.toml"),
            &format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\nlicense = \"MIT\"\ndescription = \"fixture\"\n\n[dependencies]\n{deps}"),
        );
        self.write(&format!("crates/{name}/src/lib.rs"), "//! Fixture.\n");
        self.write(
            &format!("crates/{name}/CHANGELOG.md"),
            "# Changelog\n\n## [Unreleased]\n",
        );
    }

    fn write(&self, path: &str, text: &str) {
        let path = self.root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn read(&self, path: &str) -> String {
        fs::read_to_string(self.root.join(path)).unwrap()
    }

    fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git")
            .arg("-C")
            .arg(&self.root)
            .args(args)
            .envs(identity())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn commit_all(&self, message: &str) {
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "-m", message]);
    }

    /// Appends a line to a crate's source and commits it.
    fn change(&self, krate: &str, message: &str) {
        let path = format!("crates/{krate}/src/lib.rs");
        let text = self.read(&path) + &format!("// {message}\n");
        self.write(&path, &text);
        self.commit_all(message);
    }

    fn release(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("release")
            .args(args)
            .arg("--root")
            .arg(&self.root)
            // Packages and builds of the fixture stay in its own target/.
            .env_remove("CARGO_TARGET_DIR")
            .envs(identity())
            .output()
            .unwrap()
    }

    fn version_of(&self, krate: &str) -> String {
        let manifest = self.read(&format!("crates/{krate}/Cargo.toml"));
        manifest
            .lines()
            .find_map(|line| line.strip_prefix("version = \""))
            .unwrap()
            .trim_end_matches('"')
            .to_owned()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn identity() -> Vec<(&'static str, &'static str)> {
    vec![
        ("GIT_AUTHOR_NAME", "Fixture"),
        ("GIT_AUTHOR_EMAIL", "fixture@example.invalid"),
        ("GIT_COMMITTER_NAME", "Fixture"),
        ("GIT_COMMITTER_EMAIL", "fixture@example.invalid"),
    ]
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "release failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn row<'a>(table: &'a str, krate: &str) -> &'a str {
    table
        .lines()
        .find(|line| line.starts_with(&format!("{krate} ")))
        .unwrap_or_else(|| panic!("no row for {krate} in:\n{table}"))
}

#[test]
fn leaf_fix_bumps_only_that_leaf() {
    let fixture = Fixture::new("leaf-fix");
    fixture.change("fx-leaf-a", "fix: handle an empty input");

    let table = stdout(&fixture.release(&["plan"]));
    assert!(row(&table, "fx-leaf-a").contains("0.1.1"), "{table}");
    assert!(
        row(&table, "fx-core").contains("nothing to release"),
        "{table}"
    );
    assert!(
        row(&table, "fx-leaf-b").contains("nothing to release"),
        "{table}"
    );
    assert!(!table.contains("requirements to update"), "{table}");
    assert!(
        fixture.git(&["status", "--porcelain"]).is_empty(),
        "plan writes nothing"
    );

    stdout(&fixture.release(&["prepare"]));
    assert_eq!(fixture.version_of("fx-leaf-a"), "0.1.1");
    assert_eq!(fixture.version_of("fx-core"), "0.1.0");
    assert_eq!(fixture.version_of("fx-leaf-b"), "0.1.0");
    assert_eq!(
        fixture.read("crates/fx-core/CHANGELOG.md"),
        "# Changelog\n\n## [Unreleased]\n"
    );
    assert!(
        fixture.git(&["status", "--porcelain"]).is_empty(),
        "prepare commits everything"
    );
    assert!(
        fixture
            .git(&["log", "-1", "--format=%s"])
            .starts_with("Release fx-leaf-a 0.1.1")
    );
}

#[test]
fn breaking_core_change_moves_dependents() {
    let fixture = Fixture::new("breaking");
    fixture.change("fx-core", "feat!: rename the entry point");

    let table = stdout(&fixture.release(&["plan"]));
    assert!(row(&table, "fx-core").contains("0.2.0"), "{table}");
    assert!(row(&table, "fx-leaf-a").contains("0.1.1"), "{table}");
    assert!(row(&table, "fx-leaf-b").contains("0.1.1"), "{table}");
    assert!(table.contains("fx-leaf-a -> fx-core"), "{table}");

    stdout(&fixture.release(&["prepare"]));
    assert_eq!(fixture.version_of("fx-core"), "0.2.0");
    let root = fixture.read("Cargo.toml");
    assert!(root.contains("version = \"0.2.0\""), "{root}");
    let leaf = fixture.read("crates/fx-leaf-b/CHANGELOG.md");
    assert!(leaf.contains("## [0.1.1]"), "{leaf}");
    assert!(leaf.contains("Require fx-core 0.2.0."), "{leaf}");
    let core = fixture.read("crates/fx-core/CHANGELOG.md");
    assert!(
        core.contains("### Breaking changes\n\n- rename the entry point"),
        "{core}"
    );
}

#[test]
fn dirty_tree_is_rejected() {
    let fixture = Fixture::new("dirty");
    fixture.change("fx-leaf-a", "fix: trim names");
    fixture.write("crates/fx-leaf-a/src/extra.rs", "// not committed\n");

    let output = fixture.release(&["prepare"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("uncommitted changes"));
    assert_eq!(
        fixture.version_of("fx-leaf-a"),
        "0.1.0",
        "nothing was changed"
    );
}

#[test]
fn existing_tag_is_rejected() {
    let fixture = Fixture::new("tagged");

    // A maintenance branch already released fx-leaf-a 0.1.1.
    fixture.git(&["checkout", "--quiet", "-b", "maintenance"]);
    fixture.change("fx-leaf-a", "fix: backport the name check");
    fixture.git(&["tag", "-a", "fx-leaf-a-v0.1.1", "-m", "fx-leaf-a 0.1.1"]);
    fixture.git(&["checkout", "--quiet", "main"]);
    fixture.change("fx-leaf-a", "fix: trim names");

    let output = fixture.release(&["prepare"]);
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("fx-leaf-a-v0.1.1") && message.contains("already exists"),
        "{message}"
    );
    assert_eq!(fixture.version_of("fx-leaf-a"), "0.1.0");
}

#[test]
fn changelog_lists_exactly_the_crate_commits() {
    let fixture = Fixture::new("changelog");
    fixture.change("fx-leaf-a", "fix: keep the order of results");
    fixture.change("fx-leaf-b", "fix: reject empty names");
    fixture.change("fx-leaf-a", "Document the retry limit");
    fixture.change("fx-leaf-a", "ci: run on two cores");

    stdout(&fixture.release(&["prepare"]));
    let changelog = fixture.read("crates/fx-leaf-a/CHANGELOG.md");
    let entries: Vec<&str> = changelog
        .lines()
        .filter(|line| line.starts_with("- "))
        .collect();
    assert_eq!(entries.len(), 2, "{changelog}");
    assert!(
        entries[0].starts_with("- keep the order of results ("),
        "{changelog}"
    );
    assert!(
        entries[1].starts_with("- Document the retry limit ("),
        "{changelog}"
    );
    assert!(!changelog.contains("reject empty names"));
    assert!(
        changelog.starts_with("# Changelog\n\n## [Unreleased]\n\n## [0.1.1] - "),
        "{changelog}"
    );
}

#[test]
fn tag_then_publish_dry_run() {
    let fixture = Fixture::new("tag");
    fixture.change("fx-leaf-a", "fix: trim names");
    stdout(&fixture.release(&["prepare"]));

    let tagged = stdout(&fixture.release(&["tag"]));
    assert_eq!(tagged.trim(), "tagged fx-leaf-a-v0.1.1");
    let again = stdout(&fixture.release(&["tag"]));
    assert!(again.trim().is_empty(), "tags are created once");

    let output = fixture.release(&["publish"]);
    assert!(output.status.success());
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("would publish fx-leaf-a@0.1.1"), "{log}");
    assert!(!Path::new(&fixture.root.join("target/release-published.txt")).exists());
}

#[test]
fn verify_packages_released_crates() {
    let fixture = Fixture::new("verify");
    fixture.change("fx-core", "feat!: rename the entry point");
    stdout(&fixture.release(&["prepare"]));

    let output = fixture.release(&["verify"]);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert!(
        log.contains("cargo package of the released crates"),
        "{log}"
    );
    for name in ["fx-core-0.2.0", "fx-leaf-a-0.1.1", "fx-leaf-b-0.1.1"] {
        let package = fixture
            .root
            .join("target/package")
            .join(format!("{name}.crate"));
        assert!(
            package.exists(),
            "{} is missing; log:\n{log}",
            package.display()
        );
    }
}
