//! Reports people and programs read: serde for `--json`, `Display` for a terminal.

use std::time::Duration;

/// A duration for people, short and only as precise as it is useful: `850µs`, `3.2ms`,
/// `312ms`, `1.5s`, `2m 5s`.
pub(crate) fn short(duration: Duration) -> String {
    let micros = duration.as_micros();
    if micros < 1_000 {
        format!("{micros}µs")
    } else if micros < 10_000 {
        trim(format!("{:.1}", micros as f64 / 1_000.0)) + "ms"
    } else if micros < 1_000_000 {
        format!("{}ms", (micros + 500) / 1_000)
    } else if micros < 60_000_000 {
        trim(format!("{:.2}", micros as f64 / 1_000_000.0)) + "s"
    } else {
        let secs = duration.as_secs();
        format!("{}m {}s", secs / 60, secs % 60)
    }
}

fn trim(number: String) -> String {
    if number.contains('.') {
        number
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    } else {
        number
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_durations() {
        let check = |micros: u64| short(Duration::from_micros(micros));
        insta::assert_snapshot!(check(850), @"850µs");
        insta::assert_snapshot!(check(3_200), @"3.2ms");
        insta::assert_snapshot!(check(3_000), @"3ms");
        insta::assert_snapshot!(check(311_600), @"312ms");
        insta::assert_snapshot!(check(1_000_000), @"1s");
        insta::assert_snapshot!(check(1_500_000), @"1.5s");
        insta::assert_snapshot!(check(12_345_678), @"12.35s");
        insta::assert_snapshot!(check(125_000_000), @"2m 5s");
    }
}
