//! Point reads on PostgreSQL, each one statement on any executor (the pool, or a
//! transaction so that a rule sees what it is about to change).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use super::super::feed_tokens::{self, FeedScope, FeedToken, SlotSequence};
use super::super::records::{
    AttachmentRecord, BusyRecord, CalendarRecord, CustomerRecord, ExternalsRecord, MappedRecord,
    OfferingRecord, OrderRecord, ProjectRecord, PushRecord, ResourceRecord, UserRecord,
};
use super::super::{decode, Attachment, BusySlot, StoreError};
use crate::domain::calendar::{ExternalEvent, MappedEvent, OfferingCalendar};
use crate::domain::push::PushState;
use crate::domain::{
    Customer, Id, Interval, Occupied, OccupiedKind, Offering, Order, OrderState, Project, Resource,
    ResourceState, User,
};

pub(crate) fn ids(ids: &[Id]) -> Vec<Uuid> {
    ids.iter().map(|i| i.0).collect()
}

macro_rules! by_id {
    ($name:ident, $many:ident, $table:literal, $key:literal, $rec:ty, $out:ty) => {
        pub(crate) async fn $name(
            ex: impl PgExecutor<'_>,
            id: Id,
        ) -> Result<Option<$out>, StoreError> {
            let doc: Option<String> = sqlx::query_scalar(concat!(
                "SELECT doc::text FROM ",
                $table,
                " WHERE ",
                $key,
                " = $1"
            ))
            .bind(id.0)
            .fetch_optional(ex)
            .await?;
            doc.map(|d| decode::<$rec>($table, d.as_bytes()).map(<$out>::from))
                .transpose()
        }

        // Generated for every kind; not every kind is read in batches yet.
        #[allow(dead_code)]
        pub(crate) async fn $many(
            ex: impl PgExecutor<'_>,
            wanted: &[Id],
        ) -> Result<Vec<$out>, StoreError> {
            let docs: Vec<String> = sqlx::query_scalar(concat!(
                "SELECT doc::text FROM ",
                $table,
                " WHERE ",
                $key,
                " = ANY($1)"
            ))
            .bind(ids(wanted))
            .fetch_all(ex)
            .await?;
            docs.iter()
                .map(|d| decode::<$rec>($table, d.as_bytes()).map(<$out>::from))
                .collect()
        }
    };
}

by_id!(user, users, "users", "id", UserRecord, User);
by_id!(
    customer,
    customers,
    "customers",
    "id",
    CustomerRecord,
    Customer
);
by_id!(project, projects, "projects", "id", ProjectRecord, Project);
by_id!(
    offering,
    offerings,
    "offerings",
    "id",
    OfferingRecord,
    Offering
);
by_id!(
    resource,
    resources,
    "resources",
    "id",
    ResourceRecord,
    Resource
);
by_id!(order, orders, "orders", "id", OrderRecord, Order);
by_id!(
    push_state,
    push_states_of,
    "push_channels",
    "offering",
    PushRecord,
    PushState
);
by_id!(
    calendar,
    calendars_of,
    "calendars",
    "offering",
    CalendarRecord,
    OfferingCalendar
);

