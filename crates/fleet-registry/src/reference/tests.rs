//! The reference grammar, case by case. Most cases come from distribution/reference's
//! `normalize_test.go` and `reference_test.go`; the expected text is the normalised
//! reference (`ParseNormalizedNamed(...).String()`) or the reason it is refused.

use super::*;

fn check(input: &str) -> String {
    match input.parse::<ImageRef>() {
        Ok(image) => image.to_string(),
        Err(Error::InvalidReference { reason, .. }) => format!("error: {reason}"),
        Err(other) => format!("unexpected error: {other}"),
    }
}

fn parts(input: &str) -> String {
    let image: ImageRef = input.parse().unwrap();
    format!(
        "registry={} repository={} tag={} digest={} familiar={}",
        image.registry(),
        image.repository(),
        image.tag().unwrap_or("-"),
        image.digest().map_or("-", |d| &d.hex()[..4]),
        image.familiar(),
    )
}

const F64: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
const DBCC: &str = "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c";

#[test]
fn docker_hub_names_are_normalised() {
    assert_eq!(check("docker/docker"), "docker.io/docker/docker");
    assert_eq!(check("library/debian"), "docker.io/library/debian");
    assert_eq!(check("debian"), "docker.io/library/debian");
    assert_eq!(check("docker.io/docker/docker"), "docker.io/docker/docker");
    assert_eq!(
        check("docker.io/library/debian"),
        "docker.io/library/debian"
    );
    assert_eq!(check("docker.io/debian"), "docker.io/library/debian");
    assert_eq!(
        check("index.docker.io/docker/docker"),
        "docker.io/docker/docker"
    );
    assert_eq!(
        check("index.docker.io/library/debian"),
        "docker.io/library/debian"
    );
    assert_eq!(check("index.docker.io/debian"), "docker.io/library/debian");
    assert_eq!(check("fooo/bar"), "docker.io/fooo/bar");
    assert_eq!(check("library/ubuntu"), "docker.io/library/ubuntu");
    assert_eq!(check("nonlibrary/ubuntu"), "docker.io/nonlibrary/ubuntu");
    assert_eq!(check("other/library"), "docker.io/other/library");
    assert_eq!(
        check("ubuntu-12.04-base"),
        "docker.io/library/ubuntu-12.04-base"
    );
    assert_eq!(check("library/foo/bar"), "docker.io/library/foo/bar");
    assert_eq!(check("store/foo/bar"), "docker.io/store/foo/bar");
    assert_eq!(check("docker/migrator"), "docker.io/docker/migrator");
    assert_eq!(check("foo"), "docker.io/library/foo");
    assert_eq!(check("docker.io/foo"), "docker.io/library/foo");
    assert_eq!(check("docker.io/library/foo"), "docker.io/library/foo");
    assert_eq!(
        check("docker.io/library/foo/bar"),
        "docker.io/library/foo/bar"
    );
    assert_eq!(check("test_com"), "docker.io/library/test_com");
    assert_eq!(check("test_com/foo"), "docker.io/test_com/foo");
    assert_eq!(check("a"), "docker.io/library/a");
    // Only docker.io and index.docker.io are Docker Hub's names; the API host is not one.
    assert_eq!(
        check("registry-1.docker.io/library/nginx"),
        "registry-1.docker.io/library/nginx"
    );
}

