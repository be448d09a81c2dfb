//! The publishable crates of a workspace and how they depend on each other,
//! read from `cargo metadata`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use semver::{Version, VersionReq};
use serde_json::Value;

/// A dependency of one workspace crate on another.
#[derive(Clone, Debug)]
pub(crate) struct SiblingDep {
    pub(crate) name: String,
    pub(crate) req: VersionReq,
    /// `normal`, `dev` or `build`.
    pub(crate) kind: String,
}

impl SiblingDep {
    /// Returns whether a release of the dependent must wait for this one.
    pub(crate) fn is_runtime(&self) -> bool {
        self.kind != "dev"
    }
}

/// One publishable crate.
#[derive(Clone, Debug)]
pub(crate) struct Crate {
    pub(crate) name: String,
    pub(crate) version: Version,
    /// The crate's folder, relative to the workspace root, with `/`.
    pub(crate) dir: String,
    pub(crate) manifest: PathBuf,
    pub(crate) features: Vec<String>,
    pub(crate) deps: Vec<SiblingDep>,
}

/// The publishable crates of a workspace, in dependency order.
#[derive(Debug)]
pub(crate) struct Workspace {
    pub(crate) root: PathBuf,
    pub(crate) crates: Vec<Crate>,
}

impl Workspace {
    /// Reads the workspace at `root`.
    pub(crate) fn load(root: &Path) -> Result<Self, String> {
        let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "metadata",
                "--no-deps",
                "--format-version",
                "1",
                "--manifest-path",
            ])
            .arg(root.join("Cargo.toml"))
            .output()
            .map_err(|err| format!("failed to run cargo metadata: {err}"))?;
        if !output.status.success() {
            return Err(format!(
                "cargo metadata failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        let metadata: Value = serde_json::from_slice(&output.stdout)
            .map_err(|err| format!("cargo metadata printed invalid JSON: {err}"))?;
        let packages = metadata["packages"].as_array().cloned().unwrap_or_default();

        let publishable: BTreeSet<String> = packages
            .iter()
            .filter(|package| is_publishable(package))
            .filter_map(|package| package["name"].as_str().map(str::to_owned))
            .collect();

        let mut crates = Vec::new();
        for package in packages.iter().filter(|package| is_publishable(package)) {
            crates.push(parse_crate(root, package, &publishable)?);
        }
        let crates = dependency_order(crates)?;
        Ok(Workspace {
            root: root.to_owned(),
            crates,
        })
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Crate> {
        self.crates.iter().find(|krate| krate.name == name)
    }

    /// Returns the crates that depend on `name`, with the dependency.
    pub(crate) fn dependents<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = (&'a Crate, &'a SiblingDep)> + 'a {
        self.crates.iter().flat_map(move |krate| {
            krate
                .deps
                .iter()
                .filter(move |dep| dep.name == name)
                .map(move |dep| (krate, dep))
        })
    }
}

fn is_publishable(package: &Value) -> bool {
    // `publish = false` shows as an empty list of registries.
    !matches!(&package["publish"], Value::Array(registries) if registries.is_empty())
}

fn parse_crate(root: &Path, package: &Value, siblings: &BTreeSet<String>) -> Result<Crate, String> {
    let name = package["name"].as_str().unwrap_or_default().to_owned();
    let version = Version::parse(package["version"].as_str().unwrap_or_default())
        .map_err(|err| format!("crate `{name}` has an invalid version: {err}"))?;
    let manifest = PathBuf::from(package["manifest_path"].as_str().unwrap_or_default());
    let dir = manifest
        .parent()
        .and_then(|dir| dir.strip_prefix(root).ok())
        .map(|dir| dir.to_string_lossy().replace('\\', "/"))
        .unwrap_or_default();

    let features = package["features"]
        .as_object()
        .map(|features| {
            features
                .keys()
                .filter(|f| *f != "default")
                .cloned()
                .collect()
        })
        .unwrap_or_default();

    let mut deps = Vec::new();
    for dep in package["dependencies"].as_array().into_iter().flatten() {
        let dep_name = dep["name"].as_str().unwrap_or_default();
        if !siblings.contains(dep_name) {
            continue;
        }
        let req = VersionReq::parse(dep["req"].as_str().unwrap_or("*"))
            .map_err(|err| format!("`{name}` has an invalid requirement on `{dep_name}`: {err}"))?;
        deps.push(SiblingDep {
            name: dep_name.to_owned(),
            req,
            kind: dep["kind"].as_str().unwrap_or("normal").to_owned(),
        });
    }

    Ok(Crate {
        name,
        version,
        dir,
        manifest,
        features,
        deps,
    })
}

/// Sorts crates so that each comes after the crates it needs at run time.
fn dependency_order(crates: Vec<Crate>) -> Result<Vec<Crate>, String> {
    let mut remaining: BTreeMap<String, Crate> = crates
        .into_iter()
        .map(|krate| (krate.name.clone(), krate))
        .collect();
    let mut ordered = Vec::new();
    while !remaining.is_empty() {
        let ready: Vec<String> = remaining
            .values()
            .filter(|krate| {
                krate
                    .deps
                    .iter()
                    .filter(|dep| dep.is_runtime())
                    .all(|dep| !remaining.contains_key(&dep.name))
            })
            .map(|krate| krate.name.clone())
            .collect();
        if ready.is_empty() {
            let names: Vec<&String> = remaining.keys().collect();
            return Err(format!("dependency cycle among {names:?}"));
        }
        for name in ready {
            ordered.extend(remaining.remove(&name));
        }
    }
    Ok(ordered)
}
