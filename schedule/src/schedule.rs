//! When maintenance windows happen.
//!
//! A window is configured as local wall-clock times (`"03:00-03:05"`) in an
//! IANA zone, optionally on some weekdays only. Turning that into UTC
//! instants must survive daylight-saving changes, and we follow ISC cron's
//! rules so operators get what they already expect:
//!
//! * a time inside a skipped hour (spring forward) happens at the first
//!   valid instant after the gap;
//! * a time inside a repeated hour (fall back) happens once, at its first
//!   occurrence.
//!
//! Each local date yields at most one window, which starts on that date
//! (windows crossing midnight end on the next date). All functions here are
//! pure, so the property tests can sweep many instants and zones.

use std::fmt;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc,
    Weekday,
};
use chrono_tz::Tz;
use maintenance_proto::WindowSpan;

/// A daily window in a time zone.
///
/// ```
/// use chrono::{NaiveTime, TimeZone, Utc};
/// use maintenance_schedule::Schedule;
/// let schedule = Schedule::new(
///     NaiveTime::from_hms_opt(23, 30, 0).unwrap(),
///     NaiveTime::from_hms_opt(0, 15, 0).unwrap(),
///     chrono_tz::UTC,
///     None,
/// );
/// let now = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
/// let next = schedule.current_or_next(now).unwrap();
/// assert_eq!(next.start, Utc.with_ymd_and_hms(2026, 11, 26, 23, 30, 0).unwrap());
/// assert_eq!(next.end, Utc.with_ymd_and_hms(2026, 11, 27, 0, 15, 0).unwrap());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    start: NaiveTime,
    end: NaiveTime,
    tz: Tz,
    days: Option<Vec<Weekday>>,
}

impl Schedule {
    /// A window from `start` to `end` local time (crossing midnight when
    /// `end <= start`), on the given weekdays of its start (all when `None`).
    pub fn new(start: NaiveTime, end: NaiveTime, tz: Tz, days: Option<Vec<Weekday>>) -> Self {
        Schedule {
            start,
            end,
            tz,
            days,
        }
    }

    /// The configured zone.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The configured length, ignoring DST.
    pub fn nominal_length(&self) -> Duration {
        let length = self.end - self.start;
        if length <= Duration::zero() {
            length + Duration::days(1)
        } else {
            length
        }
    }

    /// The window that starts on local date `date`, if that weekday is on.
    pub fn occurrence_on(&self, date: NaiveDate) -> Option<WindowSpan> {
        if let Some(days) = &self.days {
            if !days.contains(&date.weekday()) {
                return None;
            }
        }
        let start = resolve(self.tz, date.and_time(self.start));
        let end_date = if self.end <= self.start {
            date.succ_opt()?
        } else {
            date
        };
        let mut end = resolve(self.tz, end_date.and_time(self.end));
        if end <= start {
            // Both ends fell into one skipped hour: keep the configured
            // length rather than produce an empty window.
            end = start + self.nominal_length();
        }
        Some(WindowSpan { start, end })
    }

    /// The window containing `now` (a start equal to `now` counts), or else
    /// the next one to start.
    pub fn current_or_next(&self, now: DateTime<Utc>) -> Option<WindowSpan> {
        let today = now.with_timezone(&self.tz).date_naive();
        let mut date = today.checked_sub_days(chrono::Days::new(2))?;
        // Eight days past today always meets an enabled weekday.
        for _ in 0..11 {
            if let Some(span) = self.occurrence_on(date) {
                if span.end > now {
                    return Some(span);
                }
            }
            date = date.succ_opt()?;
        }
        None
    }

    /// The first window that starts strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<WindowSpan> {
        let mut probe = after;
        loop {
            let span = self.current_or_next(probe)?;
            if span.start > after {
                return Some(span);
            }
            probe = span.end;
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{} {}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M"),
            self.tz.name()
        )?;
        if let Some(days) = &self.days {
            let names: Vec<String> = days.iter().map(|d| d.to_string()).collect();
            write!(f, " ({})", names.join(","))?;
        }
        Ok(())
    }
}

