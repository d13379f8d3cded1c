//! The booking lifecycle: every transition of a booking order and its resource, in
//! one place.
//!
//! A booking is a pair: the Create order (its review states) and the booking resource
//! (its slots). [`apply`] decides, for one [`Action`] by one caller, who may do it
//! ([`Standing`]), from which states, what it does to the order, the resource and its
//! slots, and the error it answers (upstream Waldur's messages). [`create`] does the
//! same for a new order. Both are pure: their inputs are plain values (the order, the
//! resource, the offering, the caller's standing, the time already taken in the
//! offering by others, now), so any store engine can feed them from inside its own
//! transaction and write the [`Outcome`] in that same transaction.
//!
//! The rules, as a reader checks them ([`rule`] is the table):
//! - checks run in the order Waldur's clients expect: not visible 404, not allowed
//!   403, wrong state 409, bad body or refused time 400;
//! - a resource *holds* time while it is `Creating` or `OK`: its slots, or, before
//!   they exist (a pending order), the intervals its order requests;
//! - every transition that makes a booking hold time it did not hold before
//!   (`set_state_executing` from `erred`, and any other) re-runs the overlap check
//!   against everything else held in the offering ([`Availability::check_revival`]);
//! - `done`, `canceled` and `rejected` are terminal: no action leaves them (409);
//! - accept and reject need the Create order `executing` (400 otherwise): accept never
//!   skips the consumer's approval and always answers the order's uuid;
//! - slot ids are the server's (`booking_<uuid hex>`), whatever a client sends;
//! - the pairs of (Create order state, resource state) that can exist are
//!   [`pair_allowed`]; every transition goes from such a pair to such a pair.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use super::booking::{check_free, check_schedules, Occupied};
use super::{
    Customer, Id, Interval, Offering, OfferingState, Order, OrderState, OrderType, Project,
    Resource, ResourceState, Slot,
};

/// Who is acting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    /// A logged-in user.
    User { id: Id, staff: bool },
    /// bookcal itself (the daily clean-up of bookings never accepted).
    System,
}

/// The acting user (or bookcal) and its standing towards the booking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acting {
    pub actor: Actor,
    pub standing: Standing,
}

impl Acting {
    /// The acting user's id (`None` for bookcal itself).
    pub fn user(&self) -> Option<Id> {
        match self.actor {
            Actor::User { id, .. } => Some(id),
            Actor::System => None,
        }
    }
}

/// The caller's relation to one booking (or one project and offering), from which
/// visibility and permission follow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Standing {
    pub staff: bool,
    pub system: bool,
    /// Owner or manager of the offering's customer (the provider).
    pub provider: bool,
    /// Owner of the project's customer (approves for the consumer).
    pub consumer_owner: bool,
    /// Owner or manager of the project's customer.
    pub consumer_connected: bool,
    /// Member of the project.
    pub project_member: bool,
    /// Created the booking's order.
    pub creator: bool,
}

/// The parties of a booking, to compute a [`Standing`] from.
#[derive(Clone, Copy, Default)]
pub struct Parties<'a> {
    /// The offering's customer.
    pub provider: Option<&'a Customer>,
    /// The project's customer.
    pub consumer: Option<&'a Customer>,
    pub project: Option<&'a Project>,
    /// Who created the order (`None` for a new order or an unknown creator).
    pub created_by: Option<Id>,
}

impl Standing {
    /// The standing of `actor` towards the given parties.
    pub fn of(actor: Actor, p: &Parties<'_>) -> Standing {
        let (user, staff) = match actor {
            Actor::System => {
                return Standing {
                    system: true,
                    ..Standing::default()
                }
            }
            Actor::User { id, staff } => (id, staff),
        };
        let owner = |c: Option<&Customer>| c.is_some_and(|c| c.owners.contains(&user));
        let manager = |c: Option<&Customer>| c.is_some_and(|c| c.managers.contains(&user));
        Standing {
            staff,
            system: false,
            provider: owner(p.provider) || manager(p.provider),
            consumer_owner: owner(p.consumer),
            consumer_connected: owner(p.consumer) || manager(p.consumer),
            project_member: p.project.is_some_and(|x| x.members.contains(&user)),
            creator: p.created_by == Some(user),
        }
    }

    /// Orders: staff, the offering's customer, users connected to the order's project
    /// or its customer, and the creator.
    pub fn sees_order(&self) -> bool {
        self.staff
            || self.system
            || self.provider
            || self.consumer_connected
            || self.project_member
            || self.creator
    }

