//! The in-memory catalog: compact entries of every record, kept in step with sled
//! under the store's write lock.
//!
//! It answers listing, filtering, counting, visibility and overlap questions without
//! decoding stored records: a list page decodes only the records it returns. Built
//! once when the store opens.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::index::{OrderIdx, ResourceIdx};
use crate::domain::{
    Customer, Id, Interval, Offering, OrderState, OrderType, Project, ResourceState, User,
};

/// What listing needs to know of a booking resource.
#[derive(Clone, Debug)]
pub struct ResourceEntry {
    pub id: Id,
    pub name: Box<str>,
    pub slug: Box<str>,
    pub backend_id: Box<str>,
    pub offering: Id,
    pub project: Id,
    /// The project's customer (the consumer).
    pub customer: Id,
    /// The offering's customer (the provider).
    pub provider: Id,
    pub state: ResourceState,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub created_by: Id,
    pub slots: Box<[Interval]>,
    pub first_start: Option<DateTime<Utc>>,
}

/// What listing needs to know of an order.
#[derive(Clone, Debug)]
pub struct OrderEntry {
    pub id: Id,
    pub offering: Id,
    pub project: Id,
    pub customer: Id,
    pub provider: Id,
    pub resource: Id,
    pub state: OrderState,
    pub kind: OrderType,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub created_by: Id,
    pub requested: Box<[Interval]>,
}

/// The catalog itself. Fields are public for reading; only the store mutates it.
#[derive(Default)]
pub struct Catalog {
    pub users: HashMap<Id, User>,
    pub users_by_name: HashMap<String, Id>,
    pub customers: HashMap<Id, Customer>,
    pub projects: HashMap<Id, Project>,
    pub offerings: HashMap<Id, Offering>,
    pub resources: HashMap<Id, ResourceEntry>,
    /// Resources in the default order (name, then id).
    pub resources_by_name: BTreeSet<(Box<str>, Id)>,
    pub resources_by_offering: HashMap<Id, HashSet<Id>>,
    pub orders: HashMap<Id, OrderEntry>,
    /// Orders in the default order (created, then id).
    pub orders_by_created: BTreeSet<(DateTime<Utc>, Id)>,
    pub orders_by_offering: HashMap<Id, HashSet<Id>>,
    /// Busy intervals imported from each offering's calendar.
    pub busy: HashMap<Id, Vec<Interval>>,
}

impl Catalog {
    pub(crate) fn put_user(&mut self, u: &User) {
        if let Some(old) = self.users.get(&u.id) {
            self.users_by_name.remove(&old.username);
        }
        self.users_by_name.insert(u.username.clone(), u.id);
        self.users.insert(u.id, u.clone());
    }

    pub(crate) fn put_resource(&mut self, r: &ResourceIdx) {
        self.remove_resource(r.id);
        let project = self.projects.get(&r.project);
        let offering = self.offerings.get(&r.offering);
        let slots: Box<[Interval]> = r.slots.clone().into_boxed_slice();
        let entry = ResourceEntry {
            id: r.id,
            name: r.name.as_str().into(),
            slug: r.slug.as_str().into(),
            backend_id: r.backend_id.as_str().into(),
            offering: r.offering,
            project: r.project,
            customer: project.map(|p| p.customer).unwrap_or(r.project),
            provider: offering.map(|o| o.customer).unwrap_or(r.offering),
            state: r.state,
            created: r.created,
            modified: r.modified,
            created_by: r.created_by,
            first_start: slots.iter().map(|s| s.start).min(),
            slots,
        };
        self.resources_by_name.insert((entry.name.clone(), r.id));
        self.resources_by_offering
            .entry(r.offering)
            .or_default()
            .insert(r.id);
        self.resources.insert(r.id, entry);
    }

    fn remove_resource(&mut self, id: Id) {
        if let Some(old) = self.resources.remove(&id) {
            self.resources_by_name.remove(&(old.name, id));
            if let Some(set) = self.resources_by_offering.get_mut(&old.offering) {
                set.remove(&id);
            }
        }
    }

    pub(crate) fn put_order(&mut self, o: &OrderIdx) {
        self.remove_order(o.id);
        let project = self.projects.get(&o.project);
        let offering = self.offerings.get(&o.offering);
        let entry = OrderEntry {
            id: o.id,
            offering: o.offering,
            project: o.project,
            customer: project.map(|p| p.customer).unwrap_or(o.project),
            provider: offering.map(|x| x.customer).unwrap_or(o.offering),
            resource: o.resource,
            state: o.state,
            kind: o.kind,
            created: o.created,
            modified: o.modified,
            created_by: o.created_by,
            requested: o.requested.clone().into_boxed_slice(),
        };
        self.orders_by_created.insert((o.created, o.id));
        self.orders_by_offering
            .entry(o.offering)
            .or_default()
            .insert(o.id);
        self.orders.insert(o.id, entry);
    }

    pub(crate) fn remove_order(&mut self, id: Id) {
        if let Some(old) = self.orders.remove(&id) {
            self.orders_by_created.remove(&(old.created, id));
            if let Some(set) = self.orders_by_offering.get_mut(&old.offering) {
                set.remove(&id);
            }
        }
    }

    /// Everything held in `offering` (the lifecycle's `held`, for every booking, plus
    /// busy slots): slots of resources in Creating/OK, and intervals requested by live
    /// Create orders whose resource (Creating/OK) has no slots yet.
    pub fn occupied(&self, offering: Id) -> Vec<crate::domain::Occupied> {
        use crate::domain::{Occupied, OccupiedKind};
        let mut out = Vec::new();
        let mut with_slots = HashSet::new();
        if let Some(ids) = self.resources_by_offering.get(&offering) {
            for r in ids.iter().filter_map(|id| self.resources.get(id)) {
                if !r.slots.is_empty() {
                    with_slots.insert(r.id);
                }
                if r.state.holds_slots() {
                    out.extend(r.slots.iter().map(|i| Occupied {
                        interval: *i,
                        kind: OccupiedKind::Booking,
                        holder: Some(r.id),
                    }));
                }
            }
        }
        if let Some(ids) = self.orders_by_offering.get(&offering) {
            for o in ids.iter().filter_map(|id| self.orders.get(id)) {
                let resource_live = self
                    .resources
                    .get(&o.resource)
                    .is_some_and(|r| r.state.holds_slots());
                if o.kind == OrderType::Create
                    && o.state.holds_request()
                    && resource_live
                    && !with_slots.contains(&o.resource)
                {
                    out.extend(o.requested.iter().map(|i| Occupied {
                        interval: *i,
                        kind: OccupiedKind::Request,
                        holder: Some(o.resource),
                    }));
                }
            }
        }
        if let Some(busy) = self.busy.get(&offering) {
            out.extend(busy.iter().map(|i| Occupied {
                interval: *i,
                kind: OccupiedKind::Busy,
                holder: None,
            }));
        }
        out
    }
}
