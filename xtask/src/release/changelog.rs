//! `CHANGELOG.md` from the commits since the last release tag, in release-plz's format
//! (its git-cliff template): a section per release linking the compare view, groups by
//! kind with breaking changes first, one line per commit with its scope and a link.
//!
//! Commits are read as Conventional Commits (`feat(core)!: ...`, with `BREAKING CHANGE:`
//! footers) through `git-conventional`. fleet's own history mostly says `area: what`
//! instead (`fleet-core: ...`, `docs: ...`, `Tests: ...`); such a commit is sorted by its
//! area and first word, so the changelog of an older history is still grouped.

use std::fmt::Write as _;

use semver::Version;

use super::git::Commit;

/// The groups, in the order they are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Group {
    Breaking,
    Added,
    Fixed,
    Performance,
    Documentation,
    Tests,
    Other,
}

impl Group {
    fn title(self) -> &'static str {
        match self {
            Group::Breaking => "⚠️ Breaking changes",
            Group::Added => "Added",
            Group::Fixed => "Fixed",
            Group::Performance => "Performance",
            Group::Documentation => "Documentation",
            Group::Tests => "Tests",
            Group::Other => "Other",
        }
    }
}

/// One changelog line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    group: Group,
    scope: Option<String>,
    description: String,
    /// What breaks, from a `BREAKING CHANGE:` footer.
    breaking_note: Option<String>,
    id: String,
}

/// What the section is about.
#[derive(Debug, Clone)]
pub(crate) struct Release<'a> {
    /// The version released.
    pub(crate) version: &'a Version,
    /// The tag of the release before (reachable from the release commit), if any.
    pub(crate) previous_tag: Option<&'a str>,
    /// The release date, `YYYY-MM-DD`.
    pub(crate) date: &'a str,
    /// The repository's web address (`https://github.com/owner/name`).
    pub(crate) repository: &'a str,
}

