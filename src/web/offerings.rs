//! The owner's pages: "My offerings" (`/`: each offering's calendar state, last
//! sync, last run, last error with what to do, credential, public or private, the
//! calendar buttons, the public feed and the owner feed tokens) and the offering page
//! (`/offerings/{id}`: week and month, pending requests with Accept and Reject), with
//! their actions.
//!
//! What is listed is what `GET /api/booking-offerings/` lists for the viewer (staff:
//! every offering); each action calls the function behind the matching API endpoint.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, badge, button_form, copy_field, csrf, when, Flash, Nav};
use super::session::{secure, FormData, Viewer};
use super::words::{self, Tone};
use super::{flash_from, grid, refused, WebError};
use crate::api::feed_tokens::{self as api_tokens};
use crate::api::offerings::{public_feed_url, schedule_calendar_action, visible, CalendarView};
use crate::api::{path_id, AppState, BaseUrl};
use crate::domain::calendar::CredentialHealth;
use crate::domain::jobs::JobKind;
use crate::domain::lifecycle::Action;
use crate::domain::{Id, Offering, Order, OrderState, Resource, ResourceState};
use crate::store::feed_tokens::{FeedScope, FeedToken};
use crate::store::query::{OfferingKey, OfferingQuery, PageRange};
use crate::store::Wanted;

/// Most offerings listed on one page.
pub const MAX_LISTED: usize = 200;

/// Whether the viewer may use the calendar buttons (the API's rule: owners and staff;
/// managers see the offering only).
fn may_act(v: &Viewer, o: &Offering) -> bool {
    v.roles.staff || v.roles.owner_of.contains(&o.customer)
}

/// `GET /`: My offerings.
pub async fn mine(
    State(state): State<AppState>,
    BaseUrl(base): BaseUrl,
    viewer: Viewer,
) -> Result<Response, WebError> {
    let query = OfferingQuery {
        visible: viewer.roles.visible_offerings(),
        order: vec![(OfferingKey::Name, false)],
        page: Some(PageRange {
            offset: 0,
            limit: MAX_LISTED,
        }),
        ..OfferingQuery::default()
    };
    let found = state.store.list_offerings(&query).await?;
    let now = Utc::now();
    let mut cards = Vec::with_capacity(found.items.len());
    for o in &found.items {
        let view = CalendarView::load(&state, o).await.map_err(WebError::Api)?;
        let tokens = if viewer.roles.is_provider_staff(o.customer) {
            state.store.feed_tokens(FeedScope::Offering(o.id)).await?
        } else {
            Vec::new()
        };
        // The credential that serves the offering, whether or not it has a calendar
        // yet (the API shows it once the calendar exists).
        let health = view
            .health
            .clone()
            .or_else(|| state.google.health(o.customer));
        cards.push(offering_card(
            &viewer, o, &view, health, &tokens, &base, now,
        ));
    }
    let title = if viewer.staff() {
        "All offerings"
    } else {
        "My offerings"
    };
    let body = html! {
        h1 { (title) }
        @if found.items.is_empty() {
            p { "You have no booking offerings. Your own bookings are under "
                a href="/bookings" { "My bookings" } "." }
        } @else {
            p.lead { (found.total) " offering" @if found.total != 1 { "s" } ". Times are shown in each offering's time zone." }
            @if found.total > found.items.len() {
                p.muted { "Showing the first " (found.items.len()) "." }
            }
            @for c in &cards { (c) }
        }
    };
    Ok(layout::viewer_page(&viewer, title, Nav::Offerings, body))
}

