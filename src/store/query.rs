//! Typed list queries: what the API asks the store for, whichever engine answers.
//!
//! A query names who may see what ([`Visible`]), the filters, the order and the page;
//! the answer is the total count and the records of the page. The sled engine
//! answers from its in-memory catalog, PostgreSQL with SQL over indexed columns; a
//! cross-engine test asks both the same table of queries over the same data and
//! compares the answers.
//!
//! Text filters compare folded text ([`fold`]: lowercase; the needle anywhere in the
//! text; PostgreSQL matches columns the store folded), text orders compare bytes
//! (PostgreSQL sorts these columns `COLLATE "C"`), and every order ends with the
//! record id, so a page is the same on both engines.

use chrono::{DateTime, Utc};

use crate::domain::search::fold;
use crate::domain::{Id, OrderState, OrderType, ResourceState};

/// Which rows a caller sees: every row, or the rows related to them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Visible {
    pub all: bool,
    /// Rows whose provider (the offering's organisation) is one of these.
    pub providers: Vec<Id>,
    /// Rows whose consumer (the project's organisation) is one of these.
    pub consumers: Vec<Id>,
    /// Rows of these projects.
    pub projects: Vec<Id>,
    /// Rows this user created.
    pub creator: Option<Id>,
}

impl Visible {
    /// Everything.
    pub fn everything() -> Self {
        Visible {
            all: true,
            ..Visible::default()
        }
    }

    /// Whether a row with these parties is visible.
    pub fn admits(&self, provider: Id, consumer: Id, project: Id, created_by: Id) -> bool {
        self.all
            || self.providers.contains(&provider)
            || self.consumers.contains(&consumer)
            || self.projects.contains(&project)
            || self.creator == Some(created_by)
    }
}

/// Who a booking resource or order concerns, as the store indexes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parties {
    pub offering: Id,
    /// The offering's organisation.
    pub provider: Id,
    /// The project's organisation.
    pub customer: Id,
    pub project: Id,
    pub created_by: Id,
}

/// A page: the first `offset` rows skipped, at most `limit` returned (0: count only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRange {
    pub offset: usize,
    pub limit: usize,
}

/// A page of records and the number of rows the query matches.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub total: usize,
    pub items: Vec<T>,
}

/// The offering filters resources and orders share: offering ids (`offering_uuid`,
/// hyperlinks, `parent_offering_uuid`), `offering_slug`, `category_uuid`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OfferingFilter {
    pub ids: Option<Vec<Id>>,
    pub slugs: Vec<String>,
    pub categories: Option<Vec<Id>>,
}

/// Filters orders and booking resources share.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BookingFilter {
    pub offering: OfferingFilter,
    /// The project's organisation.
    pub customer: Option<Vec<Id>>,
    pub project: Option<Vec<Id>>,
    /// The offering's organisation.
    pub provider: Option<Vec<Id>>,
    /// `created >= t`, `created <= t`, `modified >= t`, `modified <= t`.
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    pub modified_after: Option<DateTime<Utc>>,
    pub modified_before: Option<DateTime<Utc>>,
    /// Only bookings of shared offerings whose provider this user owns or manages.
    pub service_manager: Option<Id>,
    /// Matches nothing (an offering type that no booking has was asked for).
    pub nothing: bool,
}

/// What a booking resource list is ordered by (then by name and id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceKey {
    Name,
    Created,
    Modified,
    State,
    BackendId,
    /// The first slot's start (no slots first).
    Schedules,
    ProjectName,
    CustomerName,
    OfferingName,
}

/// A booking resource list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResourceQuery {
    pub visible: Visible,
    pub common: BookingFilter,
    pub states: Option<Vec<ResourceState>>,
    /// The project's or the offering's organisation is one of these.
    pub connected: Option<Vec<Id>>,
    /// Lowercase; in the name, slug or backend id, or the resource's own id.
    pub query: Option<String>,
    /// Lowercase; in the name.
    pub name: Option<String>,
    pub name_exact: Option<String>,
    pub backend_id: Option<String>,
    /// Lowercase; in the project's name.
    pub project_name: Option<String>,
    /// Keys and whether each is descending.
    pub order: Vec<(ResourceKey, bool)>,
    pub page: Option<PageRange>,
}

