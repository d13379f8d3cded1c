//! `/api/booking-offerings/`: list, retrieve and the three Google Calendar actions.

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;

use super::auth::{Caller, Roles};
use super::listing::{one_response, ListRequest, Params};
use super::render::{self, Detail, GoogleCalendarOut, OfferingOut, Urls};
use super::{path_id, ApiError, AppState, BaseUrl};
use crate::domain::calendar::{CalendarState, CredentialHealth, JobKind, OfferingCalendar};
use crate::domain::jobs::{Job, JobRequest, Trigger};
use crate::domain::search::fold;
use crate::domain::{Id, Offering};
use crate::store::query::{OfferingKey, OfferingQuery};
use crate::store::{Change, Load, Related, Store};

/// The offering's public feed URL, shown in `googlecalendar` while it is public.
pub fn public_feed_url(base: &str, o: &Offering, cal: Option<&OfferingCalendar>) -> Option<String> {
    cal.filter(|c| c.public)
        .map(|_| format!("{base}/feeds/offerings/{}.ics", o.id.hex()))
}

pub async fn list(State(state): State<AppState>, list: ListRequest) -> Result<Response, ApiError> {
    let params = &list.params;
    let order = params.order_keys(&[
        ("name", Some(OfferingKey::Name)),
        ("created", Some(OfferingKey::Created)),
        // Every offering has the one type.
        ("type", None),
        ("state", Some(OfferingKey::State)),
    ])?;
    let query = OfferingQuery {
        visible: list.roles.visible_offerings(),
        name: params.one("name").map(fold),
        customer: params.uuids("customer_uuid")?,
        order,
        page: Some(list.rows()),
    };
    let found = state.store.list_offerings(&query).await?;
    let link = list.link("/api/booking-offerings/", found.total)?;
    let urls = Urls {
        base: list.base.clone(),
    };
    let related = state
        .store
        .related(&render::wanted_for_offerings(&found.items))
        .await?;
    let mut calendars = Vec::with_capacity(found.items.len());
    for o in &found.items {
        calendars.push(CalendarView::load(&state, o).await?);
    }
    let out: Vec<OfferingOut> = found
        .items
        .iter()
        .zip(&calendars)
        .map(|(o, view)| offering_out(o, view, &related, &urls))
        .collect();
    Ok(list.respond(&out, found.total, link))
}

/// An offering's calendar record and, once it has one, its queued jobs (the web
/// pages show the same).
pub struct CalendarView {
    pub cal: Option<OfferingCalendar>,
    pub jobs: Vec<Job>,
    pub running: Option<u64>,
    pub push: Option<crate::domain::push::PushState>,
    /// The health of the Google credential serving the offering's provider.
    pub health: Option<CredentialHealth>,
}

impl CalendarView {
    /// What the offering endpoints show about `o`'s calendar.
    ///
    /// # Errors
    /// Storage failure.
    pub async fn load(state: &AppState, o: &Offering) -> Result<CalendarView, ApiError> {
        let store = &state.store;
        let cal = store.calendar(o.id).await?;
        let (jobs, running, health) = if cal.is_some() {
            (
                store.queued_jobs(o.id).await?,
                store.running_job(o.id).await?,
                state.google.health(o.customer),
            )
        } else {
            (Vec::new(), None, None)
        };
        let push = store.push_state(o.id).await?;
        Ok(CalendarView {
            cal,
            jobs,
            running,
            push,
            health,
        })
    }
}

/// An offering with its calendar and the health of its Google credential, as the
/// offering endpoints show it.
fn offering_out<'a>(
    o: &'a Offering,
    view: &'a CalendarView,
    related: &'a Related,
    urls: &Urls,
) -> OfferingOut<'a> {
    let cal = view.cal.as_ref();
    let mut gc = GoogleCalendarOut::of(cal, public_feed_url(&urls.base, o, cal));
    if cal.is_some() {
        gc = gc
            .with_jobs(&view.jobs, view.running)
            .with_credential(view.health.as_ref());
    }
    if let Some(push) = &view.push {
        gc = gc.with_push(push, chrono::Utc::now());
    }
    OfferingOut::of(o, related, urls, gc)
}

pub async fn retrieve(
    State(state): State<AppState>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    Path(uuid): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let id = path_id(&uuid)?;
    let params = Params::parse(q.as_deref());
    let roles = Roles::load(&state.store, &caller.user).await?;
    let o = visible(&state.store, &roles, id).await?;
    let view = CalendarView::load(&state, &o).await?;
    let related = state
        .store
        .related(&render::wanted_for_offerings(std::slice::from_ref(&o)))
        .await?;
    let out = offering_out(&o, &view, &related, &Urls { base });
    Ok(one_response(&out, &params.fields()))
}

