//! Moving a store between engines (`bookcal migrate --from SOURCE --to TARGET`):
//! every record read through the source's typed API and written through the
//! target's, in batches, plus what is not a record (API token hashes, the feeds'
//! slot sequences and UID key, so tokens, feed URLs, UIDs and `SEQUENCE`s keep
//! working); then both are read again and compared record by record.
//!
//! A target that holds users, offerings or bookings is refused unless `replace` is
//! given (then records with the same ids are overwritten, others kept). Queued jobs
//! are not copied: each offering with a calendar gets its periodic sync again when
//! the scheduler starts, and one-off jobs are asked for again by their action.

use std::collections::BTreeMap;

use super::feed_tokens::{FeedScope, FeedToken, SlotSequence};
use super::query::{OrderQuery, PageRange, ResourceQuery, Visible};
use super::{Attachment, BusySlot, Change, Store, StoreError};
use crate::domain::calendar::{ExternalEvent, MappedEvent, OfferingCalendar};
use crate::domain::push::PushState;
use crate::domain::{Customer, Id, Offering, Order, Project, Resource, User};

/// Records read or written per batch.
const BATCH: usize = 500;

/// What a store holds besides its typed records.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Extras {
    /// Salted API token hashes and their users.
    pub tokens: Vec<(Vec<u8>, Id)>,
    /// The feeds' slot sequences by slot backend id.
    pub sequences: Vec<(String, SlotSequence)>,
    pub feed_uid_key: Option<[u8; 32]>,
}

