//! Rules about the workspace's crates, checked with `cargo metadata`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The crates whose normal dependencies may include no `pulse-*` crate but
/// pulse-core: the primitives, and the test kit that every backend uses.
const INDEPENDENT: &[&str] = &[
    "pulse-cache",
    "pulse-conc",
    "pulse-id",
    "pulse-lock",
    "pulse-mq",
    "pulse-ratelimit",
    "pulse-sched",
    "pulse-testkit",
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace root")
        .to_path_buf()
}

fn workspace_packages() -> Vec<Value> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(workspace_root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    metadata["packages"]
        .as_array()
        .expect("metadata has packages")
        .clone()
}

fn is_library_crate(package: &Value) -> bool {
    let manifest = package["manifest_path"].as_str().unwrap_or_default();
    Path::new(manifest)
        .strip_prefix(workspace_root().join("crates"))
        .is_ok()
}

#[test]
fn primitives_depend_only_on_core() {
    let packages = workspace_packages();
    for name in INDEPENDENT {
        assert!(
            packages.iter().any(|package| package["name"] == *name),
            "{name} is missing from the workspace"
        );
    }

    for package in &packages {
        let name = package["name"].as_str().unwrap_or_default();
        if !INDEPENDENT.contains(&name) && name != "pulse-core" {
            continue;
        }
        for dependency in package["dependencies"].as_array().into_iter().flatten() {
            // `kind` is null for normal dependencies, "dev" or "build" otherwise.
            if dependency["kind"] == "dev" {
                continue;
            }
            let dependency_name = dependency["name"].as_str().unwrap_or_default();
            let allowed = name != "pulse-core" && dependency_name == "pulse-core";
            assert!(
                !dependency_name.starts_with("pulse-") || allowed,
                "{name} depends on {dependency_name}; a primitive may depend on pulse-core \
                 only, and take other primitives through pulse-core traits"
            );
        }
    }
}

#[test]
fn testkit_is_only_a_dev_dependency() {
    for package in workspace_packages() {
        let name = package["name"].as_str().unwrap_or_default();
        for dependency in package["dependencies"].as_array().into_iter().flatten() {
            assert!(
                dependency["name"] != "pulse-testkit" || dependency["kind"] == "dev",
                "{name} depends on pulse-testkit outside [dev-dependencies]; test support \
                 must not ship in a library"
            );
        }
    }
}

#[test]
fn crates_have_readme_changelog_msrv() {
    let packages = workspace_packages();
    let crates: Vec<&Value> = packages.iter().filter(|p| is_library_crate(p)).collect();
    assert!(
        crates.len() >= 10,
        "found only {} crates under crates/",
        crates.len()
    );

    for package in crates {
        let name = package["name"].as_str().unwrap_or_default();
        let manifest = Path::new(package["manifest_path"].as_str().unwrap_or_default());
        let dir = manifest.parent().expect("a manifest has a directory");
        assert!(dir.join("README.md").is_file(), "{name} has no README.md");
        assert!(
            dir.join("CHANGELOG.md").is_file(),
            "{name} has no CHANGELOG.md"
        );
        assert!(
            package["rust_version"].is_string(),
            "{name} declares no rust-version"
        );
    }
}
