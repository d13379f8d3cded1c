//! List queries in SQL: the [`query`](super::super::query) types translated to a
//! `WHERE` over indexed columns, a count, and one page of documents. Text searches
//! match the (already folded) needle against the folded columns
//! ([`folded`](super::folded)), never `lower()`, which under `COLLATE "C"` lowercases
//! ASCII letters only.

use sqlx::postgres::Postgres;
use sqlx::{PgExecutor, QueryBuilder};
use uuid::Uuid;

use super::super::query::{
    BookingFilter, OfferingKey, OfferingQuery, OrderKey, OrderQuery, Page, PageRange, ResourceKey,
    ResourceQuery, Visible,
};
use super::super::records::{OfferingRecord, OrderRecord, ResourceRecord};
use super::super::StoreError;
use super::read::{decode_all, ids};
use crate::domain::{Id, Offering, Order, Resource};

type Qb<'a> = QueryBuilder<'a, Postgres>;

/// `text` as a `LIKE` pattern matching it anywhere (its own `%`, `_` and `\` escaped).
fn contains_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// ` AND (<who may see the row>)` for a row alias with provider/customer/project/
/// created_by columns.
fn push_visible(qb: &mut Qb<'_>, v: &Visible, a: &str) {
    if v.all {
        return;
    }
    qb.push(" AND (FALSE");
    if !v.providers.is_empty() {
        qb.push(format!(" OR {a}.provider = ANY("))
            .push_bind(ids(&v.providers))
            .push(")");
    }
    if !v.consumers.is_empty() {
        qb.push(format!(" OR {a}.customer = ANY("))
            .push_bind(ids(&v.consumers))
            .push(")");
    }
    if !v.projects.is_empty() {
        qb.push(format!(" OR {a}.project = ANY("))
            .push_bind(ids(&v.projects))
            .push(")");
    }
    if let Some(c) = v.creator {
        qb.push(format!(" OR {a}.created_by = ")).push_bind(c.0);
    }
    qb.push(")");
}

/// ` AND column IN values`: one value as `=`, since PostgreSQL walks an index in
/// order (a page of a list without a sort) only for an equality, not for `= ANY`.
fn push_in(qb: &mut Qb<'_>, column: &str, values: &Option<Vec<Id>>) {
    match values.as_deref() {
        None => {}
        Some([one]) => {
            qb.push(format!(" AND {column} = ")).push_bind(one.0);
        }
        Some(v) => {
            qb.push(format!(" AND {column} = ANY("))
                .push_bind(ids(v))
                .push(")");
        }
    }
}

/// ` AND column IN states`, one state as `=` (see [`push_in`]).
fn push_states(qb: &mut Qb<'_>, column: &str, states: &[&'static str]) {
    match states {
        [one] => {
            qb.push(format!(" AND {column} = ")).push_bind(*one);
        }
        _ => {
            qb.push(format!(" AND {column} = ANY("))
                .push_bind(states.to_vec())
                .push(")");
        }
    }
}

fn push_common(qb: &mut Qb<'_>, f: &BookingFilter, a: &str) {
    if f.nothing {
        qb.push(" AND FALSE");
    }
    push_in(qb, &format!("{a}.offering"), &f.offering.ids);
    if !f.offering.slugs.is_empty() || f.offering.categories.is_some() {
        qb.push(format!(
            " AND {a}.offering IN (SELECT id FROM offerings WHERE TRUE"
        ));
        if !f.offering.slugs.is_empty() {
            qb.push(" AND slug = ANY(")
                .push_bind(f.offering.slugs.clone())
                .push(")");
        }
        push_in(qb, "category", &f.offering.categories);
        qb.push(")");
    }
    push_in(qb, &format!("{a}.customer"), &f.customer);
    push_in(qb, &format!("{a}.project"), &f.project);
    push_in(qb, &format!("{a}.provider"), &f.provider);
    if let Some(t) = f.created_after {
        qb.push(format!(" AND {a}.created >= ")).push_bind(t);
    }
    if let Some(t) = f.created_before {
        qb.push(format!(" AND {a}.created <= ")).push_bind(t);
    }
    if let Some(t) = f.modified_after {
        qb.push(format!(" AND {a}.modified >= ")).push_bind(t);
    }
    if let Some(t) = f.modified_before {
        qb.push(format!(" AND {a}.modified <= ")).push_bind(t);
    }
    if let Some(u) = f.service_manager {
        qb.push(format!(
            " AND {a}.offering IN (SELECT o.id FROM offerings o JOIN customers c \
             ON c.id = o.customer WHERE (o.doc->>'shared')::boolean AND ("
        ))
        .push_bind(u.0)
        .push(" = ANY(c.owners) OR ")
        .push_bind(u.0)
        .push(" = ANY(c.managers)))");
    }
}

