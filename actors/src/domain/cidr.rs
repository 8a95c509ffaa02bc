//! Address blocks (`203.0.113.0/24`, `2001:db8::/32`): one type for the partner IP
//! allowlist and the webhook SSRF guard, built on `ipnet` (no hand-written mask math).
//!
//! Invariants:
//! - A block is parsed once, when it is saved or configured; requests only call `contains`.
//! - An IPv4 network is always held in IPv4 form. The IPv4-mapped form
//!   (`::ffff:10.0.0.0/104`) is rewritten to it (`10.0.0.0/8`); the other IPv6 forms that
//!   carry an IPv4 address (compatible `::a.b.c.d`, SIIT, NAT64 `64:ff9b::/96`, 6to4
//!   `2002::/16`) are refused, because the addresses they name are judged as IPv4 and such a
//!   block would silently match nothing (or, before this type, everything).
//! - `contains` judges an IPv4-mapped address (a dual-stack socket's IPv4 peer) as the IPv4
//!   address it carries, so `10.0.0.0/8` matches `::ffff:10.1.2.3`.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A network: its address with the host bits cleared, and its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr(IpNet);

/// Why a text is not an address block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("'{0}' is not an address block like 203.0.113.0/24 or 2001:db8::/32")]
    Malformed(String),
    #[error("'{0}' is an IPv6 form of an IPv4 network; write the IPv4 network itself (like 203.0.113.0/24)")]
    Ipv4InIpv6(String),
}

/// IPv6 blocks whose addresses carry an IPv4 address (other than the mapped form, which is
/// rewritten): written as a block, they would name IPv4 clients in a form never compared.
const IPV4_CARRYING_BLOCKS: [(Ipv6Addr, u8); 4] = [
    // ::a.b.c.d, IPv4-compatible (deprecated); `::` and `::1` themselves are allowed.
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 96),
    // ::ffff:0:a.b.c.d, SIIT.
    (Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, 0, 0), 96),
    // 64:ff9b::a.b.c.d, NAT64's well-known prefix.
    (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96),
    // 2002:AABB:CCDD::/48, 6to4.
    (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16),
];

impl Cidr {
    /// Parses `address/prefix`, or a bare address as a single-address block.
    pub fn parse(text: &str) -> Result<Cidr, CidrError> {
        let trimmed = text.trim();
        let net = if trimmed.contains('/') { IpNet::from_str(trimmed).ok() } else { IpAddr::from_str(trimmed).ok().map(IpNet::from) };
        let net = net.ok_or_else(|| CidrError::Malformed(text.to_owned()))?;
        Cidr::from_net(net.trunc()).ok_or_else(|| CidrError::Ipv4InIpv6(text.to_owned()))
    }

    /// Parses `address/prefix` only: a partner's allowlist names blocks explicitly.
    pub fn parse_block(text: &str) -> Result<Cidr, CidrError> {
        if text.contains('/') { Cidr::parse(text) } else { Err(CidrError::Malformed(text.to_owned())) }
    }

    /// The canonical block, or `None` for an IPv4-carrying IPv6 block that is not mapped.
    fn from_net(net: IpNet) -> Option<Cidr> {
        let IpNet::V6(v6) = net else {
            return Some(Cidr(net));
        };
        if let Some(v4) = v6.network().to_ipv4_mapped()
            && v6.prefix_len() >= 96
        {
            let v4 = Ipv4Net::new(v4, v6.prefix_len() - 96).expect("a mapped prefix of 96 to 128 leaves 0 to 32 bits");
            return Some(Cidr(IpNet::V4(v4)));
        }
        let loopback_or_unspecified = v6.prefix_len() == 128 && (v6.network().is_loopback() || v6.network().is_unspecified());
        let carries_ipv4 = IPV4_CARRYING_BLOCKS.iter().any(|(network, prefix)| {
            let block = Ipv6Net::new(*network, *prefix).expect("a prefix of at most 128");
            block.contains(&v6)
        });
        (loopback_or_unspecified || !carries_ipv4).then_some(Cidr(net))
    }

    /// Whether `address` is inside this block; an IPv4-mapped address counts as its IPv4.
    pub fn contains(&self, address: IpAddr) -> bool {
        self.0.contains(&address.to_canonical())
    }

    pub fn prefix_len(&self) -> u8 {
        self.0.prefix_len()
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        Cidr::parse(text)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(formatter)
    }
}

