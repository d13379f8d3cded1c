//! The in-memory catalog: compact entries of every record, kept in step with sled
//! under the store's write lock.
//!
//! It answers listing, filtering, counting, visibility and overlap questions without
//! decoding stored records: a list page decodes only the records it returns. Built
//! once when the store opens.
//!
//! Substring search (`query=`, `name=`) goes through [`TextIndex`], a trigram index
//! over the resources' names, slugs and backend ids: a search reads the entries that
//! contain every trigram of the needle instead of every entry's text, and checks them
//! against the folded texts (`domain::search::fold`) the index keeps side by side in entry order (not
//! against the entries themselves, which would cost a cache miss or two each). The
//! orders of each resource are kept by its entry number too, so `query=` on orders
//! goes from matching names to orders without a hash lookup per resource.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use smallvec::SmallVec;

use super::index::{OrderIdx, ResourceIdx};
use crate::domain::search::fold;
use crate::domain::{
    Customer, Id, Interval, Offering, OrderState, OrderType, Project, ResourceState, User,
};

/// What listing needs to know of a booking resource.
#[derive(Clone, Debug)]
pub struct ResourceEntry {
    pub id: Id,
    pub name: Box<str>,
    pub slug: Box<str>,
    pub backend_id: Box<str>,
    pub offering: Id,
    pub project: Id,
    /// The project's customer (the consumer).
    pub customer: Id,
    /// The offering's customer (the provider).
    pub provider: Id,
    pub state: ResourceState,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub created_by: Id,
    pub slots: Box<[Interval]>,
    pub first_start: Option<DateTime<Utc>>,
    /// Its number in [`Catalog::resource_text`].
    pub text_no: u32,
}

/// What listing needs to know of an order.
#[derive(Clone, Debug)]
pub struct OrderEntry {
    pub id: Id,
    pub offering: Id,
    pub project: Id,
    pub customer: Id,
    pub provider: Id,
    pub resource: Id,
    pub state: OrderState,
    pub kind: OrderType,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub created_by: Id,
    pub requested: Box<[Interval]>,
}

/// The catalog itself. Fields are public for reading; only the store mutates it.
#[derive(Default)]
pub struct Catalog {
    pub users: HashMap<Id, User>,
    pub users_by_name: HashMap<String, Id>,
    pub customers: HashMap<Id, Customer>,
    pub projects: HashMap<Id, Project>,
    pub offerings: HashMap<Id, Offering>,
    pub resources: HashMap<Id, ResourceEntry>,
    /// Resources in the default order (name, then id).
    pub resources_by_name: BTreeSet<(Box<str>, Id)>,
    pub resources_by_offering: HashMap<Id, HashSet<Id>>,
    /// Resources by their first slot's start (none first), then id: `o=schedules`
    /// over everything walks it (ties are ordered by name when walked).
    pub resources_by_start: BTreeSet<(Option<DateTime<Utc>>, Id)>,
    pub orders: HashMap<Id, OrderEntry>,
    /// Orders in the default order (created, then id).
    pub orders_by_created: BTreeSet<(DateTime<Utc>, Id)>,
    pub orders_by_offering: HashMap<Id, HashSet<Id>>,
    /// The orders of each booking resource.
    pub orders_by_resource: HashMap<Id, Vec<Id>>,
    /// The orders of each project.
    pub orders_by_project: HashMap<Id, Vec<Id>>,
    /// The orders of each resource by its entry number in `resource_text` (the same
    /// as `orders_by_resource`, for resources in the catalog).
    pub orders_by_text_no: Vec<SmallVec<[Id; 1]>>,
    /// Trigrams of the resources' names, slugs and backend ids (lowercase).
    pub resource_text: TextIndex,
    /// Busy intervals imported from each offering's calendar.
    pub busy: HashMap<Id, Vec<Interval>>,
}

impl Catalog {
    pub(crate) fn put_user(&mut self, u: &User) {
        if let Some(old) = self.users.get(&u.id) {
            self.users_by_name.remove(&old.username);
        }
        self.users_by_name.insert(u.username.clone(), u.id);
        self.users.insert(u.id, u.clone());
    }

