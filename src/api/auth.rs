//! Token authentication (`Authorization: Token <key>`, or `?x-auth-token=<key>` as
//! upstream accepts) and the caller's roles, from which visibility follows.

use std::collections::HashSet;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::{error::ApiError, AppState};
use crate::domain::lifecycle::{Actor, Standing};
use crate::domain::{Id, User};
use crate::store::{Catalog, OrderEntry, ResourceEntry};

/// The authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: User,
}

impl Caller {
    /// The caller as the lifecycle's actor.
    pub fn actor(&self) -> Actor {
        Actor::User {
            id: self.user.id,
            staff: self.user.is_staff,
        }
    }
}

fn token_from(parts: &Parts) -> Result<Option<String>, ApiError> {
    if let Some(h) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let s = h.to_str().map_err(|_| ApiError::InvalidToken)?;
        let mut it = s.split_whitespace();
        let (Some(kw), Some(tok), None) = (it.next(), it.next(), it.next()) else {
            return Err(ApiError::InvalidToken);
        };
        if !kw.eq_ignore_ascii_case("token") {
            return Err(ApiError::NoCredentials);
        }
        return Ok(Some(tok.to_string()));
    }
    if let Some(q) = parts.uri.query() {
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            if k == "x-auth-token" {
                return Ok(Some(v.into_owned()));
            }
        }
    }
    Ok(None)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = token_from(parts)?.ok_or(ApiError::NoCredentials)?;
        let user = state
            .store
            .user_by_token(&token)?
            .ok_or(ApiError::InvalidToken)?;
        Ok(Caller { user })
    }
}

/// What the caller may see and do, computed once per request from the catalog.
pub struct Roles {
    pub user: Id,
    pub staff: bool,
    /// Customers the caller owns.
    pub owner_of: HashSet<Id>,
    /// Customers the caller manages (service managers).
    pub manager_of: HashSet<Id>,
    /// Projects the caller is a member of.
    pub member_of: HashSet<Id>,
}

impl Roles {
    pub fn of(user: &User, cat: &Catalog) -> Roles {
        let owner_of = cat
            .customers
            .values()
            .filter(|c| c.owners.contains(&user.id))
            .map(|c| c.id)
            .collect();
        let manager_of = cat
            .customers
            .values()
            .filter(|c| c.managers.contains(&user.id))
            .map(|c| c.id)
            .collect();
        let member_of = cat
            .projects
            .values()
            .filter(|p| p.members.contains(&user.id))
            .map(|p| p.id)
            .collect();
        Roles {
            user: user.id,
            staff: user.is_staff,
            owner_of,
            manager_of,
            member_of,
        }
    }

    /// The caller's standing towards a booking of `provider`'s offering for
    /// `project` of `customer`, created by `created_by` (the lifecycle's visibility
    /// and permission rules read it).
    pub fn standing(&self, provider: Id, customer: Id, project: Id, created_by: Id) -> Standing {
        Standing {
            staff: self.staff,
            system: false,
            provider: self.owner_of.contains(&provider) || self.manager_of.contains(&provider),
            consumer_owner: self.owner_of.contains(&customer),
            consumer_connected: self.owner_of.contains(&customer)
                || self.manager_of.contains(&customer),
            project_member: self.member_of.contains(&project),
            creator: created_by == self.user,
        }
    }

    /// Owner or manager of the provider organisation.
    pub fn is_provider_staff(&self, provider: Id) -> bool {
        self.staff || self.owner_of.contains(&provider) || self.manager_of.contains(&provider)
    }

    /// May act for the project: staff, owner of its customer, or a member.
    pub fn is_project_member(&self, project: Id, customer: Id) -> bool {
        self.staff || self.owner_of.contains(&customer) || self.member_of.contains(&project)
    }

    /// May approve on the consumer side (staff or owner of the project's customer).
    pub fn may_approve_for(&self, customer: Id) -> bool {
        self.staff || self.owner_of.contains(&customer)
    }

    /// Booking offerings: staff and the offering customer's owners and managers.
    pub fn sees_offering(&self, provider: Id) -> bool {
        self.is_provider_staff(provider)
    }

    /// Booking resources (the lifecycle's rule: staff, the provider's owners and
    /// managers, the creator of the booking's order).
    pub fn sees_resource(&self, r: &ResourceEntry) -> bool {
        self.standing(r.provider, r.customer, r.project, r.created_by)
            .sees_booking()
    }

    /// Orders (the lifecycle's rule: staff, the offering's customer, users connected
    /// to the order's project or customer, and the creator).
    pub fn sees_order(&self, o: &OrderEntry) -> bool {
        self.standing(o.provider, o.customer, o.project, o.created_by)
            .sees_order()
    }
}
