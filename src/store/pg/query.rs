//! List queries in SQL: the [`query`](super::super::query) types translated to a
//! `WHERE` over indexed columns, a count, and one page of documents.

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

fn push_in(qb: &mut Qb<'_>, column: &str, values: &Option<Vec<Id>>) {
    if let Some(v) = values {
        qb.push(format!(" AND {column} = ANY("))
            .push_bind(ids(v))
            .push(")");
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
        let s: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        qb.push(" AND r.state = ANY(").push_bind(s).push(")");
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
        qb.push(" AND (lower(r.name) LIKE ")
            .push_bind(pat.clone())
            .push(" OR lower(r.slug) LIKE ")
            .push_bind(pat.clone())
            .push(" OR lower(r.backend_id) LIKE ")
            .push_bind(pat);
        if let Some(id) = Id::parse(text) {
            qb.push(" OR r.id = ").push_bind(id.0);
        }
        qb.push(")");
    }
    if let Some(n) = &q.name {
        qb.push(" AND lower(r.name) LIKE ")
            .push_bind(contains_pattern(n));
    }
    if let Some(n) = &q.name_exact {
        qb.push(" AND r.name = ").push_bind(n.clone());
    }
    if let Some(b) = &q.backend_id {
        qb.push(" AND r.backend_id = ").push_bind(b.clone());
    }
    if let Some(n) = &q.project_name {
        qb.push(
            " AND EXISTS (SELECT 1 FROM projects p WHERE p.id = r.project AND lower(p.name) LIKE ",
        )
        .push_bind(contains_pattern(n))
        .push(")");
    }
}

fn direction(desc: bool) -> &'static str {
    if desc {
        " DESC"
    } else {
        " ASC"
    }
}

/// A booking resource list.
///
/// # Errors
/// The database refuses, or a document does not decode.
pub(crate) async fn resources(
    pool: &sqlx::PgPool,
    q: &ResourceQuery,
) -> Result<Page<Resource>, StoreError> {
    let mut c = Qb::new("SELECT count(*) FROM resources r");
    resource_where(&mut c, q);
    let total = count(pool, c).await?;
    let Some(page) = q.page.filter(|p| p.limit > 0 && p.offset < total) else {
        return Ok(Page {
            total,
            items: Vec::new(),
        });
    };
    let mut qb = Qb::new("SELECT r.doc::text FROM resources r");
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
    resource_where(&mut qb, q);
    qb.push(" ORDER BY ");
    for (k, desc) in &q.order {
        let d = direction(*desc);
        let expr = match k {
            ResourceKey::Name => format!("r.name{d}"),
            ResourceKey::Created => format!("r.created{d}"),
            ResourceKey::Modified => format!("r.modified{d}"),
            ResourceKey::State => format!("r.state{d}"),
            ResourceKey::BackendId => format!("r.backend_id{d}"),
            // No slots sort first (as `None` before `Some`).
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
    let docs: Vec<String> = qb.build_query_scalar().fetch_all(pool).await?;
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
        let s: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        qb.push(" AND o.state = ANY(").push_bind(s).push(")");
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
    if let Some(text) = &q.resource_name {
        qb.push(
            " AND EXISTS (SELECT 1 FROM resources r WHERE r.id = o.resource AND lower(r.name) LIKE ",
        )
        .push_bind(contains_pattern(text))
        .push(")");
    }
    if let Some(text) = &q.query {
        let pat = contains_pattern(text);
        qb.push(" AND (FALSE");
        if let Some(id) = Id::parse(text) {
            qb.push(" OR o.id = ").push_bind(id.0);
        }
        qb.push(
            " OR EXISTS (SELECT 1 FROM projects p WHERE p.id = o.project AND lower(p.name) LIKE ",
        )
        .push_bind(pat.clone())
        .push(") OR EXISTS (SELECT 1 FROM resources r WHERE r.id = o.resource AND lower(r.name) LIKE ")
        .push_bind(pat)
        .push("))");
    }
}

/// An order list.
///
/// # Errors
/// The database refuses, or a document does not decode.
pub(crate) async fn orders(pool: &sqlx::PgPool, q: &OrderQuery) -> Result<Page<Order>, StoreError> {
    let mut c = Qb::new("SELECT count(*) FROM orders o");
    order_where(&mut c, q);
    let total = count(pool, c).await?;
    let Some(page) = q.page.filter(|p| p.limit > 0 && p.offset < total) else {
        return Ok(Page {
            total,
            items: Vec::new(),
        });
    };
    let mut qb = Qb::new("SELECT o.doc::text FROM orders o");
    order_where(&mut qb, q);
    qb.push(" ORDER BY ");
    for (k, desc) in &q.order {
        let d = direction(*desc);
        qb.push(match k {
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
    qb.push("o.created, o.id");
    push_page(&mut qb, page);
    let docs: Vec<String> = qb.build_query_scalar().fetch_all(pool).await?;
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
        qb.push(" AND lower(o.name) LIKE ")
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