#[test]
fn path_components() {
    assert_eq!(
        check("thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev"),
        "docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev"
    );
    assert_eq!(
        check("docker-rules/docker"),
        "docker.io/docker-rules/docker"
    );
    assert_eq!(
        check("docker---rules/docker"),
        "docker.io/docker---rules/docker"
    );
    assert_eq!(check("doc/docker"), "docker.io/doc/docker");
    assert_eq!(check("d/docker"), "docker.io/d/docker");
    assert_eq!(check("jess/t"), "docker.io/jess/t");
    assert_eq!(check("dock__er/docker"), "docker.io/dock__er/docker");
    assert_eq!(check("a.b/c"), "a.b/c");
    assert_eq!(
        check("example.com/a.b_c__d-e--f/g"),
        "example.com/a.b_c__d-e--f/g"
    );
    assert_eq!(
        check("-docker"),
        r#"error: repository path component "-docker" must be lowercase letters and digits, separated by `.`, `_`, `__` or dashes"#
    );
    assert_eq!(
        check("-docker/docker"),
        r#"error: repository path component "-docker" must be lowercase letters and digits, separated by `.`, `_`, `__` or dashes"#
    );
    assert_eq!(
        check("docker-/docker"),
        r#"error: repository path component "docker-" must be lowercase letters and digits, separated by `.`, `_`, `__` or dashes"#
    );
    assert_eq!(
        check("-docker-/docker"),
        r#"error: repository path component "-docker-" must be lowercase letters and digits, separated by `.`, `_`, `__` or dashes"#
    );
    assert_eq!(
        check("____/____"),
        r#"error: repository path component "____" must be lowercase letters and digits, separated by `.`, `_`, `__` or dashes"#
    );
    assert_eq!(
        check("_docker/_docker"),
        r#"error: repository path component "_docker" must be lowercase letters and digits, separated by `.`, `_`, `__` or dashes"#
    );
    // A first part holding a `.` is read as a host, so these fail as hosts.
    assert_eq!(
        check("dock..er/docker"),
        r#"error: registry "dock..er" is not a valid host[:port]"#
    );
    assert_eq!(
        check("dock_.er/docker"),
        r#"error: registry "dock_.er" is not a valid host[:port]"#
    );
    assert_eq!(
        check("dock-.er/docker"),
        r#"error: registry "dock-.er" is not a valid host[:port]"#
    );
    assert_eq!(
        check("dock___er/docker"),
        r#"error: repository path component "dock___er" must be lowercase letters and digits, separated by `.`, `_`, `__` or dashes"#
    );
    assert_eq!(
        check("aa/asdf$$^/aa"),
        r#"error: repository path component "asdf$$^" must be lowercase letters and digits, separated by `.`, `_`, `__` or dashes"#
    );
    assert_eq!(
        check(" nginx"),
        r#"error: repository path component " nginx" must be lowercase letters and digits, separated by `.`, `_`, `__` or dashes"#
    );
    assert_eq!(
        check("[fc00::1]"),
        r#"error: repository path component "[fc00" must be lowercase letters and digits, separated by `.`, `_`, `__` or dashes"#
    );
    assert_eq!(
        check("[fc00::1]:5000"),
        r#"error: repository path component "[fc00" must be lowercase letters and digits, separated by `.`, `_`, `__` or dashes"#
    );
    assert_eq!(
        check("[2001:db8::1]"),
        r#"error: repository path component "[2001" must be lowercase letters and digits, separated by `.`, `_`, `__` or dashes"#
    );
    assert_eq!(
        check("[2001:db8::1]:5000"),
        r#"error: repository path component "[2001" must be lowercase letters and digits, separated by `.`, `_`, `__` or dashes"#
    );
    assert_eq!(
        check("[2001:db8::1]:tag"),
        r#"error: repository path component "[2001" must be lowercase letters and digits, separated by `.`, `_`, `__` or dashes"#
    );
    assert_eq!(
        check("docker///docker"),
        "error: repository name has an empty path component"
    );
    assert_eq!(
        check("docker.io/docker///docker"),
        "error: repository name has an empty path component"
    );
    assert_eq!(
        check("docker/"),
        "error: repository name has an empty path component"
    );
    assert_eq!(
        check("docker.io/"),
        "error: repository name has an empty path component"
    );
    assert_eq!(
        check("/app"),
        "error: repository name has an empty path component"
    );
    assert_eq!(
        check(":justtag"),
        "error: repository name has an empty path component"
    );
    assert_eq!(
        check(&format!("@sha256:{F64}")),
        "error: repository name has an empty path component"
    );
}

