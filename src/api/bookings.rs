//! `GET /api/marketplace-bookings/{offering_uuid}/`: an offering's bookings and busy
//! slots as `[{start, end, created_by_full_name}]`, what a booking form shows as taken.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use super::auth::Caller;
use super::render::ts;
use super::{path_id, ApiError, AppState};

pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Path(u): Path<String>,
) -> Result<Json<Value>, ApiError> {
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
    let mut out: Vec<(chrono::DateTime<chrono::Utc>, Value)> = Vec::new();
    for r in &resources {
        if !r.state.holds_slots() {
            continue;
        }
        let name = if roles.is_provider_staff(off.customer) || r.created_by == roles.user {
            users
                .get(&r.created_by)
                .map(|u| u.full_name.clone())
                .unwrap_or_default()
        } else {
            String::new()
        };
        for sl in r.slots.iter() {
            out.push((
                sl.start,
                json!({"start": ts(&sl.start), "end": ts(&sl.end), "created_by_full_name": name}),
            ));
        }
    }
    for b in s.store.busy_slots(off.id).await? {
        out.push((b.start, json!({"start": ts(&b.start), "end": ts(&b.end), "created_by_full_name": "", "busy": true})));
    }
    out.sort_by_key(|a| a.0);
    Ok(Json(Value::Array(
        out.into_iter().map(|(_, v)| v).collect(),
    )))
}
