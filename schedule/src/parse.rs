//! The text forms of a schedule: `"HH:MM-HH:MM"` and an IANA zone name.
//! Each parser returns `None` on bad input; the caller names its own key
//! (`maintenance.window`, `BACKUP_WINDOW`) and quotes the `*_SYNTAX` text as
//! what is allowed.

use chrono::NaiveTime;
use chrono_tz::Tz;

/// What a window may look like, for error messages.
pub const WINDOW_SYNTAX: &str = "\"HH:MM-HH:MM\" with 24-hour times, e.g. \"03:00-03:05\"; it may cross midnight (\"23:30-00:15\") but not be empty";

/// What a zone may look like, for error messages.
pub const TIMEZONE_SYNTAX: &str =
    "an IANA zone name such as \"UTC\", \"Europe/London\" or \"America/New_York\"";

/// Parses `"HH:MM-HH:MM"` into its start and end; `None` when malformed or
/// empty (start equal to end).
///
/// ```
/// use maintenance_schedule::parse_window;
/// let (start, end) = parse_window("23:30-00:15").unwrap();
/// assert_eq!(start.to_string(), "23:30:00");
/// assert_eq!(end.to_string(), "00:15:00");
/// assert!(parse_window("25:00-03:00").is_none());
/// ```
pub fn parse_window(text: &str) -> Option<(NaiveTime, NaiveTime)> {
    let (a, b) = text.split_once('-')?;
    let parse = |s: &str| {
        let s = s.trim();
        let (h, m) = s.split_once(':')?;
        if h.is_empty() || h.len() > 2 || m.len() != 2 {
            return None;
        }
        NaiveTime::from_hms_opt(h.parse().ok()?, m.parse().ok()?, 0)
    };
    let (start, end) = (parse(a)?, parse(b)?);
    (start != end).then_some((start, end))
}

/// Parses an IANA zone name; `None` when unknown.
pub fn parse_timezone(name: &str) -> Option<Tz> {
    name.trim().parse::<Tz>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        assert!(parse_window("03:00-03:05").is_some());
        assert!(parse_window("3:00-3:05").is_some());
        for bad in [
            "",
            "03:00",
            "03:00-03:00",
            "03:0-03:05",
            "24:00-01:00",
            "a-b",
        ] {
            assert!(parse_window(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn zones() {
        assert_eq!(
            parse_timezone("Europe/London"),
            Some(chrono_tz::Europe::London)
        );
        assert_eq!(parse_timezone("Mars/Olympus"), None);
    }
}
