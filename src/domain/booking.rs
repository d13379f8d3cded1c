//! The booking rules: what a `schedules` list in an order must satisfy.
//!
//! Messages follow upstream Waldur's wording (the contract sheet) so existing clients
//! show familiar errors. Unlike upstream, collisions are tested as real overlaps of
//! half-open intervals, not containment, so partial overlaps cannot double-book.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::{Id, Interval};

/// Why a slot is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OccupiedKind {
    /// A slot of a booking resource in `Creating` or `OK`.
    Booking,
    /// A busy slot imported from the offering's Google Calendar.
    Busy,
    /// A slot requested by another pending or executing order.
    Request,
}

/// An interval that new bookings must not overlap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Occupied {
    pub interval: Interval,
    pub kind: OccupiedKind,
    /// The booking resource holding it (`None` for busy slots): a booking's own time
    /// never blocks itself.
    pub holder: Option<Id>,
}

/// A refused `schedules` list: one or more messages, DRF style.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join(" "))]
pub struct BookingError(pub Vec<String>);

fn fmt_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Parses one schedule datetime: ISO 8601 with seconds and a time zone (`Z` or an
/// offset), optional fraction. Returns it in UTC.
pub fn parse_schedule_time(v: &Value) -> Result<DateTime<Utc>, String> {
    let s = match v {
        Value::String(s) => s.as_str(),
        other => return Err(format!("The value {other} does not match the format.")),
    };
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("The value {s} does not match the format."))
}

/// Trims the spaces around each schedule item's `start` and `end` in place, so an
/// order stores the times it was judged by (and shows them back) rather than what
/// the client padded.
pub fn trim_schedule_times(attributes: &mut Value) {
    let Some(Value::Array(items)) = attributes.get_mut("schedules") else {
        return;
    };
    for item in items {
        for key in ["start", "end"] {
            if let Some(Value::String(s)) = item.get_mut(key) {
                let trimmed = s.trim();
                if trimmed.len() != s.len() {
                    *s = trimmed.to_owned();
                }
            }
        }
    }
}

/// An offering's `attributes` as Waldur shows them to clients: availability windows
/// that have ended are dropped (with those that do not parse) and a window already
/// under way starts `now` (`%Y-%m-%dT%H:%M:%S.000Z`, upstream's form).
pub fn attributes_for_view(attributes: &Value, now: DateTime<Utc>) -> Value {
    let mut a = attributes.clone();
    if let Some(Value::Array(items)) = a.get_mut("schedules") {
        let time = |it: &Value, k: &str| it.get(k).and_then(|v| parse_schedule_time(v).ok());
        items.retain(|it| time(it, "end").is_some_and(|e| e > now));
        for it in items.iter_mut() {
            if time(it, "start").is_none_or(|s| s < now) {
                it["start"] = Value::String(now.format("%Y-%m-%dT%H:%M:%S.000Z").to_string());
            }
        }
    }
    a
}

