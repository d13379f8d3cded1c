//! The web pages in a real browser (headless chromium over WebDriver, see
//! `helpers::browser`): what a person signing in sees and does, at desktop and phone
//! width. Every page a test visits is checked at phone width for sideways scrolling
//! and, when `BOOKCAL_SCREENSHOTS` names a directory, photographed at both widths
//! (`docs/screenshots/` holds the committed set).
//!
//! The data is set up as the other tests do: orders and decisions through the API,
//! the offering's Google calendar created by the service's own scheduler in its
//! emulator, and an event added there as a person editing it in Google would.

use bookcal::domain::Id;
use bookcal::google::{Event, EventTime};
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Europe::Berlin;
use serde_json::{json, Value};

use crate::helpers::browser::{Browser, PHONE};
use crate::helpers::{eventually_async, google_client, spawn_app, RunningScheduler, TestApp};

/// The room's confirmed booking, its pending request and the event in Google.
const CONFIRMED: &str = "Lab meeting";
const PENDING: &str = "Thesis rehearsal";
const BUSY: &str = "Boiler maintenance";

/// An hour of a day of next week (Monday is day 0) in the room's zone.
fn next_week(day: i64, hour: u32) -> DateTime<Utc> {
    let today = Utc::now().with_timezone(&Berlin).date_naive();
    let monday = today + Duration::days(7 - i64::from(today.weekday().num_days_from_monday()));
    let local = (monday + Duration::days(day))
        .and_hms_opt(hour, 0, 0)
        .expect("a valid hour");
    Berlin
        .from_local_datetime(&local)
        .earliest()
        .expect("an hour that exists in Berlin")
        .with_timezone(&Utc)
}

/// The Monday of next week, as the week view's heading writes it.
fn next_monday_heading() -> String {
    let d: NaiveDate = next_week(0, 12).with_timezone(&Berlin).date_naive();
    format!("Week of {}", d.format("%-d %B %Y"))
}

