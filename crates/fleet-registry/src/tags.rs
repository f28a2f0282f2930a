//! Listing a repository's tags: every page, whatever the registry's pagination.
//!
//! The distribution spec paginates with `n` and `last` and announces the next page in a
//! `Link: <…>; rel="next"` header. Registries differ: Docker Hub, GHCR and Quay send
//! `Link` (Quay caps pages at 50 or 100 whatever `n` says); distribution 2.8 ignores `n`
//! and sends everything unsorted in one page; some honour `last` without sending `Link`.
//! So: follow `Link` when there is one; without it, ask again with `last` only when the
//! page is exactly `n` long (a longer page means `n` was ignored and everything came);
//! stop on a page that adds nothing new or a URL already visited. Tags keep the order
//! they arrived in, deduplicated; nothing downstream assumes an order.

use std::collections::HashSet;
use std::sync::Arc;

use reqwest::Method;
use reqwest::header::{self, HeaderMap};

use crate::client::{Client, Missing};
use crate::error::Error;
use crate::reference::ImageRef;
use crate::transport::Call;

/// A page of `GET /v2/<name>/tags/list`.
#[derive(serde::Deserialize)]
struct TagPage {
    tags: Option<Vec<String>>,
}

impl Client {
    /// All tags of `image`'s repository, from the cache when it is fresh (see
    /// [`ClientConfig::tag_cache_ttl`](crate::ClientConfig::tag_cache_ttl)).
    pub async fn list_tags(&self, image: &ImageRef) -> Result<Arc<[String]>, Error> {
        self.cache()
            .get_or_fetch(&image.name(), || self.fetch_tags(image))
            .await
    }

    /// All tags of `image`'s repository, always from the registry (the result is not
    /// cached either).
    pub async fn fetch_tags(&self, image: &ImageRef) -> Result<Vec<String>, Error> {
        let image = image.without_tag_or_digest();
        let target = self.target(&image)?;
        let page_size = self.page_size() as usize;
        let mut first = target.url("tags/list");
        first
            .query_pairs_mut()
            .append_pair("n", &page_size.to_string());
        let mut url = first.clone();
        let mut visited = HashSet::from([url.to_string()]);
        let mut seen = HashSet::new();
        let mut tags = Vec::new();
        loop {
            let response = self
                .transport()
                .send(&Call::new(Method::GET, url.clone(), &target, target.pull()))
                .await?;
            let response = self.success(&target, response, Missing::Repository).await?;
            let link = next_link(response.headers());
            let page: TagPage = response.json().await.map_err(|error| Error::Protocol {
                reference: target.reference.clone(),
                message: format!("unreadable tag list: {error}"),
            })?;
            let page = page.tags.unwrap_or_default();
            let page_len = page.len();
            let last = page.last().cloned();
            let before = tags.len();
            for tag in page {
                if seen.insert(tag.clone()) {
                    tags.push(tag);
                }
            }
            let progressed = tags.len() > before;
            let next = match (link, last) {
                (Some(link), _) => Some(url.join(&link).map_err(|error| Error::Protocol {
                    reference: target.reference.clone(),
                    message: format!("bad Link {link:?}: {error}"),
                })?),
                (None, Some(last)) if page_len == page_size => {
                    let mut next = first.clone();
                    next.query_pairs_mut().append_pair("last", &last);
                    Some(next)
                }
                (None, _) => None,
            };
            match next {
                Some(next) if progressed && visited.insert(next.to_string()) => url = next,
                _ => return Ok(tags),
            }
        }
    }

    /// Forgets the cached tag list of `image`'s repository (after a push or a webhook).
    pub fn invalidate_tags(&self, image: &ImageRef) {
        self.cache().invalidate(&image.name());
    }
}

/// The target of the `rel="next"` link among all `Link` headers.
fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::LINK)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(parse_next_link)
}

/// `<url>; rel="next", <url2>; rel="prev"` → the `next` URL.
fn parse_next_link(value: &str) -> Option<String> {
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let close = open + rest[open..].find('>')?;
        let target = &rest[open + 1..close];
        let params_end = rest[close..]
            .find('<')
            .map_or(rest.len(), |next| close + next);
        let params = &rest[close + 1..params_end];
        let is_next = params.split(';').any(|param| {
            let Some((key, value)) = param.split_once('=') else {
                return false;
            };
            key.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|rel| rel.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.to_owned());
        }
        rest = &rest[params_end..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers() {
        let check = |value: &str| parse_next_link(value).unwrap_or_else(|| "-".to_owned());
        assert_eq!(
            check(r#"</v2/a/tags/list?n=1000&last=b>; rel="next""#),
            "/v2/a/tags/list?n=1000&last=b"
        );
        assert_eq!(
            check("</v2/a/tags/list?last=b>; rel=next"),
            "/v2/a/tags/list?last=b"
        );
        assert_eq!(
            check(r#"<https://r.example/v2/a/tags/list?last=b&n=50>; rel="next""#),
            "https://r.example/v2/a/tags/list?last=b&n=50"
        );
        assert_eq!(check(r#"</p>; rel="prev", </n>; rel="next""#), "/n");
        assert_eq!(check(r#"</x>; title="a, b"; rel="prev next""#), "/x");
        assert_eq!(check(r#"</p>; rel="prev""#), "-");
        assert_eq!(check(""), "-");
    }
}
