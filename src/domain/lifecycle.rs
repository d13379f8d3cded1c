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
use super::calendar::StaleBusy;
use super::format::slugify;
use super::{
    Attachment, Customer, Id, Interval, Offering, OfferingState, Order, OrderState, OrderType,
    Project, Resource, ResourceState, Slot,
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

/// The note a booking's `reject` (by anyone but the requester) leaves on the order it
/// cancels.
pub const REJECTED_NOTE: &str = "Rejected.";

/// The note the daily clean-up leaves on an order it cancels because nobody accepted
/// it before its time.
pub const EXPIRED_NOTE: &str = "Not accepted before the booked time.";

/// An order's state as its requester should read it. The booking `reject` action
/// leaves the Create order `canceled` (Waldur's contract), noting [`REJECTED_NOTE`];
/// such an order reads as `rejected`, like one the order's own reject actions end.
/// Every other order reads as its state.
pub fn shown_state(order: &Order) -> OrderState {
    if order.state == O::Canceled
        && order.kind == OrderType::Create
        && order.termination_comment == REJECTED_NOTE
    {
        O::Rejected
    } else {
        order.state
    }
}

/// Whether a Create order was canceled because nobody accepted it before its time
/// (the clean-up's [`Action::Expire`], which notes [`EXPIRED_NOTE`]): the API keeps
/// it `canceled` (Waldur's contract); people read it as expired, not as cancelled
/// by someone.
pub fn expired(order: &Order) -> bool {
    order.state == O::Canceled
        && order.kind == OrderType::Create
        && order.termination_comment == EXPIRED_NOTE
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
    /// Set when the busy time read from the offering's Google Calendar is too old to
    /// trust (`sync.max_busy_age_secs`): new orders are refused, since `taken` may
    /// miss time someone took in Google meanwhile.
    pub stale_busy: Option<StaleBusy>,
}

impl Availability<'_> {
    fn others(&self, own: Id) -> Vec<Occupied> {
        self.taken
            .iter()
            .filter(|o| o.holder != Some(own))
            .copied()
            .collect()
    }

    /// A new order's time: not past, inside a window, free, and the busy time it is
    /// checked against not stale.
    ///
    /// # Errors
    /// `Invalid` with the stale busy time's message, or with every rule that fails
    /// (upstream's messages).
    pub fn check_new(&self, requested: &[Interval], own: Id) -> Result<(), Refusal> {
        if let Some(stale) = &self.stale_busy {
            return Err(Refusal::Invalid(vec![stale.message()]));
        }
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
    /// The order's attachment: `Some(Some(file))` to store, `Some(None)` to remove.
    pub attachment: Option<Option<Attachment>>,
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
            out.attachment = Some(file);
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
                // The API's contract keeps the order `canceled`; the note tells a
                // rejection apart from the requester withdrawing ([`shown_state`]).
                if !standing.creator {
                    o.termination_comment = REJECTED_NOTE.into();
                }
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
                    o.termination_comment = EXPIRED_NOTE.into();
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
        return Err(Refusal::Field(
            "offering",
            "Offering is not available.".into(),
        ));
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
        state: if auto {
            O::Executing
        } else {
            O::PendingConsumer
        },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::booking::OccupiedKind;
    use crate::domain::{Category, OfferingState};
    use chrono::TimeZone;
    use serde_json::json;

    /// The callers of the table, each with the standing it has towards the booking.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Role {
        Staff,
        Provider,
        ConsumerOwner,
        Creator,
        Member,
        Stranger,
        System,
    }
    const ROLES: [Role; 7] = [
        Role::Staff,
        Role::Provider,
        Role::ConsumerOwner,
        Role::Creator,
        Role::Member,
        Role::Stranger,
        Role::System,
    ];

    fn user() -> Id {
        Id::parse("00000000000000000000000000000001").expect("id")
    }

    fn acting(role: Role) -> Acting {
        let s = Standing::default();
        let standing = match role {
            Role::Staff => Standing { staff: true, ..s },
            Role::Provider => Standing {
                provider: true,
                ..s
            },
            Role::ConsumerOwner => Standing {
                consumer_owner: true,
                consumer_connected: true,
                ..s
            },
            Role::Creator => Standing {
                project_member: true,
                creator: true,
                ..s
            },
            Role::Member => Standing {
                project_member: true,
                ..s
            },
            Role::Stranger => s,
            Role::System => Standing { system: true, ..s },
        };
        let actor = match role {
            Role::System => Actor::System,
            _ => Actor::User {
                id: user(),
                staff: role == Role::Staff,
            },
        };
        Acting { actor, standing }
    }

    fn t(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, d, h, 0, 0)
            .single()
            .expect("valid")
    }

    fn offering() -> Offering {
        Offering {
            id: Id::new_v4(),
            customer: Id::new_v4(),
            name: "Microscope".into(),
            slug: "microscope".into(),
            description: String::new(),
            full_description: String::new(),
            category: Category {
                id: Id::new_v4(),
                title: "Labs".into(),
            },
            state: OfferingState::Active,
            time_zone: chrono_tz::UTC,
            location: String::new(),
            latitude: None,
            longitude: None,
            attributes: json!({"schedules": [
                {"start": "2030-01-01T00:00:00Z", "end": "2030-02-01T00:00:00Z"}
            ]}),
            plugin_options: json!({}),
            shared: true,
            billable: false,
            backend_id: String::new(),
            created: t(1, 0),
            modified: t(1, 0),
        }
    }

    fn new_order(attributes: Value) -> NewOrder {
        NewOrder {
            attributes,
            request_comment: String::new(),
            callback_url: String::new(),
            start_date: None,
        }
    }

    fn project() -> Project {
        Project {
            id: Id::new_v4(),
            customer: Id::new_v4(),
            name: "Imaging".into(),
            slug: "imaging".into(),
            description: String::new(),
            members: vec![],
            created: t(1, 0),
        }
    }

    /// A booking of 10:00-11:00 on day 5 in the given states (`None`: unlinked).
    fn booking(
        off: &Offering,
        os: Option<OrderState>,
        rs: ResourceState,
    ) -> (Option<Order>, Resource) {
        let attributes = json!({"name": "b", "schedules": [
            {"start": "2030-01-05T10:00:00Z", "end": "2030-01-05T11:00:00Z"}
        ]});
        let free = Availability {
            now: t(1, 0),
            windows: off.availability(),
            taken: &[],
            stale_busy: None,
        };
        let creator = Acting {
            actor: Actor::User {
                id: user(),
                staff: false,
            },
            standing: Standing {
                project_member: true,
                ..Standing::default()
            },
        };
        let mut c = create(
            &new_order(attributes),
            Some(off),
            Some(&project()),
            &creator,
            &free,
            &mut Id::new_v4,
        )
        .expect("created");
        let mut o = c.order;
        let mut r = c.resource;
        assert!(r.slots.is_empty());
        if let Some(os) = os {
            o.state = os;
            if !os.is_pending() {
                r.slots = slots_for(&o.requested(), &mut Id::new_v4);
            }
        } else {
            r.slots = slots_for(&o.requested(), &mut Id::new_v4);
        }
        r.state = rs;
        c.order = o;
        (os.map(|_| c.order), r)
    }

    fn action(kind: Kind) -> Action {
        match kind {
            Kind::ApproveByConsumer => Action::ApproveByConsumer,
            Kind::ApproveByProvider => Action::ApproveByProvider,
            Kind::RejectByConsumer => Action::RejectByConsumer,
            Kind::RejectByProvider => Action::RejectByProvider,
            Kind::Cancel => Action::Cancel,
            Kind::Destroy => Action::Destroy,
            Kind::SetStateExecuting => Action::SetStateExecuting,
            Kind::SetStateDone => Action::SetStateDone,
            Kind::SetStateErred => Action::SetStateErred(Ok(ErrorReport::default())),
            Kind::SetBackendId => Action::SetBackendId(Ok("ext-1".into())),
            Kind::SetAttachment => Action::SetAttachment(None),
            Kind::Unlink => Action::Unlink,
            Kind::Accept => Action::Accept,
            Kind::Reject => Action::Reject,
            Kind::Terminate => Action::Terminate,
            Kind::Expire => Action::Expire,
        }
    }

    /// What the table expects of a successful action.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum End {
        /// The order ends in this state (`None`: unchanged) and the resource in this.
        Pair(Option<OrderState>, Option<ResourceState>),
        /// The order is deleted; the resource ends in this (`None`: unchanged).
        Deleted(Option<ResourceState>),
    }

    struct Spec {
        kind: Kind,
        /// Who sees it (else 404).
        sees: &'static [Role],
        /// Who may (else 403).
        may: &'static [Role],
        /// Order states it starts from (else 409); `None`: any.
        from: Option<&'static [OrderState]>,
        /// Resource states it starts from (else 409); `None`: any.
        from_resource: Option<&'static [ResourceState]>,
        /// Needs the Create order executing (else 400).
        executing: bool,
        end: End,
    }

    use Role::*;
    const SEES_ORDER: &[Role] = &[Staff, Provider, ConsumerOwner, Creator, Member, System];
    const SEES_BOOKING: &[Role] = &[Staff, Provider, Creator, System];

    /// The lifecycle as the contract states it, written independently of [`rule`].
    fn specs() -> Vec<Spec> {
        let creating: Option<&'static [ResourceState]> = Some(&[R::Creating]);
        vec![
            Spec {
                kind: Kind::ApproveByConsumer,
                sees: SEES_ORDER,
                may: &[Staff, ConsumerOwner],
                from: Some(&[O::PendingConsumer]),
                from_resource: creating,
                executing: false,
                end: End::Pair(Some(O::Executing), Some(R::Creating)),
            },
            Spec {
                kind: Kind::ApproveByProvider,
                sees: SEES_ORDER,
                may: &[Staff, Provider],
                from: Some(&[O::PendingProvider]),
                from_resource: creating,
                executing: false,
                end: End::Pair(Some(O::Executing), Some(R::Creating)),
            },
            Spec {
                kind: Kind::RejectByConsumer,
                sees: SEES_ORDER,
                may: &[Staff, ConsumerOwner],
                from: Some(&[O::PendingConsumer]),
                from_resource: creating,
                executing: false,
                end: End::Pair(Some(O::Rejected), Some(R::Terminated)),
            },
            Spec {
                kind: Kind::RejectByProvider,
                sees: SEES_ORDER,
                may: &[Staff, Provider],
                from: Some(&[O::PendingProvider]),
                from_resource: creating,
                executing: false,
                end: End::Pair(Some(O::Rejected), Some(R::Terminated)),
            },
            Spec {
                kind: Kind::Cancel,
                sees: SEES_ORDER,
                may: &[Staff, ConsumerOwner, Creator],
                from: Some(&[O::PendingConsumer, O::PendingProvider, O::Executing]),
                from_resource: creating,
                executing: false,
                end: End::Pair(Some(O::Canceled), Some(R::Terminated)),
            },
            Spec {
                kind: Kind::Destroy,
                sees: SEES_ORDER,
                may: &[Staff, ConsumerOwner, Creator],
                from: Some(&[O::PendingConsumer, O::PendingProvider]),
                from_resource: creating,
                executing: false,
                end: End::Deleted(Some(R::Terminated)),
            },
            Spec {
                kind: Kind::SetStateExecuting,
                sees: SEES_ORDER,
                may: &[Staff, Provider],
                from: Some(&[
                    O::PendingConsumer,
                    O::PendingProvider,
                    O::PendingProject,
                    O::PendingStartDate,
                    O::Erred,
                ]),
                from_resource: Some(&[R::Creating, R::Erred]),
                executing: false,
                end: End::Pair(Some(O::Executing), Some(R::Creating)),
            },
            Spec {
                kind: Kind::SetStateDone,
                sees: SEES_ORDER,
                may: &[Staff, Provider],
                from: Some(&[O::Executing]),
                from_resource: creating,
                executing: false,
                end: End::Pair(Some(O::Done), Some(R::Ok)),
            },
            Spec {
                kind: Kind::SetStateErred,
                sees: SEES_ORDER,
                may: &[Staff, Provider],
                from: Some(&[
                    O::PendingConsumer,
                    O::PendingProvider,
                    O::PendingProject,
                    O::PendingStartDate,
                    O::Executing,
                ]),
                from_resource: creating,
                executing: false,
                end: End::Pair(Some(O::Erred), Some(R::Erred)),
            },
            Spec {
                kind: Kind::SetBackendId,
                sees: SEES_ORDER,
                may: &[Staff, Provider],
                from: None,
                from_resource: None,
                executing: false,
                end: End::Pair(None, None),
            },
            Spec {
                kind: Kind::SetAttachment,
                sees: SEES_ORDER,
                may: &[Staff, ConsumerOwner, Creator],
                from: Some(&[O::PendingConsumer, O::PendingProvider]),
                from_resource: None,
                executing: false,
                end: End::Pair(None, None),
            },
            Spec {
                kind: Kind::Unlink,
                sees: SEES_ORDER,
                may: &[Staff],
                from: None,
                from_resource: None,
                executing: false,
                end: End::Deleted(None),
            },
            Spec {
                kind: Kind::Accept,
                sees: SEES_BOOKING,
                may: &[Staff, Provider],
                from: None,
                from_resource: creating,
                executing: true,
                end: End::Pair(Some(O::Done), Some(R::Ok)),
            },
            Spec {
                kind: Kind::Reject,
                sees: SEES_BOOKING,
                may: &[Staff, Provider, ConsumerOwner, Creator],
                from: None,
                from_resource: creating,
                executing: true,
                end: End::Pair(Some(O::Canceled), Some(R::Terminated)),
            },
            Spec {
                kind: Kind::Terminate,
                sees: SEES_ORDER,
                may: &[Staff, Provider, ConsumerOwner, Creator],
                from: None,
                from_resource: Some(&[R::Ok, R::Erred]),
                executing: false,
                end: End::Pair(None, Some(R::Terminated)),
            },
            Spec {
                kind: Kind::Expire,
                sees: SEES_BOOKING,
                may: &[System],
                from: None,
                from_resource: creating,
                executing: false,
                end: End::Pair(Some(O::Canceled), Some(R::Terminated)),
            },
        ]
    }

    /// Every (Create order state, resource state) pair that can exist, plus resources
    /// whose order was unlinked.
    fn states() -> Vec<(Option<OrderState>, ResourceState)> {
        let mut v: Vec<(Option<OrderState>, ResourceState)> = OrderState::ALL
            .into_iter()
            .flat_map(|o| ResourceState::ALL.into_iter().map(move |r| (Some(o), r)))
            .filter(|(o, r)| o.is_some_and(|o| pair_allowed(o, *r)))
            .collect();
        v.extend(ResourceState::ALL.into_iter().map(|r| (None, r)));
        v
    }

    #[test]
    fn the_lifecycle_table_holds_for_every_action_state_and_role() {
        let off = offering();
        let mut checked = 0;
        for spec in specs() {
            for (os, rs) in states() {
                // Order actions name an order: an unlinked booking has none.
                if os.is_none() && !spec.kind.on_resource() {
                    continue;
                }
                for role in ROLES {
                    let (order, resource) = booking(&off, os, rs);
                    // After the booked time, so that Expire applies.
                    let availability = Availability {
                        now: t(6, 0),
                        windows: off.availability(),
                        taken: &[],
                        stale_busy: None,
                    };
                    let b = Booking {
                        order: order.as_ref(),
                        resource: Some(&resource),
                        offering: &off,
                    };
                    let got = apply(
                        action(spec.kind),
                        &b,
                        &acting(role),
                        &availability,
                        &mut Id::new_v4,
                    );
                    let case = format!("{:?} on {os:?}/{rs:?} by {role:?}", spec.kind);
                    checked += 1;
                    if !spec.sees.contains(&role) {
                        assert_eq!(got, Err(Refusal::NotFound), "{case}");
                        continue;
                    }
                    if !spec.may.contains(&role) {
                        assert_eq!(got, Err(Refusal::Forbidden), "{case}");
                        continue;
                    }
                    let order_ok = spec.from.is_none_or(|f| os.is_some_and(|o| f.contains(&o)));
                    let res_ok = spec.from_resource.is_none_or(|f| f.contains(&rs));
                    if !order_ok || !res_ok {
                        assert!(matches!(got, Err(Refusal::States(_))), "{case}: {got:?}");
                        continue;
                    }
                    if spec.executing && os != Some(O::Executing) {
                        assert_eq!(
                            got,
                            Err(Refusal::Invalid(vec![ORDER_NOT_FOUND.into()])),
                            "{case}"
                        );
                        continue;
                    }
                    let out = got.unwrap_or_else(|e| panic!("{case}: refused {e:?}"));
                    let order_after = match spec.end {
                        End::Deleted(_) => {
                            assert_eq!(out.deleted_order, order.as_ref().map(|o| o.id), "{case}");
                            assert!(out.order.is_none(), "{case}");
                            None
                        }
                        End::Pair(want, _) => {
                            let now = out.order.as_ref().map(|o| o.state).or(os);
                            if let Some(w) = want {
                                // Expire leaves an order that no longer holds time alone.
                                if os.is_some() {
                                    assert_eq!(now, Some(w), "{case}");
                                }
                            } else {
                                assert_eq!(now, os, "{case}");
                            }
                            now
                        }
                    };
                    let want_r = match spec.end {
                        End::Deleted(r) | End::Pair(_, r) => r,
                    };
                    let r_after = out.resource.as_ref().map_or(rs, |r| r.state);
                    assert_eq!(r_after, want_r.unwrap_or(rs), "{case}");
                    if let Some(o) = order_after {
                        assert!(
                            pair_allowed(o, r_after),
                            "{case}: ends in {o:?}/{r_after:?}"
                        );
                    }
                    if matches!(spec.kind, Kind::Accept | Kind::Reject | Kind::Terminate) {
                        assert!(out.order_uuid.is_some(), "{case}: no order uuid");
                    }
                    if let Some(r) = &out.resource {
                        if r.state.holds_slots() && order_after.is_some_and(|o| !o.is_pending()) {
                            assert!(!r.slots.is_empty(), "{case}: live without slots");
                        }
                    }
                }
            }
        }
        assert!(checked > 1000, "{checked}");
    }

    #[test]
    fn a_booking_rejected_by_anyone_but_its_requester_reads_as_rejected_and_one_never_accepted_in_time_as_expired_table(
    ) {
        let off = offering();
        // (action, by, state shown, expired)
        let cases = [
            (Action::Reject, Role::Provider, O::Rejected, false),
            (Action::Reject, Role::Staff, O::Rejected, false),
            (Action::Reject, Role::Creator, O::Canceled, false),
            (Action::Cancel, Role::Creator, O::Canceled, false),
            (Action::Expire, Role::System, O::Canceled, true),
            (Action::Accept, Role::Provider, O::Done, false),
        ];
        for (act, role, shown, gone_by) in cases {
            let (order, resource) = booking(&off, Some(O::Executing), R::Creating);
            let b = Booking {
                order: order.as_ref(),
                resource: Some(&resource),
                offering: &off,
            };
            let name = format!("{act:?} by {role:?}");
            let avail = Availability {
                now: if act == Action::Expire {
                    t(30, 0)
                } else {
                    t(1, 0)
                },
                windows: off.availability(),
                taken: &[],
                stale_busy: None,
            };
            let out = apply(act, &b, &acting(role), &avail, &mut Id::new_v4)
                .unwrap_or_else(|e| panic!("{name}: {e:?}"));
            let o = out.order.expect("order changed");
            assert_eq!(shown_state(&o), shown, "{name}");
            assert_eq!(expired(&o), gone_by, "{name}");
            // The API still answers the contract's state.
            assert_ne!(o.state, O::Rejected, "{name}");
        }
        // An order its own reject actions end reads as it is.
        let (order, _) = booking(&off, Some(O::Rejected), R::Terminated);
        let order = order.expect("order");
        assert_eq!(shown_state(&order), O::Rejected);
        assert!(!expired(&order));
        // The note alone does not make an order expired: only a canceled Create order.
        let mut noted = order;
        noted.termination_comment = EXPIRED_NOTE.into();
        assert!(!expired(&noted));
        noted.state = O::Canceled;
        assert!(expired(&noted));
        noted.kind = OrderType::Terminate;
        assert!(!expired(&noted));
    }

    #[test]
    fn terminal_orders_refuse_every_state_change() {
        let off = offering();
        for os in [O::Done, O::Canceled, O::Rejected] {
            for rs in ResourceState::ALL
                .into_iter()
                .filter(|r| pair_allowed(os, *r))
            {
                for kind in Kind::ALL.into_iter().filter(|k| !k.on_resource()) {
                    if matches!(kind, Kind::SetBackendId | Kind::Unlink) {
                        continue; // change no state
                    }
                    let (order, resource) = booking(&off, Some(os), rs);
                    let b = Booking {
                        order: order.as_ref(),
                        resource: Some(&resource),
                        offering: &off,
                    };
                    let avail = Availability {
                        now: t(1, 0),
                        windows: off.availability(),
                        taken: &[],
                        stale_busy: None,
                    };
                    let got = apply(action(kind), &b, &acting(Staff), &avail, &mut Id::new_v4);
                    assert!(
                        matches!(got, Err(Refusal::States(_))),
                        "{kind:?} on {os:?}/{rs:?}: {got:?}"
                    );
                }
            }
        }
    }

    fn other_booking(r: &Resource) -> Vec<Occupied> {
        r.slots
            .iter()
            .map(|s| Occupied {
                interval: s.interval(),
                kind: OccupiedKind::Booking,
                holder: Some(Id::new_v4()),
            })
            .collect()
    }

    #[test]
    fn time_taken_back_is_checked_against_everything_else_held() {
        let off = offering();
        // (name, from order state, resource state, action, taken by another?, want error)
        let cases: Vec<(&str, OrderState, ResourceState, Kind, bool, bool)> = vec![
            (
                "executing from erred, time since booked",
                O::Erred,
                R::Erred,
                Kind::SetStateExecuting,
                true,
                true,
            ),
            (
                "executing from erred, time still free",
                O::Erred,
                R::Erred,
                Kind::SetStateExecuting,
                false,
                false,
            ),
            (
                "executing from pending: held all along",
                O::PendingProvider,
                R::Creating,
                Kind::SetStateExecuting,
                true,
                false,
            ),
            (
                "approve: held all along",
                O::PendingConsumer,
                R::Creating,
                Kind::ApproveByConsumer,
                true,
                false,
            ),
            (
                "accept: held all along",
                O::Executing,
                R::Creating,
                Kind::Accept,
                true,
                false,
            ),
        ];
        for (name, os, rs, kind, taken, want_err) in cases {
            let (order, resource) = booking(&off, Some(os), rs);
            let (_, twin) = booking(&off, Some(O::Executing), R::Creating);
            let occupied = if taken { other_booking(&twin) } else { vec![] };
            let avail = Availability {
                now: t(1, 0),
                windows: off.availability(),
                taken: &occupied,
                stale_busy: None,
            };
            let b = Booking {
                order: order.as_ref(),
                resource: Some(&resource),
                offering: &off,
            };
            let got = apply(action(kind), &b, &acting(Staff), &avail, &mut Id::new_v4);
            if want_err {
                let Err(Refusal::Invalid(msgs)) = &got else {
                    panic!("{name}: {got:?}");
                };
                assert_eq!(
                    msgs,
                    &vec!["Time period from 2030-01-05T10:00:00Z to 2030-01-05T11:00:00Z is not available.".to_string()],
                    "{name}"
                );
            } else {
                assert!(got.is_ok(), "{name}: {got:?}");
            }
        }
    }

    #[test]
    fn a_booking_never_collides_with_its_own_time() {
        let off = offering();
        let (order, resource) = booking(&off, Some(O::Erred), R::Erred);
        let own: Vec<Occupied> = resource
            .slots
            .iter()
            .map(|s| Occupied {
                interval: s.interval(),
                kind: OccupiedKind::Booking,
                holder: Some(resource.id),
            })
            .collect();
        let avail = Availability {
            now: t(1, 0),
            windows: off.availability(),
            taken: &own,
            stale_busy: None,
        };
        let b = Booking {
            order: order.as_ref(),
            resource: Some(&resource),
            offering: &off,
        };
        let out = apply(
            Action::SetStateExecuting,
            &b,
            &acting(Provider),
            &avail,
            &mut Id::new_v4,
        )
        .expect("own time");
        assert_eq!(out.calendar_changed, Some(off.id));
    }

    #[test]
    fn accept_answers_the_order_and_terminate_a_new_terminate_order() {
        let off = offering();
        let avail = Availability {
            now: t(1, 0),
            windows: off.availability(),
            taken: &[],
            stale_busy: None,
        };
        let (order, resource) = booking(&off, Some(O::Executing), R::Creating);
        let b = Booking {
            order: order.as_ref(),
            resource: Some(&resource),
            offering: &off,
        };
        let out = apply(
            Action::Accept,
            &b,
            &acting(Provider),
            &avail,
            &mut Id::new_v4,
        )
        .expect("accept");
        assert_eq!(out.order_uuid, order.as_ref().map(|o| o.id));
        assert_eq!(out.calendar_changed, None, "slots stay live");
        let (order, resource) = booking(&off, Some(O::Done), R::Ok);
        let b = Booking {
            order: order.as_ref(),
            resource: Some(&resource),
            offering: &off,
        };
        let out = apply(
            Action::Terminate,
            &b,
            &acting(Creator),
            &avail,
            &mut Id::new_v4,
        )
        .expect("terminate");
        let t_order = out.new_order.expect("a Terminate order");
        assert_eq!(t_order.kind, OrderType::Terminate);
        assert_eq!(t_order.state, O::Done);
        assert_eq!(t_order.created_by, user());
        assert_eq!(t_order.resource, resource.id);
        assert_eq!(out.order_uuid, Some(t_order.id));
        assert!(out.order.is_none(), "the Create order stays done");
        assert_eq!(out.resource.map(|r| r.state), Some(R::Terminated));
        assert_eq!(out.calendar_changed, Some(off.id), "the slot is freed");
    }

    #[test]
    fn body_errors_come_after_permission_and_state() {
        let off = offering();
        let avail = Availability {
            now: t(1, 0),
            windows: off.availability(),
            taken: &[],
            stale_busy: None,
        };
        let bad = || Action::SetStateErred(Err(Refusal::Body(json!({"detail": "bad"}))));
        let (order, resource) = booking(&off, Some(O::Executing), R::Creating);
        let b = Booking {
            order: order.as_ref(),
            resource: Some(&resource),
            offering: &off,
        };
        let cases = [
            (Stranger, Refusal::NotFound),
            (Member, Refusal::Forbidden),
            (Provider, Refusal::Body(json!({"detail": "bad"}))),
        ];
        for (role, want) in cases {
            assert_eq!(
                apply(bad(), &b, &acting(role), &avail, &mut Id::new_v4),
                Err(want),
                "{role:?}"
            );
        }
        let (order, resource) = booking(&off, Some(O::Done), R::Ok);
        let b = Booking {
            order: order.as_ref(),
            resource: Some(&resource),
            offering: &off,
        };
        assert!(matches!(
            apply(bad(), &b, &acting(Provider), &avail, &mut Id::new_v4),
            Err(Refusal::States(_))
        ));
    }

    #[test]
    fn expire_waits_until_all_the_time_has_started() {
        let off = offering();
        for (now, want_ok) in [(t(5, 9), false), (t(5, 10), true)] {
            let (order, resource) = booking(&off, Some(O::PendingConsumer), R::Creating);
            let avail = Availability {
                now,
                windows: off.availability(),
                taken: &[],
                stale_busy: None,
            };
            let b = Booking {
                order: order.as_ref(),
                resource: Some(&resource),
                offering: &off,
            };
            let got = apply(Action::Expire, &b, &acting(System), &avail, &mut Id::new_v4);
            assert_eq!(got.is_ok(), want_ok, "{now}: {got:?}");
        }
    }

    #[test]
    fn creation_table() {
        let off = offering();
        let proj = project();
        let other = other_booking(&booking(&off, Some(O::Executing), R::Creating).1);
        let sched = |s: &str, e: &str| json!({"name": "n", "schedules": [{"start": s, "end": e, "backend_id": "hijack"}]});
        let free = sched("2030-01-06T10:00:00Z", "2030-01-06T11:00:00Z");
        let taken = sched("2030-01-05T10:30:00Z", "2030-01-05T11:30:00Z");
        // (name, role, attributes, want: Ok(order state) or the refusal's first words)
        let cases: Vec<(&str, Role, Value, Result<OrderState, &str>)> = vec![
            (
                "an owner's order executes at once",
                ConsumerOwner,
                free.clone(),
                Ok(O::Executing),
            ),
            ("staff's too", Staff, free.clone(), Ok(O::Executing)),
            (
                "a member's waits for the consumer",
                Member,
                free.clone(),
                Ok(O::PendingConsumer),
            ),
            (
                "a stranger cannot order for the project",
                Stranger,
                free.clone(),
                Err("project"),
            ),
            (
                "a partial overlap is refused",
                ConsumerOwner,
                taken,
                Err("Time period from 2030-01-05T10:30:00Z"),
            ),
            (
                "schedules are required",
                Member,
                json!({"name": "n"}),
                Err("Schedules are required."),
            ),
        ];
        for (name, role, attrs, want) in cases {
            let avail = Availability {
                now: t(1, 0),
                windows: off.availability(),
                taken: &other,
                stale_busy: None,
            };
            let got = create(
                &new_order(attrs),
                Some(&off),
                Some(&proj),
                &acting(role),
                &avail,
                &mut Id::new_v4,
            );
            match (got, want) {
                (Ok(c), Ok(st)) => {
                    assert_eq!(c.order.state, st, "{name}");
                    assert_eq!(c.resource.state, R::Creating, "{name}");
                    assert_eq!(c.resource.slots.is_empty(), st.is_pending(), "{name}");
                    for s in &c.resource.slots {
                        assert!(
                            s.backend_id.starts_with("booking_"),
                            "{name}: {}",
                            s.backend_id
                        );
                        assert_eq!(s.backend_id.len(), "booking_".len() + 32, "{name}");
                    }
                    assert!(pair_allowed(c.order.state, c.resource.state));
                }
                (Err(Refusal::Field(f, _)), Err(w)) => assert_eq!(f, w, "{name}"),
                (Err(Refusal::Invalid(m)), Err(w)) => assert!(m[0].starts_with(w), "{name}: {m:?}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
        let mut paused = off.clone();
        paused.state = OfferingState::Paused;
        let avail = Availability {
            now: t(1, 0),
            windows: off.availability(),
            taken: &[],
            stale_busy: None,
        };
        let got = create(
            &new_order(free),
            Some(&paused),
            Some(&proj),
            &acting(Staff),
            &avail,
            &mut Id::new_v4,
        );
        assert_eq!(
            got,
            Err(Refusal::Field(
                "offering",
                "Offering is not available.".into()
            ))
        );
    }

    #[test]
    fn stale_busy_time_refuses_new_orders_but_not_the_actions_on_existing_ones() {
        let off = offering();
        let proj = project();
        let attrs = json!({"name": "n", "schedules": [{"start": "2030-01-06T10:00:00Z", "end": "2030-01-06T11:00:00Z"}]});
        let stale = StaleBusy {
            read_at: Some(t(1, 0) - chrono::Duration::hours(3)),
            max_age: chrono::Duration::hours(2),
        };
        for (stale_busy, want_ok) in [(None, true), (Some(stale), false)] {
            let avail = Availability {
                now: t(1, 0),
                windows: off.availability(),
                taken: &[],
                stale_busy,
            };
            let got = create(
                &new_order(attrs.clone()),
                Some(&off),
                Some(&proj),
                &acting(ConsumerOwner),
                &avail,
                &mut Id::new_v4,
            );
            match got {
                Ok(_) => assert!(want_ok, "created on stale busy time"),
                Err(Refusal::Invalid(m)) => {
                    assert!(!want_ok, "{m:?}");
                    assert_eq!(m, vec![stale.message()]);
                }
                Err(e) => panic!("{e:?}"),
            }
            // Existing bookings are still handled (accepted, cancelled, ...).
            let (order, resource) = booking(&off, Some(O::Executing), R::Creating);
            let b = Booking {
                order: order.as_ref(),
                resource: Some(&resource),
                offering: &off,
            };
            let accepted = apply(
                Action::Accept,
                &b,
                &acting(Provider),
                &avail,
                &mut Id::new_v4,
            );
            assert!(accepted.is_ok(), "{accepted:?}");
        }
    }

    #[test]
    fn standing_follows_the_parties() {
        let u = user();
        let mk = |owners: Vec<Id>, managers: Vec<Id>| Customer {
            id: Id::new_v4(),
            name: String::new(),
            slug: String::new(),
            owners,
            managers,
            created: t(1, 0),
        };
        let provider = mk(vec![], vec![u]);
        let consumer = mk(vec![u], vec![]);
        let mut proj = project();
        proj.members.push(u);
        let actor = Actor::User {
            id: u,
            staff: false,
        };
        let s = Standing::of(
            actor,
            &Parties {
                provider: Some(&provider),
                consumer: Some(&consumer),
                project: Some(&proj),
                created_by: Some(Id::new_v4()),
            },
        );
        assert!(s.provider && s.consumer_owner && s.consumer_connected && s.project_member);
        assert!(!s.creator && !s.staff && !s.system);
        let member_only = Standing::of(
            actor,
            &Parties {
                project: Some(&proj),
                ..Parties::default()
            },
        );
        assert!(member_only.sees_order() && !member_only.sees_booking());
        assert!(Standing::of(Actor::System, &Parties::default()).system);
    }
}