/// Parses a `schedules` list into intervals without judging them.
pub fn parse_schedules(schedules: Option<&Value>) -> Result<Vec<Interval>, BookingError> {
    let items = match schedules {
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(Value::Array(_)) | None | Some(Value::Null) => {
            return Err(BookingError(vec!["Schedules are required.".into()]))
        }
        Some(_) => return Err(BookingError(vec!["Schedules must be a list.".into()])),
    };
    let mut out = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for item in items {
        let (Some(start), Some(end)) = (item.get("start"), item.get("end")) else {
            errors.push("Key 'start' or 'end' does not exist in schedules item.".to_string());
            continue;
        };
        match (parse_schedule_time(start), parse_schedule_time(end)) {
            (Ok(s), Ok(e)) => out.push(Interval::new(s, e)),
            (Err(a), Err(b)) => {
                errors.push(a);
                errors.push(b);
            }
            (Err(a), _) | (_, Err(a)) => errors.push(a),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(BookingError(errors))
    }
}

/// Checks requested slots against the clock, the offering's availability windows and
/// what is already taken.
///
/// # Errors
/// Every rule that fails, in request order, with upstream's messages.
pub fn check_schedules(
    requested: &[Interval],
    now: DateTime<Utc>,
    availability: &[Interval],
    occupied: &[Occupied],
) -> Result<(), BookingError> {
    let mut errors = Vec::new();
    for (i, slot) in requested.iter().enumerate() {
        let (s, e) = (fmt_time(&slot.start), fmt_time(&slot.end));
        if !slot.is_valid() {
            errors.push(format!(
                "Time period from {s} to {e} is invalid: the end must be after the start."
            ));
            continue;
        }
        if slot.start < now {
            errors.push("Past slots are not available for selection.".to_string());
            continue;
        }
        if !availability.iter().any(|w| w.contains(slot)) {
            errors.push(format!(
                "Time period from {s} to {e} is not available for selected offering."
            ));
            continue;
        }
        if let Some(other) = requested[..i].iter().find(|o| o.overlaps(slot)) {
            errors.push(format!(
                "Time period from {s} to {e} overlaps another item of this request (from {} to {}).",
                fmt_time(&other.start),
                fmt_time(&other.end)
            ));
            continue;
        }
        if let Some(msg) = collision(slot, occupied) {
            errors.push(msg);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(BookingError(errors))
    }
}

/// The message for `slot` when it overlaps something in `occupied`: bookings and
/// busy time first, then requests (upstream's wording).
fn collision(slot: &Interval, occupied: &[Occupied]) -> Option<String> {
    let (s, e) = (fmt_time(&slot.start), fmt_time(&slot.end));
    let hit = occupied
        .iter()
        .filter(|o| o.interval.overlaps(slot))
        .map(|o| o.kind)
        .min_by_key(|k| match k {
            OccupiedKind::Booking => 0,
            OccupiedKind::Busy => 1,
            OccupiedKind::Request => 2,
        })?;
    Some(match hit {
        OccupiedKind::Booking | OccupiedKind::Busy => {
            format!("Time period from {s} to {e} is not available.")
        }
        OccupiedKind::Request => {
            format!("Time period from {s} to {e} is not available. Other booking request exists.")
        }
    })
}

/// Checks only that `intervals` overlap nothing in `occupied` (time a booking takes
/// back, already judged against the clock and the windows when it was ordered).
///
/// # Errors
/// Creation's message for every interval that is taken.
pub fn check_free(intervals: &[Interval], occupied: &[Occupied]) -> Result<(), BookingError> {
    let errors: Vec<String> = intervals
        .iter()
        .filter_map(|i| collision(i, occupied))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(BookingError(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn t(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, d, h, 0, 0)
            .single()
            .expect("valid")
    }
    fn iv(d: u32, a: u32, b: u32) -> Interval {
        Interval::new(t(d, a), t(d, b))
    }
    fn occ(i: Interval, kind: OccupiedKind) -> Occupied {
        Occupied {
            interval: i,
            kind,
            holder: None,
        }
    }

    #[test]
    fn schedule_rules_table() {
        let now = t(1, 0);
        let window = [Interval::new(t(1, 0), t(20, 0))];
        let taken = [
            occ(iv(5, 10, 12), OccupiedKind::Booking),
            occ(iv(6, 10, 12), OccupiedKind::Busy),
            occ(iv(7, 10, 12), OccupiedKind::Request),
        ];
        // (name, requested, expected first error fragment or None)
        let cases: Vec<(&str, Vec<Interval>, Option<&str>)> = vec![
            ("free slot", vec![iv(3, 10, 12)], None),
            ("touching a booking is fine", vec![iv(5, 12, 13)], None),
            (
                "partial overlap with a booking",
                vec![iv(5, 11, 13)],
                Some("is not available."),
            ),
            (
                "containing a booking",
                vec![iv(5, 9, 13)],
                Some("is not available."),
            ),
            (
                "partial overlap with a busy slot",
                vec![iv(6, 9, 11)],
                Some("is not available."),
            ),
            (
                "overlap with a pending request",
                vec![iv(7, 11, 12)],
                Some("Other booking request exists."),
            ),
            (
                "end before start",
                vec![iv(3, 12, 10)],
                Some("the end must be after the start"),
            ),
            (
                "empty interval",
                vec![iv(3, 12, 12)],
                Some("the end must be after the start"),
            ),
            (
                "in the past",
                vec![Interval::new(t(1, 0) - chrono::Duration::hours(2), t(1, 0))],
                Some("Past slots"),
            ),
            (
                "outside the availability",
                vec![iv(21, 10, 12)],
                Some("not available for selected offering"),
            ),
            (
                "straddling the availability end",
                vec![Interval::new(t(19, 23), t(20, 1))],
                Some("not available for selected offering"),
            ),
            (
                "overlapping items in one request",
                vec![iv(3, 10, 12), iv(3, 11, 13)],
                Some("overlaps another item"),
            ),
            (
                "adjacent items in one request",
                vec![iv(3, 10, 12), iv(3, 12, 13)],
                None,
            ),
        ];
        for (name, req, want) in cases {
            let got = check_schedules(&req, now, &window, &taken);
            match (got, want) {
                (Ok(()), None) => {}
                (Err(BookingError(msgs)), Some(frag)) => {
                    assert!(msgs.iter().any(|m| m.contains(frag)), "{name}: {msgs:?}")
                }
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn offering_windows_are_shown_from_now_on() {
        let attrs = json!({"other": 1, "schedules": [
            {"start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z"},
            {"start": "2030-01-02T00:00:00Z", "end": "2030-01-05T00:00:00Z", "title": "t"},
            {"start": "2030-01-06T00:00:00Z", "end": "2030-01-07T00:00:00Z"},
            {"start": "bad", "end": "also bad"},
        ]});
        let got = attributes_for_view(&attrs, t(3, 12));
        assert_eq!(
            got,
            json!({"other": 1, "schedules": [
                {"start": "2030-01-03T12:00:00.000Z", "end": "2030-01-05T00:00:00Z", "title": "t"},
                {"start": "2030-01-06T00:00:00Z", "end": "2030-01-07T00:00:00Z"},
            ]})
        );
        assert_eq!(attributes_for_view(&json!({}), t(3, 12)), json!({}));
    }

    #[test]
    fn no_availability_windows_means_nothing_is_bookable() {
        let r = check_schedules(&[iv(3, 10, 12)], t(1, 0), &[], &[]);
        assert!(r.is_err());
    }

    #[test]
    fn schedule_times_are_trimmed_in_place_and_nothing_else_changes() {
        let cases = [
            (
                json!({"name": " x ", "schedules": [{"start": " 2030-01-03T10:00:00Z\t", "end": "\n2030-01-03T11:00:00Z ", "backend_id": " b "}]}),
                json!({"name": " x ", "schedules": [{"start": "2030-01-03T10:00:00Z", "end": "2030-01-03T11:00:00Z", "backend_id": " b "}]}),
            ),
            (
                json!({"schedules": [{"start": 5, "end": null}, "x"]}),
                json!({"schedules": [{"start": 5, "end": null}, "x"]}),
            ),
            (json!({"schedules": "x"}), json!({"schedules": "x"})),
            (json!({}), json!({})),
        ];
        for (mut input, want) in cases {
            trim_schedule_times(&mut input);
            assert_eq!(input, want);
        }
    }

    #[test]
    fn schedule_parsing_table() {
        let cases: Vec<(Value, Result<usize, &str>)> = vec![
            (
                json!([{"start": "2030-01-03T10:00:00Z", "end": "2030-01-03T11:00:00Z"}]),
                Ok(1),
            ),
            (
                json!([{"start": "2030-01-03T10:00:00.250+02:00", "end": "2030-01-03T11:00:00+02:00"}]),
                Ok(1),
            ),
            (json!([]), Err("Schedules are required.")),
            (Value::Null, Err("Schedules are required.")),
            (json!("x"), Err("Schedules must be a list.")),
            (
                json!([{"start": "2030-01-03T10:00:00Z"}]),
                Err("Key 'start' or 'end' does not exist in schedules item."),
            ),
            (
                json!([{"start": "2030-01-03T10:00Z", "end": "2030-01-03T11:00:00Z"}]),
                Err("The value 2030-01-03T10:00Z does not match the format."),
            ),
            (
                json!([{"start": "2030-01-03T10:00:00", "end": "2030-01-03T11:00:00Z"}]),
                Err("does not match the format."),
            ),
            (
                json!([{"start": 5, "end": "2030-01-03T11:00:00Z"}]),
                Err("The value 5 does not match the format."),
            ),
        ];
        for (input, want) in cases {
            let got = parse_schedules(Some(&input));
            match (got, want) {
                (Ok(v), Ok(n)) => assert_eq!(v.len(), n, "{input}"),
                (Err(BookingError(m)), Err(frag)) => {
                    assert!(m.iter().any(|x| x.contains(frag)), "{input}: {m:?}")
                }
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
    }
}
