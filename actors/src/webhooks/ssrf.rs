//! The SSRF guard (contract §9): webhook targets on private, loopback, link-local,
//! metadata and other non-public addresses are refused unless an operator allow-listed
//! them (`webhook.allowed_cidrs`). Checked on the resolved addresses, at registration and
//! again at every delivery: the delivery client resolves through [`GuardedResolver`], so a
//! name that later resolves elsewhere (DNS rebinding) is refused at connect time.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

pub use crate::domain::cidr::Cidr;
use crate::domain::model::Environment;

/// Why a webhook target is refused. The front shows the message as the `url` field's error;
/// a delivery records it as the attempt's failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    #[error("not a valid URL: {0}")]
    Invalid(String),
    #[error("live (production) endpoints must use https")]
    HttpInProduction,
    #[error("the scheme must be http or https, not {0}")]
    Scheme(String),
    #[error("credentials in the URL are not allowed; use custom headers")]
    Credentials,
    #[error("the URL has no host")]
    NoHost,
    #[error("the URL has no port")]
    NoPort,
    #[error("{host} does not resolve: {reason}")]
    Unresolved { host: String, reason: String },
    #[error("resolving {host} timed out")]
    ResolveTimedOut { host: String },
    #[error("{host} resolves to no address")]
    NoAddress { host: String },
    #[error("{host} resolves to no permitted address")]
    NoPermittedAddress { host: String },
    /// `kind` says which non-public range (`a loopback address`).
    #[error("{address} is {kind}; webhook targets must be public (operators may allow-list blocks with webhook.allowed_cidrs)")]
    NotPublic { address: IpAddr, kind: &'static str },
}

/// IPv6 forms that carry an IPv4 address (mapped, compatible, SIIT, NAT64, 6to4) are judged
/// as the IPv4 address they carry.
fn canonical(address: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = address else {
        return address;
    };
    let segments = v6.segments();
    let v4 = |high: u16, low: u16| IpAddr::V4(Ipv4Addr::from((u32::from(high) << 16) | u32::from(low)));
    match segments {
        _ if v6.to_ipv4_mapped().is_some() => IpAddr::V4(v6.to_ipv4_mapped().expect("checked")),
        // ::a.b.c.d (IPv4-compatible, deprecated) — but not :: and ::1.
        [0, 0, 0, 0, 0, 0, high, low] if high != 0 => v4(high, low),
        // ::ffff:0:a.b.c.d (SIIT).
        [0, 0, 0, 0, 0xffff, 0, high, low] => v4(high, low),
        // 64:ff9b::a.b.c.d (NAT64, well-known prefix).
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => v4(high, low),
        // 2002:AABB:CCDD::/48 (6to4) carries a.b.c.d in its second and third segments.
        [0x2002, high, low, ..] => v4(high, low),
        _ => address,
    }
}

/// Why an address is not a public target, or `None` if it is one.
pub fn non_public_reason(address: IpAddr) -> Option<&'static str> {
    match canonical(address) {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(address: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = address.octets();
    if address.is_loopback() {
        Some("a loopback address")
    } else if address.is_private() {
        Some("a private address")
    } else if address.is_link_local() {
        Some("a link-local address (cloud metadata lives here)")
    } else if address.is_unspecified() || a == 0 {
        Some("an unspecified address")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a shared (carrier-grade NAT) address")
    } else if address.is_multicast() || address.is_broadcast() || a >= 240 {
        Some("a multicast or reserved address")
    } else if (a, b, c) == (192, 0, 0) || (a == 198 && (b == 18 || b == 19)) || address.is_documentation() {
        Some("a reserved address")
    } else {
        None
    }
}

fn non_public_v6(address: Ipv6Addr) -> Option<&'static str> {
    let first = address.segments()[0];
    if address.is_loopback() {
        Some("a loopback address")
    } else if address.is_unspecified() {
        Some("an unspecified address")
    } else if first & 0xffc0 == 0xfe80 {
        Some("a link-local address")
    } else if first & 0xfe00 == 0xfc00 {
        Some("a private (unique local) address")
    } else if first & 0xffc0 == 0xfec0 {
        Some("a site-local address")
    } else if first == 0x64 && address.segments()[1] == 0xff9b {
        Some("a NAT64 address (local-use prefix)")
    } else if address.is_multicast() {
        Some("a multicast address")
    } else if first == 0x2001 && address.segments()[1] == 0x0db8 {
        Some("a documentation address")
    } else {
        None
    }
}

