//! The few git operations a release needs, run through the `git` binary.

use std::path::Path;
use std::process::Command;

use semver::Version;

use super::commits::Commit;

/// Runs git in `root` and returns its standard output.
pub(crate) fn git(root: &Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .map_err(|err| format!("failed to run git: {err}; is git installed?"))?;
    if !output.status.success() {
        return Err(format!(
            "`git {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Returns the highest `<crate>-v<version>` tag of a crate that HEAD
/// contains, if any. Tags on other branches do not count, so a release
/// planned here can collide with one of them; `prepare` rejects that.
pub(crate) fn last_tag(root: &Path, krate: &str) -> Result<Option<(String, Version)>, String> {
    let pattern = format!("{krate}-v*");
    let tags = git(root, &["tag", "--list", "--merged", "HEAD", &pattern])?;
    let prefix = format!("{krate}-v");
    Ok(tags
        .lines()
        .filter_map(|tag| {
            let version = Version::parse(tag.strip_prefix(&prefix)?).ok()?;
            Some((tag.to_owned(), version))
        })
        .max_by(|a, b| a.1.cmp(&b.1)))
}

/// Returns whether a tag exists.
pub(crate) fn tag_exists(root: &Path, tag: &str) -> Result<bool, String> {
    let reference = format!("refs/tags/{tag}");
    Ok(Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["rev-parse", "--verify", "--quiet", &reference])
        .output()
        .map_err(|err| format!("failed to run git: {err}"))?
        .status
        .success())
}

/// Returns the commits since `since` (all of history when `None`) that
/// touched files under `dir`, oldest first.
pub(crate) fn commits_touching(
    root: &Path,
    since: Option<&str>,
    dir: &str,
) -> Result<Vec<Commit>, String> {
    let range = since.map_or_else(|| "HEAD".to_owned(), |tag| format!("{tag}..HEAD"));
    let log = git(
        root,
        &[
            "log",
            "--reverse",
            "--format=%H%x1f%s%x1f%b%x1e",
            &range,
            "--",
            dir,
        ],
    )?;
    Ok(log
        .split('\x1e')
        .filter_map(|record| {
            let mut fields = record.trim_start_matches('\n').splitn(3, '\x1f');
            let hash = fields.next()?.trim();
            if hash.is_empty() {
                return None;
            }
            Some(Commit {
                hash: hash.to_owned(),
                subject: fields.next().unwrap_or_default().trim().to_owned(),
                body: fields.next().unwrap_or_default().trim().to_owned(),
            })
        })
        .collect())
}

/// Fails unless the work tree is clean and HEAD is on a branch.
pub(crate) fn ensure_releasable_tree(root: &Path) -> Result<(), String> {
    let status = git(root, &["status", "--porcelain"])?;
    if !status.trim().is_empty() {
        let first: Vec<&str> = status.lines().take(5).collect();
        return Err(format!(
            "the work tree has uncommitted changes ({}); commit or stash them first",
            first.join(", ")
        ));
    }
    if git(root, &["symbolic-ref", "--quiet", "HEAD"]).is_err() {
        return Err("HEAD is detached; check out the release branch first".to_owned());
    }
    Ok(())
}
