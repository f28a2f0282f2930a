use proptest::prelude::*;

use super::*;

fn parse(input: &str) -> String {
    match input.parse::<Channel>() {
        Ok(Channel::Latest) => "latest".to_owned(),
        Ok(Channel::Series(version)) => format!("series {version}"),
        Ok(Channel::Exact(version)) => format!("exact {version}"),
        Ok(Channel::Range(requirement)) => format!("range {requirement}"),
        Ok(Channel::Tag(tag)) => format!("tag {tag}"),
        Ok(Channel::Digest(digest)) => format!("digest {}…", &digest.as_str()[..12]),
        Err(error) => format!("error: {error}"),
    }
}

const TAGS: &str = "latest v1.3.9 v1.4.0 v1.4.1 1.4.1 v1.4 v1 v2.0.0-rc.1 v2.0.0-rc.2 sha-1a2b3c4 \
                    main 16-alpine garbage__ 0.9.0";

fn check(channel: &str, tags: &str) -> String {
    check_with(channel, tags, ResolveOptions::default())
}

fn check_with(channel: &str, tags: &str, options: ResolveOptions) -> String {
    let channel: Channel = channel.parse().unwrap();
    let tags: Vec<&str> = tags.split_whitespace().collect();
    channel
        .resolve_with(&tags, options)
        .unwrap_or("-")
        .to_owned()
}

#[test]
fn parses_channels() {
    assert_eq!(parse("latest"), "latest");
    assert_eq!(parse("v1"), "series v1");
    assert_eq!(parse("1"), "series 1");
    assert_eq!(parse("v1.4"), "series v1.4");
    assert_eq!(parse("1.4"), "series 1.4");
    assert_eq!(parse("v1.4.2"), "exact v1.4.2");
    assert_eq!(parse("1.4.2"), "exact 1.4.2");
    assert_eq!(parse("v2.0.0-rc.1"), "exact v2.0.0-rc.1");
    assert_eq!(parse("^1.2"), "range ^1.2");
    assert_eq!(parse("~1.4.2"), "range ~1.4.2");
    assert_eq!(parse(">=1.2, <2"), "range >=1.2, <2");
    assert_eq!(parse(">=1.2,<2"), "range >=1.2, <2");
    assert_eq!(parse("*"), "range *");
    assert_eq!(parse("=1.4.2"), "range =1.4.2");
    assert_eq!(parse("sha-1a2b3c4"), "tag sha-1a2b3c4");
    assert_eq!(parse("main-1a2b3c4"), "tag main-1a2b3c4");
    assert_eq!(parse("16-alpine"), "tag 16-alpine");
    assert_eq!(parse("1.x"), "tag 1.x");
    assert_eq!(parse("2024.01.15"), "tag 2024.01.15");
    assert_eq!(parse("V1"), "tag V1");
    let digest = format!("sha256:{}", "a".repeat(64));
    assert_eq!(parse(&format!("@{digest}")), "digest sha256:aaaaa…");
    assert_eq!(parse(&digest), "digest sha256:aaaaa…");
    assert_eq!(
        parse("@sha256:abc"),
        r#"error: invalid channel "@sha256:abc": invalid digest: expected 64 hexadecimal digits, found 3"#
    );
    assert_eq!(
        parse("^x"),
        r#"error: invalid channel "^x": invalid version range: unexpected character 'x' while parsing major version number"#
    );
    assert_eq!(
        parse("-x"),
        r#"error: invalid channel "-x": expected `latest`, a version (`v1`, `v1.4`, `v1.4.2`), a version range (`^1.2`), a tag or a digest (`@sha256:…`)"#
    );
    assert_eq!(
        parse(""),
        r#"error: invalid channel "": expected `latest`, a version (`v1`, `v1.4`, `v1.4.2`), a version range (`^1.2`), a tag or a digest (`@sha256:…`)"#
    );
}