    /// Booking resources: staff, the offering customer's owners and managers, and the
    /// creator of the resource's order, not other members of the project (upstream's
    /// `ResourceOwnerOrCreatorFilterBackend`).
    pub fn sees_booking(&self) -> bool {
        self.staff || self.system || self.provider || self.creator
    }

    /// May order for the project: staff, owner of its customer, or a member.
    pub fn may_order_for_project(&self) -> bool {
        self.staff || self.consumer_owner || self.project_member
    }

    /// Approves on the consumer side: staff or owner of the project's customer.
    pub fn approves_for_consumer(&self) -> bool {
        self.staff || self.consumer_owner
    }

    /// Acts for the provider: staff or owner/manager of the offering's customer.
    pub fn acts_for_provider(&self) -> bool {
        self.staff || self.provider
    }

    fn may(&self, who: Who) -> bool {
        match who {
            Who::Consumer => self.approves_for_consumer(),
            Who::Provider => self.acts_for_provider(),
            Who::Requester => self.staff || self.creator || self.consumer_owner,
            Who::Party => self.acts_for_provider() || self.creator || self.consumer_owner,
            Who::Staff => self.staff,
            Who::System => self.system,
        }
    }

    fn sees(&self, sees: Sees) -> bool {
        match sees {
            Sees::Order => self.sees_order(),
            Sees::Booking => self.sees_booking(),
        }
    }
}

/// Why an action or an order was refused. The API answers each with its status code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// 404: the caller cannot see the object.
    #[error("not found")]
    NotFound,
    /// 403: visible, but not the caller's to do.
    #[error("permission denied")]
    Forbidden,
    /// 409 `Valid states for operation: ...`.
    #[error("valid states for operation: {}", .0.join(", "))]
    States(Vec<&'static str>),
    /// 400 with a list body (`["msg", ...]`).
    #[error("{}", .0.join(" "))]
    Invalid(Vec<String>),
    /// 400 naming a field (`{"field": ["msg"]}`).
    #[error("{0}: {1}")]
    Field(&'static str, String),
    /// 400 with a body the handler built while parsing the request (answered only
    /// after the other checks passed).
    #[error("bad request body: {0}")]
    Body(Value),
}

/// The message upstream answers when accept/reject find no executing Create order.
pub const ORDER_NOT_FOUND: &str = "Unable to complete action because related order is not found.";

/// A request body parsed by the handler; its error is answered only after the
/// visibility, permission and state checks (Waldur's order).
pub type Body<T> = Result<T, Refusal>;

/// The error an order is marked erred with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorReport {
    pub message: String,
    pub traceback: String,
}

/// An uploaded order attachment: its file name and the bytes the store keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub stored: Vec<u8>,
}

/// Everything that can happen to an existing booking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    ApproveByConsumer,
    ApproveByProvider,
    RejectByConsumer,
    RejectByProvider,
    Cancel,
    Destroy,
    SetStateExecuting,
    SetStateDone,
    SetStateErred(Body<ErrorReport>),
    SetBackendId(Body<String>),
    /// Sets (`Some`) or removes the order's attachment.
    SetAttachment(Option<Attachment>),
    Unlink,
    /// `booking-resources/{uuid}/accept/`.
    Accept,
    /// `booking-resources/{uuid}/reject/`.
    Reject,
    /// `marketplace-resources/{uuid}/terminate/`.
    Terminate,
    /// The daily clean-up: a booking never accepted whose time has all started.
    Expire,
}

/// The action without its payload (the key of the rule table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    ApproveByConsumer,
    ApproveByProvider,
    RejectByConsumer,
    RejectByProvider,
    Cancel,
    Destroy,
    SetStateExecuting,
    SetStateDone,
    SetStateErred,
    SetBackendId,
    SetAttachment,
    Unlink,
    Accept,
    Reject,
    Terminate,
    Expire,
}

impl Kind {
    pub const ALL: [Kind; 16] = [
        Kind::ApproveByConsumer,
        Kind::ApproveByProvider,
        Kind::RejectByConsumer,
        Kind::RejectByProvider,
        Kind::Cancel,
        Kind::Destroy,
        Kind::SetStateExecuting,
        Kind::SetStateDone,
        Kind::SetStateErred,
        Kind::SetBackendId,
        Kind::SetAttachment,
        Kind::Unlink,
        Kind::Accept,
        Kind::Reject,
        Kind::Terminate,
        Kind::Expire,
    ];

