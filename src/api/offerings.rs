//! `/api/booking-offerings/`: list, retrieve and the three Google Calendar actions.

use axum::extract::{Path, RawQuery, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;

use super::auth::{Caller, Roles};
use super::listing::{link_header, one_response, page_range, page_response, sort_by_keys, Params};
use super::render::{Detail, GoogleCalendarOut, OfferingOut, Urls};
use super::{is_head, path_id, ApiError, AppState, BaseUrl};
use crate::domain::calendar::{CalendarState, CredentialHealth, JobKind, OfferingCalendar};
use crate::domain::jobs::{Job, JobRequest, Trigger};
use crate::domain::{Id, Offering};
use crate::store::{Catalog, Change, Store};

/// The offering's public feed URL, shown in `googlecalendar` while it is public.
pub fn public_feed_url(base: &str, o: &Offering, cal: Option<&OfferingCalendar>) -> Option<String> {
    cal.filter(|c| c.public)
        .map(|_| format!("{base}/feeds/offerings/{}.ics", o.id.hex()))
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    RawQuery(q): RawQuery,
    method: Method,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref());
    let (page, size) = params.page()?;
    let cat = state.store.read()?;
    let roles = Roles::of(&caller.user, &cat);
    let mut items: Vec<&Offering> = cat
        .offerings
        .values()
        .filter(|o| roles.sees_offering(o.customer))
        .collect();
    if let Some(name) = params.one("name") {
        let needle = name.to_lowercase();
        items.retain(|o| o.name.to_lowercase().contains(&needle));
    }
    if let Some(ids) = params.uuids("customer_uuid")? {
        items.retain(|o| ids.contains(&o.customer));
    }
    items.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
    let ordering = params.ordering_in(&["name", "created", "type", "state"])?;
    sort_by_keys(&mut items, &ordering, |o, k| match k {
        "name" => Some(o.name.clone()),
        "created" => Some(o.created.to_rfc3339()),
        "type" => Some(String::new()),
        "state" => Some(o.state.as_str().to_string()),
        _ => None,
    });
    let total = items.len();
    let range = page_range(total, page, size)?;
    let urls = Urls { base: base.clone() };
    let link = link_header(&base, "/api/booking-offerings/", &params, page, size, total);
    if is_head(&method) {
        return Ok(page_response::<OfferingOut>(&[], &[], total, link));
    }
    let page = &items[range];
    let calendars = page
        .iter()
        .map(|o| CalendarView::load(&state, o))
        .collect::<Result<Vec<_>, _>>()?;
    let out: Vec<OfferingOut> = page
        .iter()
        .zip(&calendars)
        .map(|(o, cal)| offering_out(o, cal, &cat, &urls))
        .collect();
    Ok(page_response(&out, &params.fields(), total, link))
}

/// An offering's calendar record and, once it has one, its queued jobs.
struct CalendarView {
    cal: Option<OfferingCalendar>,
    jobs: Vec<Job>,
    running: Option<u64>,
    /// The health of the Google credential serving the offering's provider.
    health: Option<CredentialHealth>,
}

impl CalendarView {
    fn load(state: &AppState, o: &Offering) -> Result<CalendarView, ApiError> {
        let store = &state.store;
        let cal = store.calendar(o.id)?;
        let (jobs, running, health) = if cal.is_some() {
            (
                store.queued_jobs(o.id)?,
                store.running_job(o.id)?,
                state.google.health(o.customer),
            )
        } else {
            (Vec::new(), None, None)
        };
        Ok(CalendarView {
            cal,
            jobs,
            running,
            health,
        })
    }
}

/// An offering with its calendar and the health of its Google credential, as the
/// offering endpoints show it.
fn offering_out<'a>(
    o: &'a Offering,
    view: &'a CalendarView,
    cat: &'a Catalog,
    urls: &Urls,
) -> OfferingOut<'a> {
    let cal = view.cal.as_ref();
    let mut gc = GoogleCalendarOut::of(cal, public_feed_url(&urls.base, o, cal));
    if cal.is_some() {
        gc = gc
            .with_jobs(&view.jobs, view.running)
            .with_credential(view.health.as_ref());
    }
    OfferingOut::of(o, cat, urls, gc)
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
    let cat = state.store.read()?;
    let roles = Roles::of(&caller.user, &cat);
    let o = visible(&cat, &roles, id)?;
    let view = CalendarView::load(&state, o)?;
    let out = offering_out(o, &view, &cat, &Urls { base });
    Ok(one_response(&out, &params.fields()))
}

fn visible<'c>(cat: &'c Catalog, roles: &Roles, id: Id) -> Result<&'c Offering, ApiError> {
    cat.offerings
        .get(&id)
        .filter(|o| roles.sees_offering(o.customer))
        .ok_or(ApiError::NotFound)
}

/// Validates and enqueues a calendar action; the scheduler does the Google work.
fn calendar_action(
    state: &AppState,
    caller: &Caller,
    uuid: &str,
    kind: JobKind,
) -> Result<Response, ApiError> {
    let id = path_id(uuid)?;
    let store: &Store = &state.store;
    let detail = store.mutate(|cat| {
        let roles = Roles::of(&caller.user, cat);
        let o = visible(cat, &roles, id)?;
        // Managers see the offering; the calendar actions are the owners' (and staff's).
        if !(roles.staff || roles.owner_of.contains(&o.customer)) {
            return Err(ApiError::Forbidden);
        }
        if !state.google.has_credentials(o.customer) {
            return Err(ApiError::bad("Google credentials do not exist."));
        }
        let existing = store.calendar(id)?;
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
            due: Utc::now(),
        };
        let detail = match kind {
            JobKind::Sync => "Calendar synchronisation has been scheduled.",
            JobKind::Share => "Calendar sharing has been scheduled.",
            JobKind::Unshare => "Calendar unsharing has been scheduled.",
        };
        Ok((
            vec![Store::calendar_change(&cal)?, Change::Enqueue(job)],
            detail,
        ))
    })?;
    Ok(Json(Detail::new(detail)).into_response())
}

pub async fn google_calendar_sync(
    State(state): State<AppState>,
    caller: Caller,
    Path(uuid): Path<String>,
) -> Result<Response, ApiError> {
    calendar_action(&state, &caller, &uuid, JobKind::Sync)
}

pub async fn share_google_calendar(
    State(state): State<AppState>,
    caller: Caller,
    Path(uuid): Path<String>,
) -> Result<Response, ApiError> {
    calendar_action(&state, &caller, &uuid, JobKind::Share)
}

pub async fn unshare_google_calendar(
    State(state): State<AppState>,
    caller: Caller,
    Path(uuid): Path<String>,
) -> Result<Response, ApiError> {
    calendar_action(&state, &caller, &uuid, JobKind::Unshare)
}
