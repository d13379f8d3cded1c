//! The sync engine: per offering, *load -> list -> decide (pure) -> execute -> persist*.
//!
//! - [`decide`]: the engine's decisions (desired events, ours or external, merging
//!   incremental listings, the busy-slot guard, event-id generations), pure and
//!   table-tested, put together by [`decide::decide`];
//! - [`plan`]: the pure planner (what to write to Google), table-tested;
//! - [`busy`]: external events to busy slots (pure), table-tested, with
//!   [`recurrence`] reading series the way Google writes them;
//! - [`engine`]: load, list, execute with bounded concurrency, persist;
//! - [`claim`]: a run by hand (`bookcal sync`) under the scheduler's per-offering claim.
//!
//! Invariants: the sync token is stored only together with everything the listing
//! it came from implied (mapping, external events, busy slots) in one store
//! transaction; a failed run stores nothing but its error, so nothing is lost and the
//! next run starts from the same state; event ids are deterministic, so a crashed run
//! replays to the same events (no duplicates).

pub mod busy;
pub mod claim;
pub mod decide;
pub mod engine;
pub mod plan;
pub mod recurrence;

pub use engine::{CalendarSource, RunOptions, RunReport, SingleClient, SyncEngine, SyncError};