    /// Whether the action names the resource (else the order).
    pub fn on_resource(self) -> bool {
        matches!(
            self,
            Kind::Accept | Kind::Reject | Kind::Terminate | Kind::Expire
        )
    }
}

impl Action {
    pub fn kind(&self) -> Kind {
        match self {
            Action::ApproveByConsumer => Kind::ApproveByConsumer,
            Action::ApproveByProvider => Kind::ApproveByProvider,
            Action::RejectByConsumer => Kind::RejectByConsumer,
            Action::RejectByProvider => Kind::RejectByProvider,
            Action::Cancel => Kind::Cancel,
            Action::Destroy => Kind::Destroy,
            Action::SetStateExecuting => Kind::SetStateExecuting,
            Action::SetStateDone => Kind::SetStateDone,
            Action::SetStateErred(_) => Kind::SetStateErred,
            Action::SetBackendId(_) => Kind::SetBackendId,
            Action::SetAttachment(_) => Kind::SetAttachment,
            Action::Unlink => Kind::Unlink,
            Action::Accept => Kind::Accept,
            Action::Reject => Kind::Reject,
            Action::Terminate => Kind::Terminate,
            Action::Expire => Kind::Expire,
        }
    }
}

/// Who may perform an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    /// Staff or owner of the project's customer.
    Consumer,
    /// Staff or owner/manager of the offering's customer.
    Provider,
    /// Staff, the order's creator, or owner of the project's customer.
    Requester,
    /// The provider, the creator, or owner of the project's customer (and staff).
    Party,
    Staff,
    /// bookcal itself.
    System,
}

/// Which visibility rule hides the object (404).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sees {
    /// Orders and `marketplace-resources` (connected users).
    Order,
    /// `booking-resources` (staff, provider, creator).
    Booking,
}

/// One row of the lifecycle table.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub sees: Sees,
    pub who: Who,
    /// Order states the action starts from (`None`: any; 409 otherwise).
    pub order_from: Option<&'static [OrderState]>,
    /// Resource states the action starts from (`None`: any; 409 otherwise).
    pub resource_from: Option<&'static [ResourceState]>,
    /// Whether the Create order must be `executing` (400 [`ORDER_NOT_FOUND`] otherwise).
    pub needs_executing_order: bool,
}

use OrderState as O;
use ResourceState as R;

const PENDING_OR_ERRED: &[OrderState] = &[
    O::PendingConsumer,
    O::PendingProvider,
    O::PendingProject,
    O::PendingStartDate,
    O::Erred,
];
const PENDING_OR_EXECUTING: &[OrderState] = &[
    O::PendingConsumer,
    O::PendingProvider,
    O::PendingProject,
    O::PendingStartDate,
    O::Executing,
];
const CANCELABLE: &[OrderState] = &[O::PendingConsumer, O::PendingProvider, O::Executing];
const REVIEWABLE: &[OrderState] = &[O::PendingConsumer, O::PendingProvider];

/// The lifecycle table: who may do what, from where.
pub fn rule(kind: Kind) -> Rule {
    let row = |sees, who, order_from, resource_from| Rule {
        sees,
        who,
        order_from,
        resource_from,
        needs_executing_order: false,
    };
    let creating: Option<&'static [ResourceState]> = Some(&[R::Creating]);
    match kind {
        Kind::ApproveByConsumer => row(
            Sees::Order,
            Who::Consumer,
            Some(&[O::PendingConsumer]),
            creating,
        ),
        Kind::ApproveByProvider => row(
            Sees::Order,
            Who::Provider,
            Some(&[O::PendingProvider]),
            creating,
        ),
        Kind::RejectByConsumer => row(
            Sees::Order,
            Who::Consumer,
            Some(&[O::PendingConsumer]),
            creating,
        ),
        Kind::RejectByProvider => row(
            Sees::Order,
            Who::Provider,
            Some(&[O::PendingProvider]),
            creating,
        ),
        Kind::Cancel => row(Sees::Order, Who::Requester, Some(CANCELABLE), creating),
        Kind::Destroy => row(Sees::Order, Who::Requester, Some(REVIEWABLE), creating),
        Kind::SetStateExecuting => row(
            Sees::Order,
            Who::Provider,
            Some(PENDING_OR_ERRED),
            Some(&[R::Creating, R::Erred]),
        ),
        Kind::SetStateDone => row(Sees::Order, Who::Provider, Some(&[O::Executing]), creating),
        Kind::SetStateErred => row(
            Sees::Order,
            Who::Provider,
            Some(PENDING_OR_EXECUTING),
            creating,
        ),
        Kind::SetBackendId => row(Sees::Order, Who::Provider, None, None),
        Kind::SetAttachment => row(Sees::Order, Who::Requester, Some(REVIEWABLE), None),
        Kind::Unlink => row(Sees::Order, Who::Staff, None, None),
        Kind::Accept => Rule {
            needs_executing_order: true,
            ..row(Sees::Booking, Who::Provider, None, creating)
        },
        Kind::Reject => Rule {
            needs_executing_order: true,
            ..row(Sees::Booking, Who::Party, None, creating)
        },
        Kind::Terminate => row(Sees::Order, Who::Party, None, Some(&[R::Ok, R::Erred])),
        Kind::Expire => row(Sees::Booking, Who::System, None, creating),
    }
}