    pub(crate) fn put_resource(&mut self, r: &ResourceIdx) {
        let texts = [r.name.as_str(), r.slug.as_str(), r.backend_id.as_str()];
        let text_no = match self.resources.get(&r.id) {
            Some(old) => {
                self.resource_text.update(old.text_no, &texts);
                old.text_no
            }
            None => {
                let no = self.resource_text.insert(r.id, &texts);
                self.copy_orders_to_text_no(no, r.id);
                no
            }
        };
        self.remove_resource(r.id);
        let project = self.projects.get(&r.project);
        let offering = self.offerings.get(&r.offering);
        let slots: Box<[Interval]> = r.slots.clone().into_boxed_slice();
        let entry = ResourceEntry {
            id: r.id,
            name: r.name.as_str().into(),
            slug: r.slug.as_str().into(),
            backend_id: r.backend_id.as_str().into(),
            offering: r.offering,
            project: r.project,
            customer: project.map(|p| p.customer).unwrap_or(r.project),
            provider: offering.map(|o| o.customer).unwrap_or(r.offering),
            state: r.state,
            created: r.created,
            modified: r.modified,
            created_by: r.created_by,
            first_start: slots.iter().map(|s| s.start).min(),
            slots,
            text_no,
        };
        self.resources_by_name.insert((entry.name.clone(), r.id));
        self.resources_by_start.insert((entry.first_start, r.id));
        self.resources_by_offering
            .entry(r.offering)
            .or_default()
            .insert(r.id);
        self.resources.insert(r.id, entry);
    }

    fn remove_resource(&mut self, id: Id) {
        if let Some(old) = self.resources.remove(&id) {
            self.resources_by_name.remove(&(old.name, id));
            self.resources_by_start.remove(&(old.first_start, id));
            if let Some(set) = self.resources_by_offering.get_mut(&old.offering) {
                set.remove(&id);
            }
        }
    }

    pub(crate) fn put_order(&mut self, o: &OrderIdx) {
        self.remove_order(o.id);
        let project = self.projects.get(&o.project);
        let offering = self.offerings.get(&o.offering);
        let entry = OrderEntry {
            id: o.id,
            offering: o.offering,
            project: o.project,
            customer: project.map(|p| p.customer).unwrap_or(o.project),
            provider: offering.map(|x| x.customer).unwrap_or(o.offering),
            resource: o.resource,
            state: o.state,
            kind: o.kind,
            created: o.created,
            modified: o.modified,
            created_by: o.created_by,
            requested: o.requested.clone().into_boxed_slice(),
        };
        self.orders_by_created.insert((o.created, o.id));
        self.orders_by_offering
            .entry(o.offering)
            .or_default()
            .insert(o.id);
        self.orders_by_resource
            .entry(o.resource)
            .or_default()
            .push(o.id);
        if let Some(no) = self.resources.get(&o.resource).map(|r| r.text_no) {
            self.copy_orders_to_text_no(no, o.resource);
        }
        self.orders_by_project
            .entry(o.project)
            .or_default()
            .push(o.id);
        self.orders.insert(o.id, entry);
    }

    pub(crate) fn remove_order(&mut self, id: Id) {
        if let Some(old) = self.orders.remove(&id) {
            self.orders_by_created.remove(&(old.created, id));
            if let Some(set) = self.orders_by_offering.get_mut(&old.offering) {
                set.remove(&id);
            }
            for (map, key) in [
                (&mut self.orders_by_resource, old.resource),
                (&mut self.orders_by_project, old.project),
            ] {
                if let Some(v) = map.get_mut(&key) {
                    v.retain(|x| *x != id);
                    if v.is_empty() {
                        map.remove(&key);
                    }
                }
            }
            if let Some(no) = self.resources.get(&old.resource).map(|r| r.text_no) {
                self.copy_orders_to_text_no(no, old.resource);
            }
        }
    }