/// Stored and shown as its text, so a stored allowlist keeps the bytes of a list of strings.
impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Reading back is lenient where writing is strict: a block stored by the earlier parser
/// (`legacy_block`) is kept as the block it names (an IPv4-carrying IPv6 block can only
/// match IPv6 peers, so it fails closed), rather than making its partner unreadable.
impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Cidr, D::Error> {
        let text = String::deserialize(deserializer)?;
        Cidr::parse(&text).or_else(|_| legacy_block(&text).ok_or_else(|| serde::de::Error::custom(CidrError::Malformed(text.clone()))))
    }
}

/// What the allowlist accepted before this type: `address/prefix` with any `u8` prefix text
/// (`10.0.0.0/+8`, `10.0.0.0/008`) up to the family's bits, IPv4-carrying forms kept as the
/// IPv6 blocks they are. A stored partner must always decode: an unreadable record would
/// lock it out of every request and every admin repair.
fn legacy_block(text: &str) -> Option<Cidr> {
    let (address, prefix) = text.trim().split_once('/')?;
    let address = IpAddr::from_str(address).ok()?;
    let prefix = u8::from_str(prefix).ok()?;
    IpNet::new(address, prefix).ok().map(|net| Cidr(net.trunc()))
}

#[cfg(test)]
mod legacy_tests {
    use super::*;