fn push_page(qb: &mut Qb<'_>, page: PageRange) {
    qb.push(" LIMIT ")
        .push_bind(page.limit as i64)
        .push(" OFFSET ")
        .push_bind(page.offset as i64);
}

async fn count(ex: impl PgExecutor<'_>, mut qb: Qb<'_>) -> Result<usize, StoreError> {
    let n: i64 = qb.build_query_scalar().fetch_one(ex).await?;
    Ok(n.max(0) as usize)
}

fn resource_where(qb: &mut Qb<'_>, q: &ResourceQuery) {
    qb.push(" WHERE TRUE");
    push_visible(qb, &q.visible, "r");
    push_common(qb, &q.common, "r");
    if let Some(states) = &q.states {
        let s: Vec<&'static str> = states.iter().map(|s| s.as_str()).collect();
        push_states(qb, "r.state", &s);
    }
    if let Some(c) = &q.connected {
        qb.push(" AND (r.customer = ANY(")
            .push_bind(ids(c))
            .push(") OR r.provider = ANY(")
            .push_bind(ids(c))
            .push("))");
    }
    if let Some(text) = &q.query {
        let pat = contains_pattern(text);
        qb.push(" AND (r.name_folded LIKE ")
            .push_bind(pat.clone())
            .push(" OR r.slug_folded LIKE ")
            .push_bind(pat.clone())
            .push(" OR r.backend_id_folded LIKE ")
            .push_bind(pat);
        if let Some(id) = Id::parse(text) {
            qb.push(" OR r.id = ").push_bind(id.0);
        }
        qb.push(")");
    }
    if let Some(n) = &q.name {
        qb.push(" AND r.name_folded LIKE ")
            .push_bind(contains_pattern(n));
    }
    if let Some(n) = &q.name_exact {
        qb.push(" AND r.name = ").push_bind(n.clone());
    }
    if let Some(b) = &q.backend_id {
        qb.push(" AND r.backend_id = ").push_bind(b.clone());
    }
    if let Some(n) = &q.project_name {
        // The matching projects once (an init plan), then the resources by index.
        qb.push(" AND r.project = ANY(ARRAY(SELECT p.id FROM projects p WHERE p.name_folded LIKE ")
            .push_bind(contains_pattern(n))
            .push("))");
    }
}

fn direction(desc: bool) -> &'static str {
    if desc {
        " DESC"
    } else {
        " ASC"
    }
}

/// A pooled connection, in a transaction when statements need settings of their own
/// (`SET LOCAL`, gone at its end).
enum Held {
    Tx(sqlx::Transaction<'static, Postgres>),
    Conn(sqlx::pool::PoolConnection<Postgres>),
}

impl Held {
    fn conn(&mut self) -> &mut sqlx::PgConnection {
        match self {
            Held::Tx(t) => t,
            Held::Conn(c) => c,
        }
    }

    async fn done(self) -> Result<(), sqlx::Error> {
        match self {
            Held::Tx(t) => t.commit().await,
            Held::Conn(_) => Ok(()),
        }
    }
}

/// Whether a resource list is a text search over names (`query=`, `name=`).
fn text_search(q: &ResourceQuery) -> bool {
    q.query.is_some() || q.name.is_some()
}

/// The planner settings of a text search's statements, for the rest of the
/// transaction.
///
/// A text search reads its matches through the trigram indexes. Left to its estimates
/// the planner prefers testing every row on a walk of a btree in the list's order
/// (measured when searches compared `lower(name)`: three to four times the CPU of the
/// trigram scan at 100,000 rows; its cost model rates the trigram scan's heap visits
/// at random-read prices). So for these statements full scans are ruled out;
/// JIT stays off, since a ruled-out path's penalty cost would otherwise trigger its
/// compilation.
async fn search_settings(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT set_config('enable_seqscan', 'off', true), \
         set_config('enable_indexonlyscan', 'off', true), set_config('jit', 'off', true)",
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// The count of a resource list (`prefix` goes before it: `EXPLAIN` in tests).
fn resource_count<'a>(prefix: &str, q: &'a ResourceQuery) -> Qb<'a> {
    let mut c = Qb::new(format!("{prefix}SELECT count(*) FROM resources r"));
    resource_where(&mut c, q);
    c
}

