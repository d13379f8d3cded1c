//! The consumer's page, "My bookings" (`/bookings`): the viewer's own bookings,
//! upcoming and past, each with its state and, while it may still be cancelled, a
//! Cancel button; and the viewer's "my bookings" feed tokens.
//!
//! The bookings listed are those the viewer created (what the "my bookings" feed
//! shows; the API shows each to its creator). Cancel is the API's order `cancel` while
//! the booking is a pending request, and `terminate` once it is confirmed, whichever
//! the lifecycle table allows from the booking's states ([`cancel_action`]).

use axum::extract::{Path, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::html;

use super::layout::{self, badge, button_form, csrf, Flash, Nav};
use super::offerings::{new_token_page, token_table};
use super::session::{secure, FormData, Viewer};
use super::{flash_from, refused, words, WebError};
use crate::api::feed_tokens as api_tokens;
use crate::api::{path_id, ApiError, AppState, BaseUrl};
use crate::domain::lifecycle::{rule, Action, Kind};
use crate::domain::{Order, OrderState, Resource, ResourceState};
use crate::store::feed_tokens::FeedScope;
use crate::store::Wanted;

/// What Cancel does to a booking in these states: cancel its order while it is a
/// request, terminate it once confirmed; `None` when the lifecycle allows neither.
pub fn cancel_action(resource: ResourceState, order: Option<OrderState>) -> Option<Action> {
    let allows = |kind: Kind| {
        let r = rule(kind);
        let order_ok = match (r.order_from, order) {
            (None, _) => true,
            (Some(from), Some(o)) => from.contains(&o),
            (Some(_), None) => false,
        };
        let resource_ok = r.resource_from.is_none_or(|from| from.contains(&resource));
        order_ok && resource_ok
    };
    if resource == ResourceState::Creating && allows(Kind::Cancel) {
        Some(Action::Cancel)
    } else if resource != ResourceState::Creating && allows(Kind::Terminate) {
        Some(Action::Terminate)
    } else {
        None
    }
}

struct Mine {
    resource: Resource,
    order: Option<Order>,
    intervals: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

impl Mine {
    fn upcoming(&self, now: DateTime<Utc>) -> bool {
        matches!(
            self.resource.state,
            ResourceState::Creating | ResourceState::Ok
        ) && self.intervals.iter().any(|(_, e)| *e > now)
    }
}

/// `GET /bookings`.
pub async fn mine(State(state): State<AppState>, viewer: Viewer) -> Result<Response, WebError> {
    let me = viewer.caller.user.id;
    let now = Utc::now();
    let mut bookings = Vec::new();
    for r in state.store.resources_by(me).await? {
        let order = match r.creation_order {
            Some(o) => state.store.order(o).await?,
            None => None,
        };
        // What it holds, or (ended) what it was booked for.
        let mut intervals: Vec<_> = crate::domain::lifecycle::held(order.as_ref(), &r)
            .iter()
            .map(|i| (i.start, i.end))
            .collect();
        if intervals.is_empty() {
            intervals = r.slots.iter().map(|s| (s.start, s.end)).collect();
        }
        if intervals.is_empty() {
            if let Some(o) = &order {
                intervals = o.requested().iter().map(|i| (i.start, i.end)).collect();
            }
        }
        bookings.push(Mine {
            resource: r,
            order,
            intervals,
        });
    }
    bookings.sort_by_key(|b| b.intervals.first().map(|i| i.0));
    let related = state
        .store
        .related(&Wanted {
            offerings: bookings.iter().map(|b| b.resource.offering).collect(),
            ..Wanted::default()
        })
        .await?;
    let tokens = state.store.feed_tokens(FeedScope::User(me)).await?;
    let (upcoming, past): (Vec<&Mine>, Vec<&Mine>) = bookings.iter().partition(|b| b.upcoming(now));
    let table = |rows: &[&Mine], with_cancel: bool| {
        html! {
            div.table-wrap { table.stack {
                thead { tr { th { "Booking" } th { "Offering" } th { "When" } th { "State" }
                    @if with_cancel { th { span.muted { "Action" } } } } }
                tbody {
                    @for b in rows {
                        @let o = related.offerings.get(&b.resource.offering);
                        @let tz = o.map_or(chrono_tz::UTC, |o| o.time_zone);
                        @let (w, tone) = words::booking(b.resource.state, b.order.as_ref().map(words::Request::of));
                        tr id={"booking-" (b.resource.id.hex())} {
                            td { (b.resource.name) }
                            td { (o.map_or("", |o| o.name.as_str())) }
                            td {
                                @for (s, e) in &b.intervals {
                                    (s.with_timezone(&tz).format("%a %d %b %Y %H:%M")) "–"
                                    (e.with_timezone(&tz).format("%H:%M")) " " span.muted { (tz.name()) } br;
                                }
                            }
                            td { (badge(w, tone)) }
                            @if with_cancel {
                                td {
                                    @if cancel_action(b.resource.state, b.order.as_ref().map(|o| o.state)).is_some() {
                                        (button_form(&viewer, &format!("/bookings/{}/cancel", b.resource.id.hex()), "Cancel", "danger", layout::nothing()))
                                    }
                                }
                            }
                        }
                    }
                }
            } }
        }
    };
    let body = html! {
        h1 { "My bookings" }
        section aria-labelledby="upcoming-title" {
            h2 #upcoming-title { "Upcoming" }
            @if upcoming.is_empty() { p.muted { "No upcoming bookings." } }
            @else { (table(&upcoming, true)) }
        }
        section aria-labelledby="past-title" {
            h2 #past-title { "Past and cancelled" }
            @if past.is_empty() { p.muted { "None." } }
            @else { (table(&past, false)) }
        }
        section aria-labelledby="feeds-title" {
            h2 #feeds-title { "My bookings in a calendar app" }
            p.muted { "A feed token gives a calendar app (Google Calendar, Thunderbird, your phone) "
                "a private feed of your bookings. The URL is shown once, when you create the token." }
            (token_table(&viewer, &tokens, "/feed-tokens", chrono_tz::UTC, now))
            form method="post" action="/feed-tokens" {
                (csrf(&viewer))
                label for="my-token-name" { "Name of the new feed token" }
                input #my-token-name type="text" name="name" required maxlength="150"
                    placeholder="e.g. My phone";
                div.actions { button.secondary type="submit" { "Create feed token" } }
            }
        }
    };
    Ok(layout::viewer_page(
        &viewer,
        "My bookings",
        Nav::Bookings,
        body,
    ))
}

/// `POST /bookings/{id}/cancel` (a booking resource).
pub async fn cancel(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, WebError> {
    viewer.check(&form)?;
    let rid = path_id(&id)?;
    // Hidden from the viewer: 404, as the API answers.
    let parties = state.store.resource_parties(rid).await?;
    if !parties.is_some_and(|p| viewer.roles.sees_resource(&p)) {
        return Err(ApiError::NotFound.into());
    }
    let r = state.store.resource(rid).await?.ok_or(ApiError::NotFound)?;
    let order = match r.creation_order {
        Some(o) => state.store.order(o).await?,
        None => None,
    };
    let result = match (
        cancel_action(r.state, order.as_ref().map(|o| o.state)),
        &order,
    ) {
        (Some(Action::Cancel), Some(o)) => {
            crate::api::orders::act(&state, &viewer.caller, &o.id.hex(), Action::Cancel)
                .await
                .map(|_| "The booking request is cancelled.")
        }
        (Some(Action::Terminate), _) => {
            crate::api::resources::act(&state, &viewer.caller, &id, Action::Terminate)
                .await
                .map(|_| "The booking is cancelled; its time is free again.")
        }
        _ => Err(ApiError::bad("This booking can no longer be cancelled.")),
    };
    let flash = flash_from(result, str::to_owned)?;
    Ok(layout::redirect("/bookings", flash, secure(&state)))
}

/// `POST /feed-tokens`: `name`; answers the URL once.
pub async fn create_token(
    State(state): State<AppState>,
    BaseUrl(base): BaseUrl,
    viewer: Viewer,
    form: FormData,
) -> Result<Response, WebError> {
    viewer.check(&form)?;
    let scope = FeedScope::User(viewer.caller.user.id);
    let issued = match api_tokens::token_name(form.get("name").unwrap_or_default()) {
        Ok(name) => api_tokens::issue(&state, &viewer.caller, &base, scope, name.clone())
            .await
            .map(|(_, url)| (name, url)),
        Err(e) => Err(e),
    };
    match issued {
        Ok((name, url)) => Ok(new_token_page(
            &viewer,
            &name,
            &url,
            "/bookings#feeds-title",
        )),
        Err(ApiError::Store(e)) => Err(e.into()),
        Err(e) => Ok(layout::redirect("/bookings", refused(&e), secure(&state))),
    }
}

/// `POST /feed-tokens/{token}/revoke`.
pub async fn revoke_token(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(token): Path<String>,
    form: FormData,
) -> Result<Response, WebError> {
    viewer.check(&form)?;
    let scope = FeedScope::User(viewer.caller.user.id);
    api_tokens::revoke(&state, scope, path_id(&token)?).await?;
    let flash = Flash {
        ok: true,
        text: "The feed token is revoked: its feed answers 404 from now on.".into(),
    };
    Ok(layout::redirect("/bookings", flash, secure(&state)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_follows_the_lifecycle_table() {
        use OrderState as O;
        use ResourceState as R;
        let cases = [
            (R::Creating, Some(O::PendingConsumer), Some(Kind::Cancel)),
            (R::Creating, Some(O::PendingProvider), Some(Kind::Cancel)),
            (R::Creating, Some(O::Executing), Some(Kind::Cancel)),
            (R::Creating, Some(O::PendingProject), None),
            (R::Creating, None, None),
            (R::Ok, Some(O::Done), Some(Kind::Terminate)),
            (R::Erred, Some(O::Erred), Some(Kind::Terminate)),
            (R::Terminated, Some(O::Canceled), None),
            (R::Terminated, Some(O::Done), None),
        ];
        for (r, o, want) in cases {
            assert_eq!(cancel_action(r, o).map(|a| a.kind()), want, "{r:?} {o:?}");
        }
    }
}
