//! Booking transitions on the sled engine: gathers the lifecycle's inputs from the
//! catalog and the records, runs [`lifecycle`] and writes its outcome, all under the
//! store's write lock ([`Store::mutate`]), so the overlap check and the write cannot
//! be separated by another writer.
//!
//! Another engine supplies the same inputs (the order, its resource, the offering,
//! the caller's standing, the time held in the offering, the freshness of its busy
//! time, now) from inside its own transaction and writes the same [`Outcome`].

use chrono::{DateTime, Duration, Utc};

use super::{Catalog, Change, MutateError, Store, StoreError};
use crate::domain::calendar::StaleBusy;
use crate::domain::lifecycle::{
    self, Acting, Action, Actor, Availability, Booking, Created, NewOrder, Outcome, Parties,
    Refusal, Standing,
};
use crate::domain::{Id, Order, Resource};

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
    cat: &Catalog,
    actor: Actor,
    offering: Option<Id>,
    project: Option<Id>,
    created_by: Option<Id>,
) -> Standing {
    let provider = offering
        .and_then(|id| cat.offerings.get(&id))
        .and_then(|o| cat.customers.get(&o.customer));
    let project = project.and_then(|id| cat.projects.get(&id));
    let consumer = project.and_then(|p| cat.customers.get(&p.customer));
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
    fn booking_records(
        &self,
        cat: &Catalog,
        target: Target,
    ) -> Result<(Option<Order>, Option<Resource>), TransitionError> {
        Ok(match target {
            Target::Order(id) => {
                if !cat.orders.contains_key(&id) {
                    return Err(Refusal::NotFound.into());
                }
                let o = self.order(id)?.ok_or(Refusal::NotFound)?;
                let r = self.resource(o.resource)?;
                (Some(o), r)
            }
            Target::Resource(id) => {
                if !cat.resources.contains_key(&id) {
                    return Err(Refusal::NotFound.into());
                }
                let r = self.resource(id)?.ok_or(Refusal::NotFound)?;
                let o = match r.creation_order {
                    Some(oid) => self.order(oid)?,
                    None => None,
                };
                (o, Some(r))
            }
        })
    }

    /// Applies one lifecycle action to the booking `target` names, atomically.
    ///
    /// # Errors
    /// `Refused` with the lifecycle's refusal (nothing written), or `Store`.
    pub fn transition(
        &self,
        target: Target,
        actor: Actor,
        action: Action,
        now: DateTime<Utc>,
    ) -> Result<Outcome, TransitionError> {
        let out = self.mutate(|cat| {
            let (order, resource) = self.booking_records(cat, target)?;
            let (offering_id, project_id) = match (&order, &resource) {
                (_, Some(r)) => (r.offering, r.project),
                (Some(o), None) => (o.offering, o.project),
                (None, None) => return Err(Refusal::NotFound.into()),
            };
            let offering = cat.offerings.get(&offering_id).ok_or(Refusal::NotFound)?;
            let created_by = order
                .as_ref()
                .map(|o| o.created_by)
                .or(resource.as_ref().map(|r| r.created_by));
            let acting = Acting {
                actor,
                standing: standing(cat, actor, Some(offering_id), Some(project_id), created_by),
            };
            let taken = cat.occupied(offering_id);
            let availability = Availability {
                now,
                windows: offering.availability(),
                taken: &taken,
                // Only new orders depend on the freshness of the busy time.
                stale_busy: None,
            };
            let booking = Booking {
                order: order.as_ref(),
                resource: resource.as_ref(),
                offering,
            };
            let out = lifecycle::apply(action, &booking, &acting, &availability, &mut Id::new_v4)?;
            Ok((outcome_changes(&out), out))
        })?;
        Ok(out)
    }

    /// Creates a booking order and its resource (see [`lifecycle::create`]), atomically
    /// with the check that its time is free. `max_busy_age` is how old the busy time
    /// read from the offering's Google Calendar may be (`sync.max_busy_age_secs`;
    /// `None`: any age).
    ///
    /// # Errors
    /// `Refused` with the lifecycle's refusal (nothing written), or `Store`.
    pub fn create_order(
        &self,
        actor: Actor,
        offering: Option<Id>,
        project: Option<Id>,
        req: &NewOrder,
        now: DateTime<Utc>,
        max_busy_age: Option<Duration>,
    ) -> Result<Created, TransitionError> {
        let created = self.mutate(|cat| {
            let off = offering.and_then(|id| cat.offerings.get(&id));
            let proj = project.and_then(|id| cat.projects.get(&id));
            let acting = Acting {
                actor,
                standing: standing(cat, actor, offering, project, None),
            };
            let taken = off.map(|o| cat.occupied(o.id)).unwrap_or_default();
            let calendar = match off {
                Some(o) if max_busy_age.is_some() => self.calendar(o.id)?,
                _ => None,
            };
            let availability = Availability {
                now,
                windows: off.map(|o| o.availability()).unwrap_or_default(),
                taken: &taken,
                stale_busy: StaleBusy::of(calendar.as_ref(), now, max_busy_age),
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
        })?;
        Ok(created)
    }
}