/// The section for one release: its heading and the commits, grouped.
pub(crate) fn section(release: &Release<'_>, commits: &[Commit]) -> String {
    let mut entries: Vec<Entry> = commits.iter().filter_map(entry).collect();
    // Stable: within a group, commits stay newest first, as git log gave them.
    entries.sort_by_key(|entry| entry.group);
    let tag = format!("v{}", release.version);
    let repository = release.repository.trim_end_matches('/');
    let mut out = match release.previous_tag {
        Some(previous) => format!(
            "## [{}]({repository}/compare/{previous}...{tag}) - {}\n",
            release.version, release.date
        ),
        None => format!(
            "## [{}]({repository}/releases/tag/{tag}) - {}\n",
            release.version, release.date
        ),
    };
    if entries.is_empty() {
        out.push_str("\nNo changes since the last release.\n");
    }
    let mut current = None;
    for entry in &entries {
        if current != Some(entry.group) {
            let _ = write!(out, "\n### {}\n\n", entry.group.title());
            current = Some(entry.group);
        }
        out.push_str("- ");
        if let Some(scope) = &entry.scope {
            let _ = write!(out, "*({scope})* ");
        }
        let short = &entry.id[..entry.id.len().min(7)];
        let _ = writeln!(
            out,
            "{} ([{short}]({repository}/commit/{}))",
            entry.description, entry.id
        );
        if let Some(note) = &entry.breaking_note {
            for line in note.lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
    out
}

/// The changelog with `section` added on top of the existing releases.
pub(crate) fn prepend(existing: Option<&str>, section: &str) -> String {
    const HEADER: &str = "# Changelog\n\nAll notable changes to this project are documented in this file, newest first.\n\nThe format is based on [Keep a Changelog](https://keepachangelog.com/en/1.1.0/),\nand this project adheres to [Semantic Versioning](https://semver.org/spec/v2.0.0.html).\n";
    let previous = existing
        .and_then(|text| text.find("\n## ").map(|at| &text[at + 1..]))
        .unwrap_or_default();
    let mut out = format!("{HEADER}\n{section}");
    if !previous.is_empty() {
        out.push('\n');
        out.push_str(previous);
    }
    out
}

/// The types of the Conventional Commits specification and of the Angular convention it
/// grew from.
const CONVENTIONAL_TYPES: [&str; 11] = [
    "feat", "fix", "perf", "docs", "test", "refactor", "build", "ci", "chore", "style", "revert",
];

/// The changelog line of a commit; none for the release commits themselves.
fn entry(commit: &Commit) -> Option<Entry> {
    if commit.subject.starts_with("Release v") || commit.subject.starts_with("chore(release)") {
        return None;
    }
    let message = if commit.body.is_empty() {
        commit.subject.clone()
    } else {
        format!("{}\n\n{}", commit.subject, commit.body)
    };
    // `fleet-core: ...` parses as a Conventional Commit of type `fleet-core`: only the
    // known types are read that way.
    if let Ok(conventional) = git_conventional::Commit::parse(&message)
        && CONVENTIONAL_TYPES.contains(&conventional.type_().as_str())
    {
        let kind = conventional.type_();
        let group = if conventional.breaking() {
            Group::Breaking
        } else if kind == git_conventional::Type::FEAT {
            Group::Added
        } else if kind == git_conventional::Type::FIX {
            Group::Fixed
        } else if kind == git_conventional::Type::PERF {
            Group::Performance
        } else if kind == git_conventional::Type::DOCS {
            Group::Documentation
        } else if kind == git_conventional::Type::TEST {
            Group::Tests
        } else {
            Group::Other
        };
        let breaking_note = conventional
            .breaking_description()
            .filter(|note| *note != conventional.description())
            .map(str::to_owned);
        return Some(Entry {
            group,
            scope: conventional.scope().map(|scope| scope.to_string()),
            description: conventional.description().to_owned(),
            breaking_note,
            id: commit.id.clone(),
        });
    }
    Some(area_entry(commit))
}

/// A commit written `area: what` (or just `what`).
fn area_entry(commit: &Commit) -> Entry {
    let (scope, description) = match commit.subject.split_once(": ") {
        // An area is a name or two (`fleet-core`, `xtask test`), not a sentence.
        Some((area, what)) if !area.is_empty() && area.split_whitespace().count() <= 3 => {
            (Some(area.trim().to_owned()), what.trim().to_owned())
        }
        _ => (None, commit.subject.trim().to_owned()),
    };
    let area = scope.as_deref().unwrap_or_default().to_ascii_lowercase();
    let first_word = description
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let group = if commit.body.contains("BREAKING CHANGE:") {
        Group::Breaking
    } else if area == "docs"
        || area.starts_with("docs/")
        || area.starts_with("readme")
        || area.ends_with(".md")
    {
        Group::Documentation
    } else if area == "test"
        || area == "tests"
        || area.starts_with("e2e")
        || area.ends_with(" tests")
    {
        Group::Tests
    } else if matches!(first_word.as_str(), "fix" | "fixes" | "fixed") {
        Group::Fixed
    } else if matches!(first_word.as_str(), "add" | "adds" | "added" | "new") {
        Group::Added
    } else {
        Group::Other
    };
    // `Tests: ...` and `docs: ...` say the group, not a scope.
    let scope = scope.filter(|_| !matches!(area.as_str(), "docs" | "test" | "tests"));
    Entry {
        group,
        scope,
        description,
        breaking_note: None,
        id: commit.id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(n: u8, subject: &str, body: &str) -> Commit {
        Commit {
            id: format!("{n:x}").repeat(40)[..40].to_owned(),
            subject: subject.to_owned(),
            body: body.to_owned(),
        }
    }

    #[test]
    fn a_section_groups_commits_breaking_first() {
        let version = Version::parse("1.2.0").unwrap();
        let commits = [
            commit(1, "feat(registry): resolve semver ranges", ""),
            commit(2, "fix: keep the newest pre-update backup", ""),
            commit(3, "fleet-core: journal each step before it runs", ""),
            commit(4, "feat(core)!: rename Fleet::apply to Fleet::converge", ""),
            commit(5, "Release v1.1.4", ""),
            commit(6, "docs: how to run fleet serve in a container", ""),
            commit(7, "perf(proxy): one allocation less per request", ""),
            commit(8, "Tests: the update e2e shares its bed", ""),
            commit(
                9,
                "refactor(backup): one writer for both archive kinds",
                "BREAKING CHANGE: ArchiveWriter::new takes a Layout",
            ),
            commit(10, "fleet-backup: fix the restore of empty directories", ""),
        ];
        let section = section(
            &Release {
                version: &version,
                previous_tag: Some("v1.1.4"),
                date: "2026-11-30",
                repository: "https://github.com/fleet-rs/fleet",
            },
            &commits,
        );
        insta::assert_snapshot!(section);
    }

    #[test]
    fn prepending_keeps_earlier_releases_and_one_header() {
        let first = prepend(None, "## [1.0.0](x) - 2026-01-01\n\n### Added\n\n- a\n");
        let second = prepend(
            Some(&first),
            "## [1.1.0](y) - 2026-02-01\n\n### Fixed\n\n- b\n",
        );
        assert_eq!(second.matches("# Changelog").count(), 1);
        let newer = second.find("## [1.1.0]").unwrap();
        let older = second.find("## [1.0.0]").unwrap();
        assert!(newer < older, "{second}");
        assert!(second.ends_with("- a\n"), "{second}");
    }

    #[test]
    fn a_first_release_links_its_tag_and_an_empty_one_says_so() {
        let version = Version::parse("0.1.0").unwrap();
        let text = section(
            &Release {
                version: &version,
                previous_tag: None,
                date: "2026-11-30",
                repository: "https://github.com/fleet-rs/fleet/",
            },
            &[],
        );
        assert_eq!(
            text,
            "## [0.1.0](https://github.com/fleet-rs/fleet/releases/tag/v0.1.0) - 2026-11-30\n\nNo changes since the last release.\n"
        );
    }
}
