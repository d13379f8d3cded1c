//! The staff's page of the scheduler (`/scheduler`): queued and running jobs, the
//! last run of every offering's calendar, and the calendars whose sync fails.
//! Others get 404, as nothing here is theirs to see.

use std::collections::HashMap;

use axum::extract::State;
use axum::response::Response;
use chrono::Utc;
use maud::html;

use super::layout::{self, badge, when, Nav};
use super::session::Viewer;
use super::{words, WebError};
use crate::api::{ApiError, AppState};
use crate::domain::Id;

/// `GET /scheduler`.
pub async fn scheduler(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Response, WebError> {
    if !viewer.staff() {
        return Err(ApiError::NotFound.into());
    }
    let store = &state.store;
    let now = Utc::now();
    let offerings: HashMap<Id, crate::domain::Offering> = store
        .all_offerings()
        .await?
        .into_iter()
        .map(|o| (o.id, o))
        .collect();
    let jobs = store.jobs().await?;
    let mut running = HashMap::new();
    for j in &jobs {
        if let std::collections::hash_map::Entry::Vacant(e) = running.entry(j.offering) {
            e.insert(store.running_job(j.offering).await?);
        }
    }
    let mut calendars = store.calendars().await?;
    let name = |id: &Id| {
        offerings
            .get(id)
            .map_or_else(|| id.hex(), |o| o.name.clone())
    };
    calendars.sort_by_key(|c| name(&c.offering));
    let utc = chrono_tz::UTC;
    let failing: Vec<_> = calendars
        .iter()
        .filter(|c| c.last_error.is_some() || c.failures > 0)
        .collect();
    let body = html! {
        h1 { "Scheduler" }
        p.lead { "Times in UTC." }
        section aria-labelledby="jobs-title" {
            h2 #jobs-title { "Queued and running jobs" }
            @if jobs.is_empty() { p.muted { "No jobs are queued." } }
            @else {
                div.table-wrap { table.stack {
                    thead { tr { th { "Offering" } th { "Job" } th { "Why" } th { "State" } th { "Due" } th { "Attempts" } } }
                    tbody {
                        @for j in &jobs {
                            @let is_running = running.get(&j.offering).copied().flatten() == Some(j.seq);
                            tr {
                                td { a href={"/offerings/" (j.offering.hex())} { (name(&j.offering)) } }
                                td { (j.kind.as_str()) }
                                td { (j.trigger.as_str()) }
                                td { @if is_running { (badge("Running", words::Tone::Busy)) } @else { (badge("Queued", words::Tone::Off)) } }
                                td { (when(j.due, now, utc))
                                    @if let Some(h) = j.hold_until { br; "held until " (when(h, now, utc)) } }
                                td { (j.attempts) }
                            }
                        }
                    }
                } }
            }
        }
        section aria-labelledby="runs-title" {
            h2 #runs-title { "Last runs" }
            @if calendars.is_empty() { p.muted { "No offering has a calendar yet." } }
            @else {
                div.table-wrap { table.stack {
                    thead { tr { th { "Offering" } th { "Calendar" } th { "Last success" } th { "Last run" } } }
                    tbody {
                        @for c in &calendars {
                            @let (w, tone) = words::calendar_state(Some(c));
                            tr {
                                td { a href={"/offerings/" (c.offering.hex())} { (name(&c.offering)) } }
                                td { (badge(w, tone)) }
                                td { @match c.last_success { Some(t) => (when(t, now, utc)), None => "Never" } }
                                td { @match &c.last_run {
                                    Some(r) => { (r.created) " created, " (r.updated) " updated, " (r.deleted) " deleted, "
                                        (r.busy_slots) " busy, " (r.api_calls) " Google calls, " (r.duration_ms) " ms" },
                                    None => "None",
                                } }
                            }
                        }
                    }
                } }
            }
        }
        section aria-labelledby="failures-title" {
            h2 #failures-title { "Failures" }
            @if failing.is_empty() { p { (badge("None", words::Tone::Ok)) " Every calendar's last run worked." } }
            @else {
                div.table-wrap { table.stack {
                    thead { tr { th { "Offering" } th { "Failures in a row" } th { "Error" } th { "What to do" } } }
                    tbody {
                        @for c in &failing {
                            tr {
                                td { a href={"/offerings/" (c.offering.hex())} { (name(&c.offering)) } }
                                td { (c.failures) }
                                td { (c.last_error.as_deref().unwrap_or("")) }
                                td { (words::error_advice(c.last_error.as_deref().unwrap_or(""))) }
                            }
                        }
                    }
                } }
            }
        }
    };
    Ok(layout::viewer_page(
        &viewer,
        "Scheduler",
        Nav::Scheduler,
        body,
    ))
}
