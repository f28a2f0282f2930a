//! How durations are written: humantime strings in configuration, milliseconds in reports.

/// The serde adapter for a [`Duration`](std::time::Duration) written as humantime text
/// (`"30s"`, `"1m 30s"`, `"250ms"`), as people write durations in configuration files.
///
/// It is what [`ProbePolicy`](crate::ProbePolicy) and [`HealthSpec`](crate::HealthSpec)
/// use, and it is public so that every configuration of a program reads durations the
/// same way, with the same error for a bad one. Use it with `#[serde(with = ...)]`:
///
/// ```
/// use std::time::Duration;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Settings {
///     #[serde(with = "fleet_health::human_duration")]
///     grace: Duration,
/// }
///
/// let settings: Settings = toml::from_str(r#"grace = "1m 30s""#)?;
/// assert_eq!(settings.grace, Duration::from_secs(90));
/// assert_eq!(toml::to_string(&settings)?.trim(), r#"grace = "1m 30s""#);
/// assert!(toml::from_str::<Settings>(r#"grace = "soon""#).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub mod human {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `value` as humantime text (`1m 30s`).
    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*value))
    }

    /// Reads humantime text (`30s`, `1m 30s`, `250ms`); the error names the text and
    /// shows how to write a duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format_args!(
                "invalid duration {text:?} ({e}); write it like \"5s\", \"1m 30s\" or \"250ms\""
            ))
        })
    }
}

/// Milliseconds as a number with microsecond precision: durations in reports, for
/// programs (`jq '.attempts[].latency_ms'`).
pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(round(value))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        Duration::try_from_secs_f64(ms / 1000.0).map_err(serde::de::Error::custom)
    }

    fn round(value: &Duration) -> f64 {
        (value.as_micros() as f64) / 1000.0
    }

    /// The same for an optional duration.
    pub(crate) mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer, Serializer};

        pub(crate) fn serialize<S: Serializer>(
            value: &Option<Duration>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(value) => s.serialize_some(&super::round(value)),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Duration>, D::Error> {
            Option::<f64>::deserialize(d)?
                .map(|ms| Duration::try_from_secs_f64(ms / 1000.0))
                .transpose()
                .map_err(serde::de::Error::custom)
        }
    }
}