    #[test]
    fn every_block_the_old_parser_stored_still_decodes() {
        for (stored, shown) in
            [("10.0.0.0/+8", "10.0.0.0/8"), ("10.0.0.0/008", "10.0.0.0/8"), ("2001:db8::/0032", "2001:db8::/32"), ("64:ff9b::/96", "64:ff9b::/96")]
        {
            let decoded: Cidr = serde_json::from_str(&format!("\"{stored}\"")).unwrap_or_else(|error| panic!("{stored}: {error}"));
            assert_eq!(decoded.to_string(), shown);
        }
        assert!(serde_json::from_str::<Cidr>("\"10.0.0.0/33\"").is_err(), "the old parser refused it too");
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    fn cidr(text: &str) -> Cidr {
        text.parse().unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    fn address(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn the_mapped_block_that_allowed_every_client_is_its_ipv4_network() {
        let block = cidr("::ffff:10.0.0.0/104");
        assert_eq!(block.to_string(), "10.0.0.0/8");
        assert!(block.contains(address("10.20.30.40")) && block.contains(address("::ffff:10.1.1.1")));
        for outside in ["11.0.0.1", "127.0.0.1", "203.0.113.9", "::ffff:192.168.0.1", "::1"] {
            assert!(!block.contains(address(outside)), "{outside}");
        }
        assert_eq!(cidr("::ffff:203.0.113.7/128").to_string(), "203.0.113.7/32");
        assert_eq!(cidr("::ffff:0:0/96").to_string(), "0.0.0.0/0");
    }

    #[test]
    fn other_ipv6_forms_of_ipv4_networks_are_refused() {
        for text in ["::10.0.0.0/104", "::ffff:0:10.0.0.0/104", "64:ff9b::/96", "64:ff9b::a00:0/104", "2002:a00::/24", "2002::/16", "::/96"] {
            assert!(matches!(Cidr::parse(text), Err(CidrError::Ipv4InIpv6(_))), "{text}");
        }
        for text in ["::1/128", "::/128", "::/0", "2000::/3", "2001:db8::/32", "fd00::/8", "::ffff:0:0/95"] {
            assert!(Cidr::parse(text).is_ok(), "{text}");
        }
    }

    #[test]
    fn malformed_blocks_are_refused() {
        for text in ["", "nope/8", "10.0.0.0/33", "2001:db8::/129", "10.0.0.0/-1", "10.0.0/8", "10.0.0.0/8/8", "10.0.0.0/ 8"] {
            assert!(matches!(Cidr::parse(text), Err(CidrError::Malformed(_))), "{text}");
        }
        assert!(Cidr::parse_block("10.0.0.1").is_err());
        assert_eq!(cidr("10.0.0.1").to_string(), "10.0.0.1/32");
        assert_eq!(cidr("10.9.8.7/8").to_string(), "10.0.0.0/8", "host bits are cleared");
    }

    #[test]
    fn every_prefix_length_holds_at_both_ends() {
        let base_v4 = u32::from(Ipv4Addr::new(203, 0, 113, 77));
        for prefix in 0..=32u32 {
            let host_mask = u32::MAX.checked_shr(prefix).unwrap_or(0);
            let (first, last) = (base_v4 & !host_mask, base_v4 | host_mask);
            let block = cidr(&format!("{}/{prefix}", Ipv4Addr::from(base_v4)));
            assert_eq!(prefix, u32::from(block.prefix_len()));
            for inside in [first, last] {
                assert!(block.contains(IpAddr::V4(inside.into())), "/{prefix} ∋ {}", Ipv4Addr::from(inside));
                assert!(block.contains(IpAddr::V6(Ipv4Addr::from(inside).to_ipv6_mapped())), "/{prefix} ∋ mapped");
            }
            for outside in [first.checked_sub(1), last.checked_add(1)].into_iter().flatten() {
                assert!(!block.contains(IpAddr::V4(outside.into())), "/{prefix} ∌ {}", Ipv4Addr::from(outside));
            }
        }
        let base_v6 = u128::from("2001:db8:dead:beef::42".parse::<Ipv6Addr>().expect("v6"));
        for prefix in 0..=128u32 {
            let host_mask = u128::MAX.checked_shr(prefix).unwrap_or(0);
            let (first, last) = (base_v6 & !host_mask, base_v6 | host_mask);
            let block = Cidr(IpNet::V6(Ipv6Net::new(Ipv6Addr::from(base_v6), prefix as u8).expect("prefix").trunc()));
            for inside in [first, last] {
                assert!(block.contains(IpAddr::V6(inside.into())), "/{prefix} ∋ {}", Ipv6Addr::from(inside));
            }
            for outside in [first.checked_sub(1), last.checked_add(1)].into_iter().flatten() {
                assert!(!block.contains(IpAddr::V6(outside.into())), "/{prefix} ∌ {}", Ipv6Addr::from(outside));
            }
        }
    }

    #[test]
    fn stored_text_round_trips_and_old_forms_still_decode() {
        let blocks = vec![cidr("203.0.113.0/24"), cidr("2001:db8::/32")];
        let json = serde_json::to_string(&blocks).expect("json");
        assert_eq!(json, r#"["203.0.113.0/24","2001:db8::/32"]"#);
        assert_eq!(serde_json::from_str::<Vec<Cidr>>(&json).expect("decode"), blocks);
        let old: Cidr = serde_json::from_str(r#""64:ff9b::/96""#).expect("an old stored form still decodes");
        assert!(!old.contains(address("10.0.0.1")), "and fails closed for IPv4 peers");
        assert!(serde_json::from_str::<Cidr>(r#""nope""#).is_err());
        // The stored bytes are those of the list of strings partners were saved with before.
        let texts = vec!["203.0.113.0/24".to_owned(), "2001:db8::/32".to_owned()];
        assert_eq!(crate::store::codec::encode(&blocks), crate::store::codec::encode(&texts));
        assert_eq!(crate::store::codec::decode::<Vec<Cidr>>(&crate::store::codec::encode(&texts)).expect("decode"), blocks);
    }

    proptest! {
        #[test]
        fn contains_agrees_with_ipnet_for_ipv4(network: u32, prefix in 0u8..=32, probe: u32) {
            let block = cidr(&format!("{}/{prefix}", Ipv4Addr::from(network)));
            let reference = Ipv4Net::new(Ipv4Addr::from(network), prefix).expect("prefix").trunc();
            let expected = reference.contains(&Ipv4Addr::from(probe));
            prop_assert_eq!(block.contains(IpAddr::V4(probe.into())), expected);
            prop_assert_eq!(block.contains(IpAddr::V6(Ipv4Addr::from(probe).to_ipv6_mapped())), expected);
            prop_assert!(!block.contains(IpAddr::V6(Ipv6Addr::from(u128::from(probe) | (1 << 120)))));
        }

        #[test]
        fn contains_agrees_with_ipnet_for_ipv6(network: u128, prefix in 0u8..=128, probe: u128) {
            let reference = Ipv6Net::new(Ipv6Addr::from(network), prefix).expect("prefix").trunc();
            let Ok(block) = Cidr::parse(&reference.to_string()) else {
                // An IPv4-carrying block: refused at parse, as the unit tests show.
                return Ok(());
            };
            let probe = Ipv6Addr::from(probe);
            if probe.to_ipv4_mapped().is_none() {
                prop_assert_eq!(block.contains(IpAddr::V6(probe)), reference.contains(&probe));
            }
        }
    }
}