/// The ids of a resource list's page, in the list's order; a text search's rows also
/// carry the number of its matches (see [`resources`]).
fn resource_page_ids<'a>(prefix: &str, q: &'a ResourceQuery, page: PageRange) -> Qb<'a> {
    let mut qb = Qb::new(format!("{prefix}SELECT r.id"));
    if text_search(q) {
        // A text search is a trigram index scan of its matches, then a sort of those.
        // Without the fence (a subquery with OFFSET 0 is planned on its own) the
        // planner walks the ordering index and tests every row on the way, assuming
        // the matches are spread evenly through the order; a needle that names the
        // start of the sort key (`seminar` for names in name order) proves it wrong by
        // tens of thousands of rows. The sort reads every match anyway, so the same
        // read counts them (a window over all the matches, before the page is cut).
        qb.push(", count(*) OVER () FROM (SELECT * FROM resources r");
        resource_where(&mut qb, q);
        qb.push(" OFFSET 0) r");
    } else {
        qb.push(" FROM resources r");
    }
    let by_names = q.order.iter().any(|(k, _)| {
        matches!(
            k,
            ResourceKey::ProjectName | ResourceKey::CustomerName | ResourceKey::OfferingName
        )
    });
    if by_names {
        qb.push(
            " LEFT JOIN projects p ON p.id = r.project \
             LEFT JOIN customers c ON c.id = r.customer \
             LEFT JOIN offerings o ON o.id = r.offering",
        );
    }
    if !text_search(q) {
        resource_where(&mut qb, q);
    }
    qb.push(" ORDER BY ");
    for (k, desc) in &q.order {
        let d = direction(*desc);
        let expr = match k {
            ResourceKey::Name => format!("r.name{d}"),
            ResourceKey::Created => format!("r.created{d}"),
            ResourceKey::Modified => format!("r.modified{d}"),
            ResourceKey::State => format!("r.state{d}"),
            ResourceKey::BackendId => format!("r.backend_id{d}"),
            // No slots sort first (as `None` before `Some`); the index
            // `resources_first_start` has this order, name and id included.
            ResourceKey::Schedules if *desc => "r.first_start DESC NULLS LAST".into(),
            ResourceKey::Schedules => "r.first_start ASC NULLS FIRST".into(),
            ResourceKey::ProjectName => format!("COALESCE(p.name, ''){d}"),
            ResourceKey::CustomerName => format!("COALESCE(c.name, ''){d}"),
            ResourceKey::OfferingName => format!("COALESCE(o.name, ''){d}"),
        };
        qb.push(expr).push(", ");
    }
    qb.push("r.name, r.id");
    push_page(&mut qb, page);
    qb
}

/// A booking resource list.
///
/// The page's ids first, then their documents: the ordering walks an index (an
/// index-only scan where one covers the filter and the order, so a deep page's OFFSET
/// skips index entries, not rows), and only the page's documents are read and turned
/// into text. The total is a count of its own, except for a text search's page:
/// that reads all the matches to sort them and counts them on the way, so the matches
/// are read once (a count of its own only when the page is past the end).
///
/// # Errors
/// The database refuses, or a document does not decode.
pub(crate) async fn resources(
    pool: &sqlx::PgPool,
    q: &ResourceQuery,
) -> Result<Page<Resource>, StoreError> {
    let mut held = if text_search(q) {
        let mut tx = pool.begin().await?;
        search_settings(&mut tx).await?;
        Held::Tx(tx)
    } else {
        Held::Conn(pool.acquire().await?)
    };
    let page = q.page.filter(|p| p.limit > 0);
    let (total, page_ids) = match page {
        Some(page) if text_search(q) => {
            let rows: Vec<(Uuid, i64)> = resource_page_ids("", q, page)
                .build_query_as()
                .fetch_all(held.conn())
                .await?;
            match rows.first() {
                Some(&(_, n)) => (n.max(0) as usize, rows.into_iter().map(|r| r.0).collect()),
                None if page.offset == 0 => (0, Vec::new()),
                None => (count(held.conn(), resource_count("", q)).await?, Vec::new()),
            }
        }
        _ => {
            let total = count(held.conn(), resource_count("", q)).await?;
            let ids: Vec<Uuid> = match page.filter(|p| p.offset < total) {
                Some(page) => {
                    resource_page_ids("", q, page)
                        .build_query_scalar()
                        .fetch_all(held.conn())
                        .await?
                }
                None => Vec::new(),
            };
            (total, ids)
        }
    };
    held.done().await?;
    if page_ids.is_empty() {
        return Ok(Page {
            total,
            items: Vec::new(),
        });
    }
    let docs: Vec<String> = sqlx::query_scalar(
        "SELECT r.doc::text FROM unnest($1::uuid[]) WITH ORDINALITY AS k(id, n) \
         JOIN resources r ON r.id = k.id ORDER BY k.n",
    )
    .bind(&page_ids)
    .fetch_all(pool)
    .await?;
    Ok(Page {
        total,
        items: decode_all::<ResourceRecord, Resource>("resources", &docs)?,
    })
}

