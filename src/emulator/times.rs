//! Event `start`/`end` values: `{"date"}` (all-day, end exclusive) or
//! `{"dateTime"[, "timeZone"]}` (RFC 3339; the offset may be left out only when
//! `timeZone` names the zone), parsed, validated and rendered back.

use chrono::{
    DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc,
};
use chrono_tz::Tz;
use serde_json::{json, Value};

use super::error::ApiError;

/// A parsed `start`, `end` or `originalStartTime`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EventTime {
    /// An all-day value.
    Date(NaiveDate),
    /// A point in time, with the zone the client named (if any).
    DateTime {
        at: DateTime<FixedOffset>,
        zone: Option<Tz>,
    },
}

impl EventTime {
    /// Parses the `which` ("start", "end") member of an event.
    pub fn parse(value: Option<&Value>, which: &str) -> Result<Self, ApiError> {
        let value = match value {
            Some(v) if v.is_object() => v,
            _ => return Err(ApiError::Required(format!("Missing {which} time."))),
        };
        let zone = match value.get("timeZone").and_then(Value::as_str) {
            Some(name) => Some(name.parse::<Tz>().map_err(|_| {
                ApiError::Invalid(format!("Invalid time zone definition for {which} time."))
            })?),
            None => None,
        };
        let date = value.get("date").and_then(Value::as_str);
        let date_time = value.get("dateTime").and_then(Value::as_str);
        match (date, date_time) {
            (Some(_), Some(_)) => Err(ApiError::Invalid(format!("Invalid {which} time."))),
            (Some(date), None) => NaiveDate::parse_from_str(date, "%Y-%m-%d")
                .map(Self::Date)
                .map_err(|_| ApiError::Invalid(format!("Invalid {which} time."))),
            (None, Some(text)) => {
                if let Ok(at) = DateTime::parse_from_rfc3339(text) {
                    return Ok(Self::DateTime { at, zone });
                }
                let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                    .map_err(|_| ApiError::Invalid(format!("Invalid {which} time.")))?;
                let tz = zone.ok_or_else(|| {
                    ApiError::Required(format!("Missing time zone definition for {which} time."))
                })?;
                Ok(Self::DateTime {
                    at: localize(tz, local),
                    zone,
                })
            }
            (None, None) => Err(ApiError::Required(format!("Missing {which} time."))),
        }
    }

    pub fn is_all_day(&self) -> bool {
        matches!(self, Self::Date(_))
    }

    /// The instant this value denotes; all-day values start at midnight in `calendar_tz`.
    pub fn instant(&self, calendar_tz: Tz) -> DateTime<Utc> {
        match self {
            Self::Date(date) => {
                localize(calendar_tz, date.and_time(chrono::NaiveTime::MIN)).with_timezone(&Utc)
            }
            Self::DateTime { at, .. } => at.with_timezone(&Utc),
        }
    }

    /// The wire form.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Date(date) => json!({"date": date.format("%Y-%m-%d").to_string()}),
            Self::DateTime { at, zone } => {
                let mut v = json!({"dateTime": at.to_rfc3339_opts(SecondsFormat::Secs, true)});
                if let Some(zone) = zone {
                    v["timeZone"] = json!(zone.name());
                }
                v
            }
        }
    }
}

/// `local` in `tz`: the earlier instant when ambiguous, shifted past a DST gap.
pub(crate) fn localize(tz: Tz, local: NaiveDateTime) -> DateTime<FixedOffset> {
    let mut probe = local;
    for _ in 0..4 {
        if let Some(at) = tz.from_local_datetime(&probe).earliest() {
            return at.fixed_offset();
        }
        probe += Duration::hours(1);
    }
    Utc.from_utc_datetime(&local).fixed_offset()
}

/// Parses a `timeMin`/`timeMax`/`updatedMin` query value: RFC 3339 with offset.
pub(crate) fn parse_query_time(name: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::Invalid(format!("Invalid value for parameter '{name}': {value}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_and_end_values_parse_like_google() {
        let berlin: Tz = chrono_tz::Europe::Berlin;
        let cases: Vec<(Value, Result<&str, &str>)> = vec![
            (
                json!({"date": "2024-03-31"}),
                Ok("2024-03-30T23:00:00+00:00"),
            ),
            (
                json!({"dateTime": "2024-03-31T10:00:00+02:00"}),
                Ok("2024-03-31T08:00:00+00:00"),
            ),
            (
                json!({"dateTime": "2024-03-31T10:00:00Z"}),
                Ok("2024-03-31T10:00:00+00:00"),
            ),
            (
                json!({"dateTime": "2024-03-31T10:00:00", "timeZone": "Europe/Berlin"}),
                Ok("2024-03-31T08:00:00+00:00"),
            ),
            (json!({"dateTime": "2024-03-31T10:00:00"}), Err("required")),
            (
                json!({"dateTime": "2024-03-31T10:00:00Z", "timeZone": "Mars/Base"}),
                Err("invalid"),
            ),
            (
                json!({"date": "2024-03-31", "dateTime": "2024-03-31T10:00:00Z"}),
                Err("invalid"),
            ),
            (json!({"date": "31.03.2024"}), Err("invalid")),
            (json!({}), Err("required")),
        ];
        for (input, expected) in cases {
            let parsed = EventTime::parse(Some(&input), "start");
            match expected {
                Ok(instant) => {
                    let parsed = parsed.map_err(|e| e.to_string());
                    assert_eq!(
                        parsed.map(|t| t.instant(berlin).to_rfc3339()),
                        Ok(instant.to_owned()),
                        "{input}"
                    );
                }
                Err(reason) => {
                    assert_eq!(parsed.err().map(|e| e.reason()), Some(reason), "{input}")
                }
            }
        }
    }

    #[test]
    fn local_times_in_a_dst_gap_move_forward() {
        let berlin: Tz = chrono_tz::Europe::Berlin;
        let gap = NaiveDate::from_ymd_opt(2024, 3, 31)
            .and_then(|d| d.and_hms_opt(2, 30, 0))
            .map(|t| localize(berlin, t).to_rfc3339());
        assert_eq!(gap.as_deref(), Some("2024-03-31T03:30:00+02:00"));
    }
}