/// One offering on "My offerings".
fn offering_card(
    v: &Viewer,
    o: &Offering,
    view: &CalendarView,
    health: Option<CredentialHealth>,
    tokens: &[FeedToken],
    base: &str,
    now: DateTime<Utc>,
) -> Markup {
    let cal = view.cal.as_ref();
    let (state_words, tone) = words::calendar_state(cal);
    let tz = o.time_zone;
    let hex = o.id.hex();
    let public = cal.is_some_and(|c| c.public);
    let feed = public_feed_url(base, o, cal);
    let (cred_words, cred_tone) = words::credential(health.as_ref());
    html! {
        section.card id={"offering-" (hex)} aria-labelledby={"title-" (hex)} {
            h2 id={"title-" (hex)} { a href={"/offerings/" (hex)} { (o.name) } }
            dl.facts {
                dt { "Calendar" }
                dd.calendar-state { (badge(state_words, tone)) }
                dt { "Last successful sync" }
                dd { @match cal.and_then(|c| c.last_success) {
                    Some(t) => (when(t, now, tz)),
                    None => "Never",
                } }
                dt { "Last run" }
                dd { @match cal.and_then(|c| c.last_run.as_ref()) {
                    Some(r) => {
                        (r.created) " created, " (r.updated) " updated, " (r.deleted) " deleted, "
                        (r.busy_slots) " busy slots imported"
                        @if let Some(s) = r.started { ", " (when(s, now, tz)) }
                    },
                    None => "None yet",
                } }
                @if let Some(e) = cal.and_then(|c| c.last_error.as_deref()) {
                    dt { "Last error" }
                    dd.last-error {
                        (badge("Error", Tone::Error)) " " (e)
                        br;
                        strong { "What to do: " } (words::error_advice(e))
                    }
                }
                @if let Some(w) = cal.and_then(|c| c.waiting.as_ref()) {
                    dt { "Waiting" }
                    dd { (w.reason) ", until " (when(w.until, now, tz)) }
                }
                dt { "Credential" }
                dd {
                    (badge(cred_words, cred_tone))
                    @if let Some(h) = &health {
                        " " (h.name)
                        @if let Some(r) = &h.reason { br; (r) }
                        @if let Some(a) = &h.action { br; strong { "What to do: " } (a) }
                    }
                }
                dt { "Visibility" }
                dd.visibility {
                    @if public { (badge("Public", Tone::Busy)) " Anyone with the feed URL sees when it is booked." }
                    @else { (badge("Private", Tone::Off)) }
                }
                dt { "Time zone" }
                dd { (tz.name()) }
            }
            @if let Some(url) = &feed {
                (copy_field(&format!("public-feed-{hex}"), "Public feed URL", url))
            }
            @if may_act(v, o) {
                div.actions {
                    (button_form(v, &format!("/offerings/{hex}/sync"), "Sync now", "", layout::nothing()))
                    @if public {
                        (button_form(v, &format!("/offerings/{hex}/unshare"), "Unshare", "secondary", layout::nothing()))
                    } @else {
                        (button_form(v, &format!("/offerings/{hex}/share"), "Share", "secondary", layout::nothing()))
                    }
                }
            }
            @if v.roles.is_provider_staff(o.customer) {
                h3 { "Owner feed tokens" }
                p.muted { "A private feed with every booking's details, for a calendar app. Each "
                    "token is one subscription; revoke it to cut that app off." }
                (token_table(v, tokens, &format!("/offerings/{hex}/feed-tokens"), tz, now))
                form method="post" action={"/offerings/" (hex) "/feed-tokens"} {
                    (csrf(v))
                    label for={"token-name-" (hex)} { "Name of the new feed token" }
                    input type="text" id={"token-name-" (hex)} name="name" required maxlength="150"
                        placeholder="e.g. Thunderbird at the front desk";
                    div.actions { button.secondary type="submit" { "Create feed token" } }
                }
            }
        }
    }
}

