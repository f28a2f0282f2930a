//! Checks that the README promises only what exists: every `fleet` command it shows is one
//! `docs/cli.md` (the contract, snapshot-tested against the binary) documents, and every
//! command it lists as coming is not documented yet.

use std::collections::BTreeSet;

/// The `fleet` subcommands a Markdown text names in code: lines of fenced blocks and inline
/// spans that start with `fleet `, and lists in one span (`fleet update / rollback`).
fn commands(markdown: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut in_block = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        let spans: Vec<&str> = if in_block {
            line.split("&&").collect()
        } else {
            line.split('`').skip(1).step_by(2).collect()
        };
        for span in spans {
            let Some(rest) = span.trim().strip_prefix("fleet ") else {
                continue;
            };
            for alternative in rest.split(" / ").flat_map(|part| part.split('|')) {
                let word = alternative.split_whitespace().next().unwrap_or_default();
                if !word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase()) {
                    found.insert(word.to_owned());
                }
            }
        }
    }
    found
}

/// The part of `markdown` under the heading `heading`, up to the next heading of its level.
fn section<'a>(markdown: &'a str, heading: &str) -> Option<&'a str> {
    let start = markdown.find(&format!("\n{heading}\n"))? + heading.len() + 2;
    let level = heading.split(' ').next().unwrap_or_default();
    let end = markdown[start..]
        .find(&format!("\n{level} "))
        .map_or(markdown.len(), |end| start + end);
    Some(&markdown[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &str) -> String {
        let path = crate::workspace_root().join(path);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }

    fn documented() -> BTreeSet<String> {
        let contract = read("docs/cli.md");
        let headings: String = contract
            .lines()
            .filter(|line| line.starts_with('#'))
            .map(|line| format!("{line}\n"))
            .collect();
        commands(&headings)
    }

    #[test]
    fn commands_are_found_in_blocks_spans_and_lists() {
        let text = "fleet is prose\n`fleet ls --json` and `fleet update / rollback`\n\
                    ```sh\nfleet stop a && fleet start a   # comment\n```\n\
                    ### `fleet start|stop|restart NAME...`\n`fleet.toml`";
        assert_eq!(
            commands(text).into_iter().collect::<Vec<_>>(),
            ["ls", "restart", "rollback", "start", "stop", "update"]
        );
    }

    #[test]
    fn the_readme_shows_only_commands_that_exist() {
        // Regression (issue 14, item 20): the README said in the present tense that updates
        // take a backup, pass a health gate and roll back, before any such command existed.
        let readme = read("README.md");
        let coming = section(&readme, "## Coming next").expect("README has `## Coming next`");
        let today = readme.replace(coming, "");
        let documented = documented();
        let missing: Vec<_> = commands(&today).difference(&documented).cloned().collect();
        assert!(
            missing.is_empty(),
            "the README shows commands docs/cli.md does not document: {missing:?}"
        );
    }

    #[test]
    fn what_the_readme_lists_as_coming_does_not_exist_yet_and_links_its_issue() {
        let readme = read("README.md");
        let coming = section(&readme, "## Coming next").expect("README has `## Coming next`");
        let built: Vec<_> = commands(coming)
            .intersection(&documented())
            .cloned()
            .collect();
        assert!(
            built.is_empty(),
            "README lists as coming what docs/cli.md documents as built: {built:?}; move it \
             to `## What works today`"
        );
        // Every item links the issue that tracks it (when every filed issue is built, the
        // section says what comes without a list).
        let items: Vec<&str> = coming.split("\n- ").skip(1).collect();
        for item in items {
            assert!(
                item.contains("/issues/"),
                "README's `## Coming next` item links no issue: {item}"
            );
        }
    }
}
