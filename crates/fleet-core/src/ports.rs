//! Host port allocation: a range, a step, and proof that a port is really free.
//!
//! A port is handed out only if the store does not hold it, no container on the engine
//! (fleet's or not) publishes it, and it can be bound on the host right now (IPv4 and,
//! where the host has it, IPv6). The store's transaction makes the choice atomic across
//! processes; the bind check catches listeners fleet knows nothing about.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use crate::error::{Error, PortHolder};

/// The ports fleet allocates from: `first..=last`, every `step`th one.
///
/// ```
/// use fleet_core::PortRange;
/// let range = PortRange::new(5001, 5009, 2)?;
/// assert_eq!(range.iter().collect::<Vec<_>>(), [5001, 5003, 5005, 5007, 5009]);
/// # Ok::<(), fleet_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawRange", into = "RawRange")]
pub struct PortRange {
    first: u16,
    last: u16,
    step: u16,
}

#[derive(Serialize, Deserialize)]
struct RawRange {
    first: u16,
    last: u16,
    #[serde(default = "one")]
    step: u16,
}

fn one() -> u16 {
    1
}

impl TryFrom<RawRange> for PortRange {
    type Error = Error;

    fn try_from(raw: RawRange) -> Result<Self, Error> {
        Self::new(raw.first, raw.last, raw.step)
    }
}

impl From<PortRange> for RawRange {
    fn from(range: PortRange) -> Self {
        Self {
            first: range.first,
            last: range.last,
            step: range.step,
        }
    }
}

impl Default for PortRange {
    /// 5001 to 5999, step 1.
    fn default() -> Self {
        Self {
            first: 5001,
            last: 5999,
            step: 1,
        }
    }
}

impl PortRange {
    /// A range; `first` must be at least 1 and at most `last`, `step` at least 1.
    pub fn new(first: u16, last: u16, step: u16) -> Result<Self, Error> {
        let reason = if first == 0 {
            "port 0 is not a port"
        } else if first > last {
            "the first port is after the last"
        } else if step == 0 {
            "the step is 0"
        } else {
            return Ok(Self { first, last, step });
        };
        Err(Error::InvalidPortRange {
            first,
            last,
            step,
            reason,
        })
    }

    /// The candidate ports in order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + use<> {
        (self.first..=self.last).step_by(usize::from(self.step))
    }

    /// Whether `port` is one of the candidates.
    pub fn contains(&self, port: u16) -> bool {
        port >= self.first && port <= self.last && (port - self.first).is_multiple_of(self.step)
    }

    /// The error for a range with no free port left.
    pub fn exhausted(&self) -> Error {
        Error::PortsExhausted {
            first: self.first,
            last: self.last,
            step: self.step,
        }
    }

    /// First port.
    pub fn first(&self) -> u16 {
        self.first
    }

    /// Last port.
    pub fn last(&self) -> u16 {
        self.last
    }

    /// Step.
    pub fn step(&self) -> u16 {
        self.step
    }

    /// The candidates of this range inside `ports` (from the first to the last of them),
    /// if any: `[ports]` against [`ephemeral_ports`], say.
    ///
    /// ```
    /// use fleet_core::PortRange;
    /// let range = PortRange::new(32000, 33000, 10)?;
    /// assert_eq!(range.overlap(&(32768..=60999)), Some(32770..=33000));
    /// assert_eq!(range.overlap(&(1024..=31999)), None);
    /// # Ok::<(), fleet_core::Error>(())
    /// ```
    pub fn overlap(&self, ports: &RangeInclusive<u16>) -> Option<RangeInclusive<u16>> {
        let mut inside = self.iter().filter(|port| ports.contains(port));
        let first = inside.next()?;
        Some(first..=inside.last().unwrap_or(first))
    }
}

/// The range the kernel takes the local port of an outgoing connection from
/// (`net.ipv4.ip_local_port_range` on Linux), or `None` where it cannot be read.
///
/// A host port fleet allocates inside it can be held by any process's outgoing
/// connection while the instance's container restarts (a recreate update, a restore, a
/// restart), and publishing the port again then fails with "address already in use".
/// `[ports]` belongs outside it, as fleet's default (5001-5999) is.
pub fn ephemeral_ports() -> Option<RangeInclusive<u16>> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    parse_ephemeral(&text)
}