#[test]
fn registries_hosts_and_ports() {
    assert_eq!(
        check("127.0.0.1:5000/docker/docker"),
        "127.0.0.1:5000/docker/docker"
    );
    assert_eq!(
        check("127.0.0.1:5000/library/debian"),
        "127.0.0.1:5000/library/debian"
    );
    // `library/` is Docker Hub's convention only.
    assert_eq!(check("127.0.0.1:5000/debian"), "127.0.0.1:5000/debian");
    assert_eq!(check("192.168.0.1:8/debian"), "192.168.0.1:8/debian");
    assert_eq!(
        check("192.168.0.2:25000/debian"),
        "192.168.0.2:25000/debian"
    );
    assert_eq!(
        check("127.0.0.1:8000/private/moonbase"),
        "127.0.0.1:8000/private/moonbase"
    );
    assert_eq!(
        check("127.0.0.1:8000/privatebase"),
        "127.0.0.1:8000/privatebase"
    );
    assert_eq!(
        check("example.com/private/moonbase"),
        "example.com/private/moonbase"
    );
    assert_eq!(check("example.com/privatebase"), "example.com/privatebase");
    assert_eq!(
        check("example.com:8000/private/moonbase"),
        "example.com:8000/private/moonbase"
    );
    assert_eq!(
        check("example.com:8000/privatebasee"),
        "example.com:8000/privatebasee"
    );
    assert_eq!(check("test.com/foo"), "test.com/foo");
    assert_eq!(check("test.com:8080/foo"), "test.com:8080/foo");
    assert_eq!(check("test-com:8080/foo"), "test-com:8080/foo");
    assert_eq!(check("test:5000/repo"), "test:5000/repo");
    assert_eq!(check("xn--n3h.com/foo"), "xn--n3h.com/foo");
    assert_eq!(check("xn--n3h.com:18080/foo"), "xn--n3h.com:18080/foo");
    assert_eq!(
        check("sub-dom1.foo.com/bar/baz/quux"),
        "sub-dom1.foo.com/bar/baz/quux"
    );
    assert_eq!(check("192.168.1.1/repo"), "192.168.1.1/repo");
    assert_eq!(check("192.168.1.1:5000/repo"), "192.168.1.1:5000/repo");
    assert_eq!(check("localhost/foo"), "localhost/foo");
    assert_eq!(check("localhost:5000/foo:1"), "localhost:5000/foo:1");
    assert_eq!(
        check("ghcr.io/owner/app:v1.4.2"),
        "ghcr.io/owner/app:v1.4.2"
    );
    // An upper-case first part is read as a host, since repositories are lowercase.
    assert_eq!(check("Foo/bar"), "Foo/bar");
    assert_eq!(check("FOO/bar"), "FOO/bar");
    assert_eq!(check("Uppercase/lowercase:tag"), "Uppercase/lowercase:tag");
    // IPv6 hosts are bracketed.
    assert_eq!(check("[fc00::1]:5000/docker"), "[fc00::1]:5000/docker");
    assert_eq!(
        check("[fc00::1]:5000/docker/docker"),
        "[fc00::1]:5000/docker/docker"
    );
    assert_eq!(
        check("[fc00:1:2:3:4:5:6:7]:5000/library/debian"),
        "[fc00:1:2:3:4:5:6:7]:5000/library/debian"
    );
    assert_eq!(check("[2001:db8::1]/repo"), "[2001:db8::1]/repo");
    assert_eq!(
        check("[2001:db8:1:2:3:4:5:6]/repo:tag"),
        "[2001:db8:1:2:3:4:5:6]/repo:tag"
    );
    assert_eq!(check("[2001:db8::1]:5000/repo"), "[2001:db8::1]:5000/repo");
    assert_eq!(
        check("[2001:db8::1]:5000/repo:tag"),
        "[2001:db8::1]:5000/repo:tag"
    );
    assert_eq!(check("[2001:db8::]:5000/repo"), "[2001:db8::]:5000/repo");
    assert_eq!(check("[::1]:5000/repo"), "[::1]:5000/repo");
    assert_eq!(
        check("https://github.com/docker/docker"),
        r#"error: registry "https:" is not a valid host[:port]"#
    );
    assert_eq!(
        check("-docker.io/docker/docker"),
        r#"error: registry "-docker.io" is not a valid host[:port]"#
    );
    assert_eq!(
        check("fc00::1:5000/debian"),
        r#"error: registry "fc00::1:5000" is not a valid host[:port]"#
    );
    assert_eq!(
        check("[fe80::1%eth0]:5000/debian"),
        r#"error: registry "[fe80::1%eth0]:5000" is not a valid host[:port]"#
    );
    assert_eq!(
        check("[fe80::1%@invalidzone]:5000/repo"),
        r#"error: registry "[fe80::1%@invalidzone]:5000" is not a valid host[:port]"#
    );
    assert_eq!(
        check("[2001:db8:3:4::192.0.2.33]:5000/debian"),
        r#"error: registry "[2001:db8:3:4::192.0.2.33]:5000" is not a valid host[:port]"#
    );
    assert_eq!(
        check("example.com:/app"),
        r#"error: registry "example.com:" is not a valid host[:port]"#
    );
    assert_eq!(
        check("example.com:port/app"),
        r#"error: registry "example.com:port" is not a valid host[:port]"#
    );
    assert_eq!(
        check("example..com/app"),
        r#"error: registry "example..com" is not a valid host[:port]"#
    );
    assert_eq!(
        check("example-.com/app"),
        r#"error: registry "example-.com" is not a valid host[:port]"#
    );
    assert_eq!(
        check("[]:5000/app"),
        r#"error: registry "[]:5000" is not a valid host[:port]"#
    );
    assert_eq!(
        check("[::1]5000/app"),
        r#"error: registry "[::1]5000" is not a valid host[:port]"#
    );
    // Deliberate difference (issue 14): distribution takes any number of digits as a
    // port; a port above 65535 (or 0) cannot be connected to, so it is refused here.
    assert_eq!(check("127.0.0.1:65535/x"), "127.0.0.1:65535/x");
    assert_eq!(
        check("127.0.0.1:99999/x"),
        r#"error: registry "127.0.0.1:99999" has port 99999, which is not a port from 1 to 65535"#
    );
    assert_eq!(
        check("example.com:0/x"),
        r#"error: registry "example.com:0" has port 0, which is not a port from 1 to 65535"#
    );
    assert_eq!(
        check("[::1]:65536/x:v1"),
        r#"error: registry "[::1]:65536" has port 65536, which is not a port from 1 to 65535"#
    );
    assert_eq!(
        check("localhost:99999999999999999999/x"),
        r#"error: registry "localhost:99999999999999999999" has port 99999999999999999999, which is not a port from 1 to 65535"#
    );
    // Deliberate difference: distribution's parser accepts this as a repository with no
    // registry at all (the first part is neither a host nor, after normalisation, used as
    // a path), which nothing can pull; it is refused here.
    assert_eq!(
        check("a.b_c/d"),
        r#"error: registry "a.b_c" is not a valid host[:port]"#
    );
}

