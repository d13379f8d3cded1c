//! Token authentication (`Authorization: Token <key>`, or `?x-auth-token=<key>` as
//! upstream accepts) and the caller's roles, from which visibility follows.

use std::collections::{HashMap, HashSet};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::{error::ApiError, AppState};
use crate::domain::lifecycle::{Actor, Standing};
use crate::domain::{Customer, Id, Offering, Project, User};
use crate::store::query::{Parties, Visible};
use crate::store::{Directory, Store};

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

/// The token an `Authorization` header carries (`Token <key>`).
fn token_of_header(h: &axum::http::HeaderValue) -> Result<String, ApiError> {
    let s = h.to_str().map_err(|_| ApiError::InvalidToken)?;
    let mut it = s.split_whitespace();
    let (Some(kw), Some(tok), None) = (it.next(), it.next(), it.next()) else {
        return Err(ApiError::InvalidToken);
    };
    if !kw.eq_ignore_ascii_case("token") {
        return Err(ApiError::NoCredentials);
    }
    Ok(tok.to_string())
}

/// The token a request presents: the `Authorization` header's when it has one
/// (the query is then not read), else the first `x-auth-token` query parameter.
/// `None`: no credentials at all.
fn token_in(
    headers: &axum::http::HeaderMap,
    query: Option<&str>,
) -> Option<Result<String, ApiError>> {
    if let Some(h) = headers.get(axum::http::header::AUTHORIZATION) {
        return Some(token_of_header(h));
    }
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "x-auth-token")
        .map(|(_, v)| Ok(v.into_owned()))
}

/// The credentials a request presents (an `Authorization` header or an
/// `x-auth-token` query parameter), valid or not, as the rate limiter keeps them
/// across the call. Not `Debug`: it holds the token.
pub struct Presented(Option<String>);

impl Presented {
    /// What `headers` and `query` present; `None` when neither form is there.
    pub fn of(headers: &axum::http::HeaderMap, query: Option<&str>) -> Option<Presented> {
        token_in(headers, query).map(|t| Presented(t.ok()))
    }

    /// Whether they open a user (the rate limiter's question about a call whose
    /// route never authenticated it).
    pub async fn open_a_user(&self, state: &AppState) -> bool {
        match &self.0 {
            Some(token) => matches!(state.store.user_by_token(token).await, Ok(Some(_))),
            None => false,
        }
    }
}