/// The (Create order state, resource state) pairs a booking can be in.
pub fn pair_allowed(order: OrderState, resource: ResourceState) -> bool {
    match order {
        O::PendingConsumer | O::PendingProvider | O::PendingProject | O::PendingStartDate => {
            resource == R::Creating
        }
        O::Executing => resource == R::Creating,
        O::Done => matches!(resource, R::Ok | R::Terminated),
        O::Erred => matches!(resource, R::Erred | R::Terminated),
        O::Canceled | O::Rejected => resource == R::Terminated,
    }
}

/// The time a booking holds (blocks for everyone else): nothing unless its resource
/// is `Creating` or `OK`; then its slots, or, before they exist, what its order
/// requests while that order is live.
pub fn held(order: Option<&Order>, resource: &Resource) -> Vec<Interval> {
    if !resource.state.holds_slots() {
        return Vec::new();
    }
    if !resource.slots.is_empty() {
        return resource.slots.iter().map(Slot::interval).collect();
    }
    match order {
        Some(o) if o.kind == OrderType::Create && o.state.holds_request() => o.requested(),
        _ => Vec::new(),
    }
}

/// What the rest of the offering looks like to a booking check. One more reason to
/// refuse new orders is one more field here and one more check in
/// [`Availability::check_new`].
#[derive(Clone, Debug)]
pub struct Availability<'a> {
    pub now: DateTime<Utc>,
    /// The offering's availability windows (`attributes.schedules`).
    pub windows: Vec<Interval>,
    /// Time held in the offering (bookings, busy slots, pending requests). Entries of
    /// the booking being changed are ignored by the checks.
    pub taken: &'a [Occupied],
}

impl Availability<'_> {
    fn others(&self, own: Id) -> Vec<Occupied> {
        self.taken
            .iter()
            .filter(|o| o.holder != Some(own))
            .copied()
            .collect()
    }

    /// A new order's time: not past, inside a window, free.
    ///
    /// # Errors
    /// `Invalid` with every rule that fails (upstream's messages).
    pub fn check_new(&self, requested: &[Interval], own: Id) -> Result<(), Refusal> {
        check_schedules(requested, self.now, &self.windows, &self.others(own))
            .map_err(|e| Refusal::Invalid(e.0))
    }

    /// Time a booking holds again after not holding it: free of everything else.
    /// (It was inside the windows and in the future when it was ordered.)
    ///
    /// # Errors
    /// `Invalid` with creation's messages for every interval that is taken.
    pub fn check_revival(&self, intervals: &[Interval], own: Id) -> Result<(), Refusal> {
        check_free(intervals, &self.others(own)).map_err(|e| Refusal::Invalid(e.0))
    }
}

/// One existing booking as the store holds it.
#[derive(Clone, Debug)]
pub struct Booking<'a> {
    /// The order the action names, or the resource's Create order (`None` when it was
    /// unlinked or deleted).
    pub order: Option<&'a Order>,
    /// The order's resource (`None` only for an order whose resource is missing).
    pub resource: Option<&'a Resource>,
    pub offering: &'a Offering,
}