    /// Makes `orders_by_text_no[no]` the orders of `resource` (whose number it is).
    fn copy_orders_to_text_no(&mut self, no: u32, resource: Id) {
        let no = no as usize;
        if self.orders_by_text_no.len() <= no {
            self.orders_by_text_no.resize_with(no + 1, SmallVec::new);
        }
        let orders = self.orders_by_resource.get(&resource);
        if let Some(slot) = self.orders_by_text_no.get_mut(no) {
            *slot = SmallVec::from_slice(orders.map_or(&[][..], Vec::as_slice));
        }
    }

    /// The orders of the resources whose name contains `needle` (lowercase), from the
    /// trigram index; `None` when the needle is too short for the index.
    pub fn orders_of_resources_named(&self, needle: &str) -> Option<Vec<Id>> {
        let numbers = self.resource_text.matching(needle, Some(0))?;
        Some(
            numbers
                .into_iter()
                .filter_map(|no| self.orders_by_text_no.get(no as usize))
                .flatten()
                .copied()
                .collect(),
        )
    }

    /// The resources whose name, slug or backend id may contain `needle` (lowercase),
    /// from the trigram index: every resource that does is among them; `None` when the
    /// needle is too short for the index (then every resource is a candidate).
    pub fn resources_containing(&self, needle: &str) -> Option<Vec<&ResourceEntry>> {
        let ids = self.resource_text.candidates(needle)?;
        Some(
            ids.into_iter()
                .filter_map(|id| self.resources.get(&id))
                .collect(),
        )
    }

    /// Everything held in `offering` (the lifecycle's `held`, for every booking, plus
    /// busy slots): slots of resources in Creating/OK, and intervals requested by live
    /// Create orders whose resource (Creating/OK) has no slots yet.
    pub fn occupied(&self, offering: Id) -> Vec<crate::domain::Occupied> {
        use crate::domain::{Occupied, OccupiedKind};
        let mut out = Vec::new();
        let mut with_slots = HashSet::new();
        if let Some(ids) = self.resources_by_offering.get(&offering) {
            for r in ids.iter().filter_map(|id| self.resources.get(id)) {
                if !r.slots.is_empty() {
                    with_slots.insert(r.id);
                }
                if r.state.holds_slots() {
                    out.extend(r.slots.iter().map(|i| Occupied {
                        interval: *i,
                        kind: OccupiedKind::Booking,
                        holder: Some(r.id),
                    }));
                }
            }
        }
        if let Some(ids) = self.orders_by_offering.get(&offering) {
            for o in ids.iter().filter_map(|id| self.orders.get(id)) {
                let resource_live = self
                    .resources
                    .get(&o.resource)
                    .is_some_and(|r| r.state.holds_slots());
                if o.kind == OrderType::Create
                    && o.state.holds_request()
                    && resource_live
                    && !with_slots.contains(&o.resource)
                {
                    out.extend(o.requested.iter().map(|i| Occupied {
                        interval: *i,
                        kind: OccupiedKind::Request,
                        holder: Some(o.resource),
                    }));
                }
            }
        }
        if let Some(busy) = self.busy.get(&offering) {
            out.extend(busy.iter().map(|i| Occupied {
                interval: *i,
                kind: OccupiedKind::Busy,
                holder: None,
            }));
        }
        out
    }
}

/// A substring index over short texts (see the module documentation).
///
/// Each entry has a number (given in insertion order, never reused) and one or more
/// texts; every 3-byte window of a text, lowercased, lists the entries that contain it,
/// in number order. A needle of 3 bytes or more is in an entry's text only if all its
/// trigrams are, so the entries of the shortest lists, intersected, are the only
/// candidates. Lists only grow: an entry whose text changes keeps its old trigrams
/// (candidates are checked anyway), and the caller drops numbers of entries that are
/// gone. The lowercased texts themselves are kept in one buffer, each entry's joined
/// by NUL bytes, so that candidates are checked (`matching`) in entry order without
/// touching anything else; a changed text is appended and the buffer compacted once
/// half of it is stale.
#[derive(Default)]
pub struct TextIndex {
    /// Entry number -> id.
    ids: Vec<Id>,
    grams: HashMap<[u8; 3], Vec<u32>>,
    /// Entry number -> its texts' span in `texts`.
    spans: Vec<(u32, u32)>,
    texts: String,
    /// Bytes of `texts` no span points at any more.
    stale: usize,
}

