//! What each feed shows, read from the store and handed to [`crate::ical`].
//!
//! - **Public** (only while the offering's calendar record is `public`): every booked
//!   slot (resources in Creating/OK) as "Booked" and every busy slot imported from the
//!   offering's calendar as "Busy"; location = the offering's location. No names,
//!   e-mails, booking names or descriptions. Zone: the offering's.
//! - **Owner**: booked slots with the booking's text for the provider
//!   ([`Reader::Provider`]), `STATUS` TENTATIVE (Creating) or CONFIRMED (OK), plus the
//!   busy slots. Zone: the offering's.
//! - **My bookings**: the slots of the bookings a user created, across offerings, with
//!   the text for the booker ([`Reader::Booker`]). Zone: **UTC** (the bookings may be in
//!   several zones; clients show them in the viewer's zone).
//!
//! Every slot's `UID` is opaque ([`slot_uid`]: keyed with a secret of the store, it
//! reveals nothing of the slot's backend_id), `DTSTAMP`/`LAST-MODIFIED` the booking's
//! `modified`, and `SEQUENCE` how often the slot's time changed (recorded by
//! the write that moved it: [`Store::slot_sequences`] only reads). Busy slots whose both
//! ends are local midnights of the offering's zone are all-day events. Reading only:
//! nothing here writes to the store.

use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};

use super::window::Window;
use super::FeedId;
use crate::domain::booking_text::{self, BookingFacts, Reader};
use crate::domain::{Id, Resource, ResourceState};
use crate::ical::{FeedCalendar, FeedEvent, FeedStatus, FeedTime};
use crate::store::{Store, StoreError, Wanted};

/// `REFRESH-INTERVAL` / `X-PUBLISHED-TTL` suggested to clients.
pub const REFRESH_INTERVAL: chrono::Duration = chrono::Duration::hours(1);

/// A feed's calendar with what the HTTP answer needs besides the body.
pub struct Built {
    pub calendar: FeedCalendar,
    /// The latest change of anything in the feed's scope, including bookings that no
    /// longer show (Last-Modified when it is later than every event's).
    pub fallback_last_modified: DateTime<Utc>,
    pub filename: String,
}

/// A file name safe in a quoted header parameter.
pub fn safe_filename(stem: &str, suffix: &str) -> String {
    let stem: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(60)
        .collect();
    let stem = if stem.is_empty() {
        "calendar".into()
    } else {
        stem
    };
    format!("{stem}{suffix}.ics")
}

/// The feed's file name, or `None` when the feed does not exist (any more).
///
/// # Errors
/// Storage failure.
pub async fn filename(store: &Store, feed: FeedId) -> Result<Option<String>, StoreError> {
    match feed {
        FeedId::Public(o) => {
            let Some(off) = store.offering(o).await? else {
                return Ok(None);
            };
            let public = store.calendar(o).await?.is_some_and(|c| c.public);
            Ok(public.then(|| safe_filename(&off.slug, "-busy")))
        }
        FeedId::Owner(o) => Ok(store
            .offering(o)
            .await?
            .map(|off| safe_filename(&off.slug, "-bookings"))),
        FeedId::Mine(u) => Ok(store.user(u).await?.map(|_| "my-bookings.ics".to_owned())),
    }
}

fn status_of(state: ResourceState) -> FeedStatus {
    match state {
        ResourceState::Creating => FeedStatus::Tentative,
        _ => FeedStatus::Confirmed,
    }
}

/// Busy slots whose both ends are local midnights are whole days.
pub fn busy_time(tz: Tz, start: DateTime<Utc>, end: DateTime<Utc>) -> FeedTime {
    let (ls, le) = (start.with_timezone(&tz), end.with_timezone(&tz));
    if end > start && ls.time() == NaiveTime::MIN && le.time() == NaiveTime::MIN {
        FeedTime::AllDay {
            start: ls.date_naive(),
            end_exclusive: le.date_naive(),
        }
    } else {
        FeedTime::Timed { start, end }
    }
}

