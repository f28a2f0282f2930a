//! Property: for random trees, create → restore is the identity.

use std::fs;
use std::path::Path;

use proptest::prelude::*;

use crate::common::{Scratch, assert_same_tree, backup, chmod, set_mtime};

#[derive(Debug, Clone)]
enum Node {
    File { content: Vec<u8>, mode: u32 },
    Dir { mode: u32 },
    Symlink { to: usize },
}

fn node() -> impl Strategy<Value = Node> {
    prop_oneof![
        4 => (proptest::collection::vec(any::<u8>(), 0..3000), prop::sample::select(vec![0o644, 0o600, 0o755, 0o400, 0o4750]))
            .prop_map(|(content, mode)| Node::File { content, mode }),
        2 => prop::sample::select(vec![0o755, 0o700, 0o555, 0o1777]).prop_map(|mode| Node::Dir { mode }),
        1 => any::<usize>().prop_map(|to| Node::Symlink { to }),
    ]
}

/// Up to 3 levels of names from a small alphabet, so paths collide and nest often.
fn path() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(
        prop::sample::select(vec!["a", "b", "c", "d d", "é"]).prop_map(str::to_owned),
        1..4,
    )
}

/// Builds the tree; returns nothing as the tree on disk is the expectation.
fn build(root: &Path, nodes: &[(Vec<String>, Node, (i64, u32))]) {
    fs::create_dir_all(root).unwrap();
    let mut made: Vec<(String, &Node, (i64, u32))> = Vec::new();
    for (components, node, time) in nodes {
        let rel = components.join("/");
        let path = root.join(&rel);
        // Parents must be plain directories we made (or implicitly create).
        let parent_ok = components.len() == 1 || {
            let parent = root.join(components[..components.len() - 1].join("/"));
            match fs::symlink_metadata(&parent) {
                Ok(m) => m.is_dir(),
                Err(_) => fs::create_dir_all(&parent).is_ok(),
            }
        };
        if !parent_ok || fs::symlink_metadata(&path).is_ok() {
            continue;
        }
        match node {
            Node::File { content, .. } => fs::write(&path, content).unwrap(),
            Node::Dir { .. } => fs::create_dir(&path).unwrap(),
            Node::Symlink { to } => {
                let Some((target, _, _)) = made.get(to % made.len().max(1)) else {
                    continue;
                };
                let up = "../".repeat(components.len() - 1);
                std::os::unix::fs::symlink(format!("{up}{target}"), &path).unwrap();
            }
        }
        made.push((rel, node, *time));
    }
    // Modes and times last, deepest first, so creating entries does not change them.
    made.sort_by_key(|(rel, _, _)| std::cmp::Reverse(rel.matches('/').count()));
    for (rel, node, (secs, nanos)) in made {
        let path = root.join(&rel);
        match node {
            Node::File { mode, .. } | Node::Dir { mode } => chmod(&path, *mode),
            Node::Symlink { .. } => {}
        }
        set_mtime(&path, secs, nanos);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn create_then_restore_is_the_identity(
        nodes in proptest::collection::vec((path(), node(), (0i64..4_000_000_000, 0u32..1_000_000_000)), 0..25)
    ) {
        let s = Scratch::new();
        build(&s.path("src"), &nodes);
        let info = backup(&s.path("src"), &s.path("backups"));
        fleet_backup::restore(&info.path, &s.path("restored"), &mut |_| {}).unwrap();
        assert_same_tree(&s.path("src"), &s.path("restored"));
    }
}
