//! List queries on the sled engine: answered from the in-memory [`Catalog`]; only the
//! records of the page are decoded.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::catalog::{Catalog, OrderEntry, ResourceEntry};
use super::query::{
    any_of, contains_lowercase, BookingFilter, OfferingFilter, OfferingKey, OfferingQuery,
    OrderKey, OrderQuery, PageRange, ResourceKey, ResourceQuery,
};
use crate::domain::{Id, Offering, OrderState};

/// Puts the first `end` items of `items` in `cmp` order (the rest stay unordered):
/// a page needs only the items up to its end sorted. `cmp` must be a total order
/// (end with a unique key) so that the result does not depend on the input order.
pub fn sort_prefix<T>(items: &mut [T], end: usize, mut cmp: impl FnMut(&T, &T) -> Ordering) {
    let end = end.min(items.len());
    if end == 0 {
        return;
    }
    if end < items.len() {
        items.select_nth_unstable_by(end - 1, &mut cmp);
    }
    items[..end].sort_unstable_by(cmp);
}

fn offering_matches(f: &OfferingFilter, cat: &Catalog, offering: Id) -> bool {
    if !any_of(&f.ids, offering) {
        return false;
    }
    if f.slugs.is_empty() && f.categories.is_none() {
        return true;
    }
    cat.offerings.get(&offering).is_some_and(|o| {
        (f.slugs.is_empty() || f.slugs.contains(&o.slug)) && any_of(&f.categories, o.category.id)
    })
}

#[allow(clippy::too_many_arguments)]
fn common_matches(
    f: &BookingFilter,
    cat: &Catalog,
    offering: Id,
    customer: Id,
    project: Id,
    provider: Id,
    created: DateTime<Utc>,
    modified: DateTime<Utc>,
) -> bool {
    !f.nothing
        && any_of(&f.customer, customer)
        && any_of(&f.project, project)
        && any_of(&f.provider, provider)
        && f.created_after.is_none_or(|t| created >= t)
        && f.created_before.is_none_or(|t| created <= t)
        && f.modified_after.is_none_or(|t| modified >= t)
        && f.modified_before.is_none_or(|t| modified <= t)
        && offering_matches(&f.offering, cat, offering)
        && f.service_manager.is_none_or(|u| {
            cat.offerings.get(&offering).is_some_and(|o| {
                o.shared
                    && cat
                        .customers
                        .get(&o.customer)
                        .is_some_and(|c| c.owners.contains(&u) || c.managers.contains(&u))
            })
        })
}

fn resource_matches(q: &ResourceQuery, cat: &Catalog, r: &ResourceEntry) -> bool {
    q.visible
        .admits(r.provider, r.customer, r.project, r.created_by)
        && common_matches(
            &q.common, cat, r.offering, r.customer, r.project, r.provider, r.created, r.modified,
        )
        && q.states.as_ref().is_none_or(|s| s.contains(&r.state))
        && q.connected
            .as_ref()
            .is_none_or(|v| v.contains(&r.customer) || v.contains(&r.provider))
        && q.name
            .as_ref()
            .is_none_or(|n| contains_lowercase(&r.name, n))
        && q.name_exact.as_ref().is_none_or(|n| &*r.name == n.as_str())
        && q.backend_id
            .as_ref()
            .is_none_or(|b| &*r.backend_id == b.as_str())
        && q.project_name.as_ref().is_none_or(|n| {
            cat.projects
                .get(&r.project)
                .is_some_and(|p| contains_lowercase(&p.name, n))
        })
        && q.query.as_ref().is_none_or(|text| {
            contains_lowercase(&r.name, text)
                || contains_lowercase(&r.slug, text)
                || contains_lowercase(&r.backend_id, text)
                || Id::parse(text) == Some(r.id)
        })
}

/// A sort key borrowed from the entry or the catalog: comparing never allocates.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum SortKey<'c> {
    Text(&'c str),
    Time(Option<DateTime<Utc>>),
}