/// A table of feed tokens with their Revoke buttons (`prefix` + `/{uuid}/revoke`).
pub fn token_table(
    v: &Viewer,
    tokens: &[FeedToken],
    prefix: &str,
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> Markup {
    html! {
        @if tokens.is_empty() {
            p.muted { "No feed tokens." }
        } @else {
            div.table-wrap {
                table.stack {
                    thead { tr { th { "Name" } th { "Created" } th { "Last used" } th { span.muted { "Action" } } } }
                    tbody {
                        @for t in tokens {
                            tr {
                                td { (t.name) }
                                td { (when(t.created, now, tz)) }
                                td { @match t.last_used { Some(u) => (when(u, now, tz)), None => "Never" } }
                                td { (button_form(v, &format!("{prefix}/{}/revoke", t.uuid.hex()), "Revoke", "danger", layout::nothing())) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The page showing a new feed token's URL, once.
pub fn new_token_page(v: &Viewer, name: &str, url: &str, back: &str) -> Response {
    let webcal = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .map(|rest| format!("webcal://{rest}"))
        .unwrap_or_else(|| url.to_owned());
    let google = format!(
        "https://calendar.google.com/calendar/render?cid={}",
        percent_encoding::utf8_percent_encode(&webcal, percent_encoding::NON_ALPHANUMERIC)
    );
    let body = html! {
        h1 { "Feed token created" }
        p.flash.tone-warn role="status" { "Copy the URL now: it holds the token's secret and is shown only this once. "
            "Anyone with it can read the feed until you revoke the token." }
        p { "Token " strong { (name) } }
        (copy_field("feed-url", "Feed URL", url))
        ul {
            li { a href=(webcal) { "Subscribe in a calendar app (webcal://)" } }
            li { a href=(google) rel="noreferrer" { "Add to Google Calendar" } }
        }
        p { a href=(back) { "Done" } }
    };
    layout::viewer_page(v, "Feed token created", Nav::None, body)
}

/// After an action on offering `id`: back to where the form said (its offering page,
/// or My offerings).
fn back_to(form: &FormData, id: Id) -> String {
    match form.get("back") {
        Some("offering") => format!("/offerings/{}", id.hex()),
        _ => format!("/#offering-{}", id.hex()),
    }
}

async fn calendar_button(
    state: AppState,
    viewer: Viewer,
    id: String,
    form: FormData,
    kind: JobKind,
) -> Result<Response, WebError> {
    viewer.check(&form)?;
    let id = path_id(&id)?;
    let back = back_to(&form, id);
    let result = schedule_calendar_action(&state, &viewer.caller, id, kind).await;
    let flash = flash_from(result, str::to_owned)?;
    Ok(layout::redirect(&back, flash, secure(&state)))
}

/// `POST /offerings/{id}/sync`: Sync now.
pub async fn sync(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, WebError> {
    calendar_button(state, viewer, id, form, JobKind::Sync).await
}

/// `POST /offerings/{id}/share`.
pub async fn share(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, WebError> {
    calendar_button(state, viewer, id, form, JobKind::Share).await
}

/// `POST /offerings/{id}/unshare`.
pub async fn unshare(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, WebError> {
    calendar_button(state, viewer, id, form, JobKind::Unshare).await
}

/// `POST /offerings/{id}/feed-tokens`: `name`; answers the URL once.
pub async fn create_token(
    State(state): State<AppState>,
    BaseUrl(base): BaseUrl,
    viewer: Viewer,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, WebError> {
    viewer.check(&form)?;
    let offering = api_tokens::managed_offering(&state.store, &viewer.caller, &id).await?;
    let back = back_to(&form, offering);
    let name = match api_tokens::token_name(form.get("name").unwrap_or_default()) {
        Ok(n) => n,
        Err(e) => return Ok(layout::redirect(&back, refused(&e), secure(&state))),
    };
    match api_tokens::issue(
        &state,
        &viewer.caller,
        &base,
        FeedScope::Offering(offering),
        name.clone(),
    )
    .await
    {
        Ok((_, url)) => Ok(new_token_page(&viewer, &name, &url, &back)),
        Err(crate::api::ApiError::Store(e)) => Err(e.into()),
        Err(e) => Ok(layout::redirect(&back, refused(&e), secure(&state))),
    }
}

/// `POST /offerings/{id}/feed-tokens/{token}/revoke`.
pub async fn revoke_token(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((id, token)): Path<(String, String)>,
    form: FormData,
) -> Result<Response, WebError> {
    viewer.check(&form)?;
    let offering = api_tokens::managed_offering(&state.store, &viewer.caller, &id).await?;
    api_tokens::revoke(&state, FeedScope::Offering(offering), path_id(&token)?).await?;
    let flash = Flash {
        ok: true,
        text: "The feed token is revoked: its feed answers 404 from now on.".into(),
    };
    Ok(layout::redirect(
        &back_to(&form, offering),
        flash,
        secure(&state),
    ))
}

/// `?week=YYYY-MM-DD` (any day of the week to show).
#[derive(Deserialize)]
pub struct WeekQuery {
    week: Option<String>,
}

/// One booking on the offering page: the resource, its creation order, who booked.
struct Booking {
    resource: Resource,
    order: Option<Order>,
    who: String,
    project: String,
}

impl Booking {
    fn pending(&self) -> bool {
        self.resource.state == ResourceState::Creating
    }

    fn intervals(&self) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        crate::domain::lifecycle::held(self.order.as_ref(), &self.resource)
            .iter()
            .map(|i| (i.start, i.end))
            .collect()
    }

    fn order_state(&self) -> Option<OrderState> {
        self.order.as_ref().map(|o| o.state)
    }

    /// The order as people read it (a rejected booking reads "Rejected", an expired
    /// one "Expired").
    fn shown_order_state(&self) -> Option<words::Request> {
        self.order.as_ref().map(words::Request::of)
    }
}

/// `GET /offerings/{id}`: the week (and its month) with availability, bookings and
/// busy time, and the pending requests.
pub async fn offering_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<WeekQuery>,
) -> Result<Response, WebError> {
    let id = path_id(&id)?;
    let o = visible(&state.store, &viewer.roles, id).await?;
    let tz = o.time_zone;
    let now = Utc::now();
    let today = now.with_timezone(&tz).date_naive();
    let shown = q
        .week
        .as_deref()
        .and_then(|w| NaiveDate::parse_from_str(w, "%Y-%m-%d").ok())
        .unwrap_or(today);
    let monday = grid::week_start(shown);
    let month = grid::month_weeks(shown);
    let first_day = month.first().map_or(monday, |w| w[0].0);
    let last_day = month.last().map_or(monday, |w| w[6].0);
    let (range_start, _) = grid::week_bounds(first_day.min(monday), tz);
    let (_, range_end) = grid::week_bounds(grid::week_start(last_day.max(monday)), tz);
    let in_range = |s: DateTime<Utc>, e: DateTime<Utc>| s < range_end && e > range_start;

    let resources = state.store.offering_resources(id).await?;
    let mut bookings = Vec::new();
    for r in resources {
        if !matches!(r.state, ResourceState::Creating | ResourceState::Ok) {
            continue;
        }
        let order = match r.creation_order {
            Some(oid) => state.store.order(oid).await?,
            None => None,
        };
        let b = Booking {
            resource: r,
            order,
            who: String::new(),
            project: String::new(),
        };
        if b.pending() || b.intervals().iter().any(|(s, e)| in_range(*s, *e)) {
            bookings.push(b);
        }
    }
    let related = state
        .store
        .related(&Wanted {
            users: bookings.iter().map(|b| b.resource.created_by).collect(),
            projects: bookings.iter().map(|b| b.resource.project).collect(),
            ..Wanted::default()
        })
        .await?;
    for b in &mut bookings {
        b.who = related
            .users
            .get(&b.resource.created_by)
            .map_or_else(|| "someone".to_owned(), layout::display_name);
        b.project = related
            .projects
            .get(&b.resource.project)
            .map(|p| p.name.clone())
            .unwrap_or_default();
    }
    bookings.sort_by_key(|b| b.intervals().first().map(|i| i.0));
    let busy = state.store.busy_slots(id).await?;
    let externals = state.store.externals(id).await?;
    let title_of = |source: &str| {
        externals
            .iter()
            .find(|e| e.id == source)
            .and_then(|e| e.summary.clone())
            .filter(|s| !s.trim().is_empty())
    };
    let busy: Vec<(DateTime<Utc>, DateTime<Utc>, Option<String>)> = busy
        .iter()
        .filter(|b| in_range(b.start, b.end))
        .map(|b| (b.start, b.end, title_of(&b.source_event_id)))
        .collect();
    let windows: Vec<(DateTime<Utc>, DateTime<Utc>)> = o
        .availability()
        .iter()
        .map(|i| (i.start, i.end))
        .filter(|(s, e)| in_range(*s, *e))
        .collect();

    // The week grid.
    let (week_start, week_end) = grid::week_bounds(monday, tz);
    let in_week = |s: DateTime<Utc>, e: DateTime<Utc>| s < week_end && e > week_start;
    let mut blocks: Vec<(DateTime<Utc>, DateTime<Utc>, &'static str, String)> = Vec::new();
    for (s, e) in &windows {
        blocks.push((*s, *e, "avail", "Available".into()));
    }
    for (s, e, title) in &busy {
        let text = match title {
            Some(t) => format!("Busy in Google: {t}"),
            None => "Busy in Google".into(),
        };
        blocks.push((*s, *e, "busy", text));
    }
    for b in &bookings {
        let (kind, label) = if b.pending() {
            ("pending", "Pending")
        } else {
            ("confirmed", "Confirmed")
        };
        for (s, e) in b.intervals() {
            blocks.push((
                s,
                e,
                kind,
                format!("{label}: {} – {}", b.resource.name, b.who),
            ));
        }
    }
    blocks.retain(|(s, e, _, _)| in_week(*s, *e));
    let hours = grid::shown_hours(monday, tz, blocks.iter().map(|(s, e, _, _)| (*s, *e)));
    let days = grid::week_days(monday);
    let hex = o.id.hex();
    let fmt_day = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
    let week_link = |d: NaiveDate| format!("/offerings/{hex}?week={}", fmt_day(d));
    let pending: Vec<&Booking> = bookings.iter().filter(|b| b.pending()).collect();
    let local = |t: DateTime<Utc>| t.with_timezone(&tz).format("%a %d %b %H:%M").to_string();
    let count_on = |day: NaiveDate, kind: &str| blocks_on(day, tz, &bookings, &busy, kind);

    let body = html! {
        p { a href="/" { "← My offerings" } }
        h1 { (o.name) }
        p.lead { "Times in " strong { (tz.name()) } " (the offering's time zone)." }
        section aria-labelledby="pending-title" {
            h2 #pending-title { "Pending requests" }
            @if pending.is_empty() {
                p.muted { "No requests wait for a decision." }
            } @else {
                div.table-wrap { table.stack {
                    thead { tr { th { "Booking" } th { "Who" } th { "When" } th { "State" } th { span.muted { "Decision" } } } }
                    tbody {
                        @for b in &pending {
                            @let (w, tone) = words::booking(b.resource.state, b.shown_order_state());
                            tr id={"request-" (b.resource.id.hex())} {
                                td { (b.resource.name) }
                                td { (b.who) @if !b.project.is_empty() { br; span.muted { (b.project) } } }
                                td { @for (s, e) in b.intervals() { (local(s)) "–" (e.with_timezone(&tz).format("%H:%M")) br; } }
                                td { (badge(w, tone)) }
                                td {
                                    @if b.order_state() == Some(OrderState::Executing) {
                                        div.actions {
                                            @let extra = html! { input type="hidden" name="offering" value=(hex); };
                                            (button_form(&viewer, &format!("/requests/{}/accept", b.resource.id.hex()), "Accept", "", extra.clone()))
                                            (button_form(&viewer, &format!("/requests/{}/reject", b.resource.id.hex()), "Reject", "danger", extra))
                                        }
                                    } @else {
                                        span.muted { "Not yet for you to decide." }
                                    }
                                }
                            }
                        }
                    }
                } }
            }
        }
        section aria-labelledby="week-title" {
            h2 #week-title { "Week of " (monday.format("%-d %B %Y")) }
            nav.weeknav aria-label="Weeks" {
                a href=(week_link(monday - chrono::Duration::days(7))) rel="prev" { "← Previous week" }
                a href=(week_link(today)) { "Today" }
                a href=(week_link(monday + chrono::Duration::days(7))) rel="next" { "Next week →" }
            }
            ul.legend aria-label="Legend" {
                li { span.block.avail { "Available" } }
                li { span.block.confirmed { "Confirmed booking" } }
                li { span.block.pending { "Pending request (dashed)" } }
                li { span.block.busy { "Busy in Google" } }
            }
            div.table-wrap {
                div.week role="img" aria-label={"The week of " (fmt_day(monday)) " as a grid; the same is listed below."} {
                    @for (i, d) in days.iter().enumerate() {
                        div class={"dayhead gr-1 gc-" (i + 2) @if *d == today { " today" }} {
                            (d.format("%a %-d %b"))
                        }
                    }
                    @for h in hours.0..hours.1 {
                        div class={"hour gr-" ((h - hours.0) * 2 + 2) " gs-2"} { (format!("{h:02}:00")) }
                    }
                    @for (s, e, kind, text) in &blocks {
                        @for p in grid::place(monday, tz, hours, *s, *e) {
                            div class={"block " (kind) " gc-" (p.day + 2) " gr-" (p.row) " gs-" (p.span)} title=(text) { (text) }
                        }
                    }
                }
            }
            h3 { "This week, listed" }
            @let listed: Vec<_> = blocks.iter().filter(|(_, _, k, _)| *k != "avail").collect();
            @if listed.is_empty() {
                p.muted { "No bookings or busy time this week." }
            } @else {
                ul.week-list {
                    @for (s, e, _, text) in listed {
                        li { (local(*s)) "–" (e.with_timezone(&tz).format("%H:%M")) ": " (text) }
                    }
                }
            }
        }
        section aria-labelledby="month-title" {
            h2 #month-title { "Month overview: " (shown.format("%B %Y")) }
            div.month {
                @for name in ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"] { div.mh { (name) } }
                @for week in &month {
                    @for (d, inside) in week {
                        @let confirmed = count_on(*d, "confirmed");
                        @let pend = count_on(*d, "pending");
                        @let busy_n = count_on(*d, "busy");
                        div class={"md" @if !inside { " out" } @if *d == today { " today" }} {
                            a href=(week_link(*d)) aria-label={"Week of " (fmt_day(*d))} { (d.format("%-d")) }
                            @if confirmed > 0 { span { (confirmed) " booked" } }
                            @if pend > 0 { span { (pend) " pending" } }
                            @if busy_n > 0 { span { (busy_n) " busy" } }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::viewer_page(&viewer, &o.name, Nav::Offerings, body))
}

/// How many bookings of a kind (`confirmed`, `pending`) or busy blocks (`busy`)
/// touch `day` in `tz`.
fn blocks_on(
    day: NaiveDate,
    tz: chrono_tz::Tz,
    bookings: &[Booking],
    busy: &[(DateTime<Utc>, DateTime<Utc>, Option<String>)],
    kind: &str,
) -> usize {
    let monday = grid::week_start(day);
    let idx = (day - monday).num_days() as usize;
    let touches = |s: DateTime<Utc>, e: DateTime<Utc>| {
        grid::pieces_minutes(monday, tz, s, e)
            .iter()
            .any(|(d, _, _)| *d == idx)
    };
    match kind {
        "busy" => busy.iter().filter(|(s, e, _)| touches(*s, *e)).count(),
        _ => bookings
            .iter()
            .filter(|b| b.pending() == (kind == "pending"))
            .filter(|b| b.intervals().iter().any(|(s, e)| touches(*s, *e)))
            .count(),
    }
}

async fn decide(
    state: AppState,
    viewer: Viewer,
    id: String,
    form: FormData,
    action: Action,
) -> Result<Response, WebError> {
    viewer.check(&form)?;
    let back = match form.get("offering").and_then(Id::parse) {
        Some(o) => format!("/offerings/{}", o.hex()),
        None => "/".to_owned(),
    };
    let done = match action {
        Action::Accept => "The booking is accepted.",
        _ => "The booking is rejected.",
    };
    let result = crate::api::resources::act(&state, &viewer.caller, &id, action).await;
    let flash = flash_from(result, |_| done.to_owned())?;
    Ok(layout::redirect(&back, flash, secure(&state)))
}

/// `POST /requests/{id}/accept` (a booking resource).
pub async fn accept(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, WebError> {
    decide(state, viewer, id, form, Action::Accept).await
}

/// `POST /requests/{id}/reject` (a booking resource).
pub async fn reject(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, WebError> {
    decide(state, viewer, id, form, Action::Reject).await
}
