//! Who a request comes from, for the limits kept per client (tenant creation, console key
//! attempts).
//!
//! The client is the peer address. Behind proxies (`--trust-proxy`) it is the entry of
//! `X-Forwarded-For` that the outermost proxy of ours appended: each of the
//! [`Config::proxy_hops`] proxies appends the address it saw, so that entry is
//! `proxy_hops` from the right, and anything left of it was written by the client and is never
//! believed. An IPv6 client is keyed by its /64 network, since one host is usually given a
//! whole /64 and could otherwise take a fresh address for every request.

use crate::Config;
use hyper::HeaderMap;
use std::net::{IpAddr, SocketAddr};

/// The key of the client that sent a request with `headers` over a connection from `peer`.
pub fn key(config: &Config, peer: SocketAddr, headers: &HeaderMap) -> String {
    if config.trust_proxy
        && let Some(entry) = forwarded(headers, config.proxy_hops)
    {
        return match parse_ip(entry) {
            Some(ip) => key_of(ip),
            // Not an address (a proxy's obfuscated name): the entry itself.
            None => entry.to_ascii_lowercase(),
        };
    }
    key_of(peer.ip())
}

/// The `X-Forwarded-For` entry `hops` from the right (every header line in order), or the
/// left-most when there are fewer entries.
fn forwarded(headers: &HeaderMap, hops: usize) -> Option<&str> {
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let at = entries.len().saturating_sub(hops.max(1));
    entries.get(at).copied()
}

/// An address as proxies write it: bare, with a port, or an IPv6 address in brackets.
fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            s.strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|r| r.parse().ok())
        })
}

/// An IPv4 address as it is; an IPv6 one as its /64 network (IPv4-mapped ones as IPv4).
fn key_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn with_xff(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append("x-forwarded-for", HeaderValue::from_str(l).expect("header"));
        }
        h
    }

    #[test]
    fn the_client_is_the_entry_our_outermost_proxy_appended() {
        let peer: SocketAddr = "10.0.0.1:4000".parse().expect("addr");
        let mut c = Config {
            trust_proxy: true,
            ..Config::default()
        };
        let spoofed = with_xff(&["6.6.6.6, 203.0.113.9"]);
        assert_eq!(key(&c, peer, &spoofed), "203.0.113.9");
        c.proxy_hops = 2;
        let two = with_xff(&["6.6.6.6", "203.0.113.9, 10.0.0.7"]);
        assert_eq!(key(&c, peer, &two), "203.0.113.9");
        assert_eq!(key(&c, peer, &with_xff(&["203.0.113.9"])), "203.0.113.9");
        assert_eq!(key(&c, peer, &HeaderMap::new()), "10.0.0.1");
        c.trust_proxy = false;
        assert_eq!(key(&c, peer, &spoofed), "10.0.0.1");
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let c = Config {
            trust_proxy: true,
            ..Config::default()
        };
        let peer: SocketAddr = "[2001:db8:1:2:aaaa::1]:443".parse().expect("addr");
        let other: SocketAddr = "[2001:db8:1:2:bbbb::9]:443".parse().expect("addr");
        let none = HeaderMap::new();
        assert_eq!(key(&c, peer, &none), "2001:db8:1:2::/64");
        assert_eq!(key(&c, peer, &none), key(&c, other, &none));
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:80".parse().expect("addr");
        assert_eq!(key(&c, mapped, &none), "192.0.2.1");
        for written in [
            "2001:db8:1:3::5",
            "[2001:db8:1:3::5]:8080",
            "[2001:db8:1:3::5]",
        ] {
            assert_eq!(key(&c, peer, &with_xff(&[written])), "2001:db8:1:3::/64");
        }
        assert_eq!(
            key(&c, peer, &with_xff(&["198.51.100.2:1234"])),
            "198.51.100.2"
        );
    }
}