fn resource_key<'c>(r: &'c ResourceEntry, key: ResourceKey, cat: &'c Catalog) -> SortKey<'c> {
    use SortKey::{Text, Time};
    match key {
        ResourceKey::Name => Text(&r.name),
        ResourceKey::Created => Time(Some(r.created)),
        ResourceKey::Modified => Time(Some(r.modified)),
        ResourceKey::State => Text(r.state.as_str()),
        ResourceKey::BackendId => Text(&r.backend_id),
        ResourceKey::Schedules => Time(r.first_start),
        ResourceKey::ProjectName => Text(cat.projects.get(&r.project).map_or("", |p| &p.name)),
        ResourceKey::CustomerName => Text(cat.customers.get(&r.customer).map_or("", |c| &c.name)),
        ResourceKey::OfferingName => Text(cat.offerings.get(&r.offering).map_or("", |o| &o.name)),
    }
}

/// The entries of the asked `offerings` (through the offering index `by_offering`),
/// or all `entries`, kept by `keep`, in no particular order.
fn unordered_hits<'c, E>(
    entries: &'c HashMap<Id, E>,
    by_offering: &'c HashMap<Id, HashSet<Id>>,
    offerings: Option<&[Id]>,
    keep: impl Fn(&&'c E) -> bool,
) -> Vec<&'c E> {
    match offerings {
        Some(offs) => {
            let mut ids: Vec<&Id> = offs
                .iter()
                .filter_map(|o| by_offering.get(o))
                .flatten()
                .collect();
            if offs.len() > 1 {
                ids.sort_unstable();
                ids.dedup();
            }
            ids.into_iter()
                .filter_map(|id| entries.get(id))
                .filter(keep)
                .collect()
        }
        None => entries.values().filter(keep).collect(),
    }
}

/// The candidates of a resource list with `query=` or `name=`, from the trigram
/// index (with the resource `query=` names by id); `None` when the needle is too short
/// for the index or the asked offerings hold fewer resources. The caller checks them
/// against the filter (the entry in hand, its texts are a cache line away: checking the
/// index's texts first measured slower).
fn searched_resources<'c>(q: &ResourceQuery, cat: &'c Catalog) -> Option<Vec<&'c ResourceEntry>> {
    let mut found = match (&q.query, &q.name) {
        (Some(text), _) => {
            let mut v = cat.resources_containing(text)?;
            let by_id = Id::parse(text).and_then(|id| cat.resources.get(&id));
            if let Some(e) = by_id.filter(|e| !v.iter().any(|x| x.id == e.id)) {
                v.push(e);
            }
            v
        }
        (None, Some(text)) => cat.resources_containing(text)?,
        (None, None) => return None,
    };
    if let Some(offs) = &q.common.offering.ids {
        let in_offerings: usize = offs
            .iter()
            .filter_map(|o| cat.resources_by_offering.get(o))
            .map(HashSet::len)
            .sum();
        if in_offerings < found.len() {
            return None;
        }
    }
    found.shrink_to_fit();
    Some(found)
}