fn order_where(qb: &mut Qb<'_>, q: &OrderQuery) {
    qb.push(" WHERE TRUE");
    push_visible(qb, &q.visible, "o");
    push_common(qb, &q.common, "o");
    push_in(qb, "o.resource", &q.resource);
    if let Some(states) = &q.states {
        let s: Vec<&'static str> = states.iter().map(|s| s.as_str()).collect();
        push_states(qb, "o.state", &s);
    }
    if let Some(types) = &q.types {
        let t: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
        qb.push(" AND o.kind = ANY(").push_bind(t).push(")");
    }
    for (pending, approvable) in [
        ("pending-consumer", &q.approvable_as_consumer),
        ("pending-provider", &q.approvable_as_provider),
    ] {
        if let Some((want, who)) = approvable {
            qb.push(" AND ((o.state = ")
                .push_bind(pending)
                .push(" AND (TRUE");
            push_visible(qb, who, "o");
            qb.push(")) = ").push_bind(*want).push(")");
        }
    }
    // The resource's folded name is the order's own `resource_name_folded` column
    // (kept by the writes), searched with its trigram index; the matching projects are found once
    // (an init plan) and the orders by the project index, so the alternatives are
    // one bitmap OR of index scans.
    if let Some(text) = &q.resource_name {
        qb.push(" AND o.resource_name_folded LIKE ")
            .push_bind(contains_pattern(text));
    }
    if let Some(text) = &q.query {
        let pat = contains_pattern(text);
        qb.push(" AND (FALSE");
        if let Some(id) = Id::parse(text) {
            qb.push(" OR o.id = ").push_bind(id.0);
        }
        qb.push(" OR o.project = ANY(ARRAY(SELECT p.id FROM projects p WHERE p.name_folded LIKE ")
            .push_bind(pat.clone())
            .push(")) OR o.resource_name_folded LIKE ")
            .push_bind(pat)
            .push(")");
    }
}

/// Whether an order list is a text search (`query=`, `resource_name=`): its
/// statements run with [`search_settings`], as the resources' searches do (the
/// matching projects' part of `query=` is estimated blind, which makes a scan of all
/// orders look as cheap as the trigram index).
fn order_text_search(q: &OrderQuery) -> bool {
    q.query.is_some() || q.resource_name.is_some()
}

/// The count of an order list (`prefix` goes before it: `EXPLAIN` in tests).
fn order_count<'a>(prefix: &str, q: &'a OrderQuery) -> Qb<'a> {
    let mut c = Qb::new(format!("{prefix}SELECT count(*) FROM orders o"));
    order_where(&mut c, q);
    c
}

/// The documents of an order list's page, in the list's order.
fn order_page<'a>(prefix: &str, q: &'a OrderQuery, page: PageRange) -> Qb<'a> {
    let mut qb = Qb::new(format!("{prefix}SELECT o.doc::text FROM orders o"));
    order_where(&mut qb, q);
    qb.push(" ORDER BY ");
    for (k, desc) in &q.order {
        let d = direction(*desc);
        qb.push(match k {
            // `orders_created` holds this order (and backwards, `o=-created`).
            OrderKey::Created => format!("o.created{d}"),
            OrderKey::Modified => format!("o.modified{d}"),
            OrderKey::State => format!("o.state{d}"),
            // Nulls last ascending, first descending (PostgreSQL's default).
            OrderKey::ConsumerReviewedAt => {
                format!("(o.doc->>'consumer_reviewed_at')::timestamptz{d}")
            }
        })
        .push(", ");
    }
    // Ties as on sled: `o=-created` alone is the default order backwards (ties by id
    // descending: a backward walk of `orders_created`); every other order breaks ties
    // by creation, then id.
    if q.order.as_slice() == [(OrderKey::Created, true)] {
        qb.push("o.id DESC");
    } else {
        qb.push("o.created, o.id");
    }
    push_page(&mut qb, page);
    qb
}