/// What a transition writes. Everything in it is written in one transaction.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// The order, changed (absent when unchanged or deleted).
    pub order: Option<Order>,
    /// The resource, changed.
    pub resource: Option<Resource>,
    /// A new order (terminate's Terminate order).
    pub new_order: Option<Order>,
    /// An order to delete (destroy, unlink), with its attachment.
    pub deleted_order: Option<Id>,
    /// The order's attachment: `Some(Some(bytes))` to store, `Some(None)` to remove.
    pub attachment: Option<Option<Vec<u8>>>,
    /// The order uuid an answer reports (accept, reject, terminate).
    pub order_uuid: Option<Id>,
    /// The offering whose calendar content changed (slots started or stopped being
    /// held): a sync of it is due.
    pub calendar_changed: Option<Id>,
}

/// A fresh slot for each requested interval, with a server-chosen id.
pub fn slots_for(requested: &[Interval], fresh: &mut dyn FnMut() -> Id) -> Vec<Slot> {
    requested
        .iter()
        .map(|iv| Slot {
            start: iv.start,
            end: iv.end,
            backend_id: format!("booking_{}", fresh().hex()),
        })
        .collect()
}

fn states_refusal<T: Copy>(valid: &[T], name: impl Fn(T) -> &'static str) -> Refusal {
    Refusal::States(valid.iter().map(|s| name(*s)).collect())
}