/// Decodes documents of one kind.
pub(crate) fn decode_all<R, T>(table: &'static str, docs: &[String]) -> Result<Vec<T>, StoreError>
where
    R: serde::de::DeserializeOwned,
    T: From<R>,
{
    docs.iter()
        .map(|d| decode::<R>(table, d.as_bytes()).map(T::from))
        .collect()
}

/// Every user, organisation, project and offering.
pub(crate) async fn directory(
    conn: &mut sqlx::PgConnection,
) -> Result<super::super::mutate::Directory, StoreError> {
    let mut d = super::super::mutate::Directory::default();
    let docs: Vec<String> = sqlx::query_scalar("SELECT doc::text FROM users")
        .fetch_all(&mut *conn)
        .await?;
    for u in decode_all::<UserRecord, User>("users", &docs)? {
        d.users.insert(u.id, u);
    }
    let docs: Vec<String> = sqlx::query_scalar("SELECT doc::text FROM customers")
        .fetch_all(&mut *conn)
        .await?;
    for c in decode_all::<CustomerRecord, Customer>("customers", &docs)? {
        d.customers.insert(c.id, c);
    }
    let docs: Vec<String> = sqlx::query_scalar("SELECT doc::text FROM projects")
        .fetch_all(&mut *conn)
        .await?;
    for p in decode_all::<ProjectRecord, Project>("projects", &docs)? {
        d.projects.insert(p.id, p);
    }
    let docs: Vec<String> = sqlx::query_scalar("SELECT doc::text FROM offerings")
        .fetch_all(&mut *conn)
        .await?;
    for o in decode_all::<OfferingRecord, Offering>("offerings", &docs)? {
        d.offerings.insert(o.id, o);
    }
    Ok(d)
}

pub(crate) async fn user_by_name(
    ex: impl PgExecutor<'_>,
    username: &str,
) -> Result<Option<User>, StoreError> {
    let doc: Option<String> = sqlx::query_scalar("SELECT doc::text FROM users WHERE username = $1")
        .bind(username)
        .fetch_optional(ex)
        .await?;
    doc.map(|d| decode::<UserRecord>("users", d.as_bytes()).map(User::from))
        .transpose()
}

/// The user an API token hash belongs to.
pub(crate) async fn user_by_token_hash(
    ex: impl PgExecutor<'_>,
    hash: &[u8],
) -> Result<Option<User>, StoreError> {
    let doc: Option<String> = sqlx::query_scalar(
        "SELECT u.doc::text FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = $1",
    )
    .bind(hash)
    .fetch_optional(ex)
    .await?;
    doc.map(|d| decode::<UserRecord>("users", d.as_bytes()).map(User::from))
        .transpose()
}

pub(crate) async fn calendars(
    ex: impl PgExecutor<'_>,
) -> Result<Vec<OfferingCalendar>, StoreError> {
    let docs: Vec<String> = sqlx::query_scalar("SELECT doc::text FROM calendars ORDER BY offering")
        .fetch_all(ex)
        .await?;
    decode_all::<CalendarRecord, OfferingCalendar>("calendars", &docs)
}

/// The database's clock (what job leases and push claims are judged by).
pub(crate) async fn clock(ex: impl PgExecutor<'_>) -> Result<DateTime<Utc>, StoreError> {
    Ok(sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(ex)
        .await?)
}

/// The offering whose current channel, or channel being opened, is `channel_id`.
pub(crate) async fn push_offering_by_channel(
    ex: impl PgExecutor<'_>,
    channel_id: &str,
) -> Result<Option<Id>, StoreError> {
    let id: Option<Uuid> = sqlx::query_scalar(
        "SELECT offering FROM push_channels WHERE channel_id = $1 OR pending_id = $1",
    )
    .bind(channel_id)
    .fetch_optional(ex)
    .await?;
    Ok(id.map(Id))
}

pub(crate) async fn push_states(ex: impl PgExecutor<'_>) -> Result<Vec<PushState>, StoreError> {
    let docs: Vec<String> =
        sqlx::query_scalar("SELECT doc::text FROM push_channels ORDER BY offering")
            .fetch_all(ex)
            .await?;
    decode_all::<PushRecord, PushState>("push_channels", &docs)
}

pub(crate) async fn busy_slots(
    ex: impl PgExecutor<'_>,
    offering: Id,
) -> Result<Vec<BusySlot>, StoreError> {
    let doc: Option<String> = sqlx::query_scalar("SELECT doc::text FROM busy WHERE offering = $1")
        .bind(offering.0)
        .fetch_optional(ex)
        .await?;
    Ok(match doc {
        Some(d) => match decode::<BusyRecord>("busy", d.as_bytes())? {
            BusyRecord::V1 { slots, .. } => slots,
        },
        None => Vec::new(),
    })
}

pub(crate) async fn mapping(
    ex: impl PgExecutor<'_>,
    offering: Id,
) -> Result<BTreeMap<String, MappedEvent>, StoreError> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT backend_id, doc::text FROM slot_map WHERE offering = $1")
            .bind(offering.0)
            .fetch_all(ex)
            .await?;
    rows.into_iter()
        .map(|(k, d)| {
            decode::<MappedRecord>("slot_map", d.as_bytes()).map(|m| (k, MappedEvent::from(m)))
        })
        .collect()
}