/// An order list.
///
/// # Errors
/// The database refuses, or a document does not decode.
pub(crate) async fn orders(pool: &sqlx::PgPool, q: &OrderQuery) -> Result<Page<Order>, StoreError> {
    let mut held = if order_text_search(q) {
        let mut tx = pool.begin().await?;
        search_settings(&mut tx).await?;
        Held::Tx(tx)
    } else {
        Held::Conn(pool.acquire().await?)
    };
    let total = count(held.conn(), order_count("", q)).await?;
    let Some(page) = q.page.filter(|p| p.limit > 0 && p.offset < total) else {
        held.done().await?;
        return Ok(Page {
            total,
            items: Vec::new(),
        });
    };
    let docs: Vec<String> = order_page("", q, page)
        .build_query_scalar()
        .fetch_all(held.conn())
        .await?;
    held.done().await?;
    Ok(Page {
        total,
        items: decode_all::<OrderRecord, Order>("orders", &docs)?,
    })
}

fn offering_where(qb: &mut Qb<'_>, q: &OfferingQuery) {
    qb.push(" WHERE TRUE");
    if !q.visible.all {
        // Offerings are seen by their provider's people.
        qb.push(" AND o.customer = ANY(")
            .push_bind(ids(&q.visible.providers))
            .push(")");
    }
    if let Some(n) = &q.name {
        qb.push(" AND o.name_folded LIKE ")
            .push_bind(contains_pattern(n));
    }
    push_in(qb, "o.customer", &q.customer);
}

/// A booking offering list.
///
/// # Errors
/// The database refuses, or a document does not decode.
pub(crate) async fn offerings(
    pool: &sqlx::PgPool,
    q: &OfferingQuery,
) -> Result<Page<Offering>, StoreError> {
    let mut c = Qb::new("SELECT count(*) FROM offerings o");
    offering_where(&mut c, q);
    let total = count(pool, c).await?;
    let Some(page) = q.page.filter(|p| p.limit > 0 && p.offset < total) else {
        return Ok(Page {
            total,
            items: Vec::new(),
        });
    };
    let mut qb = Qb::new("SELECT o.doc::text FROM offerings o");
    offering_where(&mut qb, q);
    qb.push(" ORDER BY ");
    for (k, desc) in &q.order {
        let d = direction(*desc);
        qb.push(match k {
            OfferingKey::Name => format!("o.name{d}"),
            OfferingKey::Created => format!("(o.doc->>'created')::timestamptz{d}"),
            OfferingKey::State => format!("(o.doc->>'state') COLLATE \"C\"{d}"),
        })
        .push(", ");
    }
    qb.push("o.name, o.id");
    push_page(&mut qb, page);
    let docs: Vec<String> = qb.build_query_scalar().fetch_all(pool).await?;
    Ok(Page {
        total,
        items: decode_all::<OfferingRecord, Offering>("offerings", &docs)?,
    })
}

/// How many orders each offering has.
///
/// # Errors
/// The database refuses.
pub(crate) async fn order_counts(
    ex: impl PgExecutor<'_>,
    offerings: &[Id],
) -> Result<Vec<(Id, usize)>, StoreError> {
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT offering, count(*) FROM orders WHERE offering = ANY($1) GROUP BY offering",
    )
    .bind(ids(offerings))
    .fetch_all(ex)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(o, n)| (Id(o), n.max(0) as usize))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_their_wildcards() {
        let cases = [
            ("room", "%room%"),
            ("50%", "%50\\%%"),
            ("a_b", "%a\\_b%"),
            ("c:\\x", "%c:\\\\x%"),
            ("", "%%"),
        ];
        for (text, want) in cases {
            assert_eq!(contains_pattern(text), want, "{text}");
        }
    }
}

/// The plans of the lists that scanned or sorted whole tables before
/// `0010_list_indexes.sql`: `EXPLAIN` of the statements the lists run, on a data set
/// big enough for the planner to prefer an index when one fits (20,000 resources and
/// orders in the shape of the API benchmark's).
#[cfg(test)]
mod plans {
    use super::*;
    use crate::domain::{OrderState, ResourceState};
    use crate::store::pg::{connect, migrate, testing, PgOptions};

