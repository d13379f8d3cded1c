//! The sync engine: per offering, *load -> list -> decide (pure) -> execute -> persist*.
//!
//! - [`decide`]: the engine's decisions (desired events, ours or external, merging
//!   incremental listings, the busy-slot guard, event-id generations), pure and
//!   table-tested, put together by [`decide::decide`];
//! - [`plan`]: the pure planner (what to write to Google), table-tested;
//! - [`busy`]: external events to busy slots (pure), table-tested, with
//!   [`recurrence`] reading series the way Google writes them;
//! - [`engine`]: load, list, execute with bounded concurrency, persist.
//!
//! Invariants: the sync token is stored only together with everything the listing
//! it came from implied (mapping, external events, busy slots) in one store
//! transaction; a failed run stores nothing but its error, so nothing is lost and the
//! next run starts from the same state; event ids are deterministic, so a crashed run
//! replays to the same events (no duplicates).

pub mod busy;
pub mod decide;
pub mod engine;
pub mod plan;
pub mod recurrence;

pub use engine::{CalendarSource, RunOptions, RunReport, SingleClient, SyncEngine, SyncError};

use crate::domain::Id;
use crate::store::{Change, Store, StoreError};

/// Forgets everything known about the offerings' Google calendars (calendar records,
/// slot mappings, external events, busy slots, queued jobs). For a fresh Google
/// account, such as the demo's new emulator; bookings are untouched.
///
/// # Errors
/// Storage failure.
pub fn forget_google_state(store: &Store) -> Result<(), StoreError> {
    use crate::store::sync_state::Kind;
    let mut changes = Vec::new();
    for kind in [Kind::Calendars, Kind::SlotMap, Kind::Externals, Kind::Jobs] {
        for (k, _) in store.sync_scan(kind, &[])? {
            changes.push(Change::SyncState(kind, k, None));
        }
    }
    let offerings: Vec<Id> = store.read()?.offerings.keys().copied().collect();
    for o in offerings {
        changes.push(Change::Busy(o, Vec::new()));
    }
    store.sync_put(changes)
}
