//! Booking transitions on either engine: the lifecycle's inputs (the order, its
//! resource, the offering, the caller's standing, the time already taken in the
//! offering, the freshness of its busy time, now) are read by [`Store::mutate`]
//! inside the write's critical section (sled: under the write lock; PostgreSQL: in
//! the transaction that holds the offering's row lock), [`lifecycle`] decides, and
//! its [`Outcome`] is written there, so the overlap check and the write cannot be
//! separated by another writer, in this process or another. On PostgreSQL the
//! exclusion constraint on live slots is the backstop: a transaction that loses the
//! race anyway is run again and then refused.

use chrono::{DateTime, Duration, Utc};

use super::mutate::{Load, View};
use super::{Change, MutateError, Store, StoreError};
use crate::domain::calendar::StaleBusy;
use crate::domain::lifecycle::{
    self, Acting, Action, Actor, Availability, Booking, Created, NewOrder, Outcome, Parties,
    Refusal, Standing,
};
use crate::domain::{Id, Interval};

/// What an action names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Order(Id),
    Resource(Id),
}

/// Why a transition did not happen.
#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<MutateError<TransitionError>> for TransitionError {
    fn from(e: MutateError<TransitionError>) -> Self {
        match e {
            MutateError::Refused(e) => e,
            MutateError::Store(e) => TransitionError::Store(e),
        }
    }
}

/// The caller's standing towards a booking of `offering` for `project`.
pub fn standing(
    view: &View,
    actor: Actor,
    offering: Option<Id>,
    project: Option<Id>,
    created_by: Option<Id>,
) -> Standing {
    let provider = offering
        .and_then(|id| view.offerings.get(&id))
        .and_then(|o| view.customers.get(&o.customer));
    let project = project.and_then(|id| view.projects.get(&id));
    let consumer = project.and_then(|p| view.customers.get(&p.customer));
    Standing::of(
        actor,
        &Parties {
            provider,
            consumer,
            project,
            created_by,
        },
    )
}

/// Whether some time is given and all of it has started by `now` (a booking never
/// accepted in time).
pub(crate) fn all_started<'a>(
    time: impl Iterator<Item = &'a Interval>,
    now: DateTime<Utc>,
) -> bool {
    let mut time = time.peekable();
    time.peek().is_some() && time.all(|s| s.start <= now)
}

fn outcome_changes(out: &Outcome) -> Vec<Change> {
    let mut changes = Vec::new();
    if let Some(r) = &out.resource {
        changes.push(Change::Resource(r.clone()));
    }
    if let Some(o) = &out.order {
        if let Some(a) = &out.attachment {
            changes.push(Change::Attachment(o.id, a.clone()));
        }
        changes.push(Change::Order(o.clone()));
    }
    if let Some(o) = &out.new_order {
        changes.push(Change::Order(o.clone()));
    }
    if let Some(id) = out.deleted_order {
        changes.push(Change::DeleteOrder(id));
        changes.push(Change::Attachment(id, None));
    }
    changes
}

impl Store {
    /// Applies one lifecycle action to the booking `target` names, atomically.
    ///
    /// # Errors
    /// `Refused` with the lifecycle's refusal (nothing written), or `Store`.
    pub async fn transition(
        &self,
        target: Target,
        actor: Actor,
        action: Action,
        now: DateTime<Utc>,
    ) -> Result<Outcome, TransitionError> {
        // Which records and offering the booking involves (links never change); the
        // transaction reads the records themselves again, locked.
        let (order_id, resource_id, offering, project) = match target {
            Target::Order(id) => {
                let o = self.order(id).await?.ok_or(Refusal::NotFound)?;
                (Some(id), Some(o.resource), o.offering, o.project)
            }
            Target::Resource(id) => {
                let r = self.resource(id).await?.ok_or(Refusal::NotFound)?;
                (r.creation_order, Some(id), r.offering, r.project)
            }
        };
        let load = Load {
            taken: vec![offering],
            projects: vec![project],
            orders: order_id.into_iter().collect(),
            resources: resource_id.into_iter().collect(),
            ..Load::default()
        };
        let out = self
            .mutate(&load, |view| {
                let order = order_id.and_then(|id| view.orders.get(&id));
                let resource = resource_id.and_then(|id| view.resources.get(&id));
                let found = match target {
                    Target::Order(_) => order.is_some(),
                    Target::Resource(_) => resource.is_some(),
                };
                if !found {
                    return Err(Refusal::NotFound.into());
                }
                let offering_rec = view.offerings.get(&offering).ok_or(Refusal::NotFound)?;
                let created_by = order
                    .map(|o| o.created_by)
                    .or(resource.map(|r| r.created_by));
                let acting = Acting {
                    actor,
                    standing: standing(view, actor, Some(offering), Some(project), created_by),
                };
                let taken = view.taken.get(&offering).cloned().unwrap_or_default();
                let availability = Availability {
                    now,
                    windows: offering_rec.availability(),
                    taken: &taken,
                    // Only new orders depend on the freshness of the busy time.
                    stale_busy: None,
                };
                let booking = Booking {
                    order,
                    resource,
                    offering: offering_rec,
                };
                let out = lifecycle::apply(
                    action.clone(),
                    &booking,
                    &acting,
                    &availability,
                    &mut Id::new_v4,
                )?;
                Ok::<_, TransitionError>((outcome_changes(&out), out))
            })
            .await?;
        Ok(out)
    }

    /// Creates a booking order and its resource (see [`lifecycle::create`]), atomically
    /// with the check that its time is free. `max_busy_age` is how old the busy time
    /// read from the offering's Google Calendar may be (`sync.max_busy_age_secs`;
    /// `None`: any age).
    ///
    /// # Errors
    /// `Refused` with the lifecycle's refusal (nothing written), or `Store`.
    pub async fn create_order(
        &self,
        actor: Actor,
        offering: Option<Id>,
        project: Option<Id>,
        req: &NewOrder,
        now: DateTime<Utc>,
        max_busy_age: Option<Duration>,
    ) -> Result<Created, TransitionError> {
        // Only time overlapping the requested time can refuse it: the rest of the
        // offering's bookings are not read (unreadable schedules are refused by the
        // rule whatever it sees).
        let requested = crate::domain::booking::parse_schedules(req.attributes.get("schedules"))
            .unwrap_or_default();
        let load = Load {
            taken: offering.into_iter().collect(),
            taken_within: Interval::span(&requested),
            projects: project.into_iter().collect(),
            // The busy time's freshness, when it matters.
            calendars: offering
                .filter(|_| max_busy_age.is_some())
                .into_iter()
                .collect(),
            ..Load::default()
        };
        let created = self
            .mutate(&load, |view| {
                let off = offering.and_then(|id| view.offerings.get(&id));
                let proj = project.and_then(|id| view.projects.get(&id));
                let acting = Acting {
                    actor,
                    standing: standing(view, actor, offering, project, None),
                };
                let taken = offering
                    .and_then(|o| view.taken.get(&o).cloned())
                    .unwrap_or_default();
                let calendar = offering.and_then(|o| view.calendars.get(&o));
                let availability = Availability {
                    now,
                    windows: off.map(|o| o.availability()).unwrap_or_default(),
                    taken: &taken,
                    stale_busy: StaleBusy::of(calendar, now, max_busy_age),
                };
                let created =
                    lifecycle::create(req, off, proj, &acting, &availability, &mut Id::new_v4)?;
                Ok::<_, TransitionError>((
                    vec![
                        Change::Resource(created.resource.clone()),
                        Change::Order(created.order.clone()),
                    ],
                    created,
                ))
            })
            .await?;
        Ok(created)
    }
}
