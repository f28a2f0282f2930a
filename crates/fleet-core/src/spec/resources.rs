//! Memory and CPU limits: Docker-style memory sizes (`512m`) and the bounds Docker and
//! the host put on both.

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The largest memory limit Docker takes (its API field is a signed 64-bit number).
const MEMORY_MAX: u64 = i64::MAX as u64;

/// The smallest memory limit Docker takes.
const MEMORY_MIN: u64 = 6 * 1024 * 1024;

/// The smallest CPU limit Docker takes.
const CPUS_MIN: f64 = 0.01;

/// Memory and CPU limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// Memory limit in bytes.
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    /// CPU limit in CPUs (`1.5`).
    #[serde(default)]
    pub cpus: Option<f64>,
}

impl Resources {
    /// Checks the limits against what Docker takes on any host.
    pub(super) fn check(&self) -> Result<(), String> {
        if let Some(memory) = self.memory_bytes {
            if memory < MEMORY_MIN {
                return Err(format!(
                    "memory limit {memory} bytes is below Docker's minimum of 6 MiB"
                ));
            }
            if memory > MEMORY_MAX {
                return Err(format!(
                    "memory limit {memory} bytes is more than the 8 EiB Docker accepts"
                ));
            }
        }
        if let Some(cpus) = self.cpus {
            if !(cpus.is_finite() && cpus > 0.0) {
                return Err(format!("CPU limit {cpus} must be a positive number"));
            }
            if cpus < CPUS_MIN {
                return Err(format!(
                    "CPU limit {cpus} is below Docker's minimum of {CPUS_MIN}"
                ));
            }
        }
        Ok(())
    }

    /// Checks the CPU limit against a host with `host_cpus` CPUs: Docker refuses more.
    pub(super) fn check_host(&self, host_cpus: usize) -> Result<(), String> {
        match self.cpus {
            Some(cpus) if cpus > host_cpus as f64 => Err(format!(
                "CPU limit {cpus} is more than the host's {host_cpus} CPUs"
            )),
            _ => Ok(()),
        }
    }
}

/// A memory size both Docker's clients and `fleet create --memory` read: the largest
/// of `g`, `m`, `k` that divides it, else bytes.
pub fn memory_text(bytes: u64) -> String {
    for (unit, factor) in [("g", 1u64 << 30), ("m", 1 << 20), ("k", 1 << 10)] {
        if bytes.is_multiple_of(factor) {
            return format!("{}{unit}", bytes / factor);
        }
    }
    bytes.to_string()
}