pub(crate) async fn externals(
    ex: impl PgExecutor<'_>,
    offering: Id,
) -> Result<Vec<ExternalEvent>, StoreError> {
    let doc: Option<String> =
        sqlx::query_scalar("SELECT doc::text FROM externals WHERE offering = $1")
            .bind(offering.0)
            .fetch_optional(ex)
            .await?;
    Ok(match doc {
        Some(d) => decode::<ExternalsRecord>("externals", d.as_bytes())?.events(),
        None => Vec::new(),
    })
}

pub(crate) async fn attachment(
    ex: impl PgExecutor<'_>,
    order: Id,
) -> Result<Option<Attachment>, StoreError> {
    let doc: Option<String> =
        sqlx::query_scalar("SELECT doc::text FROM attachments WHERE order_id = $1")
            .bind(order.0)
            .fetch_optional(ex)
            .await?;
    Ok(match doc {
        Some(d) => decode::<AttachmentRecord>("attachments", d.as_bytes())?.attachment(),
        None => None,
    })
}

pub(crate) async fn feed_token(
    ex: impl PgExecutor<'_>,
    hash: &[u8; 32],
) -> Result<Option<FeedToken>, StoreError> {
    let doc: Option<String> =
        sqlx::query_scalar("SELECT doc::text FROM feed_tokens WHERE hash = $1")
            .bind(hash.as_slice())
            .fetch_optional(ex)
            .await?;
    doc.map(|d| feed_tokens::decode_token(d.as_bytes()))
        .transpose()
}

pub(crate) async fn feed_tokens_of(
    ex: impl PgExecutor<'_>,
    scope: FeedScope,
) -> Result<Vec<FeedToken>, StoreError> {
    let (kind, id) = match scope {
        FeedScope::Offering(id) => ("offering", id),
        FeedScope::User(id) => ("user", id),
    };
    let docs: Vec<String> = sqlx::query_scalar(
        "SELECT doc::text FROM feed_tokens WHERE scope_kind = $1 AND scope_id = $2",
    )
    .bind(kind)
    .bind(id.0)
    .fetch_all(ex)
    .await?;
    let mut out = docs
        .iter()
        .map(|d| feed_tokens::decode_token(d.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by_key(|t| (t.created, t.uuid));
    Ok(out)
}

pub(crate) async fn slot_sequences(
    ex: impl PgExecutor<'_>,
    backend_ids: &[String],
) -> Result<std::collections::HashMap<String, SlotSequence>, StoreError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT backend_id, doc::text FROM slot_sequences WHERE backend_id = ANY($1)",
    )
    .bind(backend_ids)
    .fetch_all(ex)
    .await?;
    rows.into_iter()
        .map(|(id, doc)| feed_tokens::decode_sequence(doc.as_bytes()).map(|s| (id, s)))
        .collect()
}

/// A fresh number from the `ids` sequence.
pub(crate) async fn next_id(ex: impl PgExecutor<'_>) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT nextval('ids')")
        .fetch_one(ex)
        .await?;
    Ok(n as u64)
}