/// The candidates of an order list from the catalog's indexes, when one narrows them
/// (the smallest of: by resource, by `query=`, by project, by offering); `None`: every
/// order. The flag says whether the candidates are exactly the orders `query=` finds
/// (then the caller need not test it again).
///
/// `query=` finds an order by its id, its project's name or its resource's name: the
/// resources named so come from the trigram index (checked against the index's texts),
/// the projects (few) are checked one by one.
fn order_candidates<'c>(q: &OrderQuery, cat: &'c Catalog) -> Option<(Vec<&'c OrderEntry>, bool)> {
    let orders_of = |map: &'c HashMap<Id, Vec<Id>>, keys: &mut dyn Iterator<Item = Id>| {
        keys.filter_map(|k| map.get(&k))
            .flatten()
            .copied()
            .collect::<Vec<Id>>()
    };
    let mut options: Vec<(Vec<Id>, bool)> = Vec::new();
    if let Some(ids) = &q.resource {
        options.push((
            orders_of(&cat.orders_by_resource, &mut ids.iter().copied()),
            false,
        ));
    }
    if let Some(text) = &q.query {
        if let Some(mut v) = cat.orders_of_resources_named(text) {
            let mut projects = cat
                .projects
                .values()
                .filter(|p| contains_lowercase(&p.name, text))
                .map(|p| p.id);
            v.extend(orders_of(&cat.orders_by_project, &mut projects));
            v.extend(Id::parse(text));
            options.push((v, true));
        }
    }
    if let Some(ids) = &q.common.project {
        options.push((
            orders_of(&cat.orders_by_project, &mut ids.iter().copied()),
            false,
        ));
    }
    if let Some(ids) = &q.common.offering.ids {
        options.push((
            ids.iter()
                .filter_map(|o| cat.orders_by_offering.get(o))
                .flatten()
                .copied()
                .collect(),
            false,
        ));
    }
    let (mut ids, exact) = options.into_iter().min_by_key(|(v, _)| v.len())?;
    ids.sort_unstable();
    ids.dedup();
    Some((
        ids.iter().filter_map(|id| cat.orders.get(id)).collect(),
        exact,
    ))
}

/// The page of resources kept by `keep` in the order of `starts` (first-start index
/// entries, forwards or backwards), entries with the same start by name and id: the
/// order `o=schedules` / `o=-schedules` sorts into. Reads the index only up to the
/// page's end.
fn walk_by_start<'c>(
    starts: impl Iterator<Item = (Option<DateTime<Utc>>, Id)>,
    cat: &'c Catalog,
    keep: impl Fn(&&'c ResourceEntry) -> bool,
    page: PageRange,
) -> Vec<Id> {
    let end = page.offset.saturating_add(page.limit);
    let mut starts = starts.peekable();
    let mut ids = Vec::with_capacity(page.limit.min(1_000));
    let mut passed = 0usize;
    let mut group: Vec<&ResourceEntry> = Vec::new();
    while passed < end {
        let Some((start, id)) = starts.next() else {
            break;
        };
        group.clear();
        group.extend(cat.resources.get(&id).filter(|r| keep(r)));
        while let Some((_, id)) = starts.next_if(|(s, _)| *s == start) {
            group.extend(cat.resources.get(&id).filter(|r| keep(r)));
        }
        group.sort_unstable_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
        for r in &group {
            if (page.offset..end).contains(&passed) {
                ids.push(r.id);
            }
            passed += 1;
        }
    }
    ids
}