/// Why a copy did not happen or does not match.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("the target store is not empty ({0}); pass --replace to write into it anyway")]
    NotEmpty(String),
    #[error("the copy differs from the source: {0}")]
    Mismatch(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Everything a store holds, read through its typed API, in a fixed order.
#[derive(Debug, Default, PartialEq)]
struct Contents {
    users: Vec<User>,
    customers: Vec<Customer>,
    projects: Vec<Project>,
    offerings: Vec<Offering>,
    resources: Vec<Resource>,
    orders: Vec<Order>,
    busy: Vec<(Id, Vec<BusySlot>)>,
    calendars: Vec<OfferingCalendar>,
    mappings: Vec<(Id, BTreeMap<String, MappedEvent>)>,
    externals: Vec<(Id, Vec<ExternalEvent>)>,
    attachments: Vec<(Id, Attachment)>,
    feed_tokens: Vec<FeedToken>,
    /// Push states (their channels keep delivering to the copy).
    push: Vec<PushState>,
    extras: Extras,
}

/// How many records of each kind were copied and checked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CopyReport {
    pub counts: Vec<(&'static str, usize)>,
}

impl std::fmt::Display for CopyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .counts
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

impl Contents {
    async fn read(store: &Store) -> Result<Contents, StoreError> {
        let dir = store.directory().await?;
        let mut c = Contents {
            users: sorted(dir.users.into_values(), |u| u.id),
            customers: sorted(dir.customers.into_values(), |x| x.id),
            projects: sorted(dir.projects.into_values(), |x| x.id),
            offerings: sorted(dir.offerings.into_values(), |x| x.id),
            ..Contents::default()
        };
        let mut offset = 0;
        loop {
            let page = store
                .list_resources(&ResourceQuery {
                    visible: Visible::everything(),
                    page: Some(PageRange {
                        offset,
                        limit: BATCH,
                    }),
                    ..ResourceQuery::default()
                })
                .await?;
            offset += page.items.len();
            let done = page.items.is_empty() || offset >= page.total;
            c.resources.extend(page.items);
            if done {
                break;
            }
        }
        c.resources.sort_by_key(|r| r.id);
        let mut offset = 0;
        loop {
            let page = store
                .list_orders(&OrderQuery {
                    visible: Visible::everything(),
                    page: Some(PageRange {
                        offset,
                        limit: BATCH,
                    }),
                    ..OrderQuery::default()
                })
                .await?;
            offset += page.items.len();
            let done = page.items.is_empty() || offset >= page.total;
            c.orders.extend(page.items);
            if done {
                break;
            }
        }
        c.orders.sort_by_key(|o| o.id);
        for o in &c.offerings {
            let busy = store.busy_slots(o.id).await?;
            if !busy.is_empty() {
                c.busy.push((o.id, busy));
            }
            if let Some(cal) = store.calendar(o.id).await? {
                c.calendars.push(cal);
            }
            let mapping = store.mapping(o.id).await?;
            if !mapping.is_empty() {
                c.mappings.push((o.id, mapping));
            }
            let externals = store.externals(o.id).await?;
            if !externals.is_empty() {
                c.externals.push((o.id, externals));
            }
            c.feed_tokens
                .extend(store.feed_tokens(FeedScope::Offering(o.id)).await?);
        }
        for u in &c.users {
            c.feed_tokens
                .extend(store.feed_tokens(FeedScope::User(u.id)).await?);
        }
        c.feed_tokens.sort_by_key(|t| t.hash);
        for o in &c.orders {
            if let Some(a) = store.attachment(o.id).await? {
                c.attachments.push((o.id, a));
            }
        }
        c.push = store.push_states().await?;
        c.push.sort_by_key(|p| p.offering);
        c.extras = store.extras().await?;
        c.extras.tokens.sort();
        c.extras.sequences.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(c)
    }

    fn counts(&self) -> Vec<(&'static str, usize)> {
        vec![
            ("users", self.users.len()),
            ("organisations", self.customers.len()),
            ("projects", self.projects.len()),
            ("offerings", self.offerings.len()),
            ("booking resources", self.resources.len()),
            ("orders", self.orders.len()),
            ("busy-slot sets", self.busy.len()),
            ("calendar records", self.calendars.len()),
            (
                "slot mappings",
                self.mappings.iter().map(|(_, m)| m.len()).sum(),
            ),
            ("external-event sets", self.externals.len()),
            ("attachments", self.attachments.len()),
            ("feed tokens", self.feed_tokens.len()),
            ("push states", self.push.len()),
            ("API tokens", self.extras.tokens.len()),
            ("slot sequences", self.extras.sequences.len()),
        ]
    }

    /// The first kind (and record) where `self` and `other` differ.
    fn difference(&self, other: &Contents) -> Option<String> {
        fn first<T: PartialEq + std::fmt::Debug>(kind: &str, a: &[T], b: &[T]) -> Option<String> {
            if a.len() != b.len() {
                return Some(format!(
                    "{kind}: {} in the source, {} in the copy",
                    a.len(),
                    b.len()
                ));
            }
            a.iter()
                .zip(b)
                .find(|(x, y)| x != y)
                .map(|(x, _)| format!("{kind}: {x:?} differs"))
        }
        first("users", &self.users, &other.users)
            .or_else(|| first("organisations", &self.customers, &other.customers))
            .or_else(|| first("projects", &self.projects, &other.projects))
            .or_else(|| first("offerings", &self.offerings, &other.offerings))
            .or_else(|| first("booking resources", &self.resources, &other.resources))
            .or_else(|| first("orders", &self.orders, &other.orders))
            .or_else(|| first("busy slots", &self.busy, &other.busy))
            .or_else(|| first("calendar records", &self.calendars, &other.calendars))
            .or_else(|| first("slot mappings", &self.mappings, &other.mappings))
            .or_else(|| first("external events", &self.externals, &other.externals))
            .or_else(|| first("attachments", &self.attachments, &other.attachments))
            .or_else(|| first("feed tokens", &self.feed_tokens, &other.feed_tokens))
            .or_else(|| first("push states", &self.push, &other.push))
            .or_else(|| first("API tokens", &self.extras.tokens, &other.extras.tokens))
            .or_else(|| {
                first(
                    "slot sequences",
                    &self.extras.sequences,
                    &other.extras.sequences,
                )
            })
            .or_else(|| {
                (self.extras.feed_uid_key != other.extras.feed_uid_key)
                    .then(|| "the feed UID key differs".to_string())
            })
    }

    /// The record changes that recreate these contents (calendar records last, so
    /// the bookings written before them imply no syncs).
    fn changes(&self) -> Vec<Change> {
        let mut out: Vec<Change> = Vec::new();
        out.extend(self.users.iter().cloned().map(Change::User));
        out.extend(self.customers.iter().cloned().map(Change::Customer));
        out.extend(self.projects.iter().cloned().map(Change::Project));
        out.extend(self.offerings.iter().cloned().map(Change::Offering));
        out.extend(self.resources.iter().cloned().map(Change::Resource));
        out.extend(self.orders.iter().cloned().map(Change::Order));
        out.extend(self.busy.iter().cloned().map(|(o, s)| Change::Busy(o, s)));
        for (offering, mapping) in &self.mappings {
            out.extend(mapping.iter().map(|(backend_id, m)| Change::Mapping {
                offering: *offering,
                backend_id: backend_id.clone(),
                event: Some(m.clone()),
            }));
        }
        out.extend(
            self.externals
                .iter()
                .cloned()
                .map(|(o, e)| Change::Externals(o, e)),
        );
        out.extend(
            self.attachments
                .iter()
                .cloned()
                .map(|(o, a)| Change::Attachment(o, Some(a))),
        );
        out.extend(self.feed_tokens.iter().cloned().map(Change::FeedToken));
        out.extend(self.push.iter().map(Store::push_change));
        out.extend(self.calendars.iter().cloned().map(Change::Calendar));
        out
    }
}

fn sorted<T>(items: impl Iterator<Item = T>, key: impl Fn(&T) -> Id) -> Vec<T> {
    let mut v: Vec<T> = items.collect();
    v.sort_by_key(|x| key(x));
    v
}

impl Store {
    /// Copies everything this store holds into `target` and checks the copy record
    /// by record (see the module documentation).
    ///
    /// # Errors
    /// `NotEmpty` (nothing written), `Mismatch` after the copy, or storage failure.
    pub async fn copy_to(&self, target: &Store, replace: bool) -> Result<CopyReport, CopyError> {
        if !replace {
            let dir = target.directory().await?;
            let bookings = target
                .list_resources(&ResourceQuery {
                    visible: Visible::everything(),
                    ..ResourceQuery::default()
                })
                .await?
                .total;
            if !dir.users.is_empty() || !dir.offerings.is_empty() || bookings > 0 {
                return Err(CopyError::NotEmpty(format!(
                    "{} users, {} offerings, {bookings} booking resources",
                    dir.users.len(),
                    dir.offerings.len()
                )));
            }
        }
        let source = Contents::read(self).await?;
        let mut changes = source.changes();
        while !changes.is_empty() {
            let rest = changes.split_off(changes.len().min(BATCH));
            target.write(changes).await?;
            changes = rest;
        }
        target.put_extras(&source.extras).await?;
        target.flush().await?;
        let copy = Contents::read(target).await?;
        if let Some(d) = source.difference(&copy) {
            return Err(CopyError::Mismatch(d));
        }
        Ok(CopyReport {
            counts: source.counts(),
        })
    }
}
