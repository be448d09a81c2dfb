//! Applying a plan: versions, requirements and changelogs, in one commit.

use std::fs;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use toml_edit::{DocumentMut, Item, value};

use super::commits::Group;
use super::git;
use super::plan::{CrateRelease, Plan, RequirementUpdate};
use super::workspace::Workspace;

/// Checks that the tree may be released and that no planned tag exists yet.
/// Runs before anything is written.
pub(crate) fn check_preconditions(workspace: &Workspace, plan: &Plan) -> Result<(), String> {
    git::ensure_releasable_tree(&workspace.root)?;
    for release in plan.released() {
        let tag = release.tag();
        if git::tag_exists(&workspace.root, &tag)? {
            return Err(format!(
                "tag `{tag}` already exists; {} {} was released before, so bump past it or delete the tag",
                release.name, release.next
            ));
        }
    }
    Ok(())
}

/// Writes the plan into the manifests and changelogs and commits it.
/// Returns the commit subject.
pub(crate) fn apply(workspace: &Workspace, plan: &Plan) -> Result<String, String> {
    let released: Vec<&CrateRelease> = plan.released().collect();
    if released.is_empty() && plan.requirements.is_empty() {
        return Err("nothing to release: no crate has changes since its last tag".to_owned());
    }

    for release in &released {
        let krate = workspace.get(&release.name).expect("planned crates exist");
        if release.next != release.current {
            edit_toml(&krate.manifest, |doc| {
                doc["package"]["version"] = value(release.next.to_string());
                Ok(())
            })?;
        }
        let changelog = krate.manifest.with_file_name("CHANGELOG.md");
        update_changelog(&changelog, release, &plan.requirements)?;
    }

    for update in &plan.requirements {
        update_requirement(workspace, update)?;
    }

    refresh_lockfile(&workspace.root)?;

    let names: Vec<String> = released
        .iter()
        .map(|release| format!("{} {}", release.name, release.next))
        .collect();
    let subject = format!("Release {}", names.join(", "));
    let body = "Versions, sibling requirements and changelogs come from the commits \
                since each crate's last tag (cargo xtask release plan).";
    git::git(&workspace.root, &["add", "--all"])?;
    git::git(
        &workspace.root,
        &["commit", "--quiet", "-m", &subject, "-m", body],
    )?;
    Ok(subject)
}

fn edit_toml(
    path: &Path,
    edit: impl FnOnce(&mut DocumentMut) -> Result<(), String>,
) -> Result<(), String> {
    let text = fs::read_to_string(path)
        .map_err(|err| format!("failed to read {}: {err}", path.display()))?;
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|err| format!("failed to parse {}: {err}", path.display()))?;
    edit(&mut doc)?;
    fs::write(path, doc.to_string())
        .map_err(|err| format!("failed to write {}: {err}", path.display()))
}

/// Moves one requirement, where it is written: in the dependent's own
/// manifest, or in `[workspace.dependencies]` when the dependent inherits it.
fn update_requirement(workspace: &Workspace, update: &RequirementUpdate) -> Result<(), String> {
    let dependent = workspace
        .get(&update.dependent)
        .ok_or_else(|| format!("unknown crate `{}`", update.dependent))?;
    let mut inherited = false;
    edit_toml(&dependent.manifest, |doc| {
        for table in ["dependencies", "dev-dependencies", "build-dependencies"] {
            let Some(entry) = doc
                .get_mut(table)
                .and_then(|t| t.get_mut(&update.dependency))
            else {
                continue;
            };
            if entry.get("workspace").and_then(Item::as_bool) == Some(true) {
                inherited = true;
            } else if entry.get("version").is_some() {
                entry["version"] = value(update.new.clone());
            }
        }
        Ok(())
    })?;
    if inherited {
        edit_toml(&workspace.root.join("Cargo.toml"), |doc| {
            let entry = doc
                .get_mut("workspace")
                .and_then(|w| w.get_mut("dependencies"))
                .and_then(|d| d.get_mut(&update.dependency))
                .ok_or_else(|| {
                    format!("`{}` is not in [workspace.dependencies]", update.dependency)
                })?;
            entry["version"] = value(update.new.clone());
            Ok(())
        })?;
    }
    Ok(())
}

/// Adds a section for the release under `## [Unreleased]`, moving any notes
/// written there into it.
fn update_changelog(
    path: &Path,
    release: &CrateRelease,
    requirements: &[RequirementUpdate],
) -> Result<(), String> {
    let text =
        fs::read_to_string(path).unwrap_or_else(|_| "# Changelog\n\n## [Unreleased]\n".to_owned());
    let section = render_section(release, requirements);

    let updated = match text.find("## [Unreleased]") {
        Some(start) => {
            let after_heading = start + "## [Unreleased]".len();
            let rest = &text[after_heading..];
            let notes_end = rest.find("\n## ").map_or(rest.len(), |i| i + 1);
            let notes = rest[..notes_end].trim();
            let mut section = section;
            if !notes.is_empty() {
                section = section.replacen("\n\n", &format!("\n\n{notes}\n\n"), 1);
            }
            format!(
                "{}## [Unreleased]\n\n{}\n{}",
                &text[..start],
                section.trim_end(),
                if notes_end < rest.len() {
                    format!("\n{}", &rest[notes_end..])
                } else {
                    String::new()
                }
            )
        }
        None => format!("{}\n\n## [Unreleased]\n\n{}", text.trim_end(), section),
    };
    fs::write(path, updated).map_err(|err| format!("failed to write {}: {err}", path.display()))
}

fn render_section(release: &CrateRelease, requirements: &[RequirementUpdate]) -> String {
    let mut out = format!("## [{}] - {}\n\n", release.next, today());
    for group in [Group::Breaking, Group::Added, Group::Fixed, Group::Changed] {
        let lines: Vec<String> = release
            .commits
            .iter()
            .filter(|commit| commit.group() == Some(group))
            .map(|commit| format!("- {} ({})", commit.summary(), commit.short_hash()))
            .collect();
        if !lines.is_empty() {
            out.push_str(&format!(
                "### {}\n\n{}\n\n",
                group.heading(),
                lines.join("\n")
            ));
        }
    }
    let moved: Vec<String> = requirements
        .iter()
        .filter(|update| update.dependent == release.name)
        .map(|update| format!("- Require {} {}.", update.dependency, update.new))
        .collect();
    if !moved.is_empty() {
        out.push_str(&format!("### Dependencies\n\n{}\n\n", moved.join("\n")));
    }
    out
}

/// Lets cargo write the new versions into `Cargo.lock`.
fn refresh_lockfile(root: &Path) -> Result<(), String> {
    if !root.join("Cargo.lock").exists() {
        return Ok(());
    }
    let status =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "metadata",
                "--format-version",
                "1",
                "--offline",
                "--manifest-path",
            ])
            .arg(root.join("Cargo.toml"))
            .stdout(std::process::Stdio::null())
            .status()
            .map_err(|err| format!("failed to run cargo metadata: {err}"))?;
    if !status.success() {
        return Err("cargo metadata failed while updating Cargo.lock".to_owned());
    }
    Ok(())
}

/// Returns today's UTC date as `YYYY-MM-DD`.
fn today() -> String {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs() / 86_400)
        .unwrap_or(0) as i64;
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Converts days since 1970-01-01 to a Gregorian date (Howard Hinnant's
/// `civil_from_days` algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }
}