/// Separates an entry's texts in [`TextIndex::texts`].
const SEPARATOR: char = '\0';

impl TextIndex {
    /// Indexes a new entry; returns its number.
    pub(crate) fn insert(&mut self, id: Id, texts: &[&str]) -> u32 {
        let no = u32::try_from(self.ids.len()).unwrap_or(u32::MAX);
        self.ids.push(id);
        let span = self.push_text(texts);
        self.spans.push(span);
        self.add(no, texts);
        no
    }

    /// Indexes the new texts of entry `no` (lists that lack it gain it).
    pub(crate) fn update(&mut self, no: u32, texts: &[&str]) {
        let joined = joined_lowercase(texts);
        let Some(&(from, to)) = self.spans.get(no as usize) else {
            return;
        };
        if self.texts.get(from as usize..to as usize) == Some(joined.as_str()) {
            return;
        }
        self.stale += (to - from) as usize;
        let span = self.push_joined(&joined);
        if let Some(s) = self.spans.get_mut(no as usize) {
            *s = span;
        }
        self.add(no, texts);
        if self.stale > self.texts.len() / 2 {
            self.compact();
        }
    }

    fn push_text(&mut self, texts: &[&str]) -> (u32, u32) {
        self.push_joined(&joined_lowercase(texts))
    }

    fn push_joined(&mut self, joined: &str) -> (u32, u32) {
        let from = u32::try_from(self.texts.len()).unwrap_or(u32::MAX);
        self.texts.push_str(joined);
        (from, u32::try_from(self.texts.len()).unwrap_or(u32::MAX))
    }

    /// Rewrites `texts` without its stale bytes.
    fn compact(&mut self) {
        let old = std::mem::take(&mut self.texts);
        let mut texts = String::with_capacity(old.len() - self.stale);
        for span in &mut self.spans {
            let from = u32::try_from(texts.len()).unwrap_or(u32::MAX);
            texts.push_str(old.get(span.0 as usize..span.1 as usize).unwrap_or(""));
            *span = (from, u32::try_from(texts.len()).unwrap_or(u32::MAX));
        }
        self.texts = texts;
        self.stale = 0;
    }

    fn add(&mut self, no: u32, texts: &[&str]) {
        for gram in grams_of(texts) {
            let list = self.grams.entry(gram).or_default();
            match list.last() {
                None => list.push(no),
                Some(&last) if last < no => list.push(no),
                Some(_) => {
                    if let Err(at) = list.binary_search(&no) {
                        list.insert(at, no);
                    }
                }
            }
        }
    }

    /// The id of entry `no`.
    pub fn id(&self, no: u32) -> Option<Id> {
        self.ids.get(no as usize).copied()
    }

    /// The numbers of the entries whose texts may contain `needle` (lowercase), in
    /// entry order; `None` if the needle is shorter than a trigram.
    fn candidate_numbers(&self, needle: &str) -> Option<Vec<u32>> {
        let mut lists: Vec<&[u32]> = Vec::new();
        for gram in grams_of(&[needle]) {
            match self.grams.get(&gram) {
                Some(list) => lists.push(list),
                None => return Some(Vec::new()),
            }
        }
        if lists.is_empty() {
            return None;
        }
        lists.sort_by_key(|l| l.len());
        let (first, rest) = lists.split_first()?;
        let mut hits: Vec<u32> = first.to_vec();
        for list in rest {
            if hits.is_empty() {
                break;
            }
            hits.retain(|no| list.binary_search(no).is_ok());
        }
        Some(hits)
    }