/// The offering `id` if the caller sees it (404 otherwise, as for every offering
/// endpoint).
///
/// # Errors
/// 404, or storage failure.
pub async fn visible(store: &Store, roles: &Roles, id: Id) -> Result<Offering, ApiError> {
    store
        .offering(id)
        .await?
        .filter(|o| roles.sees_offering(o.customer))
        .ok_or(ApiError::NotFound)
}

/// Validates and enqueues a calendar action; the scheduler does the Google work.
async fn calendar_action(
    state: &AppState,
    caller: &Caller,
    uuid: &str,
    kind: JobKind,
) -> Result<Response, ApiError> {
    let detail = schedule_calendar_action(state, caller, path_id(uuid)?, kind).await?;
    Ok(Json(Detail::new(detail)).into_response())
}

/// Checks and queues a calendar action (sync, share, unshare) of offering `id` for
/// the caller: the rule the API's three actions and the web page's buttons share.
/// Answers the message saying what was scheduled.
///
/// # Errors
/// 404 (not visible), 403 (a manager, not an owner), 400 (no credentials, the
/// calendar busy, already public or private, or missing), storage failure.
pub async fn schedule_calendar_action(
    state: &AppState,
    caller: &Caller,
    id: Id,
    kind: JobKind,
) -> Result<&'static str, ApiError> {
    let store: &Store = &state.store;
    let roles = Roles::load(store, &caller.user).await?;
    let now = Utc::now();
    let load = Load {
        offerings: vec![id],
        calendars: vec![id],
        ..Load::default()
    };
    let detail = store
        .mutate(&load, |view| {
            let o = view
                .offerings
                .get(&id)
                .filter(|o| roles.sees_offering(o.customer))
                .ok_or(ApiError::NotFound)?;
            // Managers see the offering; the calendar actions are the owners' (and staff's).
            if !(roles.staff || roles.owner_of.contains(&o.customer)) {
                return Err(ApiError::Forbidden);
            }
            if !state.google.has_credentials(o.customer) {
                return Err(ApiError::bad("Google credentials do not exist."));
            }
            let existing = view.calendars.get(&id).cloned();
            if let Some(c) = &existing {
                if !c.state.is_idle() {
                    return Err(ApiError::bad("The calendar cannot be updated."));
                }
            }
            match kind {
                JobKind::Share if existing.as_ref().is_some_and(|c| c.public) => {
                    return Err(ApiError::bad("The calendar is public already."))
                }
                JobKind::Unshare => match &existing {
                    Some(c) if c.calendar_id.is_none() => {
                        return Err(ApiError::bad("The calendar does not exist."))
                    }
                    None => return Err(ApiError::bad("The calendar does not exist.")),
                    Some(c) if !c.public => {
                        return Err(ApiError::bad("The calendar is private already."))
                    }
                    _ => {}
                },
                _ => {}
            }
            let mut cal = existing.unwrap_or_else(|| OfferingCalendar::new(id));
            cal.state = if cal.calendar_id.is_some() {
                CalendarState::UpdateScheduled
            } else {
                CalendarState::CreationScheduled
            };
            let job = JobRequest {
                offering: id,
                kind,
                trigger: Trigger::Action,
                due: now,
            };
            let detail = match kind {
                JobKind::Sync => "Calendar synchronisation has been scheduled.",
                JobKind::Share => "Calendar sharing has been scheduled.",
                JobKind::Unshare => "Calendar unsharing has been scheduled.",
            };
            Ok((vec![Change::Calendar(cal), Change::Enqueue(job)], detail))
        })
        .await?;
    Ok(detail)
}

pub async fn google_calendar_sync(
    State(state): State<AppState>,
    caller: Caller,
    Path(uuid): Path<String>,
) -> Result<Response, ApiError> {
    calendar_action(&state, &caller, &uuid, JobKind::Sync).await
}

pub async fn share_google_calendar(
    State(state): State<AppState>,
    caller: Caller,
    Path(uuid): Path<String>,
) -> Result<Response, ApiError> {
    calendar_action(&state, &caller, &uuid, JobKind::Share).await
}

pub async fn unshare_google_calendar(
    State(state): State<AppState>,
    caller: Caller,
    Path(uuid): Path<String>,
) -> Result<Response, ApiError> {
    calendar_action(&state, &caller, &uuid, JobKind::Unshare).await
}