#[test]
fn a_single_part_is_a_docker_hub_name_even_when_it_looks_like_a_host() {
    assert_eq!(check("192.168.0.1"), "docker.io/library/192.168.0.1");
    assert_eq!(check("192.168.0.1:80"), "docker.io/library/192.168.0.1:80");
    assert_eq!(
        check("192.168.1.1:tag"),
        "docker.io/library/192.168.1.1:tag"
    );
    assert_eq!(
        check("192.168.1.1:5000"),
        "docker.io/library/192.168.1.1:5000"
    );
    assert_eq!(check("test.com:tag"), "docker.io/library/test.com:tag");
    assert_eq!(check("test.com:5000"), "docker.io/library/test.com:5000");
    assert_eq!(
        check("foo_bar.com:8080"),
        "docker.io/library/foo_bar.com:8080"
    );
    assert_eq!(
        check("foo/foo_bar.com:8080"),
        "docker.io/foo/foo_bar.com:8080"
    );
    assert_eq!(check("localhost"), "docker.io/library/localhost");
    assert_eq!(check("localhost:5000"), "docker.io/library/localhost:5000");
    // `sha256:…` with no `@` is the repository `sha256` with a 64-character tag.
    assert_eq!(
        check(&format!("sha256:{DBCC}")),
        format!("docker.io/library/sha256:{DBCC}")
    );
}