    const FILL: &str = "
        INSERT INTO resources (id, offering, project, customer, provider, name, slug,
            backend_id, state, created, modified, created_by, first_start, creation_order, doc)
        SELECT md5('r' || i)::uuid, md5('o' || (i % 20))::uuid, md5('p' || ((i / 20) % 50))::uuid,
            md5('c' || ((i / 20) % 50 / 5))::uuid, md5('v' || (i % 20 / 5))::uuid,
            (ARRAY['Imaging', 'Seminar', 'Calibration', 'Night run', 'Workshop', 'Training',
                   'Maintenance', 'Review'])[(i / 20) % 8 + 1] || ' ' || lpad(i::text, 6, '0'),
            'slug-' || i, '', CASE WHEN (i / 20) % 5 = 0 THEN 'Creating' ELSE 'OK' END,
            '2026-12-01T10:00:00Z'::timestamptz + (i / 1000) * interval '1 second',
            '2026-12-01T10:00:00Z'::timestamptz, md5('u' || (i % 10))::uuid,
            '2026-12-02T00:00:00Z'::timestamptz + (i / 20) * interval '2 hours',
            md5('d' || i)::uuid, jsonb_build_object('pad', repeat('x', 600))
        FROM generate_series(0, 19999) i;
        INSERT INTO orders (id, offering, project, customer, provider, resource, state, kind,
            created, modified, created_by, resource_name, doc)
        SELECT creation_order, offering, project, customer, provider, id, 'done', 'Create',
            created, modified, created_by, name, jsonb_build_object('pad', repeat('y', 500))
        FROM resources;
        INSERT INTO projects (id, customer, name, members, doc)
        SELECT md5('p' || p)::uuid, md5('c' || (p / 5))::uuid, 'Project ' || p, '{}', '{}'
        FROM generate_series(0, 49) p;";

    /// The id the fill gave `text` (`md5(text)::uuid`).
    async fn id(pool: &sqlx::PgPool, text: &str) -> Id {
        let u: Uuid = sqlx::query_scalar("SELECT md5($1)::uuid")
            .bind(text)
            .fetch_one(pool)
            .await
            .expect("id");
        Id(u)
    }

    async fn plan(conn: &mut sqlx::PgConnection, mut qb: Qb<'_>) -> String {
        let lines: Vec<String> = qb
            .build_query_scalar()
            .fetch_all(conn)
            .await
            .expect("explain");
        lines.join("\n")
    }

    /// The plans of a resource list's count and page, with the list's own settings.
    async fn resource_plans(
        pool: &sqlx::PgPool,
        q: &ResourceQuery,
        page: PageRange,
    ) -> (String, String) {
        let mut tx = pool.begin().await.expect("begin");
        if text_search(q) {
            search_settings(&mut tx).await.expect("settings");
        }
        let count = plan(&mut tx, resource_count("EXPLAIN ", q)).await;
        let ids = plan(&mut tx, resource_page_ids("EXPLAIN ", q, page)).await;
        (count, ids)
    }

    async fn order_plans(pool: &sqlx::PgPool, q: &OrderQuery, page: PageRange) -> (String, String) {
        let mut conn = pool.begin().await.expect("begin");
        if order_text_search(q) {
            search_settings(&mut conn).await.expect("settings");
        }
        let count = plan(&mut conn, order_count("EXPLAIN ", q)).await;
        let rows = plan(&mut conn, order_page("EXPLAIN ", q, page)).await;
        (count, rows)
    }

    /// The generic plan (the one a prepared statement settles on) of `sql` with
    /// these parameter types and values.
    async fn generic_plan(pool: &sqlx::PgPool, sql: &str, types: &str, values: &str) -> String {
        let mut tx = pool.begin().await.expect("begin");
        sqlx::raw_sql(&format!(
            "SET LOCAL plan_cache_mode = force_generic_plan; PREPARE q({types}) AS {sql}"
        ))
        .execute(&mut *tx)
        .await
        .expect("prepare");
        let lines: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN EXECUTE q({values})"))
            .fetch_all(&mut *tx)
            .await
            .expect("explain");
        lines.join("\n")
    }