/// Which targets deliveries may reach.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    allowed: Vec<Cidr>,
}

impl AddressPolicy {
    pub fn new(allowed: Vec<Cidr>) -> AddressPolicy {
        AddressPolicy { allowed }
    }

    /// `Err(reason)` unless the address is public or inside an allow-listed block.
    pub fn permits(&self, address: IpAddr) -> Result<(), UrlRefused> {
        match non_public_reason(address) {
            Some(kind) if !self.allowed.iter().any(|cidr| cidr.contains(canonical(address))) => Err(UrlRefused::NotPublic { address, kind }),
            _ => Ok(()),
        }
    }

    /// Checks a target URL for an environment: http(s) only, HTTPS for production, no
    /// credentials in it, and every address its host resolves to permitted.
    pub async fn check_url(&self, text: &str, environment: Environment) -> Result<reqwest::Url, UrlRefused> {
        let url = check_url_shape(text, environment)?;
        let host = url.host_str().ok_or(UrlRefused::NoHost)?.trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = url.port_or_known_default().ok_or(UrlRefused::NoPort)?;
        let addresses = resolve(&host, port).await?;
        for address in &addresses {
            self.permits(address.ip())?;
        }
        Ok(url)
    }
}

/// The shape rules that need no network: scheme, HTTPS for production, no userinfo.
pub fn check_url_shape(text: &str, environment: Environment) -> Result<reqwest::Url, UrlRefused> {
    let url = reqwest::Url::parse(text).map_err(|error| UrlRefused::Invalid(error.to_string()))?;
    match (url.scheme(), environment) {
        ("https", _) | ("http", Environment::Sandbox) => {}
        ("http", Environment::Production) => return Err(UrlRefused::HttpInProduction),
        (scheme, _) => return Err(UrlRefused::Scheme(scheme.to_owned())),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefused::Credentials);
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(UrlRefused::NoHost);
    }
    Ok(url)
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, UrlRefused> {
    if let Ok(address) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(address, port)]);
    }
    let lookup = tokio::time::timeout(std::time::Duration::from_secs(5), tokio::net::lookup_host((host, port)));
    let addresses: Vec<SocketAddr> = match lookup.await {
        Ok(Ok(addresses)) => addresses.collect(),
        Ok(Err(error)) => return Err(UrlRefused::Unresolved { host: host.to_owned(), reason: error.to_string() }),
        Err(_) => return Err(UrlRefused::ResolveTimedOut { host: host.to_owned() }),
    };
    if addresses.is_empty() {
        return Err(UrlRefused::NoAddress { host: host.to_owned() });
    }
    Ok(addresses)
}