/// Applies `action` by a caller of `standing` to `booking`.
///
/// # Errors
/// The first refusal in Waldur's order: [`Refusal::NotFound`], [`Refusal::Forbidden`],
/// [`Refusal::States`], then [`Refusal::Invalid`] / [`Refusal::Field`].
pub fn apply(
    action: Action,
    booking: &Booking<'_>,
    acting: &Acting,
    availability: &Availability<'_>,
    fresh: &mut dyn FnMut() -> Id,
) -> Result<Outcome, Refusal> {
    let standing = &acting.standing;
    let kind = action.kind();
    let r = rule(kind);
    let now = availability.now;
    if !standing.sees(r.sees) {
        return Err(Refusal::NotFound);
    }
    if !standing.may(r.who) {
        return Err(Refusal::Forbidden);
    }
    if let Some(valid) = r.order_from {
        let ok = booking.order.is_some_and(|o| valid.contains(&o.state));
        if !ok {
            return Err(states_refusal(valid, OrderState::as_str));
        }
    }
    if let Some(valid) = r.resource_from {
        if let Some(res) = booking.resource {
            if !valid.contains(&res.state) {
                return Err(states_refusal(valid, ResourceState::as_str));
            }
        } else if kind.on_resource() {
            return Err(Refusal::NotFound);
        }
    }
    let order = booking.order.cloned();
    if r.needs_executing_order
        && !order
            .as_ref()
            .is_some_and(|o| o.kind == OrderType::Create && o.state == O::Executing)
    {
        return Err(Refusal::Invalid(vec![ORDER_NOT_FOUND.to_string()]));
    }
    let mut o = order;
    let mut res = booking.resource.cloned();
    let mut out = Outcome::default();
    let mut touch_order = true;
    match action {
        Action::ApproveByConsumer | Action::ApproveByProvider => {
            if let Some(o) = &mut o {
                if kind == Kind::ApproveByConsumer {
                    o.consumer_reviewed_by = acting.user();
                    o.consumer_reviewed_at = Some(now);
                } else {
                    o.provider_reviewed_by = acting.user();
                    o.provider_reviewed_at = Some(now);
                }
                // Booking offerings need no further review: the order executes.
                o.state = O::Executing;
            }
            book_slots(o.as_ref(), res.as_mut(), fresh);
        }
        Action::RejectByConsumer | Action::RejectByProvider => {
            if let Some(o) = &mut o {
                if kind == Kind::RejectByConsumer {
                    o.consumer_reviewed_by = acting.user();
                    o.consumer_reviewed_at = Some(now);
                } else {
                    o.provider_reviewed_by = acting.user();
                    o.provider_reviewed_at = Some(now);
                }
                o.state = O::Rejected;
            }
            end(res.as_mut(), R::Terminated);
        }
        Action::Cancel => {
            if let Some(o) = &mut o {
                o.state = O::Canceled;
            }
            end(res.as_mut(), R::Terminated);
        }
        Action::Destroy | Action::Unlink => {
            if kind == Kind::Destroy {
                end(res.as_mut(), R::Terminated);
            }
            out.deleted_order = o.as_ref().map(|o| o.id);
            touch_order = false;
        }
        Action::SetStateExecuting => {
            if let Some(o) = &mut o {
                o.state = O::Executing;
            }
            if let Some(res) = &mut res {
                res.state = R::Creating;
            }
            book_slots(o.as_ref(), res.as_mut(), fresh);
        }
        Action::SetStateDone => {
            if let Some(o) = &mut o {
                o.state = O::Done;
                o.completed_at = Some(now);
            }
            book_slots(o.as_ref(), res.as_mut(), fresh);
            end(res.as_mut(), R::Ok);
        }
        Action::SetStateErred(body) => {
            let report = body?;
            if let Some(o) = &mut o {
                o.state = O::Erred;
                o.error_message = report.message.clone();
                o.error_traceback = report.traceback;
            }
            if let Some(res) = &mut res {
                res.state = R::Erred;
                res.error_message = report.message;
            }
        }
        Action::SetBackendId(body) => {
            let id = body?;
            if let Some(o) = &mut o {
                o.backend_id = id;
            }
            res = None;
        }
        Action::SetAttachment(file) => {
            if let Some(o) = &mut o {
                o.attachment = file.as_ref().map(|a| a.name.clone());
            }
            out.attachment = Some(file.map(|a| a.stored));
            res = None;
        }
        Action::Accept => {
            if let Some(o) = &mut o {
                o.state = O::Done;
                o.completed_at = Some(now);
                if o.provider_reviewed_by.is_none() {
                    o.provider_reviewed_by = acting.user();
                    o.provider_reviewed_at = Some(now);
                }
                out.order_uuid = Some(o.id);
            }
            book_slots(o.as_ref(), res.as_mut(), fresh);
            end(res.as_mut(), R::Ok);
        }
        Action::Reject => {
            if let Some(o) = &mut o {
                o.state = O::Canceled;
                out.order_uuid = Some(o.id);
            }
            end(res.as_mut(), R::Terminated);
        }
        Action::Terminate => {
            let Some(r0) = booking.resource else {
                return Err(Refusal::NotFound);
            };
            let t = terminate_order(r0, acting.user(), now, fresh);
            out.order_uuid = Some(t.id);
            out.new_order = Some(t);
            end(res.as_mut(), R::Terminated);
            touch_order = false;
        }
        Action::Expire => {
            let Some(r0) = booking.resource else {
                return Err(Refusal::NotFound);
            };
            let time = held(booking.order, r0);
            if time.is_empty() || time.iter().any(|i| i.start > now) {
                return Err(Refusal::Invalid(vec![
                    "The booking's time has not all started.".to_string(),
                ]));
            }
            match &mut o {
                Some(o) if o.state.is_pending() || o.state == O::Executing => {
                    o.state = O::Canceled;
                    o.termination_comment = "Not accepted before the booked time.".into();
                }
                _ => touch_order = false,
            }
            end(res.as_mut(), R::Terminated);
        }
    }
    // Time held again must be free of everything else.
    if let (Some(before), Some(after)) = (booking.resource, res.as_ref()) {
        let was = held(booking.order, before);
        let now_held = held(o.as_ref().or(booking.order), after);
        let revived: Vec<Interval> = now_held
            .iter()
            .filter(|i| !was.contains(i))
            .copied()
            .collect();
        if !revived.is_empty() {
            availability.check_revival(&revived, after.id)?;
        }
        let live = |r: &Resource| -> Vec<Interval> {
            if r.state.holds_slots() {
                r.slots.iter().map(Slot::interval).collect()
            } else {
                Vec::new()
            }
        };
        if live(before) != live(after) {
            out.calendar_changed = Some(after.offering);
        }
    }
    if touch_order {
        if let Some(mut o) = o {
            o.modified = now;
            out.order = Some(o);
        }
    }
    if let Some(mut r) = res {
        r.modified = now;
        out.resource = Some(r);
    }
    Ok(out)
}

fn book_slots(o: Option<&Order>, r: Option<&mut Resource>, fresh: &mut dyn FnMut() -> Id) {
    if let (Some(o), Some(r)) = (o, r) {
        if r.slots.is_empty() {
            r.slots = slots_for(&o.requested(), fresh);
        }
    }
}

fn end(r: Option<&mut Resource>, st: ResourceState) {
    if let Some(r) = r {
        r.state = st;
    }
}