/// Parses a Docker-style memory size: `512m`, `1g`, `1.5g`, `65536` (bytes); binary units.
pub fn parse_memory(text: &str) -> Result<u64, Error> {
    let invalid = |reason: String| Error::InvalidMemory {
        text: text.to_owned(),
        reason,
    };
    let lower = text.trim().to_ascii_lowercase();
    let trimmed = lower.strip_suffix('b').unwrap_or(&lower);
    let (number, unit) = match trimmed
        .char_indices()
        .find(|(_, c)| c.is_ascii_alphabetic())
    {
        Some((at, _)) => trimmed.split_at(at),
        None => (trimmed, ""),
    };
    let factor: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => {
            return Err(invalid(format!(
                "its unit {unit:?} is not one of k, m, g, t"
            )));
        }
    };
    let not_a_number = || invalid("it is not a number with a unit such as 512m".to_owned());
    let too_large = || invalid("it is more than the 8 EiB Docker accepts".to_owned());
    // Whole numbers are multiplied exactly; fractions (`1.5g`) go through f64.
    let bytes = if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) {
        number
            .parse::<u64>()
            .ok()
            .and_then(|value| value.checked_mul(factor))
            .ok_or_else(too_large)?
    } else {
        let value: f64 = number.parse().map_err(|_| not_a_number())?;
        if !value.is_finite() {
            return Err(not_a_number());
        }
        let bytes = value * factor as f64;
        // `i64::MAX as f64` rounds up to 2^63: anything at or above it is too large.
        if bytes >= MEMORY_MAX as f64 {
            return Err(too_large());
        }
        bytes as u64
    };
    if bytes == 0 {
        return Err(invalid("it must be positive".to_owned()));
    }
    if bytes > MEMORY_MAX {
        return Err(too_large());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::InstanceSpec;
    use crate::spec::tests::{check, spec};

    fn with_cpus(cpus: f64) -> InstanceSpec {
        let mut spec = spec();
        spec.resources.cpus = Some(cpus);
        spec
    }

    fn with_memory(bytes: u64) -> InstanceSpec {
        let mut spec = spec();
        spec.resources.memory_bytes = Some(bytes);
        spec
    }

    /// Regression (issue 14): `--cpus 9999` reached the engine.
    #[test]
    fn cpu_limits() {
        insta::assert_snapshot!(check(with_cpus(1.5)), @"ok");
        insta::assert_snapshot!(check(with_cpus(0.0)), @"invalid spec for instance alice: CPU limit 0 must be a positive number");
        insta::assert_snapshot!(check(with_cpus(0.001)), @"invalid spec for instance alice: CPU limit 0.001 is below Docker's minimum of 0.01");
        let host = |spec: InstanceSpec, cpus| match spec.check_host_limits(cpus) {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.to_string(),
        };
        insta::assert_snapshot!(host(with_cpus(2.0), 2), @"ok");
        insta::assert_snapshot!(host(spec(), 2), @"ok");
        insta::assert_snapshot!(host(with_cpus(9999.0), 2), @"invalid spec for instance alice: CPU limit 9999 is more than the host's 2 CPUs");
        insta::assert_snapshot!(host(with_cpus(2.5), 2), @"invalid spec for instance alice: CPU limit 2.5 is more than the host's 2 CPUs");
    }

    #[test]
    fn memory_limits() {
        insta::assert_snapshot!(check(with_memory(6 << 20)), @"ok");
        insta::assert_snapshot!(check(with_memory(1024)), @"invalid spec for instance alice: memory limit 1024 bytes is below Docker's minimum of 6 MiB");
        insta::assert_snapshot!(check(with_memory(u64::MAX)), @"invalid spec for instance alice: memory limit 18446744073709551615 bytes is more than the 8 EiB Docker accepts");
    }

    fn memory(text: &str) -> String {
        match parse_memory(text) {
            Ok(bytes) => bytes.to_string(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("512m").unwrap(), 512 << 20);
        assert_eq!(parse_memory("1g").unwrap(), 1 << 30);
        assert_eq!(parse_memory("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_memory("64kb").unwrap(), 64 << 10);
        assert_eq!(parse_memory("65536").unwrap(), 65536);
        insta::assert_snapshot!(memory("12x"), @r#"invalid memory size "12x": its unit "x" is not one of k, m, g, t"#);
        insta::assert_snapshot!(memory("m"), @r#"invalid memory size "m": it is not a number with a unit such as 512m"#);
        insta::assert_snapshot!(memory("0"), @r#"invalid memory size "0": it must be positive"#);
        insta::assert_snapshot!(memory("-5m"), @r#"invalid memory size "-5m": it must be positive"#);
        let error = parse_memory("12x").unwrap_err();
        assert!(
            matches!(&error, Error::InvalidMemory { text, .. } if text == "12x"),
            "{error:?}"
        );
    }

    /// Regression (issue 14): `9000000000g` overflowed and reached the engine as a
    /// negative number.
    #[test]
    fn memory_sizes_too_large_are_refused() {
        insta::assert_snapshot!(memory("9000000000g"), @r#"invalid memory size "9000000000g": it is more than the 8 EiB Docker accepts"#);
        insta::assert_snapshot!(memory("8388608t"), @r#"invalid memory size "8388608t": it is more than the 8 EiB Docker accepts"#);
        insta::assert_snapshot!(memory("8388607.99999999999t"), @r#"invalid memory size "8388607.99999999999t": it is more than the 8 EiB Docker accepts"#);
        insta::assert_snapshot!(memory("99999999999999999999"), @r#"invalid memory size "99999999999999999999": it is more than the 8 EiB Docker accepts"#);
        assert_eq!(parse_memory("8388607t").unwrap(), 8_388_607 << 40);
        assert_eq!(
            parse_memory("9223372036854775807").unwrap(),
            i64::MAX as u64
        );
        insta::assert_snapshot!(memory("9223372036854775808"), @r#"invalid memory size "9223372036854775808": it is more than the 8 EiB Docker accepts"#);
    }
}
