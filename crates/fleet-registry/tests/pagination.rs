//! Tag-list pagination against a spec-following server and the ways real registries
//! depart from it, 2,500 tags each: every tag must be seen exactly once, served exactly
//! once, in the fewest requests.

mod common;

use common::{AuthMode, FakeRegistry, Pagination, digest_of, many_tags};
use fleet_registry::{ChannelRef, Client, ClientConfig, CredentialSource, ResolveOptions};

fn client() -> Client {
    Client::new(ClientConfig::default().credentials(CredentialSource::Anonymous)).unwrap()
}

/// Lists all tags and checks them; returns the number of requests it took.
async fn check(pagination: Pagination) -> u64 {
    let registry = FakeRegistry::start(many_tags(), pagination, AuthMode::None).await;
    let client = client();
    let mut tags = client.fetch_tags(&registry.image("app")).await.unwrap();
    assert_eq!(
        tags.len(),
        2500,
        "{pagination:?}: every tag once, no duplicates"
    );
    tags.sort();
    let mut expected = many_tags();
    expected.sort();
    assert_eq!(tags, expected, "{pagination:?}");
    let served = registry.state.served.lock().unwrap();
    assert_eq!(served.len(), 2500, "{pagination:?}");
    assert!(
        served.values().all(|count| *count == 1),
        "{pagination:?}: a tag was served twice"
    );
    client.request_count()
}

#[tokio::test]
async fn spec_pagination_follows_link() {
    // 1000 + 1000 + 500.
    assert_eq!(check(Pagination::Spec).await, 3);
}

#[tokio::test]
async fn without_link_falls_back_to_last() {
    // 1000, 1000 (full pages: ask again with `last`), 500 (short: done).
    assert_eq!(check(Pagination::LastOnly).await, 3);
}

#[tokio::test]
async fn pages_capped_at_50_follow_absolute_links() {
    assert_eq!(check(Pagination::Capped50).await, 50);
}

#[tokio::test]
async fn a_registry_ignoring_n_answers_in_one_page() {
    // distribution 2.8: 2,500 unsorted tags in one answer longer than `n`.
    assert_eq!(check(Pagination::Everything).await, 1);
}

#[tokio::test]
async fn resolution_costs_pages_plus_one_head_then_one_head() {
    let registry = FakeRegistry::start(many_tags(), Pagination::Capped50, AuthMode::None).await;
    let client = client();
    let tracked: ChannelRef = format!("{}/app:v1", registry.addr).parse().unwrap();
    let resolved = client
        .resolve(&tracked, ResolveOptions::default())
        .await
        .unwrap();
    assert_eq!(resolved.tag.as_deref(), Some("v1.19.24"));
    assert_eq!(resolved.digest.to_string(), digest_of("v1.19.24"));
    assert_eq!(client.request_count(), 50 + 1, "cold: pages + 1 HEAD");
    let minor: ChannelRef = format!("{}/app:v1.3", registry.addr).parse().unwrap();
    let again = client
        .resolve(&minor, ResolveOptions::default())
        .await
        .unwrap();
    assert_eq!(again.tag.as_deref(), Some("v1.3.24"));
    assert_eq!(client.request_count(), 50 + 2, "cached: 1 HEAD");
}

#[tokio::test]
async fn fifty_concurrent_checks_list_tags_once() {
    let registry = FakeRegistry::start(many_tags(), Pagination::Spec, AuthMode::None).await;
    let client = client();
    let channels = ["v0", "v1", "v2.3", "v4.19.24", "^3.1"];
    let checks = (0..50).map(|i| {
        let client = client.clone();
        let tracked: ChannelRef = format!("{}/app:{}", registry.addr, channels[i % 5])
            .parse()
            .unwrap();
        async move {
            client
                .resolve(&tracked, ResolveOptions::default())
                .await
                .unwrap()
        }
    });
    let resolved = futures::future::join_all(checks).await;
    assert_eq!(resolved[0].tag.as_deref(), Some("v0.19.24"));
    assert_eq!(resolved[2].tag.as_deref(), Some("v2.3.24"));
    assert_eq!(resolved[4].tag.as_deref(), Some("v3.19.24"));
    assert_eq!(
        registry
            .state
            .tag_pages
            .load(std::sync::atomic::Ordering::SeqCst),
        3
    );
    assert_eq!(client.request_count(), 3 + 50);
}

#[tokio::test]
async fn invalidating_the_cache_lists_again() {
    let registry = FakeRegistry::start(many_tags(), Pagination::Spec, AuthMode::None).await;
    let client = client();
    let image = registry.image("app");
    client.list_tags(&image).await.unwrap();
    client.list_tags(&image).await.unwrap();
    assert_eq!(client.request_count(), 3);
    client.invalidate_tags(&image);
    client.list_tags(&image).await.unwrap();
    assert_eq!(client.request_count(), 6);
}
