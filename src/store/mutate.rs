//! Check-then-write: a rule that sees plain values and returns the changes to write,
//! atomically with the reads it saw.
//!
//! The caller names what to read ([`Load`]); the store reads it inside the write's
//! critical section (sled: under the write lock; PostgreSQL: in the transaction,
//! with the named offerings' rows locked, the directory and the named push states
//! under advisory locks),
//! runs the rule on the [`View`], and writes its changes. A rule that refuses writes
//! nothing. PostgreSQL transactions that lose a race (a deadlock, a serialisation
//! failure) are run again from the reads, so the rule decides on what is current.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::feed_tokens::{FeedScope, FeedToken};
use crate::domain::calendar::OfferingCalendar;
use crate::domain::push::PushState;
use crate::domain::{Customer, Id, Interval, Occupied, Offering, Order, Project, Resource, User};

/// What a rule reads.
#[derive(Clone, Debug, Default)]
pub struct Load {
    /// Every user, organisation, project and offering (imports).
    pub directory: bool,
    /// These offerings (locked against concurrent bookings until the write).
    pub offerings: Vec<Id>,
    /// Everything already taken in these offerings (bookings' slots, requests of
    /// pending orders, busy time); each is also locked as in `offerings`.
    pub taken: Vec<Id>,
    /// When set, `taken` holds only what overlaps this interval: a rule that checks
    /// only times inside it (a new order's requested time) needs nothing else, and
    /// an offering's whole history is not read for it.
    pub taken_within: Option<Interval>,
    pub projects: Vec<Id>,
    /// These organisations, and those of every loaded offering and project.
    pub customers: Vec<Id>,
    pub resources: Vec<Id>,
    pub orders: Vec<Id>,
    /// The calendar records of these offerings.
    pub calendars: Vec<Id>,
    /// The feed tokens of this scope.
    pub feed_tokens: Option<FeedScope>,
    /// The push states of these offerings (locked against other writers of them
    /// until the write: read-modify-writes of a push state never lose an update).
    pub push: Vec<Id>,
}

/// Users, organisations, projects and offerings.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    pub users: HashMap<Id, User>,
    pub customers: HashMap<Id, Customer>,
    pub projects: HashMap<Id, Project>,
    pub offerings: HashMap<Id, Offering>,
}

impl Directory {
    /// A user by username.
    pub fn user_by_name(&self, username: &str) -> Option<&User> {
        self.users.values().find(|u| u.username == username)
    }
}

/// What a rule sees: what its [`Load`] named, as it is when the changes are written.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// Filled when [`Load::directory`] asked for it.
    pub directory: Directory,
    pub offerings: HashMap<Id, Offering>,
    pub taken: HashMap<Id, Vec<Occupied>>,
    pub projects: HashMap<Id, Project>,
    pub customers: HashMap<Id, Customer>,
    pub resources: HashMap<Id, Resource>,
    pub orders: HashMap<Id, Order>,
    pub calendars: HashMap<Id, OfferingCalendar>,
    pub feed_tokens: Vec<FeedToken>,
    /// The push states [`Load::push`] named, where one is recorded.
    pub push: HashMap<Id, PushState>,
    /// The store's clock when the push states were read, where several processes
    /// share them: PostgreSQL's `clock_timestamp()` once their locks are held, so
    /// every replica judges push claims by the one clock. `None` on sled (its one
    /// process judges by its own clock).
    pub now: Option<DateTime<Utc>>,
}

impl Load {
    /// Every offering to lock: those named and those whose taken time is read, in
    /// one order (so two transactions never wait for each other's locks).
    pub(crate) fn locked_offerings(&self) -> Vec<Id> {
        let mut ids: Vec<Id> = self.offerings.iter().chain(&self.taken).copied().collect();
        ids.sort();
        ids.dedup();
        ids
    }
}
