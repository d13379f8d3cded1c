//! bookcal keeps booking calendars in sync.
//!
//! It serves the booking slice of the Waldur marketplace REST API ([`api`]), keeps
//! its data in an embedded sled store ([`store`], the only module that imports sled),
//! mirrors every offering's bookings into a Google Calendar ([`sync`] over the
//! [`google`] adapter, the only module that imports google-calendar3), and publishes
//! iCalendar feeds ([`feeds`], rendered by [`ical`]). [`emulator`] is a local Google Calendar v3 used by
//! tests, benchmarks and `bookcal demo`; it shares no types with [`google`].
//!
//! See `ARCHITECTURE.md` for the bird's-eye view and the invariants.
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod config;
pub mod credentials;
pub mod demo;
pub mod domain;
pub mod emulator;
pub mod feeds;
pub mod google;
pub mod ical;
pub mod import;
pub mod metrics;
pub mod push;
pub mod scheduler;
pub mod server;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod web;