/// The UID of a booked slot: stable (the same slot always has the same UID), distinct
/// per slot, and opaque: a SHA-256 of the store's secret key and the slot's backend_id,
/// so a reader of a public feed learns nothing to aim at another booking with.
pub fn slot_uid(key: &[u8; 32], backend_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(key);
    h.update(backend_id.as_bytes());
    format!("slot-{}@bookcal", hex::encode(&h.finalize()[..16]))
}

/// A stable UID for a busy slot that does not reveal the source event id: a hash of
/// the offering, the source event and the times (a moved busy event is a new event).
pub fn busy_uid(
    offering: Id,
    source_event_id: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> String {
    let mut h = Sha256::new();
    h.update(offering.as_bytes());
    h.update(source_event_id.as_bytes());
    h.update(b"\n");
    h.update(start.to_rfc3339().as_bytes());
    h.update(b"\n");
    h.update(end.to_rfc3339().as_bytes());
    format!("busy-{}@bookcal", hex::encode(&h.finalize()[..12]))
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// Who reads a feed.
fn reader(feed: FeedId) -> Reader {
    match feed {
        FeedId::Public(_) => Reader::Public,
        FeedId::Owner(_) => Reader::Provider,
        FeedId::Mine(_) => Reader::Booker,
    }
}

/// Builds the calendar of a feed over window `w`, or `None` when the feed does not
/// exist. `public_url` (the service's base URL) gives the public feed its `SOURCE`.
///
/// # Errors
/// Storage failure or an undecodable record.
pub async fn build(
    store: &Store,
    feed: FeedId,
    w: Window,
    public_url: Option<&str>,
) -> Result<Option<Built>, StoreError> {
    let Some(filename) = filename(store, feed).await? else {
        return Ok(None);
    };
    let mut fallback = DateTime::<Utc>::UNIX_EPOCH;
    let in_scope = match feed {
        FeedId::Public(o) | FeedId::Owner(o) => {
            if let Some(off) = store.offering(o).await? {
                fallback = fallback.max(off.modified);
            }
            store.offering_resources(o).await?
        }
        FeedId::Mine(u) => store.resources_by(u).await?,
    };
    let mut resources: Vec<Resource> = Vec::with_capacity(in_scope.len());
    for r in in_scope {
        fallback = fallback.max(r.modified);
        if r.state.holds_slots() && r.slots.iter().any(|s| w.overlaps(s.start, s.end)) {
            resources.push(r);
        }
    }
    let slots: Vec<(&Resource, &crate::domain::Slot)> = resources
        .iter()
        .flat_map(|r| r.slots.iter().map(move |s| (r, s)))
        .filter(|(_, s)| w.overlaps(s.start, s.end))
        .collect();
    let keys: Vec<(&str, DateTime<Utc>, DateTime<Utc>)> = slots
        .iter()
        .map(|(_, s)| (s.backend_id.as_str(), s.start, s.end))
        .collect();
    let sequences = store.slot_sequences(&keys).await?;

    let busy = match feed {
        FeedId::Public(o) | FeedId::Owner(o) => {
            let cal = store.calendar(o).await?;
            if let Some(t) = cal.and_then(|c| c.last_success) {
                fallback = fallback.max(t);
            }
            store.busy_slots(o).await?
        }
        FeedId::Mine(_) => Vec::new(),
    };

    let mut wanted = Wanted {
        users: resources.iter().map(|r| r.created_by).collect(),
        projects: resources.iter().map(|r| r.project).collect(),
        offerings: resources.iter().map(|r| r.offering).collect(),
        ..Default::default()
    };
    if let FeedId::Public(o) | FeedId::Owner(o) = feed {
        wanted.offerings.push(o);
    }
    let cat = store.related(&wanted).await?;
    let reader = reader(feed);
    let mut events = Vec::with_capacity(slots.len() + busy.len());
    for ((r, slot), sequence) in slots.iter().zip(sequences) {
        let facts = BookingFacts::look_up(r, cat.directory());
        events.push(FeedEvent {
            uid: slot_uid(store.feed_uid_key(), &slot.backend_id),
            summary: booking_text::title(&facts, reader),
            description: booking_text::description(&facts, reader),
            location: cat
                .offerings
                .get(&r.offering)
                .and_then(|o| non_empty(&o.location)),
            when: FeedTime::Timed {
                start: slot.start,
                end: slot.end,
            },
            status: status_of(r.state),
            sequence,
            last_modified: r.modified,
            created: (reader != Reader::Public).then_some(r.created),
            url: None,
        });
    }

    let (name, tz, source_url) = match feed {
        FeedId::Public(o) | FeedId::Owner(o) => {
            let off = cat.offerings.get(&o);
            let off_name = off.map(|o| o.name.clone()).unwrap_or_default();
            let tz = off.map(|o| o.time_zone).unwrap_or(chrono_tz::UTC);
            let modified = off
                .map(|o| o.modified)
                .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
            let location = off.and_then(|o| non_empty(&o.location));
            for b in busy.iter().filter(|b| w.overlaps(b.start, b.end)) {
                events.push(FeedEvent {
                    uid: busy_uid(o, &b.source_event_id, b.start, b.end),
                    summary: "Busy".to_owned(),
                    description: None,
                    location: location.clone(),
                    when: busy_time(tz, b.start, b.end),
                    status: FeedStatus::Confirmed,
                    sequence: 0,
                    last_modified: modified,
                    created: None,
                    url: None,
                });
            }
            match feed {
                FeedId::Public(_) => (
                    format!("{off_name} (busy times)"),
                    tz,
                    public_url.map(|b| {
                        format!(
                            "{}/feeds/offerings/{}.ics",
                            b.trim_end_matches('/'),
                            o.hex()
                        )
                    }),
                ),
                _ => (format!("{off_name} (bookings)"), tz, None),
            }
        }
        FeedId::Mine(_) => ("My bookings".to_owned(), chrono_tz::UTC, None),
    };
    Ok(Some(Built {
        calendar: FeedCalendar {
            name,
            description: None,
            time_zone: tz,
            // Never the token URL: calendar files get exported and shared.
            source_url,
            refresh_interval: REFRESH_INTERVAL,
            color: None,
            events,
        },
        fallback_last_modified: fallback,
        filename,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone};

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn busy_slots_at_local_midnights_are_all_day() {
        let tz = chrono_tz::Europe::Berlin;
        let d = |m, day| NaiveDate::from_ymd_opt(2024, m, day).unwrap_or_default();
        // Berlin midnight is 22:00 or 23:00 UTC the day before.
        let cases = [
            (
                utc(2024, 5, 1, 22, 0),
                utc(2024, 5, 3, 22, 0),
                Some((d(5, 2), d(5, 4))),
            ),
            (
                utc(2024, 3, 30, 23, 0),
                utc(2024, 3, 31, 22, 0),
                Some((d(3, 31), d(4, 1))),
            ),
            (utc(2024, 5, 1, 0, 0), utc(2024, 5, 2, 0, 0), None),
            (utc(2024, 5, 1, 22, 0), utc(2024, 5, 1, 22, 0), None),
            (utc(2024, 5, 1, 22, 0), utc(2024, 5, 2, 10, 0), None),
        ];
        for (start, end, want) in cases {
            let got = match busy_time(tz, start, end) {
                FeedTime::AllDay {
                    start,
                    end_exclusive,
                } => Some((start, end_exclusive)),
                FeedTime::Timed { .. } => None,
            };
            assert_eq!(got, want, "{start} - {end}");
        }
    }

    #[test]
    fn file_names_are_safe_header_parameters() {
        let cases = [
            ("room-aurora", "-busy", "room-aurora-busy.ics"),
            ("a\"b;c", "", "a-b-c.ics"),
            ("", "-bookings", "calendar-bookings.ics"),
        ];
        for (stem, suffix, want) in cases {
            assert_eq!(safe_filename(stem, suffix), want);
        }
    }
}