#[test]
fn resolves_channels() {
    assert_eq!(check("latest", TAGS), "latest");
    assert_eq!(check("v1", TAGS), "v1.4.1");
    // Equal versions: the channel's spelling wins.
    assert_eq!(check("1", TAGS), "1.4.1");
    assert_eq!(check("v1.4", TAGS), "v1.4.1");
    assert_eq!(check("v1.3", TAGS), "v1.3.9");
    assert_eq!(check("v1.4.0", TAGS), "v1.4.0");
    assert_eq!(check("1.4.0", TAGS), "v1.4.0");
    assert_eq!(check("v0", TAGS), "0.9.0");
    assert_eq!(check("v1.5", TAGS), "-");
    assert_eq!(check("v2", TAGS), "-");
    assert_eq!(check("v2.0.0-rc.1", TAGS), "v2.0.0-rc.1");
    assert_eq!(check("v2.0.0", TAGS), "-");
    assert_eq!(check("^1.2", TAGS), "v1.4.1");
    assert_eq!(check("~1.3", TAGS), "v1.3.9");
    assert_eq!(check(">=1.2, <2", TAGS), "v1.4.1");
    assert_eq!(check("*", TAGS), "v1.4.1");
    assert_eq!(check(">=2.0.0-rc.1", TAGS), "v2.0.0-rc.2");
    assert_eq!(check("sha-1a2b3c4", TAGS), "sha-1a2b3c4");
    assert_eq!(check("main", TAGS), "main");
    assert_eq!(check("16-alpine", TAGS), "16-alpine");
    assert_eq!(check("sha-0000000", TAGS), "-");
    assert_eq!(check(&format!("@sha256:{}", "a".repeat(64)), TAGS), "-");
    assert_eq!(check("v1", ""), "-");
    assert_eq!(check("latest", "v1.0.0"), "-");
}

#[test]
fn prereleases_only_on_request() {
    let with = ResolveOptions::default().with_prereleases(true);
    assert_eq!(check_with("v2", TAGS, with), "v2.0.0-rc.2");
    assert_eq!(check_with("v1", "v1.4.1 v1.5.0-rc.1", with), "v1.5.0-rc.1");
    assert_eq!(check_with("v1", "v1.5.0 v1.5.0-rc.1", with), "v1.5.0");
    assert_eq!(
        check_with("^1.2", "v1.4.1 v1.5.0-rc.1 v2.0.0-rc.1", with),
        "v1.5.0-rc.1"
    );
    assert_eq!(
        check_with(">=1.2, <2", "v1.4.1 v2.0.0-rc.1", with),
        "v1.4.1"
    );
    assert_eq!(check("v1", "v1.5.0-rc.1"), "-");
}

#[test]
fn numbers_compare_as_numbers_in_any_order() {
    assert_eq!(check("v1", "v1.10.0 v1.9.0 v1.2.0"), "v1.10.0");
    assert_eq!(check("v1", "v1.2.0 v1.10.0 v1.9.0"), "v1.10.0");
    assert_eq!(check("1", "1.9 1.10 1.2.3"), "1.10");
}

#[test]
fn partial_tags_are_candidates_below_full_ones() {
    // Images such as postgres publish `16` and `16.2` but no `16.2.0`.
    assert_eq!(check("16", "latest 16 16.1 16.2 15.6"), "16.2");
    assert_eq!(check("16.1", "latest 16 16.1 16.2 15.6"), "16.1");
    assert_eq!(check("16", "16"), "16");
    assert_eq!(check("v1", "v1 v1.4 v1.4.2"), "v1.4.2");
    assert_eq!(check("v1", "v1 v1.5 v1.4.2"), "v1.5");
    // Ranges need full versions.
    assert_eq!(check("^16", "16 16.2"), "-");
}

