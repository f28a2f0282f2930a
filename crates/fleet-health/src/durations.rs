//! How durations are written: humantime strings in configuration, milliseconds in reports.

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
}
