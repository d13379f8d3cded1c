//! Google as it really is, against the emulator with its realism switches on:
//! recurrence as Google writes it, calendar creation limits, fresh calendars, token
//! endpoint failures, dying credentials, drifting etags, purged tombstones and time
//! zone names Google refuses.

use chrono::{Datelike, Duration, NaiveDate, TimeZone, Utc};

use crate::helpers::{spawn_app, sync_env};
use bookcal::google::{Event, EventTime};

fn cal_id(app: &crate::helpers::TestApp, offering: bookcal::domain::Id) -> String {
    app.store
        .calendar(offering)
        .expect("read")
        .and_then(|c| c.calendar_id)
        .expect("calendar id")
}

/// The Monday at least a week from now.
fn next_monday() -> NaiveDate {
    let mut d = (Utc::now() + Duration::days(7)).date_naive();
    while d.weekday() != chrono::Weekday::Mon {
        d += Duration::days(1);
    }
    d
}

#[tokio::test]
async fn a_weekly_series_ending_on_a_plain_date_blocks_all_its_weeks_and_refuses_an_order_in_the_seventh(
) {
    let app = spawn_app().await;
    let env = sync_env(&app).await;
    let room = app.offering_id("room-aurora");
    env.sync(room).await;
    let cal = cal_id(&app, room);
    // "Lab closed on Monday mornings" as Google writes it: 13 weeks, UNTIL a date.
    let berlin = chrono_tz::Europe::Berlin;
    let first = next_monday();
    let last = first + Duration::weeks(12);
    let local = |d: NaiveDate, h: u32| {
        berlin
            .from_local_datetime(&d.and_hms_opt(h, 0, 0).expect("time"))
            .earliest()
            .expect("local time")
    };
    let series = Event {
        id: "labclosed1".into(),
        summary: Some("Lab closed".into()),
        start: Some(EventTime::DateTime {
            at: local(first, 8).fixed_offset(),
            time_zone: Some("Europe/Berlin".into()),
        }),
        end: Some(EventTime::DateTime {
            at: local(first, 12).fixed_offset(),
            time_zone: Some("Europe/Berlin".into()),
        }),
        recurrence: vec![format!("RRULE:FREQ=WEEKLY;UNTIL={}", last.format("%Y%m%d"))],
        ..Event::default()
    };
    env.human
        .event_insert(&cal, &series)
        .await
        .expect("Google takes a date UNTIL");
    let report = env.sync(room).await;
    assert!(
        report.summary.warnings.is_empty(),
        "{:?}",
        report.summary.warnings
    );
    let busy: Vec<_> = app
        .store
        .busy_slots(room)
        .expect("busy")
        .into_iter()
        .filter(|b| b.source_event_id == "labclosed1")
        .collect();
    let expected: Vec<_> = (0..13)
        .map(|w| {
            let d = first + Duration::weeks(w);
            (
                local(d, 8).with_timezone(&Utc),
                local(d, 12).with_timezone(&Utc),
            )
        })
        .collect();
    let got: Vec<_> = busy.iter().map(|b| (b.start, b.end)).collect();
    assert_eq!(got, expected, "all 13 Monday mornings, 08:00-12:00 Berlin");

    // An order in the 7th week's closed morning is refused, one after it accepted.
    let seventh = first + Duration::weeks(6);
    let body = app.order_body(
        "room-aurora",
        &[(
            local(seventh, 9).with_timezone(&Utc),
            local(seventh, 10).with_timezone(&Utc),
        )],
    );
    let r = app.post("alice", "/api/marketplace-orders/", body).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("is not available."), "{}", r.text);
    let body = app.order_body(
        "room-aurora",
        &[(
            local(seventh, 13).with_timezone(&Utc),
            local(seventh, 14).with_timezone(&Utc),
        )],
    );
    let r = app.post("alice", "/api/marketplace-orders/", body).await;
    assert_eq!(r.status, 201, "{}", r.text);
}
