//! Verifying, tagging and publishing prepared releases.

use std::fs;
use std::path::Path;
use std::process::Command;

use super::git;
use super::plan::Plan;
use super::workspace::Workspace;

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(mut command: Command, what: &str) -> Result<(), String> {
    eprintln!("release: {what}");
    let status = command
        .status()
        .map_err(|err| format!("failed to start {what}: {err}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

fn has_cargo_subcommand(name: &str) -> bool {
    cargo()
        .args([name, "--version"])
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Packages the released crates together, builds each feature of each alone,
/// and checks the public API against the last tag where the tools exist.
pub(crate) fn verify(workspace: &Workspace, plan: &Plan) -> Result<(), String> {
    let released: Vec<_> = plan.released().collect();
    if released.is_empty() {
        eprintln!("release: nothing to verify");
        return Ok(());
    }

    // One `cargo package` for all of them: Cargo 1.90 and later resolve the
    // unpublished sibling versions from the same invocation.
    let mut package = cargo();
    package
        .current_dir(&workspace.root)
        .arg("package")
        .arg("--allow-dirty");
    for release in &released {
        package.args(["-p", &release.name]);
    }
    run(package, "cargo package of the released crates")?;

    let hack = has_cargo_subcommand("hack");
    for release in &released {
        let krate = workspace.get(&release.name).expect("planned crates exist");
        if hack {
            let mut check = cargo();
            check.current_dir(&workspace.root).args([
                "hack",
                "check",
                "--each-feature",
                "--no-dev-deps",
                "-p",
                &krate.name,
            ]);
            run(
                check,
                &format!("cargo hack --each-feature on {}", krate.name),
            )?;
        } else {
            let mut check = cargo();
            check.current_dir(&workspace.root).args([
                "check",
                "--no-default-features",
                "-p",
                &krate.name,
            ]);
            run(check, &format!("{} without default features", krate.name))?;
            for feature in &krate.features {
                let mut check = cargo();
                check.current_dir(&workspace.root).args([
                    "check",
                    "--no-default-features",
                    "--features",
                    feature,
                    "-p",
                    &krate.name,
                ]);
                run(
                    check,
                    &format!("{} with feature `{feature}` alone", krate.name),
                )?;
            }
        }
    }

    if has_cargo_subcommand("semver-checks") {
        for release in &released {
            let Some(tag) = &release.last_tag else {
                continue;
            };
            let kind = release_type(&release.current, &release.next);
            let mut check = cargo();
            check.current_dir(&workspace.root).args([
                "semver-checks",
                "check-release",
                "-p",
                &release.name,
                "--baseline-rev",
                tag,
                "--release-type",
                kind,
            ]);
            run(
                check,
                &format!("public API of {} against {tag}", release.name),
            )?;
        }
    } else {
        eprintln!("release: cargo-semver-checks is not installed; the public-API check is skipped");
    }
    Ok(())
}

fn release_type(from: &semver::Version, to: &semver::Version) -> &'static str {
    // The bump semver-checks must accept, in Cargo's 0.x reading.
    if to.major != from.major || (to.major == 0 && to.minor != from.minor) {
        "major"
    } else if to.minor != from.minor || (to.major == 0 && to.patch != from.patch) {
        "minor"
    } else {
        "patch"
    }
}

/// Tags every crate whose manifest version has no tag yet.
pub(crate) fn tag(workspace: &Workspace) -> Result<Vec<String>, String> {
    git::ensure_releasable_tree(&workspace.root)?;
    let mut created = Vec::new();
    for krate in &workspace.crates {
        let tag = format!("{}-v{}", krate.name, krate.version);
        if git::tag_exists(&workspace.root, &tag)? {
            continue;
        }
        let message = format!("{} {}", krate.name, krate.version);
        git::git(&workspace.root, &["tag", "-a", &tag, "-m", &message])?;
        created.push(tag);
    }
    Ok(created)
}

/// Publishes tagged crates in dependency order, skipping what is already
/// published, and records progress so that a failed run can be resumed.
pub(crate) fn publish(workspace: &Workspace, execute: bool) -> Result<(), String> {
    let progress_path = workspace.root.join("target").join("release-published.txt");
    let mut done: Vec<String> = fs::read_to_string(&progress_path)
        .map(|text| text.lines().map(str::to_owned).collect())
        .unwrap_or_default();

    for krate in &workspace.crates {
        let id = format!("{}@{}", krate.name, krate.version);
        let tag = format!("{}-v{}", krate.name, krate.version);
        if !git::tag_exists(&workspace.root, &tag)? {
            eprintln!("release: skip {id}: not tagged (run `cargo xtask release tag`)");
            continue;
        }
        if done.contains(&id) || is_published(&krate.name, &krate.version.to_string()) {
            eprintln!("release: skip {id}: already published");
            continue;
        }
        if !execute {
            eprintln!("release: would publish {id} (pass --execute to publish)");
            continue;
        }
        let mut command = cargo();
        command
            .current_dir(&workspace.root)
            .args(["publish", "-p", &krate.name]);
        run(command, &format!("cargo publish {id}"))?;
        done.push(id);
        record(&progress_path, &done)?;
    }
    Ok(())
}

fn is_published(name: &str, version: &str) -> bool {
    // `cargo info` succeeds when the registry has that version. It runs
    // outside the workspace, where it would describe the local crate instead.
    cargo()
        .current_dir(std::env::temp_dir())
        .args([
            "info",
            "--registry",
            "crates-io",
            &format!("{name}@{version}"),
        ])
        .output()
        .is_ok_and(|output| output.status.success())
}

fn record(path: &Path, done: &[String]) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .map_err(|err| format!("failed to create {}: {err}", parent.display()))?;
    }
    fs::write(path, done.join("\n") + "\n")
        .map_err(|err| format!("failed to write {}: {err}", path.display()))
}
