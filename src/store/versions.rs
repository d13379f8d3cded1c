//! Data versions per scope, for caches of derived data (the rendered feeds).
//!
//! Every committed write stamps the [`Scope`]s it touches with one new number from a
//! single increasing clock (see [`Change::scopes`]). A cache entry derived from a set
//! of scopes is tagged with [`Store::version`] of that set, read *before* the data:
//! the version is the largest stamp among them, so it moves whenever any of them is
//! written, and a write anywhere else leaves it alone. Stamps are taken after sled and
//! the catalog hold the new data, so a reader never tags old-looking data with a new
//! version (at worst new data with an old version: one extra render).
//!
//! Not persisted: the clock restarts at 0 with the (empty) in-memory caches.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use super::Change;
use crate::domain::Id;

/// A set of stored data that derived data can depend on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// An offering's own data: its record, its calendar record, its busy slots and
    /// its booking resources (their slots, states and texts).
    Offering(Id),
    /// The booking resources a user created (whatever the offering).
    BookingsBy(Id),
    /// The names shown beside bookings: users, organisations, projects and
    /// offering records (rarely written; imports).
    Directory,
}

impl Change {
    /// The scopes this change writes to. `Busy`, calendar records and resources touch
    /// their offering; a resource also its creator's bookings; users, organisations,
    /// projects and offerings the directory. Orders, the sync engine's own records
    /// (slot mapping, external events, jobs), attachments and feed tokens touch none.
    pub fn scopes(&self) -> impl Iterator<Item = Scope> {
        let (a, b) = match self {
            Change::User(_) | Change::Customer(_) | Change::Project(_) => {
                (Some(Scope::Directory), None)
            }
            Change::Offering(o) => (Some(Scope::Offering(o.id)), Some(Scope::Directory)),
            Change::Resource(r) => (
                Some(Scope::Offering(r.offering)),
                Some(Scope::BookingsBy(r.created_by)),
            ),
            Change::Busy(o, _) => (Some(Scope::Offering(*o)), None),
            Change::Calendar(c) => (Some(Scope::Offering(c.offering)), None),
            Change::Order(_)
            | Change::DeleteOrder(_)
            | Change::Enqueue(_)
            | Change::Mapping { .. }
            | Change::Externals(..)
            | Change::Attachment(..)
            | Change::FeedToken(_)
            | Change::RevokeFeedToken(_)
            | Change::Push(..) => (None, None),
        };
        a.into_iter().chain(b)
    }
}

/// The stamps (see the module docs).
#[derive(Default)]
pub(crate) struct Versions {
    clock: AtomicU64,
    stamps: RwLock<HashMap<Scope, u64>>,
    /// The version of every scope is at least this (raised when changes may have
    /// been missed: the PostgreSQL engine's listener lost its connection).
    floor: AtomicU64,
}

impl Versions {
    /// Stamps `scopes` with `stamp` from a shared clock (the PostgreSQL engine's
    /// database sequence, so that every replica agrees); stamps never go down.
    pub(crate) fn stamp(&self, scopes: impl IntoIterator<Item = Scope>, stamp: u64) {
        self.clock.fetch_max(stamp, Ordering::Relaxed);
        let mut stamps = self.stamps.write().unwrap_or_else(|p| p.into_inner());
        for s in scopes {
            let e = stamps.entry(s).or_insert(stamp);
            *e = (*e).max(stamp);
        }
    }

    /// Moves the version of every scope (at least) to `stamp`.
    pub(crate) fn stamp_all(&self, stamp: u64) {
        self.clock.fetch_max(stamp, Ordering::Relaxed);
        self.floor.fetch_max(stamp, Ordering::Relaxed);
    }

    /// Stamps every scope of `changes` with one new number.
    pub(crate) fn bump(&self, changes: &[Change]) {
        let mut scopes = changes.iter().flat_map(Change::scopes).peekable();
        if scopes.peek().is_none() {
            return;
        }
        let stamp = self.clock.fetch_add(1, Ordering::Relaxed) + 1;
        // A poisoned map is still a map: stamps only ever grow.
        let mut stamps = self.stamps.write().unwrap_or_else(|p| p.into_inner());
        for s in scopes {
            stamps.insert(s, stamp);
        }
    }

    pub(crate) fn version(&self, scopes: &[Scope]) -> u64 {
        let stamps = self.stamps.read().unwrap_or_else(|p| p.into_inner());
        scopes
            .iter()
            .filter_map(|s| stamps.get(s))
            .copied()
            .max()
            .unwrap_or(0)
            .max(self.floor.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::calendar::OfferingCalendar;

    #[test]
    fn a_write_moves_the_versions_of_the_scopes_it_touches_and_no_other() {
        let v = Versions::default();
        let (a, b) = (Id::new_v4(), Id::new_v4());
        let cal = |o| Change::Calendar(OfferingCalendar::new(o));
        let busy = |o| Change::Busy(o, Vec::new());
        let token = Change::RevokeFeedToken([0; 32]);
        let order = Change::DeleteOrder(a);
        // (write, scopes that must move, scopes that must stay)
        let cases: Vec<(Change, Vec<Scope>, Vec<Scope>)> = vec![
            (
                busy(a),
                vec![Scope::Offering(a)],
                vec![Scope::Offering(b), Scope::Directory],
            ),
            (cal(b), vec![Scope::Offering(b)], vec![Scope::Offering(a)]),
            (
                token,
                vec![],
                vec![Scope::Offering(a), Scope::Offering(b), Scope::Directory],
            ),
            (
                order,
                vec![],
                vec![Scope::Offering(a), Scope::BookingsBy(a)],
            ),
        ];
        for (change, moved, kept) in cases {
            let before: Vec<u64> = moved
                .iter()
                .chain(&kept)
                .map(|s| v.version(&[*s]))
                .collect();
            v.bump(std::slice::from_ref(&change));
            let after: Vec<u64> = moved
                .iter()
                .chain(&kept)
                .map(|s| v.version(&[*s]))
                .collect();
            for (i, s) in moved.iter().chain(&kept).enumerate() {
                let should_move = i < moved.len();
                assert_eq!(after[i] != before[i], should_move, "{change:?} -> {s:?}");
            }
        }
        // A set's version is its newest member's.
        let both = v.version(&[Scope::Offering(a), Scope::Offering(b)]);
        assert_eq!(both, v.version(&[Scope::Offering(b)]));
    }
}