/// The ids of a booking resource list's page, and its total.
pub(crate) fn resources(cat: &Catalog, q: &ResourceQuery) -> (usize, Vec<Id>) {
    let page = q.page.unwrap_or(PageRange {
        offset: 0,
        limit: 0,
    });
    let end = page.offset.saturating_add(page.limit);
    // Substring filters take their candidates from the trigram index (when that
    // narrows more than the asked offerings do).
    let searched = searched_resources(q, cat);
    let keep = |r: &&ResourceEntry| resource_matches(q, cat, r);
    // The default order over everything walks the name index up to the page's end
    // (and counts with a scan); otherwise hits are collected unordered (narrowed by
    // the trigram index or by offering through its index) and only the items up to
    // the page's end are ordered.
    let walk = q.order.is_empty() && q.common.offering.ids.is_none() && searched.is_none();
    if walk {
        let total = cat.resources.values().filter(keep).count();
        let ids = if page.limit == 0 {
            Vec::new()
        } else {
            cat.resources_by_name
                .iter()
                .filter_map(|(_, id)| cat.resources.get(id))
                .filter(keep)
                .skip(page.offset)
                .take(page.limit)
                .map(|r| r.id)
                .collect()
        };
        return (total, ids);
    }
    // `o=schedules` (or `-schedules`) over everything walks the first-start index the
    // same way.
    if let [(ResourceKey::Schedules, desc)] = q.order.as_slice() {
        if q.common.offering.ids.is_none() && searched.is_none() {
            let total = cat.resources.values().filter(keep).count();
            let starts = cat.resources_by_start.iter().copied();
            let ids = if page.limit == 0 {
                Vec::new()
            } else if *desc {
                walk_by_start(starts.rev(), cat, keep, page)
            } else {
                walk_by_start(starts, cat, keep, page)
            };
            return (total, ids);
        }
    }
    let mut hits = match searched {
        Some(v) => v.into_iter().filter(keep).collect(),
        None => unordered_hits(
            &cat.resources,
            &cat.resources_by_offering,
            q.common.offering.ids.as_deref(),
            keep,
        ),
    };
    let total = hits.len();
    if page.limit == 0 || page.offset >= total {
        return (total, Vec::new());
    }
    sort_prefix(&mut hits, end, |a, b| {
        for (k, desc) in &q.order {
            let ord = resource_key(a, *k, cat).cmp(&resource_key(b, *k, cat));
            let ord = if *desc { ord.reverse() } else { ord };
            if ord.is_ne() {
                return ord;
            }
        }
        (&a.name, a.id).cmp(&(&b.name, b.id))
    });
    let ids = hits
        .get(page.offset..end.min(total))
        .unwrap_or(&[])
        .iter()
        .map(|r| r.id)
        .collect();
    (total, ids)
}

/// Whether order `o` passes `q`'s filters; `query=` only unless `query_known` (the
/// candidates are exactly the orders it finds).
fn order_matches(q: &OrderQuery, cat: &Catalog, o: &OrderEntry, query_known: bool) -> bool {
    q.visible
        .admits(o.provider, o.customer, o.project, o.created_by)
        && common_matches(
            &q.common, cat, o.offering, o.customer, o.project, o.provider, o.created, o.modified,
        )
        && any_of(&q.resource, o.resource)
        && q.states.as_ref().is_none_or(|s| s.contains(&o.state))
        && q.types.as_ref().is_none_or(|s| s.contains(&o.kind))
        && q.approvable_as_consumer.as_ref().is_none_or(|(want, who)| {
            (o.state == OrderState::PendingConsumer
                && who.admits(o.provider, o.customer, o.project, o.created_by))
                == *want
        })
        && q.approvable_as_provider.as_ref().is_none_or(|(want, who)| {
            (o.state == OrderState::PendingProvider
                && who.admits(o.provider, o.customer, o.project, o.created_by))
                == *want
        })
        && q.resource_name.as_ref().is_none_or(|text| {
            cat.resources
                .get(&o.resource)
                .is_some_and(|x| contains_lowercase(&x.name, text))
        })
        && (query_known
            || q.query.as_ref().is_none_or(|text| {
                Id::parse(text) == Some(o.id)
                    || cat
                        .projects
                        .get(&o.project)
                        .is_some_and(|x| contains_lowercase(&x.name, text))
                    || cat
                        .resources
                        .get(&o.resource)
                        .is_some_and(|x| contains_lowercase(&x.name, text))
            }))
}

