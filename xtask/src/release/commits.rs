//! Reading commit messages: conventional-commit types and the bump they
//! imply.

use semver::Version;

/// How much a version moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Bump {
    /// Nothing to release.
    None,
    /// A fix-level change.
    Patch,
    /// A new feature, or (below 1.0) anything that is not breaking.
    Minor,
    /// A breaking change.
    Major,
}

impl Bump {
    /// Applies the bump to `version` with Cargo's 0.x rules: below 1.0 a
    /// breaking change moves the minor number and everything else the patch.
    pub(crate) fn apply(self, version: &Version) -> Version {
        let mut next = Version::new(version.major, version.minor, version.patch);
        let effective = if version.major == 0 {
            match self {
                Bump::Major => Bump::Minor,
                Bump::Minor | Bump::Patch => Bump::Patch,
                Bump::None => Bump::None,
            }
        } else {
            self
        };
        match effective {
            Bump::None => return version.clone(),
            Bump::Patch => next.patch += 1,
            Bump::Minor => {
                next.minor += 1;
                next.patch = 0;
            }
            Bump::Major => {
                next.major += 1;
                next.minor = 0;
                next.patch = 0;
            }
        }
        next
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Bump::None => "none",
            Bump::Patch => "patch",
            Bump::Minor => "minor",
            Bump::Major => "major",
        }
    }
}

/// One commit that touched a crate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Commit {
    pub(crate) hash: String,
    pub(crate) subject: String,
    pub(crate) body: String,
}

/// The changelog group of a commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Group {
    Breaking,
    Added,
    Fixed,
    Changed,
}

impl Group {
    pub(crate) fn heading(self) -> &'static str {
        match self {
            Group::Breaking => "Breaking changes",
            Group::Added => "Added",
            Group::Fixed => "Fixed",
            Group::Changed => "Changed",
        }
    }
}

impl Commit {
    /// Returns the conventional-commit type (`feat`, `fix`, …) or `None`
    /// for a plain subject.
    pub(crate) fn kind(&self) -> Option<&str> {
        let head = self.subject.split(':').next()?;
        if head.len() == self.subject.len() {
            return None;
        }
        let head = head.trim_end_matches('!');
        let kind = head.split('(').next().unwrap_or(head);
        let is_word = !kind.is_empty() && kind.chars().all(|c| c.is_ascii_lowercase());
        is_word.then_some(kind)
    }

    /// Returns whether the commit declares a breaking change: a `!` before
    /// the colon, or a `BREAKING CHANGE:` / `BREAKING-CHANGE:` footer.
    pub(crate) fn is_breaking(&self) -> bool {
        let bang = self
            .subject
            .split(':')
            .next()
            .is_some_and(|head| head.len() < self.subject.len() && head.ends_with('!'));
        let footer = self.body.lines().any(|line| {
            line.starts_with("BREAKING CHANGE:") || line.starts_with("BREAKING-CHANGE:")
        });
        bang || footer
    }

    /// Returns the bump this commit asks for.
    ///
    /// Plain subjects (no conventional type) count as patch-level changes,
    /// because this workspace writes plain imperative subjects and marks
    /// breaking changes with a footer. Types that never reach users
    /// (`chore`, `ci`, `test`, `style`, `build`) ask for nothing.
    pub(crate) fn bump(&self) -> Bump {
        if self.is_breaking() {
            return Bump::Major;
        }
        match self.kind() {
            Some("feat") => Bump::Minor,
            Some("chore" | "ci" | "test" | "style" | "build") => Bump::None,
            _ => Bump::Patch,
        }
    }

    /// Returns the changelog group, or `None` for commits left out of it.
    pub(crate) fn group(&self) -> Option<Group> {
        if self.is_breaking() {
            return Some(Group::Breaking);
        }
        match self.kind() {
            Some("feat") => Some(Group::Added),
            Some("fix") => Some(Group::Fixed),
            Some("chore" | "ci" | "test" | "style" | "build") => None,
            _ => Some(Group::Changed),
        }
    }

    /// Returns the subject without its conventional prefix.
    pub(crate) fn summary(&self) -> &str {
        match self.kind() {
            Some(_) => self
                .subject
                .split_once(':')
                .map_or(self.subject.as_str(), |(_, rest)| rest.trim()),
            None => &self.subject,
        }
    }

    pub(crate) fn short_hash(&self) -> &str {
        &self.hash[..self.hash.len().min(8)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(subject: &str, body: &str) -> Commit {
        Commit {
            hash: "0123456789".into(),
            subject: subject.into(),
            body: body.into(),
        }
    }

    #[test]
    fn conventional_types_map_to_bumps() {
        assert_eq!(commit("feat(lock): add Redlock", "").bump(), Bump::Minor);
        assert_eq!(commit("fix: off-by-one", "").bump(), Bump::Patch);
        assert_eq!(commit("ci: cache builds", "").bump(), Bump::None);
        assert_eq!(commit("Add a cheap clock", "").bump(), Bump::Patch);
        assert_eq!(commit("feat!: rename Lease", "").bump(), Bump::Major);
        assert_eq!(
            commit(
                "Rename Lease::token",
                "BREAKING CHANGE: callers use fencing_token"
            )
            .bump(),
            Bump::Major
        );
    }

    #[test]
    fn bumps_follow_zero_x_rules() {
        let v = Version::new(0, 3, 2);
        assert_eq!(Bump::Major.apply(&v), Version::new(0, 4, 0));
        assert_eq!(Bump::Minor.apply(&v), Version::new(0, 3, 3));
        assert_eq!(Bump::Patch.apply(&v), Version::new(0, 3, 3));
        let v = Version::new(1, 2, 3);
        assert_eq!(Bump::Major.apply(&v), Version::new(2, 0, 0));
        assert_eq!(Bump::Minor.apply(&v), Version::new(1, 3, 0));
        assert_eq!(Bump::Patch.apply(&v), Version::new(1, 2, 4));
        assert_eq!(Bump::None.apply(&v), v);
    }

    #[test]
    fn summary_drops_prefix() {
        assert_eq!(commit("fix(id): keep order", "").summary(), "keep order");
        assert_eq!(
            commit("Keep order: always", "").summary(),
            "Keep order: always"
        );
    }
}