    #[tokio::test]
    async fn a_new_order_reads_open_requests_and_nearby_slots_through_indexes() {
        let url = testing::database().await;
        let pool = connect(&url, &PgOptions::default()).await.expect("connect");
        migrate(&pool).await.expect("migrate");
        sqlx::raw_sql(FILL).execute(&pool).await.expect("fill");
        // Every booking of the fill has its one slot; then 40 requests without slots,
        // two per offering, the second of which is already terminated.
        sqlx::raw_sql(
            "INSERT INTO slots (resource, n, offering, backend_id, start_at, end_at, live)
             SELECT id, 0, offering, 'b' || id, first_start,
                    first_start + interval '90 minutes', true
             FROM resources;
             INSERT INTO resources (id, offering, project, customer, provider, name, slug,
                 backend_id, state, created, modified, created_by, doc)
             SELECT md5('q' || i)::uuid, md5('o' || (i % 20))::uuid, md5('p0')::uuid,
                 md5('c0')::uuid, md5('v0')::uuid, 'Request ' || i, 'request-' || i, '',
                 CASE WHEN i < 20 THEN 'Creating' ELSE 'Terminated' END, now(), now(),
                 md5('u0')::uuid, '{}'
             FROM generate_series(0, 39) i;
             INSERT INTO orders (id, offering, project, customer, provider, resource,
                 state, kind, created, modified, created_by, doc)
             SELECT md5('qo' || i)::uuid, md5('o' || (i % 20))::uuid, md5('p0')::uuid,
                 md5('c0')::uuid, md5('v0')::uuid, md5('q' || i)::uuid,
                 CASE WHEN i < 20 THEN 'pending-consumer' ELSE 'canceled' END, 'Create',
                 now(), now(), md5('u0')::uuid, jsonb_build_object('n', i)
             FROM generate_series(0, 39) i;",
        )
        .execute(&pool)
        .await
        .expect("slots and requests");
        sqlx::query("VACUUM ANALYZE")
            .execute(&pool)
            .await
            .expect("vacuum");
        let requesting: Vec<&str> = OrderState::ALL
            .iter()
            .filter(|s| s.holds_request())
            .map(|s| s.as_str())
            .collect();
        let live: Vec<&str> = ResourceState::ALL
            .iter()
            .filter(|s| s.holds_slots())
            .map(|s| s.as_str())
            .collect();
        let array = |items: &[&str]| format!("'{{{}}}'", items.join(","));
        let offering = id(&pool, "o3").await;
        let requests = generic_plan(
            &pool,
            super::super::read::OPEN_REQUESTS,
            "uuid, text[], text[]",
            &format!("'{}', {}, {}", offering.0, array(&requesting), array(&live)),
        )
        .await;
        assert!(requests.contains("resources_slotless"), "{requests}");
        assert!(!requests.contains("Seq Scan"), "{requests}");
        let slots = generic_plan(
            &pool,
            super::super::read::SLOTS_WITHIN,
            "uuid, timestamptz, timestamptz",
            &format!(
                "'{}', '2026-12-20T10:00:00Z', '2026-12-20T12:00:00Z'",
                offering.0
            ),
        )
        .await;
        assert!(slots.contains("slots_no_overlap"), "{slots}");
        assert!(!slots.contains("Seq Scan"), "{slots}");
        // And the requests found are exactly the offering's open one.
        let docs: Vec<String> = sqlx::query_scalar(super::super::read::OPEN_REQUESTS)
            .bind(offering.0)
            .bind(&requesting)
            .bind(&live)
            .fetch_all(&pool)
            .await
            .expect("requests");
        assert_eq!(docs, vec![r#"{"n": 3}"#.to_string()]);
    }

    #[tokio::test]
    async fn the_lists_that_scanned_whole_tables_use_their_indexes() {
        let url = testing::database().await;
        let pool = connect(&url, &PgOptions::default()).await.expect("connect");
        migrate(&pool).await.expect("migrate");
        sqlx::raw_sql(FILL).execute(&pool).await.expect("fill");
        // The fill writes no foldings (as an older bookcal would not): the start-up
        // step folds them.
        crate::store::pg::folded::fill(&pool).await.expect("fold");
        // As autovacuum leaves a settled table: statistics and the visibility map.
        sqlx::query("VACUUM ANALYZE")
            .execute(&pool)
            .await
            .expect("vacuum");

        let first = PageRange {
            offset: 0,
            limit: 100,
        };
        let all = || ResourceQuery {
            visible: Visible::everything(),
            ..ResourceQuery::default()
        };
        let mut offering = all();
        offering.common.offering.ids = Some(vec![id(&pool, "o3").await]);
        let provider = ResourceQuery {
            visible: Visible {
                providers: vec![id(&pool, "v0").await],
                ..Visible::default()
            },
            ..all()
        };
        // (what, query, page, index the plan must use)
        let resource_cases: Vec<(&str, ResourceQuery, PageRange, &str)> = vec![
            (
                "o=schedules over everything",
                ResourceQuery {
                    order: vec![(ResourceKey::Schedules, false)],
                    ..all()
                },
                first,
                "using resources_first_start on",
            ),
            (
                "o=-schedules over everything",
                ResourceQuery {
                    order: vec![(ResourceKey::Schedules, true)],
                    ..all()
                },
                first,
                "using resources_first_start_desc on",
            ),
            (
                "o=schedules of one offering",
                ResourceQuery {
                    order: vec![(ResourceKey::Schedules, false)],
                    ..offering.clone()
                },
                first,
                "using resources_offering_first_start on",
            ),
            (
                "query=seminar over everything",
                ResourceQuery {
                    query: Some("seminar".into()),
                    ..all()
                },
                first,
                "resources_name_trgm",
            ),
            (
                "name=seminar over everything",
                ResourceQuery {
                    name: Some("seminar".into()),
                    ..all()
                },
                first,
                "resources_name_trgm",
            ),
            (
                "name=seminar, provider owner",
                ResourceQuery {
                    name: Some("seminar".into()),
                    ..provider
                },
                first,
                // The trigram or the provider's index, whichever is narrower.
                "Index Scan",
            ),
        ];
        // The page's plan uses the index; so does the count's when the list has a
        // filter (a count of everything may scan: it reads every row anyway).
        for (n, (what, q, page, index)) in resource_cases.iter().enumerate() {
            let (count, ids) = resource_plans(&pool, q, *page).await;
            assert!(ids.contains(index), "{what}: no {index} in\n{ids}");
            assert!(!ids.contains("Seq Scan"), "{what}: a scan in\n{ids}");
            let filtered = text_search(q) || q.common.offering.ids.is_some();
            assert!(
                !filtered || !count.contains("Seq Scan"),
                "{what}: a scan in\n{count}"
            );
            // Lists in an index's order take the page from the walk, with no sort.
            if n < 3 {
                assert!(!ids.contains("Sort"), "{what}: a sort in\n{ids}");
            }
        }

        // A deep page of an offering's resources in one state can skip entries of
        // `resources_offering_state` in order (20,000 rows leave 800 per offering and
        // state, which the planner rightly sorts; sorting ruled out, the index must
        // serve the order).
        let deep = ResourceQuery {
            states: Some(vec![ResourceState::Ok]),
            ..offering.clone()
        };
        let page = PageRange {
            offset: 500,
            limit: 100,
        };
        let mut tx = pool.begin().await.expect("begin");
        sqlx::query("SET LOCAL enable_sort = off")
            .execute(&mut *tx)
            .await
            .expect("setting");
        let ids = plan(&mut tx, resource_page_ids("EXPLAIN ", &deep, page)).await;
        assert!(
            ids.contains("Index Only Scan using resources_offering_state on"),
            "deep page: no index in\n{ids}"
        );
        assert!(!ids.contains("Sort"), "deep page: a sort in\n{ids}");
        drop(tx);

        let orders = || OrderQuery {
            visible: Visible::everything(),
            ..OrderQuery::default()
        };
        let order_cases: Vec<(&str, OrderQuery, &str)> = vec![
            (
                "orders o=-created",
                OrderQuery {
                    order: vec![(OrderKey::Created, true)],
                    ..orders()
                },
                "Index Scan Backward using orders_created on",
            ),
            (
                "orders query=seminar",
                OrderQuery {
                    query: Some("seminar".into()),
                    ..orders()
                },
                "orders_resource_name_trgm",
            ),
        ];
        let (_, newest) = order_plans(&pool, &order_cases[0].1, first).await;
        assert!(newest.contains(order_cases[0].2), "no index in\n{newest}");
        assert!(
            !newest.contains("Sort"),
            "orders o=-created: a sort in\n{newest}"
        );
        assert!(!newest.contains("Seq Scan"), "a scan in\n{newest}");
        // The search's count reads the matches through the trigram index; its page
        // walks the creation order (matches are frequent) or sorts the matches.
        let (count, rows) = order_plans(&pool, &order_cases[1].1, first).await;
        assert!(count.contains(order_cases[1].2), "no index in\n{count}");
        assert!(!count.contains("Seq Scan on orders"), "a scan in\n{count}");
        assert!(!rows.contains("Seq Scan on orders"), "a scan in\n{rows}");
    }
}
