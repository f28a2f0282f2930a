//! The git side of a release: the tree must be clean, the commits since the last release
//! tag make the changelog, and the release is a commit and an annotated tag. git itself
//! does the work (the `git` on PATH), so hooks, signing and config behave as the
//! maintainer set them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// One commit, as the changelog needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Commit {
    /// The full hash.
    pub(crate) id: String,
    /// The first line.
    pub(crate) subject: String,
    /// The rest of the message.
    pub(crate) body: String,
}

/// A repository: the release's root.
#[derive(Debug, Clone)]
pub(crate) struct Repo {
    root: PathBuf,
}

impl Repo {
    /// The repository whose work tree is `root`.
    pub(crate) fn open(root: &Path) -> anyhow::Result<Repo> {
        let repo = Repo {
            root: root.to_path_buf(),
        };
        repo.output(&["rev-parse", "--git-dir"])
            .with_context(|| format!("{} is not a git work tree", root.display()))?;
        Ok(repo)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("git");
        command.arg("-C").arg(&self.root).args(args);
        command
    }

    /// Runs git and returns its standard output, or an error with its standard error.
    fn output(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = self
            .command(args)
            .output()
            .context("cannot run git: is it installed?")?;
        if !output.status.success() {
            bail!(
                "`git {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Fails unless the work tree and the index have no changes (untracked files count).
    pub(crate) fn ensure_clean(&self) -> anyhow::Result<()> {
        let status = self.output(&["status", "--porcelain"])?;
        if !status.trim().is_empty() {
            let files: Vec<&str> = status.lines().take(10).collect();
            bail!(
                "the work tree at {} has changes; commit or stash them before releasing:\n{}",
                self.root.display(),
                files.join("\n")
            );
        }
        Ok(())
    }

    /// The full hash of HEAD.
    pub(crate) fn head(&self) -> anyhow::Result<String> {
        Ok(self.output(&["rev-parse", "HEAD"])?.trim().to_owned())
    }

    /// The committer time of HEAD, in seconds since the epoch: the release's
    /// `SOURCE_DATE_EPOCH` unless the environment sets one.
    pub(crate) fn head_time(&self) -> anyhow::Result<i64> {
        let text = self.output(&["log", "-1", "--format=%ct", "HEAD"])?;
        text.trim()
            .parse()
            .with_context(|| format!("git printed {text:?} for HEAD's commit time"))
    }

    /// The commit a tag points at, if the tag exists.
    pub(crate) fn tag_commit(&self, tag: &str) -> anyhow::Result<Option<String>> {
        self.output_if_success(&[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("refs/tags/{tag}^{{commit}}"),
        ])
    }

    /// The newest release tag (`v` and a version) reachable from HEAD.
    pub(crate) fn last_release_tag(&self) -> anyhow::Result<Option<String>> {
        self.release_tag_reachable_from("HEAD")
    }

    /// The newest release tag reachable from `tag`'s parent: the release before `tag`.
    pub(crate) fn last_release_tag_before(&self, tag: &str) -> anyhow::Result<Option<String>> {
        self.release_tag_reachable_from(&format!("{tag}^"))
    }

    /// The newest release tag reachable from `rev`, if there is one.
    fn release_tag_reachable_from(&self, rev: &str) -> anyhow::Result<Option<String>> {
        self.output_if_success(&[
            "describe",
            "--tags",
            "--abbrev=0",
            "--match",
            "v[0-9]*",
            rev,
        ])
    }

    /// git's trimmed stdout when it succeeds, `None` when it fails (a missing tag, no
    /// release yet): an answer, not an error.
    fn output_if_success(&self, args: &[&str]) -> anyhow::Result<Option<String>> {
        let output = self.command(args).output().context("cannot run git")?;
        Ok(output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned()))
    }

    /// The commits after `since` (all of them without it) up to `until`, newest first,
    /// merges left out.
    pub(crate) fn commits_between(
        &self,
        since: Option<&str>,
        until: &str,
    ) -> anyhow::Result<Vec<Commit>> {
        let range = match since {
            Some(tag) => format!("{tag}..{until}"),
            None => until.to_owned(),
        };
        let log = self.output(&["log", "--no-merges", "--format=%H%x1f%s%x1f%b%x1e", &range])?;
        Ok(log
            .split('\x1e')
            .filter_map(|record| {
                let mut fields = record.trim_start_matches('\n').splitn(3, '\x1f');
                let id = fields.next()?.trim();
                if id.is_empty() {
                    return None;
                }
                Some(Commit {
                    id: id.to_owned(),
                    subject: fields.next().unwrap_or_default().trim().to_owned(),
                    body: fields.next().unwrap_or_default().trim().to_owned(),
                })
            })
            .collect())
    }

    /// Commits `files` (paths relative to the root) with `message`.
    pub(crate) fn commit(&self, files: &[&str], message: &str) -> anyhow::Result<String> {
        let mut add = vec!["add", "--"];
        add.extend_from_slice(files);
        self.output(&add)?;
        let mut commit = vec!["commit", "--quiet", "-m", message, "--"];
        commit.extend_from_slice(files);
        self.output(&commit)?;
        self.head()
    }

    /// Makes the annotated tag `tag` at HEAD.
    pub(crate) fn tag(&self, tag: &str, message: &str) -> anyhow::Result<()> {
        self.output(&["tag", "--annotate", tag, "-m", message])?;
        Ok(())
    }
}
