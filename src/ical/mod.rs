//! iCalendar feeds: pure rendering of booking calendars (RFC 5545, RFC 7986) and the
//! HTTP caching helpers the feed endpoints serve them with (RFC 9110).
//!
//! - [`model`]: the input ([`FeedCalendar`], [`FeedEvent`], [`FeedTime`], [`FeedStatus`]).
//! - [`render()`]: one `VCALENDAR` as a `String` of CRLF content lines folded at 75
//!   octets, deterministic (same input, same bytes), so ETags stay stable.
//! - [`vtimezone`]: `VTIMEZONE` components derived from chrono-tz as one yearly rule pair.
//! - [`text`]: escaping and folding.
//! - [`http`]: [`RenderedFeed`] (body, strong ETag, Last-Modified) and
//!   [`evaluate_conditional`] for `If-None-Match` / `If-Modified-Since`.
//!
//! Nothing here does I/O or reads the clock. The icalendar crate is not used for
//! output: it folds continuation lines to 76 octets, does not escape `NAME`, lets a
//! bare CR through and invents `UID`/`DTSTAMP` values; writing the few content lines
//! ourselves is simpler than patching around that.

pub mod http;
pub mod model;
pub mod render;
pub mod text;
pub mod vtimezone;

pub use http::{evaluate_conditional, RenderedFeed};
pub use model::{FeedCalendar, FeedEvent, FeedStatus, FeedTime};
pub use render::{render, PRODID};