/// The ids of an order list's page, and its total. `reviewed` reads an order's
/// consumer review time (not in the catalog), asked only when the list is ordered by
/// it.
pub(crate) fn orders(
    cat: &Catalog,
    q: &OrderQuery,
    reviewed: impl Fn(Id) -> Option<DateTime<Utc>>,
) -> (usize, Vec<Id>) {
    let narrowed = order_candidates(q, cat);
    let query_known = narrowed.as_ref().is_some_and(|(_, exact)| *exact);
    let keep = |o: &&OrderEntry| order_matches(q, cat, o, query_known);
    let page = q.page.unwrap_or(PageRange {
        offset: 0,
        limit: 0,
    });
    let end = page.offset.saturating_add(page.limit);
    // As for resources: the default order over everything walks the creation index
    // up to the page's end (and counts with a scan); otherwise hits are collected
    // unordered (narrowed by offering through its index) and only the items up to the
    // page's end are ordered.
    // `o=created` is the default order and `o=-created` the same backwards (ties in
    // `created` by id descending then, however the page is found); indexes by
    // resource, `query=`, project and offering narrow the candidates.
    let reverse = q.order.as_slice() == [(OrderKey::Created, true)];
    let default_order =
        q.order.is_empty() || q.order.as_slice() == [(OrderKey::Created, false)] || reverse;
    if default_order && narrowed.is_none() {
        let total = cat.orders.values().filter(keep).count();
        let ids = if page.limit == 0 {
            Vec::new()
        } else {
            let walk = |ids: &mut dyn Iterator<Item = &Id>| -> Vec<Id> {
                ids.filter_map(|id| cat.orders.get(id))
                    .filter(keep)
                    .skip(page.offset)
                    .take(page.limit)
                    .map(|o| o.id)
                    .collect()
            };
            let ids = cat.orders_by_created.iter().map(|(_, id)| id);
            if reverse {
                walk(&mut ids.rev())
            } else {
                walk(&mut ids.into_iter())
            }
        };
        return (total, ids);
    }
    let mut hits = match narrowed {
        Some((v, _)) => v.into_iter().filter(keep).collect(),
        None => unordered_hits(&cat.orders, &cat.orders_by_offering, None, keep),
    };
    let total = hits.len();
    if page.limit == 0 || page.offset >= total {
        return (total, Vec::new());
    }
    let by_review = q
        .order
        .iter()
        .any(|(k, _)| *k == OrderKey::ConsumerReviewedAt);
    let review: std::collections::HashMap<Id, (bool, DateTime<Utc>)> = if by_review {
        hits.iter()
            .map(|o| {
                let at = reviewed(o.id);
                (o.id, (at.is_none(), at.unwrap_or_default()))
            })
            .collect()
    } else {
        Default::default()
    };
    sort_prefix(&mut hits, end, |a, b| {
        for (k, desc) in &q.order {
            let ord = match k {
                OrderKey::Created => a.created.cmp(&b.created),
                OrderKey::Modified => a.modified.cmp(&b.modified),
                OrderKey::State => a.state.as_str().cmp(b.state.as_str()),
                OrderKey::ConsumerReviewedAt => review.get(&a.id).cmp(&review.get(&b.id)),
            };
            let ord = if *desc { ord.reverse() } else { ord };
            if ord.is_ne() {
                return ord;
            }
        }
        let ord = (a.created, a.id).cmp(&(b.created, b.id));
        if reverse {
            ord.reverse()
        } else {
            ord
        }
    });
    let ids = hits[page.offset..end.min(total)]
        .iter()
        .map(|o| o.id)
        .collect();
    (total, ids)
}