/// The delivery client's resolver: resolves, then keeps only permitted addresses (none
/// left is a connect error, recorded as the attempt's failure).
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub policy: Arc<AddressPolicy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = Arc::clone(&self.policy);
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addresses = resolve(&host, 0).await?;
            let mut permitted = Vec::with_capacity(addresses.len());
            let mut refusal = None;
            for address in addresses {
                match policy.permits(address.ip()) {
                    Ok(()) => permitted.push(address),
                    Err(reason) => refusal = Some(reason),
                }
            }
            if permitted.is_empty() {
                return Err(refusal.unwrap_or(UrlRefused::NoPermittedAddress { host }).into());
            }
            let addresses: reqwest::dns::Addrs = Box::new(permitted.into_iter());
            Ok(addresses)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn non_public_addresses_are_refused_unless_allow_listed() {
        let closed = AddressPolicy::default();
        for refused in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "::a9fe:a9fe",
            "::ffff:0:a9fe:a9fe",
            "64:ff9b:1::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "fec0::1",
        ] {
            assert!(closed.permits(ip(refused)).is_err(), "{refused} must be refused");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:0808:0808::1"] {
            assert!(closed.permits(ip(public)).is_ok(), "{public} is public");
        }
        let open = AddressPolicy::new(vec!["127.0.0.0/8".parse().expect("cidr")]);
        assert!(open.permits(ip("127.0.0.1")).is_ok());
        assert!(open.permits(ip("::ffff:127.0.0.9")).is_ok());
        assert!(open.permits(ip("10.0.0.1")).is_err(), "only the listed block opens");
    }

    #[test]
    fn blocks_parse_and_match() {
        let block: Cidr = "10.1.0.0/16".parse().expect("cidr");
        assert!(block.contains(ip("10.1.200.3")) && !block.contains(ip("10.2.0.1")));
        let single: Cidr = "169.254.169.254".parse().expect("single address");
        assert!(single.contains(ip("169.254.169.254")) && !single.contains(ip("169.254.169.253")));
        let everything: Cidr = "0.0.0.0/0".parse().expect("cidr");
        assert!(everything.contains(ip("1.2.3.4")));
        let v6: Cidr = "fd00::/8".parse().expect("cidr");
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0.0/x", "::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn url_shapes() {
        assert!(check_url_shape("https://example.com/hook", Environment::Production).is_ok());
        assert!(check_url_shape("http://example.com/hook", Environment::Production).is_err(), "live needs https");
        assert!(check_url_shape("http://example.com/hook", Environment::Sandbox).is_ok());
        assert!(check_url_shape("ftp://example.com/", Environment::Sandbox).is_err());
        assert!(check_url_shape("https://user:pw@example.com/", Environment::Sandbox).is_err());
        assert!(check_url_shape("not a url", Environment::Sandbox).is_err());
    }

    /// The refusals are typed, and say what the `String`s they replaced said.
    #[test]
    fn refusals_keep_their_messages() {
        let refusal = |text: &str, environment| check_url_shape(text, environment).expect_err(text);
        for (refused, expected, message) in [
            (refusal("http://example.com/hook", Environment::Production), UrlRefused::HttpInProduction, "live (production) endpoints must use https"),
            (refusal("ftp://example.com/", Environment::Sandbox), UrlRefused::Scheme("ftp".into()), "the scheme must be http or https, not ftp"),
            (
                refusal("https://user:pw@example.com/", Environment::Sandbox),
                UrlRefused::Credentials,
                "credentials in the URL are not allowed; use custom headers",
            ),
            (
                refusal("not a url", Environment::Sandbox),
                UrlRefused::Invalid("relative URL without a base".into()),
                "not a valid URL: relative URL without a base",
            ),
            (
                AddressPolicy::default().permits(ip("127.0.0.1")).expect_err("loopback"),
                UrlRefused::NotPublic { address: ip("127.0.0.1"), kind: "a loopback address" },
                "127.0.0.1 is a loopback address; webhook targets must be public (operators may allow-list blocks with webhook.allowed_cidrs)",
            ),
            (
                UrlRefused::NoPermittedAddress { host: "hooks.example".into() },
                UrlRefused::NoPermittedAddress { host: "hooks.example".into() },
                "hooks.example resolves to no permitted address",
            ),
        ] {
            assert_eq!(refused, expected);
            assert_eq!(refused.to_string(), message);
        }
    }

    #[tokio::test]
    async fn a_literal_address_is_checked_without_resolving() {
        let refused = AddressPolicy::default().check_url("http://10.0.0.1:9/hooks", Environment::Sandbox).await.expect_err("private");
        assert_eq!(refused, UrlRefused::NotPublic { address: ip("10.0.0.1"), kind: "a private address" }, "{refused}");
        let allowed = AddressPolicy::new(vec!["10.0.0.0/8".parse().expect("cidr")]);
        assert!(allowed.check_url("http://10.0.0.1:9/hooks", Environment::Sandbox).await.is_ok());
    }
}
