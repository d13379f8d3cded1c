//! HTTP caching for rendered feeds: a strong ETag, Last-Modified and the conditional
//! request decision (RFC 9110 sections 8.8, 13.1.2, 13.1.3 and 13.2.2).
//!
//! The feed is rendered once per change and served from memory: [`RenderedFeed`] holds
//! the body with its validators, and [`evaluate_conditional`] says whether a `GET` or
//! `HEAD` may be answered with `304 Not Modified`. Pure functions: the caller reads the
//! headers and writes the response.

use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use sha2::{Digest, Sha256};

use super::model::FeedCalendar;

/// A rendered feed with its validators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedFeed {
    /// The `text/calendar; charset=utf-8` body.
    pub body: String,
    /// A strong entity tag, quoted: `"<hex SHA-256 of the body>"`.
    pub etag: String,
    /// The latest `LAST-MODIFIED` of the events, or the fallback if later (or if there
    /// are no events), truncated to whole seconds as HTTP dates are.
    pub last_modified: DateTime<Utc>,
}

impl RenderedFeed {
    /// Wraps a body rendered by [`render`](super::render()).
    ///
    /// `last_modified` is the latest event `LAST-MODIFIED` found in the body, or
    /// `fallback_last_modified` when that is later or there are no events. Pass the time
    /// of the calendar's latest change, including removals, as the fallback: otherwise
    /// deleting the most recently changed event would move Last-Modified backwards and
    /// an `If-Modified-Since` client would keep the stale copy.
    pub fn new(body: impl Into<String>, fallback_last_modified: DateTime<Utc>) -> Self {
        let body: String = body.into();
        let events_latest = event_last_modified(&body).max();
        let last_modified =
            events_latest.map_or(fallback_last_modified, |t| t.max(fallback_last_modified));
        RenderedFeed {
            etag: strong_etag(body.as_bytes()),
            last_modified: truncate_to_seconds(last_modified),
            body,
        }
    }

    /// Renders `cal` and wraps it; the same as `new(render(cal), fallback)`.
    pub fn from_calendar(cal: &FeedCalendar, fallback_last_modified: DateTime<Utc>) -> Self {
        let latest = cal.events.iter().map(|e| e.last_modified).max();
        let last_modified =
            latest.map_or(fallback_last_modified, |t| t.max(fallback_last_modified));
        let body = super::render(cal);
        RenderedFeed {
            etag: strong_etag(body.as_bytes()),
            last_modified: truncate_to_seconds(last_modified),
            body,
        }
    }

    /// `Last-Modified` as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
    pub fn last_modified_http(&self) -> String {
        httpdate::fmt_http_date(self.last_modified.into())
    }
}

/// `"<hex SHA-256>"`: a strong validator (RFC 9110 section 8.8.3).
pub fn strong_etag(body: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Sha256::digest(body)))
}

fn truncate_to_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(0).unwrap_or(t)
}

/// The `LAST-MODIFIED` values of a body written by [`render`](super::render()) (UTC form).
fn event_last_modified(body: &str) -> impl Iterator<Item = DateTime<Utc>> + '_ {
    // Unfolding is not needed: a LAST-MODIFIED line is far shorter than 75 octets.
    body.split("\r\n").filter_map(|line| {
        let value = line.strip_prefix("LAST-MODIFIED:")?;
        NaiveDateTime::parse_from_str(value, "%Y%m%dT%H%M%SZ")
            .ok()
            .map(|t| t.and_utc())
    })
}