/// Alice orders `name` in the room for `start..end`; the order's and the booking's
/// uuids.
async fn order(
    app: &TestApp,
    name: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> (String, String) {
    let mut body = app.order_body("room-aurora", &[(start, end)]);
    body["attributes"]["name"] = json!(name);
    let r = app.post("alice", "/api/marketplace-orders/", body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let uuid = |k: &str| r.body[k].as_str().expect(k).to_string();
    (uuid("uuid"), uuid("marketplace_resource_uuid"))
}

/// A booking's state as its owner reads it through the API.
async fn booking_state(app: &TestApp, user: &str, resource: &str) -> Value {
    let r = app
        .get(user, &format!("/api/booking-resources/{resource}/"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["state"].clone()
}

/// Asks the service to sync the room now, and waits until a run after the request
/// has finished and `done` holds.
async fn sync_room(app: &TestApp, room: Id) {
    let before = app
        .store
        .calendar(room)
        .await
        .expect("read the calendar")
        .and_then(|c| c.last_success);
    let r = app
        .post(
            "owner",
            &format!(
                "/api/booking-offerings/{}/google_calendar_sync/",
                room.hex()
            ),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let store = app.store.clone();
    assert!(
        eventually_async(30, || {
            let store = store.clone();
            async move {
                store
                    .calendar(room)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|c| c.last_success)
                    .is_some_and(|t| Some(t) > before)
            }
        })
        .await,
        "the room's sync ran"
    );
}

/// Waits until the offering's calendar has no sync scheduled or under way: its
/// state is at rest and no job waits in the queue.
async fn calendar_at_rest(app: &TestApp, offering: Id) {
    let store = app.store.clone();
    assert!(
        eventually_async(30, || {
            let store = store.clone();
            async move {
                let idle = store
                    .calendar(offering)
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|c| c.state.is_idle());
                idle && store.jobs().await.is_ok_and(|j| j.is_empty())
            }
        })
        .await,
        "the calendar comes to rest"
    );
}

/// The room (`room-aurora`, Europe/Berlin) next week: its Google calendar created
/// by the scheduler, a confirmed booking on Tuesday, a pending request on Wednesday
/// and an event added in Google on Thursday, read back as busy time.
struct Week {
    room: Id,
    /// The pending request's order and booking.
    pending: (String, String),
    /// The confirmed booking.
    confirmed: String,
    _scheduler: RunningScheduler,
}

async fn week(app: &TestApp) -> Week {
    let scheduler = app.start_scheduler();
    let room = app.offering_id("room-aurora");
    sync_room(app, room).await;
    let calendar = app.calendar_id(room).await;
    let (start, end) = (next_week(3, 16), next_week(3, 18));
    let at = |t: DateTime<Utc>| EventTime::DateTime {
        at: t.fixed_offset(),
        time_zone: None,
    };
    google_client(app.emu(), None)
        .await
        .event_insert(
            &calendar,
            &Event {
                id: "b0110e7a1".into(),
                summary: Some(BUSY.into()),
                start: Some(at(start)),
                end: Some(at(end)),
                ..Event::default()
            },
        )
        .await
        .expect("add an event in Google");
    sync_room(app, room).await;
    let busy = app
        .store
        .busy_slots(room)
        .await
        .expect("read the busy time");
    assert!(
        busy.iter().any(|s| s.start == start && s.end == end),
        "the event in Google is busy time: {busy:?}"
    );
    let (_, confirmed) = order(app, CONFIRMED, next_week(1, 16), next_week(1, 17)).await;
    let r = app
        .post(
            "owner",
            &format!("/api/booking-resources/{confirmed}/accept/"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let pending = order(app, PENDING, next_week(2, 16), next_week(2, 17)).await;
    assert_eq!(booking_state(app, "alice", &pending.1).await, "Creating");
    Week {
        room,
        pending,
        confirmed,
        _scheduler: scheduler,
    }
}

/// Signs `user` in through the sign-in form with their API token and waits for
/// the first page.
async fn sign_in(browser: &Browser, app: &TestApp, user: &str) {
    browser.goto("/sign-in").await;
    browser.fill("#token", &app.tokens[user]).await;
    browser.click("#sign-in").await;
    browser.wait_text("header", "Signed in as").await;
}

/// The booking uuid without dashes, as the pages' element ids write it.
fn hex(uuid: &str) -> String {
    uuid.replace('-', "")
}

#[tokio::test]
async fn an_owner_signs_in_with_a_token_sees_the_week_accepts_a_request_shares_the_calendar_copies_its_feed_and_signs_out(
) {
    let app = spawn_app().await;
    let week = week(&app).await;
    let Some(browser) = Browser::start(&app.base).await else {
        return;
    };
    let room = week.room.hex();

    // Signed out, every page leads to the sign-in form.
    browser.goto("/").await;
    browser.wait_path("/sign-in").await;
    browser.find("#token").await;
    browser.page("sign-in").await;
    sign_in(&browser, &app, "owner").await;
    browser.wait_path("/").await;
    browser.wait_text("main h1", "My offerings").await;
    browser
        .wait_text(&format!("#offering-{room}"), "Meeting room Aurora")
        .await;
    browser.page("my-offerings").await;

    // The offering's page, then next week: both bookings and the busy block.
    browser.click(&format!("#title-{room} a")).await;
    browser.wait_path(&format!("/offerings/{room}")).await;
    browser.wait_text("main", "Europe/Berlin").await;
    browser.click("nav.weeknav a[rel=next]").await;
    browser
        .wait_text("#week-title", &next_monday_heading())
        .await;
    browser.wait_text(".week .block.confirmed", CONFIRMED).await;
    browser.wait_text(".week .block.pending", PENDING).await;
    browser.wait_text(".week .block.busy", BUSY).await;
    let (order, pending) = week.pending.clone();
    let request = format!("#request-{}", hex(&pending));
    browser.wait_text(request.as_str(), PENDING).await;
    browser.wait_text(request.as_str(), "Alice").await;
    browser.page("offering-week").await;

    // Accept the pending request: it becomes a confirmed booking.
    browser
        .click_text(&format!("{request} button"), "Accept")
        .await;
    browser.wait_text(".flash", "").await;
    browser
        .wait_js(
            "the request to leave the pending list",
            "return document.querySelector(arguments[0]) === null;",
            vec![json!(request)],
        )
        .await;
    assert_eq!(booking_state(&app, "alice", &pending).await, "OK");
    let r = app
        .get("alice", &format!("/api/marketplace-orders/{order}/"))
        .await;
    assert_eq!(r.body["state"], "done", "{}", r.text);
    browser.click("nav.weeknav a[rel=next]").await;
    browser
        .wait_text("#week-title", &next_monday_heading())
        .await;
    browser
        .wait_js(
            "both bookings confirmed, the accepted one no longer pending",
            "const all = k => [...document.querySelectorAll('.week .block.' + k)].map(e => e.innerText).join(' ');\
             return all('confirmed').includes(arguments[0]) && all('confirmed').includes(arguments[1])\
                 && !all('pending').includes(arguments[1]);",
            vec![json!(CONFIRMED), json!(PENDING)],
        )
        .await;
    assert_eq!(booking_state(&app, "alice", &week.confirmed).await, "OK");

    // Share the calendar on My offerings; its public feed URL appears once the
    // share has run, and its Copy button puts it on the clipboard. The sync the
    // acceptance implied must be over first: while a run is scheduled or under way
    // the calendar cannot be shared (the API's 400, here a message).
    calendar_at_rest(&app, week.room).await;
    browser.click("header nav a[href='/']").await;
    browser.wait_text("main h1", "My offerings").await;
    browser
        .click_text(&format!("#offering-{room} button"), "Share")
        .await;
    browser
        .wait_text(".flash", "Calendar sharing has been scheduled.")
        .await;
    let store = app.store.clone();
    assert!(
        eventually_async(30, || {
            let store = store.clone();
            async move {
                store
                    .calendar(week.room)
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|c| c.public && c.state.is_idle())
            }
        })
        .await,
        "the share ran"
    );
    let feed = format!("#public-feed-{room}");
    browser.goto("/").await;
    browser.find(&feed).await;
    browser
        .wait_text(&format!("#offering-{room} .visibility"), "Public")
        .await;
    let url = browser
        .js(
            "return document.querySelector(arguments[0]).value;",
            vec![json!(feed)],
        )
        .await;
    let url = url.as_str().expect("the feed URL").to_string();
    assert!(
        url.starts_with(&app.base) && url.ends_with(".ics"),
        "a feed URL of this service: {url}"
    );
    let ics = app.http.get(&url).send().await.expect("fetch the feed");
    assert_eq!(ics.status(), 200);
    let ics = ics.text().await.expect("the feed");
    assert!(ics.contains("BEGIN:VCALENDAR"), "{ics}");
    browser.grant("clipboard-read").await;
    browser.grant("clipboard-write").await;
    browser
        .click(&format!("button[data-copy='public-feed-{room}']"))
        .await;
    browser
        .wait_text(&format!("#public-feed-{room}-status"), "Copied")
        .await;
    let copied = browser
        .client()
        .execute_async(
            "navigator.clipboard.readText().then(arguments[0], e => arguments[0]('failed: ' + e));",
            vec![],
        )
        .await
        .expect("read the clipboard");
    assert_eq!(copied, json!(url), "the clipboard holds the feed URL");
    browser.page("my-offerings-shared").await;

    // Sign out: back at the sign-in form, and the pages want a sign-in again.
    browser.click("#sign-out").await;
    browser.wait_path("/sign-in").await;
    browser.goto(&format!("/offerings/{room}")).await;
    browser.wait_path("/sign-in").await;
    browser.close().await;
}

#[tokio::test]
async fn while_a_sync_of_the_calendar_is_scheduled_or_running_its_buttons_are_disabled_and_say_so()
{
    let app = spawn_app().await;
    let room = app.offering_id("room-aurora");
    let Some(browser) = Browser::start(&app.base).await else {
        return;
    };
    let card = format!("#offering-{}", room.hex());
    // Whether the card's calendar buttons are all there and all disabled (`true`), all
    // usable (`false`), or something else (null).
    let disabled = format!(
        "const b = [...document.querySelectorAll('{card} .actions button')]\
            .filter(b => ['Sync now', 'Share', 'Unshare'].includes(b.innerText.trim()));\
         if (b.length !== 2) return null;\
         if (b.every(b => b.disabled)) return true;\
         return b.every(b => !b.disabled) ? false : null;"
    );
    sign_in(&browser, &app, "owner").await;
    browser.wait_text("main h1", "My offerings").await;
    assert_eq!(browser.js(&disabled, vec![]).await, json!(false));

    // Sync now, with no scheduler to run it yet: scheduled, so Share would be
    // refused; the buttons are shown disabled, with the reason.
    browser
        .click_text(&format!("{card} button"), "Sync now")
        .await;
    browser
        .wait_text(".flash", "Calendar synchronisation has been scheduled.")
        .await;
    browser
        .wait_text(&format!("{card} .calendar-busy"), "Sync scheduled…")
        .await;
    assert_eq!(browser.js(&disabled, vec![]).await, json!(true));
    let forms = browser
        .js(
            &format!("return document.querySelectorAll('{card} form[action*=\"/sync\"], {card} form[action*=\"/share\"]').length;"),
            vec![],
        )
        .await;
    assert_eq!(
        forms,
        json!(0),
        "no form posts an action the API would refuse"
    );
    browser.page("my-offerings-sync-scheduled").await;

    // The run under way (as the sync engine records it when it starts).
    let mut cal = app
        .store
        .calendar(room)
        .await
        .expect("read")
        .expect("the calendar");
    cal.state = bookcal::domain::calendar::CalendarState::Creating;
    app.store
        .write(vec![
            bookcal::store::Store::calendar_change(&cal).expect("encode")
        ])
        .await
        .expect("write");
    browser.goto("/").await;
    browser
        .wait_text(&format!("{card} .calendar-busy"), "Sync running…")
        .await;
    assert_eq!(browser.js(&disabled, vec![]).await, json!(true));

    // Once the run is over the buttons are back, and Share is scheduled, not refused.
    let _scheduler = app.start_scheduler();
    calendar_at_rest(&app, room).await;
    browser.goto("/").await;
    browser.wait_text("main h1", "My offerings").await;
    assert_eq!(browser.js(&disabled, vec![]).await, json!(false));
    assert!(!browser.has(&format!("{card} .calendar-busy")).await);
    browser.click_text(&format!("{card} button"), "Share").await;
    browser
        .wait_text(".flash", "Calendar sharing has been scheduled.")
        .await;
    browser.close().await;
}

#[tokio::test]
async fn a_consumer_cancels_a_booking_on_my_bookings() {
    let app = spawn_app().await;
    let (_, pending) = order(&app, PENDING, next_week(2, 16), next_week(2, 17)).await;
    let Some(browser) = Browser::start(&app.base).await else {
        return;
    };
    sign_in(&browser, &app, "alice").await;
    browser.click("header nav a[href='/bookings']").await;
    browser.wait_text("main h1", "My bookings").await;
    let row = format!("#booking-{}", hex(&pending));
    browser.wait_text(&row, PENDING).await;
    browser.wait_text(&row, "Meeting room Aurora").await;
    browser.page("my-bookings").await;
    browser.click_text(&format!("{row} button"), "Cancel").await;
    browser.wait_text(".flash", "").await;
    browser
        .wait_js(
            "the booking to have no Cancel button",
            "const r = document.querySelector(arguments[0]);\
             return r !== null && ![...r.querySelectorAll('button')].some(b => b.innerText.includes('Cancel'));",
            vec![json!(row)],
        )
        .await;
    let state = booking_state(&app, "alice", &pending).await;
    assert!(
        state == "Terminated" || state == "Erred" || state == "Canceled",
        "the booking is cancelled, not {state}"
    );
    let holding = app
        .all_resources()
        .await
        .into_iter()
        .find(|r| r.id.hex() == hex(&pending))
        .expect("the booking");
    assert!(
        !holding.state.holds_slots(),
        "the cancelled booking holds no time"
    );
    browser.close().await;
}

#[tokio::test]
async fn a_consumer_cannot_open_another_owners_offering_page() {
    let app = spawn_app().await;
    let room = app.offering_id("room-aurora").hex();
    let Some(browser) = Browser::start(&app.base).await else {
        return;
    };
    sign_in(&browser, &app, "alice").await;
    browser.goto(&format!("/offerings/{room}")).await;
    browser.wait_text("main h1", "Not found").await;
    let text = browser.text("main").await;
    assert!(
        !text.contains("Meeting room Aurora") && !text.contains("Pending requests"),
        "nothing of the offering shows: {text}"
    );
    browser.page("not-found").await;
    // Nor its actions: a forged form posting to it is refused too.
    browser.goto("/").await;
    let before = app.store.calendar(app.offering_id("room-aurora")).await;
    browser
        .js(
            "const f = document.querySelector('form[action=\"/sign-out\"]');\
             const copy = f.cloneNode(true);\
             copy.action = '/offerings/' + arguments[0] + '/share';\
             copy.id = 'forged';\
             document.body.appendChild(copy);\
             copy.submit();",
            vec![json!(room)],
        )
        .await;
    browser
        .wait_js(
            "the forged share to be answered",
            "return document.querySelector('#forged') === null && document.readyState === 'complete';",
            vec![],
        )
        .await;
    let h1 = browser.text("main h1").await;
    assert!(
        h1 == "Not found" || h1 == "Not allowed",
        "sharing another's offering is refused: {h1}"
    );
    let after = app.store.calendar(app.offering_id("room-aurora")).await;
    assert_eq!(
        format!("{before:?}"),
        format!("{after:?}"),
        "nothing changed"
    );
    browser.close().await;
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let (_, pending) = order(&app, PENDING, next_week(2, 16), next_week(2, 17)).await;
    let room = app.offering_id("room-aurora").hex();
    let Some(browser) = Browser::start(&app.base).await else {
        return;
    };
    sign_in(&browser, &app, "owner").await;
    browser.goto(&format!("/offerings/{room}")).await;
    let request = format!("#request-{}", hex(&pending));
    browser.wait_text(&request, PENDING).await;
    let before = app.snapshot().await;
    let removed = browser
        .js(
            "const inputs = document.querySelectorAll(arguments[0] + ' input[name=csrf]');\
             inputs.forEach(i => i.remove());\
             return inputs.length;",
            vec![json!(request)],
        )
        .await;
    assert!(removed.as_u64() >= Some(1), "the forms had a CSRF field");
    browser
        .click_text(&format!("{request} button"), "Accept")
        .await;
    browser.wait_text("main h1", "Form expired").await;
    browser.page("form-expired").await;
    assert_eq!(app.snapshot().await, before, "nothing changed");
    assert_eq!(booking_state(&app, "alice", &pending).await, "Creating");

    // A wrong token is refused the same way, and so is signing out without one.
    browser.goto(&format!("/offerings/{room}")).await;
    browser.wait_text(&request, PENDING).await;
    browser
        .js(
            "document.querySelectorAll('input[name=csrf]').forEach(i => i.value = 'f'.repeat(64));",
            vec![],
        )
        .await;
    browser
        .click_text(&format!("{request} button"), "Reject")
        .await;
    browser.wait_text("main h1", "Form expired").await;
    assert_eq!(app.snapshot().await, before, "nothing changed");
    browser.goto("/").await;
    browser
        .js(
            "document.querySelectorAll('input[name=csrf]').forEach(i => i.remove());",
            vec![],
        )
        .await;
    browser.click("#sign-out").await;
    browser.wait_text("main h1", "Form expired").await;
    browser.goto("/bookings").await;
    browser.wait_text("header", "Signed in as").await;
    browser.close().await;
}

#[tokio::test]
async fn the_main_actions_are_reached_with_tab_and_show_where_the_focus_is() {
    let app = spawn_app().await;
    let (_, pending) = order(&app, PENDING, next_week(2, 16), next_week(2, 17)).await;
    let room = app.offering_id("room-aurora").hex();
    let Some(browser) = Browser::start(&app.base).await else {
        return;
    };

    /// Presses Tab until each of `wanted` (an id, or the text of a button or link)
    /// had the focus, checking every stop shows its focus; fails after `most`.
    async fn tab_through(browser: &Browser, wanted: &[&str], most: usize) {
        let mut missing: Vec<&str> = wanted.to_vec();
        let mut stops = Vec::new();
        for _ in 0..most {
            browser.tab().await;
            let f = browser.focused().await;
            if f.is_null() {
                continue;
            }
            assert_eq!(
                f["visible"],
                json!(true),
                "the focused element shows no focus: {f}"
            );
            let (id, text) = (
                f["id"].as_str().unwrap_or_default(),
                f["text"].as_str().unwrap_or_default(),
            );
            missing.retain(|w| *w != id && !text.starts_with(w));
            stops.push(format!("{} {id} {text:?}", f["tag"]));
            if missing.is_empty() {
                return;
            }
        }
        panic!("Tab never reached {missing:?}; it went through {stops:#?}");
    }

    browser.goto("/sign-in").await;
    browser.find("#token").await;
    tab_through(&browser, &["Skip to the content", "token", "sign-in"], 10).await;
    // Typing the token into its field and pressing Enter signs in.
    browser.fill("#token", &app.tokens["owner"]).await;
    browser
        .client()
        .active_element()
        .await
        .expect("the token field")
        .send_keys("\u{e007}")
        .await
        .expect("press Enter");
    browser.wait_text("header", "Signed in as").await;
    tab_through(
        &browser,
        &[
            "My offerings",
            "My bookings",
            "sign-out",
            "Sync now",
            "Share",
        ],
        40,
    )
    .await;
    browser.goto(&format!("/offerings/{room}")).await;
    browser
        .wait_text(&format!("#request-{}", hex(&pending)), PENDING)
        .await;
    tab_through(&browser, &["Accept", "Reject"], 40).await;
    tab_through(&browser, &["← Previous week", "Today", "Next week →"], 40).await;
    // Enter on the focused "Next week" link follows it.
    browser
        .client()
        .active_element()
        .await
        .expect("the focused link")
        .send_keys("\u{e007}")
        .await
        .expect("press Enter");
    browser
        .wait_text("#week-title", &next_monday_heading())
        .await;
    browser.close().await;
}

#[tokio::test]
async fn every_page_fits_a_phone_width_without_sideways_scrolling() {
    let app = spawn_app().await;
    let week = week(&app).await;
    let room = week.room.hex();
    let Some(browser) = Browser::start(&app.base).await else {
        return;
    };
    browser.resize(PHONE).await;
    // Each page, as the users who see it: the check runs in Browser::page.
    sign_in(&browser, &app, "admin").await;
    browser.page("staff-offerings").await;
    browser.goto("/scheduler").await;
    browser.wait_text("main h1", "Scheduler").await;
    browser.wait_text("main", "Meeting room Aurora").await;
    browser.page("scheduler").await;
    browser.goto(&format!("/offerings/{room}")).await;
    browser.click("nav.weeknav a[rel=next]").await;
    browser.wait_text(".week .block.busy", BUSY).await;
    // The week itself fits the phone: its box does not scroll, all seven days are on
    // the screen, and every block is wide enough to see and tap.
    browser.resize(PHONE).await;
    let fit = browser
        .js(
            "const w = document.querySelector('.week');\
             const box = w.parentElement;\
             const heads = [...w.querySelectorAll('.dayhead')].map(e => e.getBoundingClientRect());\
             const blocks = [...w.querySelectorAll('.block')].map(e => e.getBoundingClientRect());\
             return { scrolls: box.scrollWidth - box.clientWidth,\
               days: heads.length,\
               off_screen: heads.filter(r => r.left < 0 || r.right > window.innerWidth).length,\
               blocks: blocks.length,\
               narrowest: Math.min(...blocks.map(r => r.width)) };",
            vec![],
        )
        .await;
    assert_eq!(fit["scrolls"], 0, "the week scrolls inside its box: {fit}");
    assert_eq!(fit["days"], 7, "{fit}");
    assert_eq!(fit["off_screen"], 0, "{fit}");
    assert!(fit["blocks"].as_u64().is_some_and(|n| n > 0), "{fit}");
    assert!(
        fit["narrowest"].as_f64().is_some_and(|w| w >= 30.0),
        "a block narrower than 30px: {fit}"
    );
    browser.page("staff-offering-week").await;
    browser.click("#sign-out").await;
    browser.wait_path("/sign-in").await;

    sign_in(&browser, &app, "alice").await;
    browser.goto("/bookings").await;
    browser.wait_text("main h1", "My bookings").await;
    browser.fill("#my-token-name", "Phone calendar").await;
    browser
        .click_text("form[action='/feed-tokens'] button", "Create")
        .await;
    browser.wait_text("main h1", "Feed token created").await;
    let url = browser
        .js("return document.querySelector('#feed-url').value;", vec![])
        .await;
    assert!(
        url.as_str().is_some_and(|u| u.starts_with(&app.base)),
        "the new feed's URL: {url}"
    );
    browser.page("feed-token-created").await;
    browser.close().await;
}

#[tokio::test]
async fn a_one_time_sign_in_link_signs_in_once_and_leaves_no_secret_in_the_address() {
    let app = spawn_app().await;
    let owner = app
        .store
        .user_by_name("owner")
        .await
        .expect("read")
        .expect("owner")
        .id;
    let link = bookcal::web::session::create_sign_in_link(&app.store, owner, &app.base)
        .await
        .expect("a sign-in link");
    let Some(browser) = Browser::start(&app.base).await else {
        return;
    };
    browser.goto(&link).await;
    browser.wait_text("header", "Olaf Owner").await;
    browser.wait_path("/").await;
    assert_eq!(browser.path().await, "/", "the secret left the address bar");
    browser.click("#sign-out").await;
    browser.wait_path("/sign-in").await;
    // Used once: it signs in no more.
    browser.goto(&link).await;
    browser
        .wait_text("main h1", "This sign-in link cannot be used")
        .await;
    assert!(!browser.text("header").await.contains("Signed in as"));
    browser.page("sign-in-link-used").await;
    browser.goto("/").await;
    browser.wait_path("/sign-in").await;
    browser.close().await;
}

#[tokio::test]
async fn without_javascript_an_owner_signs_in_accepts_a_request_and_sees_the_feed_url_to_copy_by_hand(
) {
    let app = spawn_app().await;
    let (_, pending) = order(&app, PENDING, next_week(2, 16), next_week(2, 17)).await;
    let room = app.offering_id("room-aurora");
    app.make_public("room-aurora").await;
    let Some(browser) = Browser::start_with(&app.base, false).await else {
        return;
    };
    sign_in(&browser, &app, "owner").await;
    let hex_room = room.hex();
    // The feed URL is there to select; its Copy button, which needs a script, is not.
    let feed = browser.find(&format!("#public-feed-{hex_room}")).await;
    let url = feed.prop("value").await.expect("value").unwrap_or_default();
    assert!(url.ends_with(".ics"), "the public feed URL: {url}");
    let copy = browser
        .find(&format!("button[data-copy='public-feed-{hex_room}']"))
        .await;
    assert!(
        !copy.is_displayed().await.expect("displayed"),
        "without scripts the Copy button stays hidden"
    );
    browser.goto(&format!("/offerings/{hex_room}")).await;
    let request = format!("#request-{}", hex(&pending));
    browser.wait_text(&request, PENDING).await;
    browser
        .click_text(&format!("{request} button"), "Accept")
        .await;
    browser
        .wait_js(
            "the request to leave the pending list",
            "return document.querySelector(arguments[0]) === null;",
            vec![json!(request)],
        )
        .await;
    assert_eq!(booking_state(&app, "alice", &pending).await, "OK");
    browser.close().await;
}
