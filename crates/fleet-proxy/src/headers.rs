//! Header rewriting on the way through: hop-by-hop headers out, `X-Forwarded-*` in.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers that describe one hop (RFC 9110 §7.6.1), never forwarded. Names listed in
/// `Connection` and every `Proxy-*` header go too.
fn hop_by_hop() -> [&'static HeaderName; 7] {
    [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ]
}

/// Whether a request (or a `101` response) asks to switch protocols: an `Upgrade`
/// header named in `Connection`.
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && connection_tokens(headers).any(|token| token.eq_ignore_ascii_case("upgrade"))
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// Whether a header is hop-by-hop whatever `Connection` says.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    let name = name.as_str();
    hop_by_hop().iter().any(|hop| hop.as_str() == name) || name.starts_with("proxy")
}

/// Removes hop-by-hop headers. With `upgrade`, the protocol switch itself is kept
/// (`Connection: upgrade` and `Upgrade`), as the next hop must see it to agree.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // Most messages carry none: one look at each name, and nothing else to do.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let kept_upgrade = if upgrade {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    };
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = connection_tokens(headers)
            .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in hop_by_hop() {
        headers.remove(name);
    }
    let proxy_headers: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("proxy-") || name.as_str() == "proxy")
        .cloned()
        .collect();
    for name in proxy_headers {
        headers.remove(name);
    }
    if let Some(protocol) = kept_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol);
    }
}

/// Tells the backend who asked and how: the client's address appended to
/// `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host` set (the latter from
/// the request's `Host`; both replace what the client sent).
pub(crate) fn set_forwarded(headers: &mut HeaderMap, client_ip: &HeaderValue, proto: &HeaderValue) {
    let forwarded_for = match headers.get(&X_FORWARDED_FOR) {
        None => client_ip.clone(),
        Some(_) => {
            let mut chain = Vec::new();
            for value in headers.get_all(&X_FORWARDED_FOR) {
                chain.extend_from_slice(value.as_bytes());
                chain.extend_from_slice(b", ");
            }
            chain.extend_from_slice(client_ip.as_bytes());
            // Made of valid header values and an address: always valid.
            HeaderValue::from_bytes(&chain).unwrap_or_else(|_| client_ip.clone())
        }
    };
    headers.insert(X_FORWARDED_FOR.clone(), forwarded_for);
    headers.insert(X_FORWARDED_PROTO.clone(), proto.clone());
    match headers.get(header::HOST).cloned() {
        Some(host) => {
            headers.insert(X_FORWARDED_HOST.clone(), host);
        }
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
}

/// Whether a request header is one of the `X-Forwarded-*` headers the proxy sets
/// itself, which [`write_forwarded`] replaces.
pub(crate) fn is_forwarded(name: &HeaderName) -> bool {
    let name = name.as_str();
    name.len() >= 15
        && name.starts_with("x-forwarded-")
        && (name == X_FORWARDED_FOR.as_str()
            || name == X_FORWARDED_PROTO.as_str()
            || name == X_FORWARDED_HOST.as_str())
}

/// [`set_forwarded`] for a request head written as bytes: the `X-Forwarded-*` lines
/// that function would leave in `headers`, written after the other headers (which
/// must be written without the ones [`is_forwarded`] names). `host` is the request's
/// `Host` header, if any; `forwarded_for` whether it has `X-Forwarded-For`.
pub(crate) fn write_forwarded(
    buf: &mut Vec<u8>,
    headers: &HeaderMap,
    forwarded_for: bool,
    host: Option<&HeaderValue>,
    client_ip: &HeaderValue,
    proto: &HeaderValue,
) {
    buf.extend_from_slice(b"x-forwarded-for: ");
    if forwarded_for {
        for value in headers.get_all(&X_FORWARDED_FOR) {
            buf.extend_from_slice(value.as_bytes());
            buf.extend_from_slice(b", ");
        }
    }
    buf.extend_from_slice(client_ip.as_bytes());
    buf.extend_from_slice(b"\r\nx-forwarded-proto: ");
    buf.extend_from_slice(proto.as_bytes());
    buf.extend_from_slice(b"\r\n");
    if let Some(host) = host {
        buf.extend_from_slice(b"x-forwarded-host: ");
        buf.extend_from_slice(host.as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The headers left after stripping, sorted, one `name: value` per line.
    fn check(headers: &[(&str, &str)], upgrade: bool) -> String {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        let upgrading = upgrade && is_upgrade(&map);
        strip_hop_by_hop(&mut map, upgrading);
        let mut lines: Vec<String> = map
            .iter()
            .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap()))
            .collect();
        lines.sort();
        lines.join("; ")
    }

    #[test]
    fn hop_by_hop_headers_are_stripped() {
        assert_eq!(
            check(
                &[
                    ("connection", "keep-alive, X-Secret"),
                    ("keep-alive", "timeout=5"),
                    ("x-secret", "1"),
                    ("te", "trailers"),
                    ("trailer", "x-sum"),
                    ("transfer-encoding", "chunked"),
                    ("upgrade", "websocket"),
                    ("proxy-authorization", "Basic x"),
                    ("proxy-connection", "keep-alive"),
                    ("proxy", "http://evil"),
                    ("x-kept", "yes"),
                    ("accept", "*/*"),
                ],
                false,
            ),
            "accept: */*; x-kept: yes"
        );
    }

    #[test]
    fn an_upgrade_keeps_its_protocol_switch() {
        let headers = [
            ("connection", "Upgrade, x-secret"),
            ("upgrade", "websocket"),
            ("x-secret", "1"),
            ("sec-websocket-key", "k"),
        ];
        assert_eq!(
            check(&headers, true),
            "connection: upgrade; sec-websocket-key: k; upgrade: websocket"
        );
        assert_eq!(check(&headers, false), "sec-websocket-key: k");
        // An `Upgrade` that `Connection` does not name is no upgrade.
        assert_eq!(check(&[("upgrade", "websocket")], true), "");
    }

    fn forwarded(headers: &[(&str, &str)]) -> String {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        set_forwarded(
            &mut map,
            &HeaderValue::from_static("10.0.0.9"),
            &HeaderValue::from_static("http"),
        );
        ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"]
            .iter()
            .map(|name| {
                format!(
                    "{name}={}",
                    map.get(*name).map_or("-", |v| v.to_str().unwrap())
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn forwarded_headers_are_set_and_for_is_appended() {
        assert_eq!(
            forwarded(&[("host", "alice.lan:8080")]),
            "x-forwarded-for=10.0.0.9 x-forwarded-proto=http x-forwarded-host=alice.lan:8080"
        );
        assert_eq!(
            forwarded(&[
                ("x-forwarded-for", "1.1.1.1, 2.2.2.2"),
                ("x-forwarded-for", "3.3.3.3"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "spoofed"),
            ]),
            "x-forwarded-for=1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.9 x-forwarded-proto=http x-forwarded-host=-"
        );
    }
}