/// Whether a conditional `GET`/`HEAD` may be answered with `304 Not Modified`.
///
/// RFC 9110 section 13.2.2: when `If-None-Match` is present it decides alone (weak
/// comparison, section 8.8.3.2; `*` matches any current representation) and
/// `If-Modified-Since` is ignored. Only without it, `If-Modified-Since` is honoured:
/// 304 when `last_modified` (to the second) is not later than the date; a date that does
/// not parse is ignored (section 13.1.3), which means a full response.
///
/// `etag` is the current entity tag as sent in the `ETag` header.
pub fn evaluate_conditional(
    if_none_match: Option<&str>,
    if_modified_since: Option<&str>,
    etag: &str,
    last_modified: DateTime<Utc>,
) -> bool {
    if let Some(inm) = if_none_match {
        if inm.trim() == "*" {
            return true;
        }
        let current = opaque_tag(etag.trim());
        return entity_tags(inm).any(|tag| tag == current);
    }
    let Some(ims) = if_modified_since else {
        return false;
    };
    let Ok(since) = httpdate::parse_http_date(ims.trim()) else {
        return false;
    };
    let since: DateTime<Utc> = since.into();
    truncate_to_seconds(last_modified) <= since
}

/// The opaque tag of an entity tag (weak comparison ignores the `W/` prefix and compares
/// the quoted strings). A bare token (a sloppy client dropping the quotes) is accepted
/// as the quoted string it stands for.
fn opaque_tag(tag: &str) -> &str {
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(tag)
}

