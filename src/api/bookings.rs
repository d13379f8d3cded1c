//! `GET /api/marketplace-bookings/{offering_uuid}/`: an offering's bookings and busy
//! slots as `[{start, end, created_by_full_name}]`, what a booking form shows as taken.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::render::ts;
use super::{path_id, ApiError, AppState};

/// Taken time of an offering: a booking's slot or a busy slot from the calendar.
#[derive(Serialize, ToSchema)]
#[schema(as = Booking)]
pub struct BookingOut<'a> {
    #[schema(format = DateTime)]
    start: String,
    #[schema(format = DateTime)]
    end: String,
    /// The booker's name, for the provider and for one's own bookings; else empty.
    created_by_full_name: &'a str,
    /// Present (true) on busy time imported from the calendar.
    #[serde(skip_serializing_if = "Option::is_none")]
    busy: Option<bool>,
}

pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Path(u): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_id(&u)?;
    let roles = super::auth::Roles::load(&s.store, &caller.user).await?;
    // Anyone who may order from the offering may see when it is taken (not by whom,
    // unless they are the provider or it is their own booking).
    let off = s
        .store
        .offering(id)
        .await?
        .filter(|o| o.shared || roles.is_provider_staff(o.customer))
        .ok_or(ApiError::NotFound)?;
    let resources = s.store.offering_resources(off.id).await?;
    let users = s
        .store
        .related(&crate::store::Wanted {
            users: resources.iter().map(|r| r.created_by).collect(),
            ..Default::default()
        })
        .await?
        .users;
    let busy = s.store.busy_slots(off.id).await?;
    let mut out: Vec<(chrono::DateTime<chrono::Utc>, BookingOut)> = Vec::new();
    for r in resources.iter().filter(|r| r.state.holds_slots()) {
        let name = if roles.is_provider_staff(off.customer) || r.created_by == roles.user {
            users
                .get(&r.created_by)
                .map_or("", |u| u.full_name.as_str())
        } else {
            ""
        };
        for sl in r.slots.iter() {
            out.push((
                sl.start,
                BookingOut {
                    start: ts(&sl.start),
                    end: ts(&sl.end),
                    created_by_full_name: name,
                    busy: None,
                },
            ));
        }
    }
    for b in &busy {
        out.push((
            b.start,
            BookingOut {
                start: ts(&b.start),
                end: ts(&b.end),
                created_by_full_name: "",
                busy: Some(true),
            },
        ));
    }
    out.sort_by_key(|a| a.0);
    let out: Vec<BookingOut> = out.into_iter().map(|(_, b)| b).collect();
    Ok(Json(out).into_response())
}
