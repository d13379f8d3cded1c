//! Token authentication (`Authorization: Token <key>`, or `?x-auth-token=<key>` as
//! upstream accepts) and the caller's roles, from which visibility follows.

use std::collections::HashSet;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::{error::ApiError, AppState};
use crate::domain::{Id, User};
use crate::store::query::{Parties, Visible};
use crate::store::Store;

/// The authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: User,
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
            .user_by_token(&token)
            .await?
            .ok_or(ApiError::InvalidToken)?;
        Ok(Caller { user })
    }
}

/// What the caller may see and do, computed once per request from the store.
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
    /// The caller's roles, as the store has them now.
    ///
    /// # Errors
    /// Storage failure.
    pub async fn load(store: &Store, user: &User) -> Result<Roles, ApiError> {
        let rel = store.relations(user.id).await?;
        Ok(Roles {
            user: user.id,
            staff: user.is_staff,
            owner_of: rel.owner_of,
            manager_of: rel.manager_of,
            member_of: rel.member_of,
        })
    }

    /// Organisations whose providers' data the caller sees as staff of theirs.
    fn provider_side(&self) -> Vec<Id> {
        let mut v: Vec<Id> = self.owner_of.union(&self.manager_of).copied().collect();
        v.sort();
        v
    }

    /// Booking offerings the caller sees (see [`Roles::sees_offering`]).
    pub fn visible_offerings(&self) -> Visible {
        Visible {
            all: self.staff,
            providers: self.provider_side(),
            ..Visible::default()
        }
    }

    /// Booking resources the caller sees (see [`Roles::sees_resource`]): as orders.
    pub fn visible_bookings(&self) -> Visible {
        self.visible_orders()
    }

    /// Orders the caller sees (see [`Roles::sees_order`]).
    pub fn visible_orders(&self) -> Visible {
        let mut projects: Vec<Id> = self.member_of.iter().copied().collect();
        projects.sort();
        let mut consumers: Vec<Id> = self.owner_of.iter().copied().collect();
        consumers.sort();
        Visible {
            all: self.staff,
            providers: self.provider_side(),
            consumers,
            projects,
            creator: Some(self.user),
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

    /// Booking resources: staff, the provider's owners/managers, the creator, and
    /// those connected to the resource's project.
    pub fn sees_resource(&self, p: &Parties) -> bool {
        self.visible_bookings()
            .admits(p.provider, p.customer, p.project, p.created_by)
    }

    /// Orders: staff, users connected to the order's project or customer, the
    /// offering's customer, and the creator.
    pub fn sees_order(&self, p: &Parties) -> bool {
        self.visible_orders()
            .admits(p.provider, p.customer, p.project, p.created_by)
    }
}