/// These resources, locked until the transaction ends.
pub(crate) async fn resources_locked(
    conn: &mut sqlx::PgConnection,
    wanted: &[Id],
) -> Result<Vec<Resource>, StoreError> {
    let docs: Vec<String> = sqlx::query_scalar(
        "SELECT doc::text FROM resources WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(ids(wanted))
    .fetch_all(&mut *conn)
    .await?;
    decode_all::<ResourceRecord, Resource>("resources", &docs)
}

/// These orders, locked until the transaction ends.
pub(crate) async fn orders_locked(
    conn: &mut sqlx::PgConnection,
    wanted: &[Id],
) -> Result<Vec<Order>, StoreError> {
    let docs: Vec<String> = sqlx::query_scalar(
        "SELECT doc::text FROM orders WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(ids(wanted))
    .fetch_all(&mut *conn)
    .await?;
    decode_all::<OrderRecord, Order>("orders", &docs)
}

/// An offering's live slots overlapping `[$2, $3)`: a probe of the exclusion
/// constraint's GiST index.
pub(crate) const SLOTS_WITHIN: &str = "SELECT resource, start_at, end_at FROM slots
     WHERE offering = $1 AND live
       AND tstzrange(start_at, end_at, '[)') && tstzrange($2, $3, '[)')";

/// The Create orders in states `$2` of offering `$1` whose booking (in states `$3`)
/// has no slot yet: a walk of the partial index `resources_slotless`.
pub(crate) const OPEN_REQUESTS: &str =
    "SELECT o.doc::text FROM resources r JOIN orders o ON o.resource = r.id
     WHERE r.offering = $1 AND r.state = ANY($3) AND r.first_start IS NULL
       AND o.offering = $1 AND o.kind = 'Create' AND o.state = ANY($2)";

/// Everything taken in an offering (the sled catalog's `occupied`): the slots of
/// its live bookings, the requested time of live orders whose booking has no slots
/// yet, and its busy slots; with `within`, only what overlaps it.
///
/// A windowed read of the slots is a probe of the exclusion constraint's GiST index
/// (`tstzrange(start_at, end_at, '[)') &&` over live slots), so a new order reads the
/// few bookings near its time rather than the offering's whole history. Range overlap
/// equals [`Interval::overlaps`] for the intervals live slots hold (the booking rules
/// only book `start < end`, and the constraint cannot even hold an inverted one).
pub(crate) async fn taken(
    conn: &mut sqlx::PgConnection,
    offering: Id,
    within: Option<Interval>,
) -> Result<Vec<Occupied>, StoreError> {
    let mut out = Vec::new();
    let live: Vec<&str> = ResourceState::ALL
        .iter()
        .filter(|s| s.holds_slots())
        .map(|s| s.as_str())
        .collect();
    type Row = (
        Uuid,
        chrono::DateTime<chrono::Utc>,
        chrono::DateTime<chrono::Utc>,
    );
    let slots: Vec<Row> = match within {
        Some(w) => {
            sqlx::query_as(SLOTS_WITHIN)
                .bind(offering.0)
                .bind(w.start)
                .bind(w.end)
                .fetch_all(&mut *conn)
                .await?
        }
        None => {
            sqlx::query_as(
                "SELECT resource, start_at, end_at FROM slots WHERE offering = $1 AND live",
            )
            .bind(offering.0)
            .fetch_all(&mut *conn)
            .await?
        }
    };
    out.extend(slots.into_iter().map(|(r, s, e)| Occupied {
        interval: Interval::new(s, e),
        kind: OccupiedKind::Booking,
        holder: Some(Id(r)),
    }));
    let requesting: Vec<&str> = OrderState::ALL
        .iter()
        .filter(|s| s.holds_request())
        .map(|s| s.as_str())
        .collect();
    // A booking without slots is one whose `first_start` is NULL (both are written
    // from its slot list together): the partial index `resources_slotless` holds
    // exactly those, so this reads an offering's open requests and nothing else.
    let docs: Vec<String> = sqlx::query_scalar(OPEN_REQUESTS)
        .bind(offering.0)
        .bind(&requesting)
        .bind(&live)
        .fetch_all(&mut *conn)
        .await?;
    for o in decode_all::<OrderRecord, Order>("orders", &docs)? {
        out.extend(o.requested().into_iter().map(|interval| Occupied {
            interval,
            kind: OccupiedKind::Request,
            holder: Some(o.resource),
        }));
    }
    out.extend(
        busy_slots(&mut *conn, offering)
            .await?
            .into_iter()
            .map(|b| Occupied {
                interval: Interval::new(b.start, b.end),
                kind: OccupiedKind::Busy,
                holder: None,
            }),
    );
    if let Some(w) = within {
        // Requests and busy time are few and read whole; the window applies here.
        out.retain(|o| o.interval.overlaps(&w));
    }
    Ok(out)
}