#[test]
fn channel_refs() {
    let check = |input: &str| match input.parse::<ChannelRef>() {
        Ok(tracked) => format!("{} | {}", tracked.image(), tracked.channel()),
        Err(error) => format!("error: {error}"),
    };
    assert_eq!(check("nginx"), "docker.io/library/nginx | latest");
    assert_eq!(check("nginx:v1"), "docker.io/library/nginx | v1");
    assert_eq!(check("127.0.0.1:5000/app"), "127.0.0.1:5000/app | latest");
    assert_eq!(
        check("127.0.0.1:5000/app:^1.2"),
        "127.0.0.1:5000/app | ^1.2"
    );
    assert_eq!(
        check("ghcr.io/o/app:>=1.2, <2"),
        "ghcr.io/o/app | >=1.2, <2"
    );
    assert_eq!(check("[::1]:5000/app"), "[::1]:5000/app | latest");
    assert_eq!(
        check("localhost:5000"),
        "docker.io/library/localhost | 5000"
    );
    let digest = format!("sha256:{}", "b".repeat(64));
    assert_eq!(
        check(&format!("app:v1@{digest}")),
        format!("docker.io/library/app | {digest}")
    );
    assert_eq!(
        check("Nginx:v1"),
        r#"error: invalid image reference "Nginx:v1": repository name "Nginx" must be lowercase"#
    );
    assert_eq!(
        check("nginx:^x"),
        r#"error: invalid channel "^x": invalid version range: unexpected character 'x' while parsing major version number"#
    );
    assert_eq!(
        check("nginx:v1:v2"),
        r#"error: invalid image reference "nginx:v1:v2": tag "v1:v2" must start with a letter, digit or `_` and hold at most 128 letters, digits, `_`, `.` or `-`"#
    );
    let tracked: ChannelRef = "nginx:^1.2".parse().unwrap();
    assert_eq!(tracked.to_string(), "docker.io/library/nginx:^1.2");
    assert_eq!(tracked.to_string().parse::<ChannelRef>().unwrap(), tracked);
    assert_eq!(
        serde_json::to_string(&tracked).unwrap(),
        r#""docker.io/library/nginx:^1.2""#
    );
    let pinned: ChannelRef = format!("nginx@{digest}").parse().unwrap();
    assert_eq!(
        pinned.to_string(),
        format!("docker.io/library/nginx@{digest}")
    );
}

fn tag() -> impl Strategy<Value = String> {
    let version = (
        any::<bool>(),
        0..3u64,
        proptest::option::of(0..4u64),
        proptest::option::of(0..4u64),
        0..4usize,
    )
        .prop_map(|(v, major, minor, patch, pre)| {
            let mut tag = format!("{}{major}", if v { "v" } else { "" });
            if let Some(minor) = minor {
                tag += &format!(".{minor}");
                if let Some(patch) = patch {
                    tag += &format!(".{patch}");
                    tag += ["", "", "-rc.1", "-beta"][pre];
                }
            }
            tag
        });
    prop_oneof![
        6 => version,
        1 => Just("latest".to_owned()),
        1 => "sha-[0-9a-f]{7}",
        1 => "[a-z][a-z0-9._-]{0,8}",
    ]
}

fn channel() -> impl Strategy<Value = Channel> {
    prop_oneof![
        Just("latest".to_owned()),
        "v?[0-2]",
        "v?[0-2]\\.[0-3]",
        "v?[0-2]\\.[0-3]\\.[0-3](-rc\\.1|-beta)?",
        "\\^[0-2]\\.[0-3]",
        "~[0-2]\\.[0-3]\\.[0-3]",
        ">=[0-2]\\.[0-3], <[1-3]",
        "sha-[0-9a-f]{7}",
        "[a-z]{1,3}",
    ]
    .prop_map(|text| text.parse().unwrap())
}

fn tags_and_shuffled() -> impl Strategy<Value = (Vec<String>, Vec<String>)> {
    proptest::collection::vec(tag(), 0..40)
        .prop_flat_map(|tags| (Just(tags.clone()), Just(tags).prop_shuffle()))
}

proptest! {
    /// The chosen tag is a member of the list, matches the channel, no other matching
    /// tag is newer, and nothing is chosen only when nothing matches.
    #[test]
    fn resolution_picks_the_newest_matching_member(
        (tags, shuffled) in tags_and_shuffled(),
        channel in channel(),
        prereleases in any::<bool>(),
    ) {
        let options = ResolveOptions::default().with_prereleases(prereleases);
        match channel.resolve_with(&tags, options) {
            Some(chosen) => {
                prop_assert!(tags.iter().any(|tag| tag == chosen));
                prop_assert!(channel.matches(chosen, options));
                if let Some(chosen_version) = Version::from_tag(chosen) {
                    for tag in tags.iter().filter(|tag| channel.matches(tag, options)) {
                        let version = Version::from_tag(tag).unwrap();
                        prop_assert!(
                            version.cmp_precedence(&chosen_version) != std::cmp::Ordering::Greater,
                            "{tag} is newer than {chosen}"
                        );
                    }
                }
            }
            None => prop_assert!(!tags.iter().any(|tag| channel.matches(tag, options))),
        }
        // The order of the list never matters.
        prop_assert_eq!(channel.resolve_with(&tags, options), channel.resolve_with(&shuffled, options));
    }

    /// Channels print as they parse.
    #[test]
    fn channels_round_trip(channel in channel()) {
        prop_assert_eq!(channel.to_string().parse::<Channel>().unwrap(), channel);
    }
}