#[test]
fn tags() {
    assert_eq!(check("redis:latest"), "docker.io/library/redis:latest");
    assert_eq!(check("test.com/repo:tag"), "test.com/repo:tag");
    assert_eq!(check("test:5000/repo:tag"), "test:5000/repo:tag");
    assert_eq!(
        check("sub-dom1.foo.com/bar/baz/quux:some-long-tag"),
        "sub-dom1.foo.com/bar/baz/quux:some-long-tag"
    );
    assert_eq!(
        check("b.gcr.io/test.example.com/my-app:test.example.com"),
        "b.gcr.io/test.example.com/my-app:test.example.com"
    );
    assert_eq!(
        check("xn--n3h.com/myimage:xn--n3h.com"),
        "xn--n3h.com/myimage:xn--n3h.com"
    );
    assert_eq!(
        check("192.168.1.1:5000/repo:5050"),
        "192.168.1.1:5000/repo:5050"
    );
    // Tags may hold upper-case letters; repositories may not.
    assert_eq!(
        check("lowercase:Uppercase"),
        "docker.io/library/lowercase:Uppercase"
    );
    assert_eq!(check("nginx:_tag"), "docker.io/library/nginx:_tag");
    assert_eq!(
        check("nginx:1.27.3-alpine3.20"),
        "docker.io/library/nginx:1.27.3-alpine3.20"
    );
    let longest = "t".repeat(128);
    assert_eq!(
        check(&format!("nginx:{longest}")),
        format!("docker.io/library/nginx:{longest}")
    );
    assert!(check(&format!("nginx:{longest}t")).starts_with(r#"error: tag "tttt"#));
    assert_eq!(
        check("busybox:-foo"),
        r#"error: tag "-foo" must start with a letter, digit or `_` and hold at most 128 letters, digits, `_`, `.` or `-`"#
    );
    assert_eq!(
        check("busybox:.foo"),
        r#"error: tag ".foo" must start with a letter, digit or `_` and hold at most 128 letters, digits, `_`, `.` or `-`"#
    );
    assert_eq!(
        check("nginx:"),
        r#"error: tag "" must start with a letter, digit or `_` and hold at most 128 letters, digits, `_`, `.` or `-`"#
    );
    assert_eq!(
        check("nginx:1.27:x"),
        r#"error: tag "1.27:x" must start with a letter, digit or `_` and hold at most 128 letters, digits, `_`, `.` or `-`"#
    );
    assert_eq!(
        check("nginx:^1.2"),
        r#"error: tag "^1.2" must start with a letter, digit or `_` and hold at most 128 letters, digits, `_`, `.` or `-`"#
    );
    assert_eq!(
        check("nginx:1.0+build"),
        r#"error: tag "1.0+build" must start with a letter, digit or `_` and hold at most 128 letters, digits, `_`, `.` or `-`"#
    );
    assert_eq!(
        check("nginx "),
        r#"error: repository path component "nginx " must be lowercase letters and digits, separated by `.`, `_`, `__` or dashes"#
    );
}

#[test]
fn digests() {
    assert_eq!(
        check(&format!("test:5000/repo@sha256:{F64}")),
        format!("test:5000/repo@sha256:{F64}")
    );
    assert_eq!(
        check(&format!("test:5000/repo:tag@sha256:{F64}")),
        format!("test:5000/repo:tag@sha256:{F64}")
    );
    assert_eq!(
        check(&format!("redis@sha256:{DBCC}")),
        format!("docker.io/library/redis@sha256:{DBCC}")
    );
    assert_eq!(
        check(&format!("dmcgowan/myapp@sha256:{DBCC}")),
        format!("docker.io/dmcgowan/myapp@sha256:{DBCC}")
    );
    assert_eq!(
        check(&format!("[2001:db8::1]:5000/repo@sha256:{F64}")),
        format!("[2001:db8::1]:5000/repo@sha256:{F64}")
    );
    assert_eq!(
        check(&format!("[2001:db8::1]:5000/repo:tag@sha256:{F64}")),
        format!("[2001:db8::1]:5000/repo:tag@sha256:{F64}")
    );
    let busybox =
        "busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa";
    assert_eq!(check(busybox), format!("docker.io/library/{busybox}"));
    let f128 = "f".repeat(128);
    assert_eq!(
        check(&format!("xn--7o8h.com/myimage:xn--7o8h.com@sha512:{f128}")),
        format!("xn--7o8h.com/myimage:xn--7o8h.com@sha512:{f128}")
    );
    assert_eq!(
        check(&format!("repo@sha256:{}", &F64[..63])),
        "error: invalid digest: expected 64 hexadecimal digits, found 63"
    );
    assert_eq!(
        check(&format!("validname@invaliddigest:{F64}")),
        r#"error: invalid digest: unsupported digest algorithm "invaliddigest" (expected sha256, sha384 or sha512)"#
    );
    assert_eq!(
        check(&format!("repo@sha256:{}", F64.to_uppercase())),
        "error: invalid digest: the digest must be lowercase hexadecimal"
    );
    assert_eq!(
        check("repo@sha256:abc"),
        "error: invalid digest: expected 64 hexadecimal digits, found 3"
    );
    assert_eq!(
        check("repo@"),
        "error: invalid digest: expected `algorithm:hex`, such as `sha256:…`"
    );
    assert_eq!(
        check(&format!("repo@{F64}")),
        "error: invalid digest: expected `algorithm:hex`, such as `sha256:…`"
    );
}

#[test]
fn upper_case_repositories_are_refused_clearly() {
    assert_eq!(
        check("docker/Docker"),
        r#"error: repository name "docker/Docker" must be lowercase"#
    );
    assert_eq!(
        check("docker.io/docker/Docker"),
        r#"error: repository name "docker/Docker" must be lowercase"#
    );
    assert_eq!(
        check("Uppercase:tag"),
        r#"error: repository name "Uppercase" must be lowercase"#
    );
    assert_eq!(
        check("Nginx"),
        r#"error: repository name "Nginx" must be lowercase"#
    );
    assert_eq!(
        check("test:5000/Uppercase/lowercase:tag"),
        r#"error: repository name "Uppercase/lowercase" must be lowercase"#
    );
    assert_eq!(
        check("ghcr.io/Owner/App:v1"),
        r#"error: repository name "Owner/App" must be lowercase"#
    );
}

#[test]
fn lengths_and_ids() {
    assert_eq!(
        check(""),
        "error: repository name must have at least one component"
    );
    let id = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a";
    assert_eq!(
        check(id),
        "error: a 64-digit hexadecimal string is an image id, not a repository name"
    );
    // With a registry in front it is an ordinary name.
    assert_eq!(
        check(&format!("docker.io/{id}")),
        format!("docker.io/library/{id}")
    );
    // 63 digits are a name.
    assert_eq!(
        check(&DBCC[..63]),
        format!("docker.io/library/{}", &DBCC[..63])
    );
    // `docker.io/` + 245 characters is exactly 255.
    let at_limit = format!("{}a", "a/".repeat(122));
    assert_eq!(check(&at_limit), format!("docker.io/{at_limit}"));
    let over = format!("{}a", "a/".repeat(123));
    assert_eq!(
        check(&over),
        "error: repository name must not be more than 255 characters (it has 257)"
    );
    assert_eq!(
        check(&format!("{}a:tag", "a/".repeat(128))),
        "error: repository name must not be more than 255 characters (it has 267)"
    );
    // distribution accepts this 255-character name only when its first `a` is read as a
    // host, which normalisation does not do: on docker.io it is 265 characters.
    assert_eq!(
        check(&format!("{}a:tag-puts-this-over-max", "a/".repeat(127))),
        "error: repository name must not be more than 255 characters (it has 265)"
    );
    let host_at_limit = format!("example.com/{}", "b".repeat(243));
    assert_eq!(check(&host_at_limit), host_at_limit);
    let namespace =
        ["this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255"; 4].join("_");
    assert_eq!(
        check(&format!("{namespace}/docker")),
        "error: repository name must not be more than 255 characters (it has 288)"
    );
}

#[test]
fn components_and_familiar_form() {
    assert_eq!(
        parts("nginx"),
        "registry=docker.io repository=library/nginx tag=- digest=- familiar=nginx"
    );
    assert_eq!(
        parts("user/app:v1"),
        "registry=docker.io repository=user/app tag=v1 digest=- familiar=user/app:v1"
    );
    assert_eq!(
        parts("docker.io/library/foo/bar"),
        "registry=docker.io repository=library/foo/bar tag=- digest=- familiar=library/foo/bar"
    );
    assert_eq!(
        parts(&format!("127.0.0.1:5000/app:v1@sha256:{DBCC}")),
        format!(
            "registry=127.0.0.1:5000 repository=app tag=v1 digest=dbcc familiar=127.0.0.1:5000/app:v1@sha256:{DBCC}"
        )
    );
    assert_eq!(
        parts("[::1]:5000/repo"),
        "registry=[::1]:5000 repository=repo tag=- digest=- familiar=[::1]:5000/repo"
    );
}

#[test]
fn display_parses_back_to_the_same_reference() {
    let pinned = format!("ghcr.io/o/a:v1@sha256:{DBCC}");
    for input in [
        "nginx",
        "user/app:v1",
        &pinned,
        "localhost:5000/x:y",
        "library/a/b",
    ] {
        let image: ImageRef = input.parse().unwrap();
        assert_eq!(image.to_string().parse::<ImageRef>().unwrap(), image);
        assert_eq!(image.familiar().parse::<ImageRef>().unwrap(), image);
    }
}

#[test]
fn serde_uses_the_normalised_text() {
    let image: ImageRef = "nginx:1".parse().unwrap();
    assert_eq!(
        serde_json::to_string(&image).unwrap(),
        r#""docker.io/library/nginx:1""#
    );
    assert_eq!(
        serde_json::from_str::<ImageRef>(r#""nginx:1""#).unwrap(),
        image
    );
    let error = serde_json::from_str::<ImageRef>(r#""Nginx""#).unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"invalid image reference "Nginx": repository name "Nginx" must be lowercase"#
    );
}

#[test]
fn with_tag_and_digest() {
    let image: ImageRef = "nginx:1".parse().unwrap();
    assert_eq!(
        image.with_tag("2").unwrap().to_string(),
        "docker.io/library/nginx:2"
    );
    assert_eq!(
        image.with_tag("-x").unwrap_err().to_string(),
        r#"invalid image reference "docker.io/library/nginx:-x": tag "-x" must start with a letter, digit or `_` and hold at most 128 letters, digits, `_`, `.` or `-`"#
    );
    let digest = Digest::sha256(b"x");
    assert_eq!(
        image.with_digest(digest.clone()).to_string(),
        format!("docker.io/library/nginx:1@{digest}")
    );
    assert_eq!(
        image.without_tag_or_digest().to_string(),
        "docker.io/library/nginx"
    );
}