/// `"32768\t60999\n"` as `32768..=60999`.
fn parse_ephemeral(text: &str) -> Option<RangeInclusive<u16>> {
    let mut numbers = text.split_whitespace().map(str::parse::<u16>);
    let first = numbers.next()?.ok()?;
    let last = numbers.next()?.ok()?;
    (first <= last).then_some(first..=last)
}

/// Whether `port` can be bound on the host right now (IPv4 on all addresses, and IPv6
/// when the host has it). A listener of any process makes it fail.
pub fn bindable(port: u16) -> bool {
    if TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))).is_err() {
        return false;
    }
    match TcpListener::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))) {
        Ok(_) => true,
        // No IPv6 on this host: nothing can hold the port there.
        Err(e)
            if e.raw_os_error() == Some(nix::errno::Errno::EAFNOSUPPORT as i32)
                || e.raw_os_error() == Some(nix::errno::Errno::EADDRNOTAVAIL as i32) =>
        {
            true
        }
        Err(_) => false,
    }
}

/// The check [`crate::store::Store::allocate_ports`] applies beyond the store: ports
/// published by containers on the engine (`published`: port → container name), then the
/// host bind test.
pub(crate) fn host_check(
    published: &HashMap<u16, String>,
) -> impl Fn(u16) -> Result<(), PortHolder> + '_ {
    move |port| {
        if let Some(name) = published.get(&port) {
            return Err(PortHolder::Container { name: name.clone() });
        }
        if !bindable(port) {
            return Err(PortHolder::Process);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_kernel_ephemeral_range_is_read_as_the_proc_file_writes_it() {
        assert_eq!(parse_ephemeral("32768\t60999\n"), Some(32768..=60999));
        assert_eq!(parse_ephemeral("1024 65535"), Some(1024..=65535));
        assert_eq!(parse_ephemeral("60999 32768"), None);
        assert_eq!(parse_ephemeral("32768"), None);
        assert_eq!(parse_ephemeral(""), None);
        // This machine's, where Linux has it.
        if std::path::Path::new("/proc/sys/net/ipv4/ip_local_port_range").exists() {
            assert!(ephemeral_ports().is_some());
        }
    }

    #[test]
    fn an_overlap_names_the_first_and_last_candidate_inside() {
        let range = PortRange::new(5001, 5999, 1).unwrap();
        assert_eq!(range.overlap(&(32768..=60999)), None);
        assert_eq!(range.overlap(&(5500..=6000)), Some(5500..=5999));
        assert_eq!(range.overlap(&(1..=5001)), Some(5001..=5001));
        let stepped = PortRange::new(6000, 6100, 7).unwrap();
        assert_eq!(stepped.overlap(&(6001..=6006)), None);
        assert_eq!(stepped.overlap(&(6001..=6100)), Some(6007..=6098));
    }

    #[test]
    fn ranges() {
        assert_eq!(PortRange::default().iter().count(), 999);
        assert_eq!(
            PortRange::new(5001, 5010, 2)
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            [5001, 5003, 5005, 5007, 5009]
        );
        let error = |first, last, step| PortRange::new(first, last, step).unwrap_err().to_string();
        insta::assert_snapshot!(error(5001, 5000, 1), @"invalid port range 5001-5000 step 1: the first port is after the last");
        insta::assert_snapshot!(error(0, 10, 1), @"invalid port range 0-10 step 1: port 0 is not a port");
        insta::assert_snapshot!(error(1, 10, 0), @"invalid port range 1-10 step 0: the step is 0");
        assert_eq!(
            PortRange::new(65535, 65535, 7)
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            [65535]
        );
    }

    proptest! {
        #[test]
        fn iter_and_contains_agree(first in 1u16..65535, len in 0u16..3000, step in 1u16..50) {
            let last = first.saturating_add(len);
            let range = PortRange::new(first, last, step).unwrap();
            let ports: Vec<u16> = range.iter().collect();
            prop_assert!(ports.iter().all(|p| range.contains(*p)));
            prop_assert!(ports.windows(2).all(|w| w[1] - w[0] == step));
            prop_assert_eq!(ports.len(), usize::from((last - first) / step) + 1);
            prop_assert!(!range.contains(last.saturating_add(1)) || last == u16::MAX);
        }
    }

    #[test]
    fn a_listening_port_is_not_bindable() {
        let listener = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(!bindable(port));
        drop(listener);
        assert!(bindable(port));
    }
}