/// Maps a local wall-clock time to UTC with ISC cron's DST rules.
fn resolve(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, second) => first.min(second).with_timezone(&Utc),
        LocalResult::None => {
            // Inside a gap: walk forward minute by minute to the first local
            // time that exists, then back to the exact transition second.
            let mut probe = local;
            loop {
                probe += Duration::minutes(1);
                if let Some(t) = tz.from_local_datetime(&probe).earliest() {
                    let mut exact = t.with_timezone(&Utc);
                    // Gaps in modern zones start on whole minutes; for the
                    // odd historic one, step back second by second.
                    for _ in 0..60 {
                        let earlier = exact - Duration::seconds(1);
                        if earlier.with_timezone(&tz).naive_local() >= local {
                            exact = earlier;
                        } else {
                            break;
                        }
                    }
                    return exact;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hm(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn crossing_midnight() {
        let s = Schedule::new(hm(23, 0), hm(1, 0), chrono_tz::UTC, None);
        let now = utc(2026, 11, 26, 23, 30);
        let span = s.current_or_next(now).unwrap();
        assert_eq!(span.start, utc(2026, 11, 26, 23, 0));
        assert_eq!(span.end, utc(2026, 11, 27, 1, 0));
        // Just after midnight we are still inside yesterday's window.
        let span = s.current_or_next(utc(2026, 11, 27, 0, 30)).unwrap();
        assert_eq!(span.start, utc(2026, 11, 26, 23, 0));
        let next = s.next_after(utc(2026, 11, 27, 0, 30)).unwrap();
        assert_eq!(next.start, utc(2026, 11, 27, 23, 0));
    }

    #[test]
    fn start_equal_to_now_is_honoured() {
        let s = Schedule::new(hm(3, 0), hm(3, 5), chrono_tz::UTC, None);
        let now = utc(2026, 11, 26, 3, 0);
        assert_eq!(s.current_or_next(now).unwrap().start, now);
        // At the end instant the window is over.
        let at_end = utc(2026, 11, 26, 3, 5);
        assert_eq!(
            s.current_or_next(at_end).unwrap().start,
            utc(2026, 11, 27, 3, 0)
        );
    }

    #[test]
    fn new_york_spring_forward_start_in_gap() {
        // 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
        let s = Schedule::new(hm(2, 30), hm(3, 30), chrono_tz::America::New_York, None);
        let span = s.occurrence_on(date(2026, 3, 8)).unwrap();
        assert_eq!(span.start, utc(2026, 3, 8, 7, 0));
        assert_eq!(span.end, utc(2026, 3, 8, 7, 30));
        // The day before is an ordinary EST day.
        let span = s.occurrence_on(date(2026, 3, 7)).unwrap();
        assert_eq!(span.start, utc(2026, 3, 7, 7, 30));
        assert_eq!(span.duration(), Duration::hours(1));
    }

    #[test]
    fn new_york_spring_forward_whole_window_in_gap_keeps_its_length() {
        let s = Schedule::new(hm(2, 10), hm(2, 40), chrono_tz::America::New_York, None);
        let span = s.occurrence_on(date(2026, 3, 8)).unwrap();
        assert_eq!(span.start, utc(2026, 3, 8, 7, 0));
        assert_eq!(span.duration(), Duration::minutes(30));
    }

    #[test]
    fn new_york_fall_back_runs_once_at_first_occurrence() {
        // 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:30 happens twice.
        let s = Schedule::new(hm(1, 30), hm(1, 45), chrono_tz::America::New_York, None);
        let span = s.occurrence_on(date(2026, 11, 1)).unwrap();
        assert_eq!(span.start, utc(2026, 11, 1, 5, 30)); // 01:30 EDT
        assert_eq!(span.end, utc(2026, 11, 1, 5, 45));
        // After that window, the next one is the next day, not the repeat.
        let next = s.next_after(span.start).unwrap();
        assert_eq!(next.start, utc(2026, 11, 2, 6, 30)); // 01:30 EST
    }

    #[test]
    fn london_spring_forward_and_fall_back() {
        // 2026-03-29: 01:00 GMT jumps to 02:00 BST.
        let s = Schedule::new(hm(1, 15), hm(1, 45), chrono_tz::Europe::London, None);
        let span = s.occurrence_on(date(2026, 3, 29)).unwrap();
        assert_eq!(span.start, utc(2026, 3, 29, 1, 0));
        assert_eq!(span.end, utc(2026, 3, 29, 1, 0) + Duration::minutes(30));
        // 2026-10-25: 02:00 BST falls back to 01:00 GMT.
        let span = s.occurrence_on(date(2026, 10, 25)).unwrap();
        assert_eq!(span.start, utc(2026, 10, 25, 0, 15)); // 01:15 BST
        assert_eq!(span.end, utc(2026, 10, 25, 0, 45));
        // A window across the repeated hour is longer by the shift.
        let s = Schedule::new(hm(0, 30), hm(2, 30), chrono_tz::Europe::London, None);
        let span = s.occurrence_on(date(2026, 10, 25)).unwrap();
        assert_eq!(span.duration(), Duration::hours(3));
    }

    #[test]
    fn weekday_filter_applies_to_the_start_date() {
        let s = Schedule::new(
            hm(23, 0),
            hm(1, 0),
            chrono_tz::UTC,
            Some(vec![Weekday::Sun]),
        );
        // 2026-11-26 is a Thursday; next Sunday is the 29th.
        let span = s.current_or_next(utc(2026, 11, 26, 12, 0)).unwrap();
        assert_eq!(span.start, utc(2026, 11, 29, 23, 0));
        assert_eq!(span.end, utc(2026, 11, 30, 1, 0));
    }

    const ZONES: &[Tz] = &[
        chrono_tz::UTC,
        chrono_tz::America::New_York,
        chrono_tz::Europe::London,
        chrono_tz::Australia::Lord_Howe, // 30-minute DST shift
        chrono_tz::America::Sao_Paulo,
        chrono_tz::Asia::Kolkata,
        chrono_tz::Pacific::Chatham,
    ];

    fn arb_schedule() -> impl Strategy<Value = Schedule> {
        (
            0usize..ZONES.len(),
            0u32..24,
            0u32..60,
            0u32..24,
            0u32..60,
            proptest::option::of(proptest::collection::vec(0u8..7, 1..4)),
        )
            .prop_filter("non-empty window", |(_, h1, m1, h2, m2, _)| {
                (h1, m1) != (h2, m2)
            })
            .prop_map(|(z, h1, m1, h2, m2, days)| {
                let days = days.map(|d| {
                    d.into_iter()
                        .map(|n| Weekday::try_from(n).unwrap())
                        .collect()
                });
                Schedule::new(hm(h1, m1), hm(h2, m2), ZONES[z], days)
            })
    }

    fn arb_instant() -> impl Strategy<Value = DateTime<Utc>> {
        // 2020..2035, minute-aligned half the time so DST edges get hit.
        (1_577_836_800i64..2_051_222_400i64, any::<bool>()).prop_map(|(secs, align)| {
            let secs = if align { secs - secs % 60 } else { secs };
            Utc.timestamp_opt(secs, 0).unwrap()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn next_window_is_never_in_the_past(s in arb_schedule(), now in arb_instant()) {
            let span = s.current_or_next(now).unwrap();
            prop_assert!(span.end > now);
            prop_assert!(span.start < span.end);
            let next = s.next_after(now).unwrap();
            prop_assert!(next.start > now);
        }

        #[test]
        fn window_never_longer_than_configured_plus_shift(s in arb_schedule(), now in arb_instant()) {
            let span = s.current_or_next(now).unwrap();
            // The largest DST shift in these zones is one hour.
            prop_assert!(span.duration() <= s.nominal_length() + Duration::hours(1),
                "{} lasted {}", s, span.duration());
            prop_assert!(span.duration() > Duration::zero());
        }

        #[test]
        fn windows_never_overlap(s in arb_schedule(), now in arb_instant()) {
            let first = s.current_or_next(now).unwrap();
            let second = s.next_after(first.start).unwrap();
            let third = s.next_after(second.start).unwrap();
            prop_assert!(first.end <= second.start, "{first:?} overlaps {second:?}");
            prop_assert!(second.end <= third.start, "{second:?} overlaps {third:?}");
        }

        #[test]
        fn a_start_that_is_now_is_honoured(s in arb_schedule(), now in arb_instant()) {
            let span = s.next_after(now).unwrap();
            prop_assert_eq!(s.current_or_next(span.start).unwrap(), span);
        }

        #[test]
        fn window_starts_at_the_configured_local_time_unless_in_a_gap(s in arb_schedule(), now in arb_instant()) {
            let span = s.current_or_next(now).unwrap();
            let local = span.start.with_timezone(&s.tz);
            if local.time() != s.start {
                let configured = local.date_naive().and_time(s.start);
                prop_assert!(matches!(s.tz.from_local_datetime(&configured), LocalResult::None),
                    "{} started at local {} outside a DST gap", s, local);
            }
        }
    }
}