    /// The ids of the entries whose texts may contain `needle` (lowercase), in entry
    /// order; `None` if the needle is shorter than a trigram.
    pub fn candidates(&self, needle: &str) -> Option<Vec<Id>> {
        Some(
            self.candidate_numbers(needle)?
                .into_iter()
                .filter_map(|no| self.id(no))
                .collect(),
        )
    }

    /// The numbers of the entries whose text number `field` (`None`: any of their
    /// texts) contains `needle` (lowercase), in entry order: exactly those. `None` if
    /// the needle is shorter than a trigram (or holds the separator).
    pub fn matching(&self, needle: &str, field: Option<usize>) -> Option<Vec<u32>> {
        if needle.contains(SEPARATOR) {
            return None;
        }
        let mut numbers = self.candidate_numbers(needle)?;
        numbers.retain(|&no| {
            let Some(&(from, to)) = self.spans.get(no as usize) else {
                return false;
            };
            let text = self.texts.get(from as usize..to as usize).unwrap_or("");
            match field {
                None => text.contains(needle),
                Some(k) => text
                    .split(SEPARATOR)
                    .nth(k)
                    .is_some_and(|t| t.contains(needle)),
            }
        });
        Some(numbers)
    }
}

/// The texts folded and joined by [`SEPARATOR`].
fn joined_lowercase(texts: &[&str]) -> String {
    let mut out = String::new();
    for (i, t) in texts.iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        out.push_str(&fold(t));
    }
    out
}

