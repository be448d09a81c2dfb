//! Working out what to release: per crate, the commits since its last tag,
//! the bump they ask for, and the requirements that must follow.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use semver::Version;

use super::commits::{Bump, Commit};
use super::git;
use super::workspace::Workspace;

/// The release of one crate.
#[derive(Clone, Debug)]
pub(crate) struct CrateRelease {
    pub(crate) name: String,
    pub(crate) current: Version,
    pub(crate) last_tag: Option<String>,
    pub(crate) commits: Vec<Commit>,
    pub(crate) bump: Bump,
    pub(crate) next: Version,
    /// Why the crate is released when no commit of its own asks for it.
    pub(crate) reason: Option<String>,
}

impl CrateRelease {
    /// Returns whether this crate gets a new version (or its first tag).
    pub(crate) fn is_released(&self) -> bool {
        self.last_tag.is_none() || self.next != self.tag_version()
    }

    fn tag_version(&self) -> Version {
        self.last_tag
            .as_deref()
            .and_then(|tag| tag.rsplit_once("-v"))
            .and_then(|(_, version)| Version::parse(version).ok())
            .unwrap_or_else(|| self.current.clone())
    }

    pub(crate) fn tag(&self) -> String {
        format!("{}-v{}", self.name, self.next)
    }
}

/// A requirement of one crate on another that must move.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RequirementUpdate {
    pub(crate) dependent: String,
    pub(crate) dependency: String,
    pub(crate) old: String,
    pub(crate) new: String,
}

/// The whole plan.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) releases: Vec<CrateRelease>,
    pub(crate) requirements: Vec<RequirementUpdate>,
}

impl Plan {
    /// Works out the plan for the workspace. `only` limits the crates
    /// considered for their own commits; dependents still follow.
    pub(crate) fn compute(workspace: &Workspace, only: &[String]) -> Result<Plan, String> {
        let mut releases: BTreeMap<String, CrateRelease> = BTreeMap::new();

        for krate in &workspace.crates {
            let last = git::last_tag(&workspace.root, &krate.name)?;
            let commits = git::commits_touching(
                &workspace.root,
                last.as_ref().map(|(tag, _)| tag.as_str()),
                &krate.dir,
            )?;
            let selected = only.is_empty() || only.contains(&krate.name);

            let bump = if selected {
                commits.iter().map(Commit::bump).max().unwrap_or(Bump::None)
            } else {
                Bump::None
            };
            let next = match &last {
                // The manifest was already moved past the tag (a prepared
                // release): keep it.
                Some((_, tagged)) if krate.version > *tagged => krate.version.clone(),
                Some((_, tagged)) => bump.apply(tagged),
                None => krate.version.clone(),
            };
            releases.insert(
                krate.name.clone(),
                CrateRelease {
                    name: krate.name.clone(),
                    current: krate.version.clone(),
                    last_tag: last.map(|(tag, _)| tag),
                    commits: if selected { commits } else { Vec::new() },
                    bump,
                    next,
                    reason: None,
                },
            );
        }

        let requirements = propagate(workspace, &mut releases);

        let releases = workspace
            .crates
            .iter()
            .filter_map(|krate| releases.remove(&krate.name))
            .collect();
        Ok(Plan {
            releases,
            requirements,
        })
    }

    /// Returns the crates that get a release, in dependency order.
    pub(crate) fn released(&self) -> impl Iterator<Item = &CrateRelease> {
        self.releases.iter().filter(|release| release.is_released())
    }

    /// Renders the plan as a table.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<18} {:<9} {:<24} {:>7} {:<6} {:<9} note",
            "crate", "current", "last tag", "commits", "bump", "next"
        );
        for release in &self.releases {
            let note = if !release.is_released() {
                "nothing to release".to_owned()
            } else if release.last_tag.is_none() {
                "first release".to_owned()
            } else {
                release.reason.clone().unwrap_or_default()
            };
            let _ = writeln!(
                out,
                "{:<18} {:<9} {:<24} {:>7} {:<6} {:<9} {}",
                release.name,
                release.current.to_string(),
                release.last_tag.as_deref().unwrap_or("-"),
                release.commits.len(),
                if release.last_tag.is_none() {
                    "-"
                } else {
                    release.bump.label()
                },
                release.next.to_string(),
                note
            );
        }
        if !self.requirements.is_empty() {
            let _ = writeln!(out, "\nrequirements to update:");
            for update in &self.requirements {
                let _ = writeln!(
                    out,
                    "  {} -> {}: {} to {}",
                    update.dependent, update.dependency, update.old, update.new
                );
            }
        }
        out
    }
}

/// Moves requirements that no longer match a dependency's next version, and
/// gives a patch release to runtime dependents whose requirement moved.
fn propagate(
    workspace: &Workspace,
    releases: &mut BTreeMap<String, CrateRelease>,
) -> Vec<RequirementUpdate> {
    let mut updates: Vec<RequirementUpdate> = Vec::new();
    loop {
        let mut changed = false;
        for krate in &workspace.crates {
            let next = releases[&krate.name].next.clone();
            for (dependent, dep) in workspace.dependents(&krate.name) {
                if dep.req.matches(&next) {
                    continue;
                }
                let update = RequirementUpdate {
                    dependent: dependent.name.clone(),
                    dependency: krate.name.clone(),
                    old: dep.req.to_string(),
                    new: next.to_string(),
                };
                if !updates.contains(&update) {
                    updates.push(update);
                    changed = true;
                }
                let release = releases
                    .get_mut(&dependent.name)
                    .expect("every dependent is a workspace crate");
                if dep.is_runtime() && release.last_tag.is_some() && !release.is_released() {
                    release.bump = Bump::Patch;
                    release.next = Bump::Patch.apply(&release.current);
                    release.reason = Some(format!("requirement on {} moves to {next}", krate.name));
                    changed = true;
                }
            }
        }
        if !changed {
            return updates;
        }
    }
}
