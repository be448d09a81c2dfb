//! `cargo xtask release`: plan, prepare, verify, tag and publish releases of
//! independently versioned crates.

mod commits;
mod git;
mod plan;
mod prepare;
mod publish;
mod workspace;

use std::path::PathBuf;

pub(crate) use plan::Plan;
pub(crate) use workspace::Workspace;

pub(crate) const HELP: &str = "\
cargo xtask release [STEP] [OPTIONS]

Releases the workspace's publishable crates, each with its own version and
`<crate>-v<version>` tags, in dependency order.

Steps:
  plan      (default) For each crate: the commits that touched its folder since
            its last tag, the bump they ask for, and the sibling requirements
            that must move. Prints a table; writes nothing.
  prepare   Applies the plan: versions in each manifest, requirements in the
            manifests or [workspace.dependencies], a CHANGELOG.md section per
            crate, Cargo.lock, and one commit. Rejects a dirty tree, a detached
            HEAD or an existing tag before it changes anything.
  verify    `cargo package` of the released crates together, each feature of
            each crate built alone (cargo-hack when installed), and the public
            API against the last tag (cargo-semver-checks when installed).
            Writes only under target/.
  tag       Creates an annotated `<crate>-v<version>` tag for every crate whose
            version has none. Rejects a dirty tree or a detached HEAD.
  publish   Lists what `cargo publish` would upload, in dependency order,
            skipping versions already published. With --execute it publishes
            and records progress in target/release-published.txt, so a failed
            run resumes where it stopped.

Options:
  --crate NAME   Consider only NAME's own commits (repeatable); crates whose
                 requirements must follow are still released.
  --root DIR     The workspace root (default: the current git work tree).
  --execute      With `publish`: really publish.

Bumps: a breaking change (`type!:` or a `BREAKING CHANGE:` footer) bumps the
major version (the minor below 1.0); `feat:` bumps the minor (the patch below
1.0); any other commit bumps the patch, except chore, ci, test, style and
build commits, which bump nothing.
";

struct Options {
    step: String,
    only: Vec<String>,
    root: Option<PathBuf>,
    execute: bool,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        step: "plan".to_owned(),
        only: Vec::new(),
        root: None,
        execute: false,
    };
    let mut args = args.iter();
    let mut step_seen = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--crate" => options.only.push(
                args.next()
                    .ok_or("--crate needs a crate name, such as --crate pulse-core")?
                    .clone(),
            ),
            "--root" => {
                options.root = Some(PathBuf::from(
                    args.next().ok_or("--root needs a directory")?,
                ))
            }
            "--execute" => options.execute = true,
            "plan" | "prepare" | "verify" | "tag" | "publish" if !step_seen => {
                options.step = arg.clone();
                step_seen = true;
            }
            other => {
                return Err(format!(
                    "unknown argument `{other}`; run `cargo xtask release --help`"
                ));
            }
        }
    }
    Ok(options)
}

fn workspace_root(explicit: Option<PathBuf>) -> Result<PathBuf, String> {
    match explicit {
        Some(root) => Ok(root),
        None => Ok(PathBuf::from(
            git::git(
                &std::env::current_dir().map_err(|e| e.to_string())?,
                &["rev-parse", "--show-toplevel"],
            )?
            .trim(),
        )),
    }
}

/// Runs `cargo xtask release` with the arguments after `release`.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    if args.iter().any(|arg| arg == "--help" || arg == "-h") {
        print!("{HELP}");
        return Ok(());
    }
    let options = parse(args)?;
    let root = workspace_root(options.root)?;
    let workspace = Workspace::load(&root)?;
    for name in &options.only {
        if workspace.get(name).is_none() {
            return Err(format!(
                "`{name}` is not a publishable crate of this workspace"
            ));
        }
    }

    match options.step.as_str() {
        "plan" => {
            let plan = Plan::compute(&workspace, &options.only)?;
            print!("{}", plan.render());
        }
        "prepare" => {
            let plan = Plan::compute(&workspace, &options.only)?;
            prepare::check_preconditions(&workspace, &plan)?;
            print!("{}", plan.render());
            let subject = prepare::apply(&workspace, &plan)?;
            println!("\ncommitted: {subject}");
        }
        "verify" => {
            let plan = Plan::compute(&workspace, &options.only)?;
            publish::verify(&workspace, &plan)?;
        }
        "tag" => {
            for tag in publish::tag(&workspace)? {
                println!("tagged {tag}");
            }
        }
        "publish" => publish::publish(&workspace, options.execute)?,
        _ => unreachable!("parse accepts only known steps"),
    }
    Ok(())
}