/// The distinct trigrams of the folded texts.
fn grams_of(texts: &[&str]) -> HashSet<[u8; 3]> {
    let mut out = HashSet::new();
    for t in texts {
        let lower;
        let bytes = if t.bytes().any(|b| b.is_ascii_uppercase()) || !t.is_ascii() {
            lower = fold(t);
            lower.as_bytes()
        } else {
            t.as_bytes()
        };
        out.extend(bytes.windows(3).map(|w| [w[0], w[1], w[2]]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Id {
        Id::from_slice(&[n; 16]).unwrap_or_default()
    }

    #[test]
    fn candidates_include_every_entry_containing_the_needle_and_no_entry_lacking_a_trigram() {
        let mut ix = TextIndex::default();
        ix.insert(id(1), &["Seminar room booking", "seminar-room"]);
        ix.insert(id(2), &["Night run", "night-run"]);
        ix.insert(id(3), &["Ångström SEMINAR", ""]);
        ix.insert(id(4), &["Semi", "final"]);
        ix.insert(id(5), &["xabc", "bcdx"]);
        let cases: [(&str, Option<Vec<Id>>); 9] = [
            ("seminar", Some(vec![id(1), id(3)])),
            ("semi", Some(vec![id(1), id(3), id(4)])),
            ("night-r", Some(vec![id(2)])),
            ("ångström", Some(vec![id(3)])),
            ("zzz", Some(vec![])),
            ("semfin", Some(vec![])),
            // Trigrams from two texts of one entry: a candidate, not a match.
            ("abcd", Some(vec![id(5)])),
            ("se", None),
            ("", None),
        ];
        for (needle, want) in cases {
            assert_eq!(ix.candidates(needle), want, "needle {needle:?}");
        }
    }

    #[test]
    fn matching_keeps_exactly_the_entries_whose_text_or_chosen_text_contains_the_needle() {
        let mut ix = TextIndex::default();
        ix.insert(id(1), &["Seminar room", "seminar-room", "b1"]);
        ix.insert(id(2), &["Night run", "seminar-x", ""]);
        ix.insert(id(3), &["Ångström SEMINAR", "", ""]);
        ix.insert(id(4), &["xabc", "bcdx", ""]);
        type Case<'a> = (&'a str, Option<usize>, Option<Vec<u32>>);
        let cases: [Case; 9] = [
            ("seminar", None, Some(vec![0, 1, 2])),
            ("seminar", Some(0), Some(vec![0, 2])),
            ("seminar", Some(1), Some(vec![0, 1])),
            ("ångström s", Some(0), Some(vec![2])),
            // Trigrams from two texts of one entry: a candidate, not a match.
            ("abcd", None, Some(vec![])),
            ("bcd", Some(1), Some(vec![3])),
            ("room", Some(2), Some(vec![])),
            ("se", None, None),
            ("sem\0x", None, None),
        ];
        for (needle, field, want) in cases {
            assert_eq!(ix.matching(needle, field), want, "{needle:?} {field:?}");
        }
    }

    #[test]
    fn renamed_entries_match_their_new_text_only_and_the_text_buffer_is_compacted() {
        let mut ix = TextIndex::default();
        let a = ix.insert(id(1), &["alpha"]);
        ix.insert(id(2), &["beta"]);
        for n in 0..50 {
            ix.update(a, &[&format!("gamma {n}")]);
        }
        assert_eq!(ix.matching("gamma 49", None), Some(vec![a]));
        assert_eq!(ix.matching("gamma 48", None), Some(vec![]));
        assert_eq!(ix.matching("alpha", None), Some(vec![]));
        assert_eq!(ix.matching("beta", None), Some(vec![1]));
        assert!(
            ix.texts.len() < 2 * "gamma 49beta".len(),
            "{}",
            ix.texts.len()
        );
        // The same text again changes nothing.
        let before = ix.texts.len();
        ix.update(a, &["Gamma 49"]);
        assert_eq!(ix.texts.len(), before);
    }

    #[test]
    fn the_orders_of_named_resources_follow_their_orders_whichever_comes_first() {
        use crate::domain::{OrderState, OrderType, ResourceState};
        use crate::store::index::{OrderIdx, ResourceIdx};
        let at = chrono::DateTime::<Utc>::default();
        let resource = |n: u8, name: &str| ResourceIdx {
            id: id(n),
            name: name.into(),
            slug: String::new(),
            backend_id: String::new(),
            offering: id(100),
            project: id(101),
            state: ResourceState::Ok,
            created: at,
            modified: at,
            created_by: id(102),
            slots: vec![],
        };
        let order = |n: u8, r: u8| OrderIdx {
            id: id(n),
            offering: id(100),
            project: id(101),
            resource: id(r),
            state: OrderState::Done,
            kind: OrderType::Create,
            created: at,
            modified: at,
            created_by: id(102),
            requested: vec![],
        };
        let mut cat = Catalog::default();
        // An order before its resource, one after, one moved to another resource.
        cat.put_order(&order(11, 1));
        cat.put_resource(&resource(1, "Seminar one"));
        cat.put_resource(&resource(2, "Seminar two"));
        cat.put_order(&order(12, 1));
        cat.put_order(&order(13, 2));
        cat.put_resource(&resource(3, "Night run"));
        let sorted = |v: Option<Vec<Id>>| {
            v.map(|mut v| {
                v.sort();
                v
            })
        };
        let mut want = vec![id(11), id(12), id(13)];
        want.sort();
        assert_eq!(sorted(cat.orders_of_resources_named("seminar")), Some(want));
        cat.put_order(&order(13, 3));
        cat.remove_order(id(12));
        assert_eq!(
            sorted(cat.orders_of_resources_named("seminar")),
            Some(vec![id(11)])
        );
        assert_eq!(
            sorted(cat.orders_of_resources_named("run")),
            Some(vec![id(13)])
        );
        cat.put_resource(&resource(3, "Seminar three"));
        assert_eq!(
            cat.orders_of_resources_named("seminar three"),
            Some(vec![id(13)])
        );
        assert_eq!(cat.orders_of_resources_named("night"), Some(vec![]));
    }

    #[test]
    fn an_updated_entry_is_found_by_its_new_text_and_keeps_its_number() {
        let mut ix = TextIndex::default();
        let a = ix.insert(id(1), &["alpha"]);
        ix.insert(id(2), &["beta"]);
        ix.update(a, &["gamma"]);
        assert_eq!(ix.candidates("gamma"), Some(vec![id(1)]));
        assert_eq!(ix.candidates("beta"), Some(vec![id(2)]));
        // The old text stays a candidate; callers check the entry's current text.
        assert_eq!(ix.candidates("alpha"), Some(vec![id(1)]));
    }
}