/// What an order list is ordered by (then by creation and id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderKey {
    Created,
    Modified,
    State,
    /// When the consumer approved (never approved: last ascending, first descending,
    /// as PostgreSQL orders nulls).
    ConsumerReviewedAt,
}

/// An order list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OrderQuery {
    pub visible: Visible,
    pub common: BookingFilter,
    pub resource: Option<Vec<Id>>,
    pub states: Option<Vec<OrderState>>,
    pub types: Option<Vec<OrderType>>,
    /// Pending the consumer's approval and approvable by the caller (`Visible` of the
    /// organisations whose orders they approve), or not.
    pub approvable_as_consumer: Option<(bool, Visible)>,
    /// Pending the provider's approval and approvable by the caller, or not.
    pub approvable_as_provider: Option<(bool, Visible)>,
    /// Lowercase; the order's id, or in its project's or resource's name.
    pub query: Option<String>,
    /// Lowercase; in its resource's name.
    pub resource_name: Option<String>,
    pub order: Vec<(OrderKey, bool)>,
    pub page: Option<PageRange>,
}

/// What an offering list is ordered by (then by name and id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OfferingKey {
    Name,
    Created,
    State,
}

/// A booking offering list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OfferingQuery {
    /// Offerings of these providers (or all).
    pub visible: Visible,
    /// Lowercase; in the name.
    pub name: Option<String>,
    pub customer: Option<Vec<Id>>,
    pub order: Vec<(OfferingKey, bool)>,
    pub page: Option<PageRange>,
}

/// Whether `hay` [`fold`]ed contains `needle` (already folded), without allocating
/// when `hay` is ASCII (list filters run this on every row).
pub fn contains_lowercase(hay: &str, needle: &str) -> bool {
    if !hay.is_ascii() {
        return fold(hay).contains(needle);
    }
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    let Some((&first, rest)) = n.split_first() else {
        return true;
    };
    h.len() >= n.len()
        && h[..=h.len() - n.len()].iter().enumerate().any(|(i, b)| {
            b.to_ascii_lowercase() == first && h[i + 1..i + n.len()].eq_ignore_ascii_case(rest)
        })
}

/// Whether `id` passes an optional id filter.
pub fn any_of(ids: &Option<Vec<Id>>, id: Id) -> bool {
    ids.as_ref().is_none_or(|v| v.contains(&id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_lowercase_is_the_folded_needle_in_the_folded_text_on_either_path() {
        // (text, needle as typed, found): ASCII texts take the path without allocation.
        let cases = [
            ("Seminar ROOM", "room", true),
            ("Seminar ROOM", "ROOM", true),
            ("Seminar ROOM", "", true),
            ("Seminar", "seminar room", false),
            ("Emile", "émile", false),
            ("ÉMILE run", "émile", true),
            ("ÉMILE run", "ÉMILE", true),
            ("Émile run", "emile", false),
            ("E\u{301}mile", "émile", false),
            ("E\u{301}mile", "E\u{301}MILE", true),
            ("Straße", "STRASSE", false),
            ("STRASSE", "straße", false),
            ("Straße", "STRAẞE", true),
            ("İzmir", "izmir", false),
            ("İzmir", "İZMIR", true),
            // Each dotted capital I folds to an i with a combining dot.
            ("İzmir", "İZMİR", false),
            ("ΟΔΟΣ 5", "οδος", true),
            ("ΟΔΟΣ 5", "ΟΔΟΣ", true),
            ("ΟΔΟΣ 5", "οδοσ", false),
            ("\u{212A}elvin", "kelvin", true),
            ("kelvin", "\u{212A}ELVIN", true),
        ];
        for (hay, typed, found) in cases {
            let needle = fold(typed);
            assert_eq!(
                contains_lowercase(hay, &needle),
                found,
                "{typed:?} in {hay:?}"
            );
            assert_eq!(fold(hay).contains(&needle), found, "{typed:?} in {hay:?}");
        }
    }
}