fn terminate_order(
    r: &Resource,
    created_by: Option<Id>,
    now: DateTime<Utc>,
    fresh: &mut dyn FnMut() -> Id,
) -> Order {
    let by = created_by.unwrap_or(r.created_by);
    Order {
        id: fresh(),
        offering: r.offering,
        project: r.project,
        resource: r.id,
        kind: OrderType::Terminate,
        state: O::Done,
        attributes: Value::Object(serde_json::Map::new()),
        created: now,
        modified: now,
        created_by: by,
        consumer_reviewed_by: Some(by),
        consumer_reviewed_at: Some(now),
        provider_reviewed_by: None,
        provider_reviewed_at: None,
        completed_at: Some(now),
        error_message: String::new(),
        error_traceback: String::new(),
        backend_id: String::new(),
        attachment: None,
        request_comment: String::new(),
        callback_url: String::new(),
        start_date: None,
        termination_comment: String::new(),
    }
}

/// A new booking order as the client sent it (hyperlinks already resolved to ids).
#[derive(Clone, Debug, PartialEq)]
pub struct NewOrder {
    pub attributes: Value,
    pub request_comment: String,
    pub callback_url: String,
    pub start_date: Option<NaiveDate>,
}

/// A new order and its resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Created {
    pub order: Order,
    pub resource: Resource,
}

/// Creates a booking order: the offering must be orderable by the caller and active,
/// the project the caller's, the time free. A caller who approves for the project's
/// customer approves at once; booking offerings need no provider review, so such an
/// order executes at once and its slots are booked (ids chosen here; any `backend_id`
/// in a schedule item is ignored).
///
/// # Errors
/// `Field` for an offering or project the caller cannot order from or for, or an
/// offering that is not active; `Invalid` with the schedule rules' messages.
pub fn create(
    req: &NewOrder,
    offering: Option<&Offering>,
    project: Option<&Project>,
    acting: &Acting,
    availability: &Availability<'_>,
    fresh: &mut dyn FnMut() -> Id,
) -> Result<Created, Refusal> {
    let s = &acting.standing;
    let invalid = |f| Refusal::Field(f, "Invalid hyperlink - Object does not exist.".into());
    let offering = offering
        .filter(|o| o.shared || s.acts_for_provider())
        .ok_or_else(|| invalid("offering"))?;
    let project = project
        .filter(|_| s.may_order_for_project())
        .ok_or_else(|| invalid("project"))?;
    if offering.state != OfferingState::Active {
        return Err(Refusal::Field("offering", "Offering is not available.".into()));
    }
    let user = acting.user().ok_or(Refusal::Forbidden)?;
    let requested = super::booking::parse_schedules(req.attributes.get("schedules"))
        .map_err(|e| Refusal::Invalid(e.0))?;
    let now = availability.now;
    let (order_id, resource_id) = (fresh(), fresh());
    availability.check_new(&requested, resource_id)?;
    let auto = s.approves_for_consumer();
    let name = req
        .attributes
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .map_or_else(|| offering.name.clone(), String::from);
    let order = Order {
        id: order_id,
        offering: offering.id,
        project: project.id,
        resource: resource_id,
        kind: OrderType::Create,
        state: if auto { O::Executing } else { O::PendingConsumer },
        attributes: req.attributes.clone(),
        created: now,
        modified: now,
        created_by: user,
        consumer_reviewed_by: auto.then_some(user),
        consumer_reviewed_at: auto.then_some(now),
        provider_reviewed_by: None,
        provider_reviewed_at: None,
        completed_at: None,
        error_message: String::new(),
        error_traceback: String::new(),
        backend_id: String::new(),
        attachment: None,
        request_comment: req.request_comment.clone(),
        callback_url: req.callback_url.clone(),
        start_date: req.start_date,
        termination_comment: String::new(),
    };
    let resource = Resource {
        id: resource_id,
        slug: slugify(&name),
        name,
        description: req
            .attributes
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        offering: offering.id,
        project: project.id,
        state: R::Creating,
        backend_id: String::new(),
        attributes: req.attributes.clone(),
        slots: if auto {
            slots_for(&requested, fresh)
        } else {
            Vec::new()
        },
        created: now,
        modified: now,
        created_by: user,
        consumer_reviewed_by: order.consumer_reviewed_by,
        creation_order: Some(order_id),
        end_date: None,
        error_message: String::new(),
    };
    Ok(Created { order, resource })
}

/// A URL-safe slug of a name (Waldur's `slugify`).
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').chars().take(50).collect()
}