fn token_from(parts: &Parts) -> Result<Option<String>, ApiError> {
    token_in(&parts.headers, parts.uri.query()).transpose()
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
        if let Some(a) = parts.extensions.get::<super::throttle::Authenticated>() {
            a.mark();
        }
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

    /// Booking resources the caller sees, for list queries: the rows
    /// [`Roles::sees_resource`] admits.
    pub fn visible_bookings(&self) -> Visible {
        Visible {
            all: self.staff,
            providers: self.provider_side(),
            creator: Some(self.user),
            ..Visible::default()
        }
    }

    /// Orders the caller sees, for list queries: the rows [`Roles::sees_order`]
    /// admits.
    pub fn visible_orders(&self) -> Visible {
        let mut projects: Vec<Id> = self.member_of.iter().copied().collect();
        projects.sort();
        Visible {
            all: self.staff,
            providers: self.provider_side(),
            consumers: self.provider_side(),
            projects,
            creator: Some(self.user),
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

    /// Projects (Waldur's rule): staff, the owners and managers of the project's
    /// organisation, its members.
    pub fn sees_project(&self, p: &Project) -> bool {
        self.staff
            || self.owner_of.contains(&p.customer)
            || self.manager_of.contains(&p.customer)
            || self.member_of.contains(&p.id)
    }

    /// Public offering details (as `/api/marketplace-bookings/` shows their time):
    /// a shared offering to everyone signed in; an unshared one to its provider's
    /// owners and managers and staff.
    pub fn sees_public_offering(&self, o: &Offering) -> bool {
        o.shared || self.is_provider_staff(o.customer)
    }

    /// Organisations: staff; the caller's own (owner, manager, or a member of one of
    /// its projects: `projects` are those the caller sees, `all_projects` every
    /// project); and the providers of offerings the caller sees (`providers`).
    pub fn sees_customer(
        &self,
        c: &Customer,
        projects: &HashSet<Id>,
        all_projects: &HashMap<Id, Project>,
        providers: &HashSet<Id>,
    ) -> bool {
        self.staff
            || self.owner_of.contains(&c.id)
            || self.manager_of.contains(&c.id)
            || providers.contains(&c.id)
            || projects
                .iter()
                .filter_map(|p| all_projects.get(p))
                .any(|p| p.customer == c.id && self.member_of.contains(&p.id))
    }

    /// Users (Waldur's rule): staff see everyone; others themselves and the people
    /// of their circle: the owners and managers of the organisations they belong to
    /// (`customers` they see as owner, manager or project member, not as a provider's
    /// customer) and the members of the projects they see.
    pub fn sees_user(
        &self,
        user: Id,
        customers: &HashSet<Id>,
        projects: &HashSet<Id>,
        dir: &Directory,
    ) -> bool {
        if self.staff || user == self.user {
            return true;
        }
        let own = |c: &Id| {
            self.owner_of.contains(c)
                || self.manager_of.contains(c)
                || dir
                    .projects
                    .values()
                    .any(|p| p.customer == *c && self.member_of.contains(&p.id))
        };
        customers
            .iter()
            .filter(|c| own(c))
            .filter_map(|c| dir.customers.get(c))
            .any(|c| c.owners.contains(&user) || c.managers.contains(&user))
            || projects
                .iter()
                .filter_map(|p| dir.projects.get(p))
                .any(|p| p.members.contains(&user))
    }

    /// Booking resources (the lifecycle's rule: staff, the provider's owners and
    /// managers, the creator of the booking's order).
    pub fn sees_resource(&self, p: &Parties) -> bool {
        self.standing(p.provider, p.customer, p.project, p.created_by)
            .sees_booking()
    }

    /// Orders (the lifecycle's rule: staff, the offering's customer, users connected
    /// to the order's project or customer, and the creator).
    pub fn sees_order(&self, p: &Parties) -> bool {
        self.standing(p.provider, p.customer, p.project, p.created_by)
            .sees_order()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list queries' visibility (evaluated by the store, in SQL on PostgreSQL)
    /// admits exactly the rows the lifecycle's rule lets the caller see.
    #[test]
    fn list_visibility_agrees_with_the_lifecycle_rule() {
        let ids: Vec<Id> = (0..4).map(|_| Id::new_v4()).collect();
        let (me, other) = (ids[0], ids[1]);
        let (org_a, org_b, proj) = (ids[2], ids[3], Id::new_v4());
        let set = |v: &[Id]| v.iter().copied().collect::<HashSet<Id>>();
        let role_sets = [
            (set(&[]), set(&[]), set(&[])),
            (set(&[org_a]), set(&[]), set(&[])),
            (set(&[]), set(&[org_a]), set(&[])),
            (set(&[]), set(&[]), set(&[proj])),
            (set(&[org_b]), set(&[org_a]), set(&[proj])),
        ];
        for staff in [false, true] {
            for (owner_of, manager_of, member_of) in &role_sets {
                let roles = Roles {
                    user: me,
                    staff,
                    owner_of: owner_of.clone(),
                    manager_of: manager_of.clone(),
                    member_of: member_of.clone(),
                };
                for provider in [org_a, org_b] {
                    for customer in [org_a, org_b] {
                        for project in [proj, Id::new_v4()] {
                            for created_by in [me, other] {
                                let p = Parties {
                                    offering: Id::new_v4(),
                                    provider,
                                    customer,
                                    project,
                                    created_by,
                                };
                                assert_eq!(
                                    roles.visible_bookings().admits(provider, customer, project, created_by),
                                    roles.sees_resource(&p),
                                    "bookings: staff {staff} {owner_of:?} {manager_of:?} {member_of:?} {p:?}"
                                );
                                assert_eq!(
                                    roles.visible_orders().admits(provider, customer, project, created_by),
                                    roles.sees_order(&p),
                                    "orders: staff {staff} {owner_of:?} {manager_of:?} {member_of:?} {p:?}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// The directory's rules over a small world: two organisations, a project of the
    /// first with one member, an offering of the second (shared or not).
    #[test]
    fn the_directory_rules_follow_waldur() {
        let t = chrono::Utc::now();
        let ids: Vec<Id> = (0..8).map(|_| Id::new_v4()).collect();
        let (me, org_owner, member, stranger, provider_owner) =
            (ids[0], ids[1], ids[2], ids[3], ids[4]);
        let (consumer, provider, project) = (ids[5], ids[6], ids[7]);
        let customer = |id, owners: Vec<Id>| Customer {
            id,
            name: String::new(),
            slug: String::new(),
            owners,
            managers: Vec::new(),
            created: t,
        };
        let mut dir = Directory::default();
        dir.customers
            .insert(consumer, customer(consumer, vec![org_owner]));
        dir.customers
            .insert(provider, customer(provider, vec![provider_owner]));
        let p = Project {
            id: project,
            customer: consumer,
            name: String::new(),
            slug: String::new(),
            description: String::new(),
            members: vec![member],
            created: t,
        };
        dir.projects.insert(project, p.clone());
        let set = |v: &[Id]| v.iter().copied().collect::<HashSet<Id>>();
        let roles = |user, staff, owner_of: &[Id], member_of: &[Id]| Roles {
            user,
            staff,
            owner_of: set(owner_of),
            manager_of: HashSet::new(),
            member_of: set(member_of),
        };
        // (who, sees the project, sees the consumer, sees the provider, users seen)
        let cases = [
            (
                roles(me, true, &[], &[]),
                true,
                true,
                true,
                vec![me, org_owner, member, stranger, provider_owner],
            ),
            (
                roles(org_owner, false, &[consumer], &[]),
                true,
                true,
                true,
                vec![org_owner, member],
            ),
            (
                roles(member, false, &[], &[project]),
                true,
                true,
                true,
                vec![org_owner, member],
            ),
            (
                roles(provider_owner, false, &[provider], &[]),
                false,
                false,
                true,
                vec![provider_owner],
            ),
            (
                roles(stranger, false, &[], &[]),
                false,
                false,
                true,
                vec![stranger],
            ),
        ];
        for shared in [true, false] {
            for (r, project_seen, consumer_seen, provider_seen, users) in &cases {
                let offering_seen = shared || r.staff || r.user == provider_owner;
                let projects: HashSet<Id> = dir
                    .projects
                    .values()
                    .filter(|p| r.sees_project(p))
                    .map(|p| p.id)
                    .collect();
                let providers: HashSet<Id> = if offering_seen {
                    set(&[provider])
                } else {
                    HashSet::new()
                };
                let customers: HashSet<Id> = dir
                    .customers
                    .values()
                    .filter(|c| r.sees_customer(c, &projects, &dir.projects, &providers))
                    .map(|c| c.id)
                    .collect();
                let who = r.user;
                assert_eq!(r.sees_project(&p), *project_seen, "{who:?} project");
                assert_eq!(
                    customers.contains(&consumer),
                    *consumer_seen,
                    "{who:?} consumer"
                );
                assert_eq!(
                    customers.contains(&provider),
                    *provider_seen && offering_seen,
                    "{who:?} provider, shared {shared}"
                );
                let mut seen: Vec<Id> = ids[..5]
                    .iter()
                    .copied()
                    .filter(|u| r.sees_user(*u, &customers, &projects, &dir))
                    .collect();
                let mut want = users.clone();
                seen.sort();
                want.sort();
                assert_eq!(seen, want, "{who:?} users");
            }
        }
    }
}