/// The opaque tags in an `If-None-Match` list (`#entity-tag`, RFC 9110 section 13.1.2).
/// Commas inside quotes belong to the tag.
fn entity_tags(header: &str) -> impl Iterator<Item = &str> {
    let mut rest = header;
    std::iter::from_fn(move || loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
        if rest.is_empty() {
            return None;
        }
        let after_weak = rest.strip_prefix("W/").unwrap_or(rest);
        if let Some(quoted) = after_weak.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => {
                    let tag = &quoted[..end];
                    rest = &quoted[end + 1..];
                    return Some(tag);
                }
                None => {
                    // Unterminated: nothing more can be trusted.
                    rest = "";
                    return None;
                }
            }
        }
        let end = after_weak.find(',').unwrap_or(after_weak.len());
        let tag = after_weak[..end].trim();
        rest = &after_weak[end..];
        if !tag.is_empty() {
            return Some(tag);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const ETAG: &str = "\"abc123\"";

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, h, m, s)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn if_none_match_is_compared_weakly_and_wins_over_if_modified_since() {
        let lm = at(10, 0, 0);
        let old = "Wed, 01 May 2024 09:00:00 GMT";
        let new = "Wed, 01 May 2024 11:00:00 GMT";
        // (If-None-Match, If-Modified-Since, 304?)
        let cases = [
            (Some("\"abc123\""), None, true),
            (Some("W/\"abc123\""), None, true),
            (Some("\"other\", \"abc123\""), None, true),
            (Some("\"other\",W/\"abc123\""), None, true),
            (Some("\"x,y\", \"abc123\""), None, true),
            (Some("*"), None, true),
            (Some(" * "), None, true),
            (Some("abc123"), None, true),
            (Some("\"abc12\""), None, false),
            (Some("\"abc1234\""), None, false),
            (Some("\"ABC123\""), None, false),
            (Some("\"other\""), None, false),
            (Some("\"abc"), None, false),
            (Some(""), None, false),
            // If-None-Match present: If-Modified-Since is ignored either way.
            (Some("\"other\""), Some(new), false),
            (Some("\"abc123\""), Some(old), true),
            // Only If-Modified-Since.
            (None, Some(new), true),
            (None, Some("Wed, 01 May 2024 10:00:00 GMT"), true),
            (None, Some("Wed, 01 May 2024 09:59:59 GMT"), false),
            (None, Some(old), false),
            (None, Some("Wednesday, 01-May-24 11:00:00 GMT"), true),
            (None, Some("Wed May  1 11:00:00 2024"), true),
            (None, Some("yesterday"), false),
            (None, Some(""), false),
            (None, None, false),
        ];
        for (inm, ims, want) in cases {
            assert_eq!(
                evaluate_conditional(inm, ims, ETAG, lm),
                want,
                "If-None-Match {inm:?}, If-Modified-Since {ims:?}"
            );
        }
    }

    #[test]
    fn sub_second_last_modified_still_matches_its_http_date() {
        let lm = at(10, 0, 0) + chrono::Duration::milliseconds(700);
        assert!(evaluate_conditional(
            None,
            Some("Wed, 01 May 2024 10:00:00 GMT"),
            ETAG,
            lm
        ));
    }

    #[test]
    fn rendered_feed_has_a_strong_sha256_etag() {
        let feed = RenderedFeed::new("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", at(8, 0, 0));
        assert!(feed.etag.starts_with('"') && feed.etag.ends_with('"'));
        assert_eq!(feed.etag.len(), 66);
        assert_eq!(feed.etag, strong_etag(feed.body.as_bytes()));
        let other = RenderedFeed::new("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n ", at(8, 0, 0));
        assert_ne!(feed.etag, other.etag);
        // sha256("") is well known.
        assert_eq!(
            strong_etag(b""),
            "\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\""
        );
    }

    #[test]
    fn last_modified_is_the_latest_event_or_a_later_fallback() {
        let body = "BEGIN:VEVENT\r\nLAST-MODIFIED:20240501T090000Z\r\nEND:VEVENT\r\n\
                    BEGIN:VEVENT\r\nLAST-MODIFIED:20240501T093000Z\r\nEND:VEVENT\r\n";
        // (body, fallback, expected)
        let cases = [
            (body, at(8, 0, 0), at(9, 30, 0)),
            (body, at(11, 0, 0), at(11, 0, 0)),
            (
                "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",
                at(8, 0, 0),
                at(8, 0, 0),
            ),
            (
                "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",
                at(8, 0, 0) + chrono::Duration::milliseconds(1),
                at(8, 0, 0),
            ),
        ];
        for (body, fallback, want) in cases {
            assert_eq!(RenderedFeed::new(body, fallback).last_modified, want);
        }
    }

    #[test]
    fn from_calendar_equals_new_over_the_rendered_body_and_revalidates() {
        use crate::ical::{FeedCalendar, FeedEvent, FeedStatus, FeedTime};
        let event = |uid: &str, modified| FeedEvent {
            uid: uid.to_owned(),
            summary: "Booked".to_owned(),
            description: None,
            location: None,
            when: FeedTime::Timed {
                start: at(12, 0, 0),
                end: at(13, 0, 0),
            },
            status: FeedStatus::Confirmed,
            sequence: 0,
            last_modified: modified,
            created: None,
            url: None,
        };
        let cal = FeedCalendar {
            name: "Room".to_owned(),
            description: None,
            time_zone: chrono_tz::Europe::Berlin,
            source_url: None,
            refresh_interval: chrono::Duration::hours(1),
            color: None,
            events: vec![event("a", at(9, 0, 0)), event("b", at(9, 45, 30))],
        };
        // (fallback, expected Last-Modified)
        let cases = [(at(8, 0, 0), at(9, 45, 30)), (at(10, 0, 0), at(10, 0, 0))];
        for (fallback, want) in cases {
            let a = RenderedFeed::from_calendar(&cal, fallback);
            let b = RenderedFeed::new(crate::ical::render(&cal), fallback);
            assert_eq!(a, b);
            assert_eq!(a.last_modified, want);
            assert!(evaluate_conditional(
                Some(&a.etag),
                None,
                &a.etag,
                a.last_modified
            ));
            let ims = a.last_modified_http();
            assert!(evaluate_conditional(
                None,
                Some(&ims),
                &a.etag,
                a.last_modified
            ));
        }
    }

    #[test]
    fn last_modified_formats_as_an_http_date() {
        let feed = RenderedFeed::new("", at(10, 0, 0));
        assert_eq!(feed.last_modified_http(), "Wed, 01 May 2024 10:00:00 GMT");
    }
}