/// An offering list's page and its total.
pub(crate) fn offerings(cat: &Catalog, q: &OfferingQuery) -> (usize, Vec<Offering>) {
    let mut hits: Vec<&Offering> = cat
        .offerings
        .values()
        .filter(|o| q.visible.all || q.visible.providers.contains(&o.customer))
        .filter(|o| {
            q.name
                .as_ref()
                .is_none_or(|n| contains_lowercase(&o.name, n))
        })
        .filter(|o| any_of(&q.customer, o.customer))
        .collect();
    let total = hits.len();
    hits.sort_by(|a, b| {
        for (k, desc) in &q.order {
            let ord = match k {
                OfferingKey::Name => a.name.cmp(&b.name),
                OfferingKey::Created => a.created.cmp(&b.created),
                OfferingKey::State => a.state.as_str().cmp(b.state.as_str()),
            };
            let ord = if *desc { ord.reverse() } else { ord };
            if ord.is_ne() {
                return ord;
            }
        }
        (&a.name, a.id).cmp(&(&b.name, b.id))
    });
    let page = q.page.unwrap_or(PageRange {
        offset: 0,
        limit: 0,
    });
    let items = hits
        .into_iter()
        .skip(page.offset)
        .take(page.limit)
        .cloned()
        .collect();
    (total, items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Interval, ResourceState};
    use crate::store::index::ResourceIdx;
    use crate::store::query::{ResourceKey, ResourceQuery, Visible};
    use chrono::TimeZone;

    fn id(n: u32) -> Id {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&n.to_be_bytes());
        // Ids out of step with their numbers, so the id tie-break is exercised.
        b[4] = (n * 37 % 11) as u8;
        b.reverse();
        Id::from_slice(&b).unwrap_or_default()
    }

    /// 40 resources over two offerings: first starts from four hours (ties across
    /// names) or none, names repeating, every other one terminated.
    fn catalog() -> Catalog {
        let mut cat = Catalog::default();
        let at = |h: u32| {
            Utc.with_ymd_and_hms(2030, 1, 1, h, 0, 0)
                .single()
                .unwrap_or_default()
        };
        for n in 0..40u32 {
            let slots = match n % 5 {
                0 => vec![],
                k => vec![
                    Interval::new(at(k), at(k + 1)),
                    Interval::new(at(20), at(21)),
                ],
            };
            cat.put_resource(&ResourceIdx {
                id: id(n),
                name: ["b", "a", "c", "a b"][(n % 4) as usize].into(),
                slug: format!("r-{n}"),
                backend_id: String::new(),
                offering: id(1_000 + n % 2),
                project: id(2_000),
                state: if n % 2 == 0 {
                    ResourceState::Ok
                } else {
                    ResourceState::Terminated
                },
                created: at(0),
                modified: at(0),
                created_by: id(3_000),
                slots,
            });
        }
        cat
    }

    #[test]
    fn o_schedules_over_everything_walks_the_start_index_into_the_order_the_sort_gives() {
        let cat = catalog();
        // The same query narrowed to both offerings (every resource) takes the
        // collect-and-sort path: the walk must give the same pages and totals.
        let cases: [(bool, Option<Vec<ResourceState>>, usize, usize); 8] = [
            (false, None, 0, 100),
            (true, None, 0, 100),
            (false, None, 7, 5),
            (true, None, 7, 5),
            (false, Some(vec![ResourceState::Ok]), 3, 4),
            (true, Some(vec![ResourceState::Ok]), 0, 100),
            (false, None, 39, 10),
            (true, Some(vec![ResourceState::Ok]), 25, 10),
        ];
        for (desc, states, offset, limit) in cases {
            let walked = ResourceQuery {
                visible: Visible::everything(),
                states,
                order: vec![(ResourceKey::Schedules, desc)],
                page: Some(PageRange { offset, limit }),
                ..ResourceQuery::default()
            };
            let mut sorted = walked.clone();
            sorted.common.offering.ids = Some(vec![id(1_000), id(1_001)]);
            let (total, ids) = resources(&cat, &walked);
            assert_eq!(
                (total, ids.clone()),
                resources(&cat, &sorted),
                "desc {desc}, offset {offset}, limit {limit}"
            );
            assert_eq!(ids.len(), limit.min(total.saturating_sub(offset)));
        }
    }

    #[test]
    fn sort_prefix_orders_exactly_the_first_items() {
        let all: Vec<u32> = (0..200).map(|i| (i * 7919) % 211).collect();
        let mut want = all.clone();
        want.sort_unstable();
        for end in [0, 1, 10, 100, 199, 200, 300] {
            let mut v = all.clone();
            sort_prefix(&mut v, end, |a, b| a.cmp(b));
            let n = end.min(v.len());
            assert_eq!(v[..n], want[..n], "end {end}");
            let mut rest = v.clone();
            rest.sort_unstable();
            assert_eq!(rest, want, "end {end}: same items");
        }
    }
}
