//! Writing [`Change`]s to PostgreSQL inside the caller's transaction.
//!
//! Each record is written as its versioned document (`doc`, the same JSON the sled
//! engine stores) together with the columns derived from it, searched texts with their
//! folding (see [`folded`](super::folded)). Consecutive changes of
//! one kind are written with one statement over arrays (`UNNEST`), so an import of a
//! hundred thousand bookings is a few statements, not a few hundred thousand.
//!
//! A booking resource's slots are rewritten with it (`live` while it holds them), so
//! the exclusion constraint sees every write; the feeds' slot-sequence records of
//! slots whose time changed are written in the same transaction (as the sled engine
//! does).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::super::feed_tokens::{self, FeedScope, SlotSequence};
use super::super::records::{
    AttachmentRecord, BusyRecord, CalendarRecord, CustomerRecord, ExternalsRecord, MappedRecord,
    OfferingRecord, OrderRecord, ProjectRecord, PushRecord, ResourceRecord, UserRecord,
};
use super::super::{encode, Change, StoreError};
use crate::domain::jobs::{calendars_touched, offering_calendar_changed, BookingView};
use crate::domain::search::fold;
use crate::domain::{Customer, Id, Interval, Offering, Order, Project, Resource, User};

fn uuid(id: Id) -> Uuid {
    id.0
}

fn text<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    // serde_json writes UTF-8.
    String::from_utf8(encode(v)?)
        .map_err(|e| StoreError::Encode(serde::ser::Error::custom(format!("not UTF-8: {e}"))))
}

/// Which batch a change belongs to (consecutive changes of one kind share a statement).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Batch {
    Users,
    Customers,
    Projects,
    Offerings,
    Resources,
    Orders,
    Mapping,
    One,
}

fn batch_of(c: &Change) -> Batch {
    match c {
        Change::User(_) => Batch::Users,
        Change::Customer(_) => Batch::Customers,
        Change::Project(_) => Batch::Projects,
        Change::Offering(_) => Batch::Offerings,
        Change::Resource(_) => Batch::Resources,
        Change::Order(_) => Batch::Orders,
        Change::Mapping { .. } => Batch::Mapping,
        _ => Batch::One,
    }
}

/// The last of each id, in first-seen order (one statement may not write a row twice).
fn last_per_id<'a, T>(items: impl Iterator<Item = &'a T>, id: impl Fn(&T) -> Id) -> Vec<&'a T>
where
    T: 'a,
{
    let mut pos: HashMap<Id, usize> = HashMap::new();
    let mut out: Vec<&T> = Vec::new();
    for it in items {
        match pos.get(&id(it)) {
            Some(&i) => out[i] = it,
            None => {
                pos.insert(id(it), out.len());
                out.push(it);
            }
        }
    }
    out
}

/// Writes `changes` in order on `conn` (inside the caller's transaction). Returns
/// the offerings whose calendar the changes alter (booking changes the calendar
/// shows, offering renames), for the syncs they imply; `Change::Enqueue` is the
/// caller's (see `PgStore::apply`).
///
/// # Errors
/// A record cannot be encoded, or the database refuses (the exclusion constraint
/// among others): the caller's transaction must then be rolled back.
pub(crate) async fn apply(
    conn: &mut PgConnection,
    changes: &[Change],
) -> Result<Vec<Id>, StoreError> {
    let mut touched = Vec::new();
    let mut i = 0;
    while i < changes.len() {
        let kind = batch_of(&changes[i]);
        let mut j = i + 1;
        if kind != Batch::One {
            while j < changes.len() && batch_of(&changes[j]) == kind {
                j += 1;
            }
        }
        let run = &changes[i..j];
        match kind {
            Batch::Users => users(conn, run).await?,
            Batch::Customers => customers(conn, run).await?,
            Batch::Projects => projects(conn, run).await?,
            Batch::Offerings => touched.extend(offerings(conn, run).await?),
            Batch::Resources => touched.extend(resources(conn, run).await?),
            Batch::Orders => orders(conn, run).await?,
            Batch::Mapping => mapping(conn, run).await?,
            Batch::One => one(conn, &changes[i]).await?,
        }
        i = j;
    }
    touched.sort();
    touched.dedup();
    Ok(touched)
}

async fn users(conn: &mut PgConnection, run: &[Change]) -> Result<(), StoreError> {
    let items = last_per_id(
        run.iter().filter_map(|c| match c {
            Change::User(u) => Some(u),
            _ => None,
        }),
        |u: &User| u.id,
    );
    let mut ids = Vec::new();
    let mut names = Vec::new();
    let mut docs = Vec::new();
    for u in items {
        ids.push(uuid(u.id));
        names.push(u.username.clone());
        docs.push(text(&UserRecord::from(u))?);
    }
    // A user renamed to a name another user had frees it first (sled keeps the last).
    sqlx::query("DELETE FROM users WHERE username = ANY($2) AND NOT id = ANY($1)")
        .bind(&ids)
        .bind(&names)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO users (id, username, doc)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[]::jsonb[])
         ON CONFLICT (id) DO UPDATE SET username = EXCLUDED.username, doc = EXCLUDED.doc",
    )
    .bind(&ids)
    .bind(&names)
    .bind(&docs)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn customers(conn: &mut PgConnection, run: &[Change]) -> Result<(), StoreError> {
    let items = last_per_id(
        run.iter().filter_map(|c| match c {
            Change::Customer(x) => Some(x),
            _ => None,
        }),
        |x: &Customer| x.id,
    );
    let mut ids = Vec::new();
    let mut names = Vec::new();
    // Arrays of arrays must be rectangular in PostgreSQL: pass them as JSON.
    let mut owners = Vec::new();
    let mut managers = Vec::new();
    let mut docs = Vec::new();
    for c in items {
        ids.push(uuid(c.id));
        names.push(c.name.clone());
        owners.push(text(&c.owners)?);
        managers.push(text(&c.managers)?);
        docs.push(text(&CustomerRecord::from(c))?);
    }
    sqlx::query(
        "INSERT INTO customers (id, name, owners, managers, doc)
         SELECT u.id, u.name,
                ARRAY(SELECT jsonb_array_elements_text(u.owners::jsonb)::uuid),
                ARRAY(SELECT jsonb_array_elements_text(u.managers::jsonb)::uuid),
                u.doc::jsonb
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])
              AS u(id, name, owners, managers, doc)
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, owners = EXCLUDED.owners,
             managers = EXCLUDED.managers, doc = EXCLUDED.doc",
    )
    .bind(&ids)
    .bind(&names)
    .bind(&owners)
    .bind(&managers)
    .bind(&docs)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn projects(conn: &mut PgConnection, run: &[Change]) -> Result<(), StoreError> {
    let items = last_per_id(
        run.iter().filter_map(|c| match c {
            Change::Project(x) => Some(x),
            _ => None,
        }),
        |x: &Project| x.id,
    );
    let mut ids = Vec::new();
    let mut customers = Vec::new();
    let mut names = Vec::new();
    let mut folded = Vec::new();
    let mut members = Vec::new();
    let mut docs = Vec::new();
    for p in items {
        ids.push(uuid(p.id));
        customers.push(uuid(p.customer));
        names.push(p.name.clone());
        folded.push(fold(&p.name));
        members.push(text(&p.members)?);
        docs.push(text(&ProjectRecord::from(p))?);
    }
    sqlx::query(
        "INSERT INTO projects (id, customer, name, members, doc, name_folded)
         SELECT u.id, u.customer, u.name,
                ARRAY(SELECT jsonb_array_elements_text(u.members::jsonb)::uuid),
                u.doc::jsonb, u.name_folded
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[])
              AS u(id, customer, name, members, doc, name_folded)
         ON CONFLICT (id) DO UPDATE SET customer = EXCLUDED.customer, name = EXCLUDED.name,
             members = EXCLUDED.members, doc = EXCLUDED.doc,
             name_folded = EXCLUDED.name_folded",
    )
    .bind(&ids)
    .bind(&customers)
    .bind(&names)
    .bind(&members)
    .bind(&docs)
    .bind(&folded)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Returns the offerings whose calendar the new versions change.
async fn offerings(conn: &mut PgConnection, run: &[Change]) -> Result<Vec<Id>, StoreError> {
    let items = last_per_id(
        run.iter().filter_map(|c| match c {
            Change::Offering(x) => Some(x),
            _ => None,
        }),
        |x: &Offering| x.id,
    );
    let wanted: Vec<Uuid> = items.iter().map(|o| uuid(o.id)).collect();
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT doc::text FROM offerings WHERE id = ANY($1)")
            .bind(&wanted)
            .fetch_all(&mut *conn)
            .await?;
    let stored: HashMap<Id, Offering> =
        super::read::decode_all::<OfferingRecord, Offering>("offerings", &stored)?
            .into_iter()
            .map(|o| (o.id, o))
            .collect();
    let touched: Vec<Id> = items
        .iter()
        .filter(|o| {
            stored
                .get(&o.id)
                .is_some_and(|old| offering_calendar_changed(old, o))
        })
        .map(|o| o.id)
        .collect();
    let mut ids = Vec::new();
    let mut customers = Vec::new();
    let mut names = Vec::new();
    let mut folded = Vec::new();
    let mut slugs = Vec::new();
    let mut categories = Vec::new();
    let mut docs = Vec::new();
    for o in items {
        ids.push(uuid(o.id));
        customers.push(uuid(o.customer));
        names.push(o.name.clone());
        folded.push(fold(&o.name));
        slugs.push(o.slug.clone());
        categories.push(uuid(o.category.id));
        docs.push(text(&OfferingRecord::from(o))?);
    }
    sqlx::query(
        "INSERT INTO offerings (id, customer, name, slug, category, doc, name_folded)
         SELECT u.id, u.customer, u.name, u.slug, u.category, u.doc::jsonb, u.name_folded
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::text[],
                     $7::text[])
              AS u(id, customer, name, slug, category, doc, name_folded)
         ON CONFLICT (id) DO UPDATE SET customer = EXCLUDED.customer, name = EXCLUDED.name,
             slug = EXCLUDED.slug, category = EXCLUDED.category, doc = EXCLUDED.doc,
             name_folded = EXCLUDED.name_folded",
    )
    .bind(&ids)
    .bind(&customers)
    .bind(&names)
    .bind(&slugs)
    .bind(&categories)
    .bind(&docs)
    .bind(&folded)
    .execute(&mut *conn)
    .await?;
    Ok(touched)
}

/// Returns the offerings whose calendar the new versions change.
async fn resources(conn: &mut PgConnection, run: &[Change]) -> Result<Vec<Id>, StoreError> {
    let items = last_per_id(
        run.iter().filter_map(|c| match c {
            Change::Resource(x) => Some(x),
            _ => None,
        }),
        |x: &Resource| x.id,
    );
    let ids: Vec<Uuid> = items.iter().map(|r| uuid(r.id)).collect();
    // The stored versions (locked), for the feeds' slot sequences.
    let stored: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, doc::text FROM resources WHERE id = ANY($1) FOR UPDATE")
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?;
    let stored: HashMap<Uuid, Resource> = stored
        .into_iter()
        .map(|(id, doc)| {
            super::super::decode::<ResourceRecord>("resources", doc.as_bytes())
                .map(|r| (id, Resource::from(r)))
        })
        .collect::<Result<_, _>>()?;
    let mut sequences: Vec<(String, SlotSequence)> = Vec::new();
    let mut touched = Vec::new();
    for r in &items {
        let slots: Vec<Interval> = r.slots.iter().map(|s| s.interval()).collect();
        let new = BookingView {
            offering: r.offering,
            name: &r.name,
            project: r.project,
            created_by: r.created_by,
            state: r.state,
            slots: &slots,
        };
        let old = stored.get(&uuid(r.id));
        let old_slots: Vec<Interval> = old
            .map(|o| o.slots.iter().map(|s| s.interval()).collect())
            .unwrap_or_default();
        let old = old.map(|o| BookingView {
            offering: o.offering,
            name: &o.name,
            project: o.project,
            created_by: o.created_by,
            state: o.state,
            slots: &old_slots,
        });
        touched.extend(calendars_touched(old.as_ref(), &new));
    }
    for r in &items {
        if let Some(old) = stored.get(&uuid(r.id)) {
            let moved = old.slots.len() != r.slots.len()
                || old
                    .slots
                    .iter()
                    .zip(&r.slots)
                    .any(|(o, n)| o.start != n.start || o.end != n.end);
            if moved {
                let wanted: Vec<String> = r.slots.iter().map(|s| s.backend_id.clone()).collect();
                let recorded = super::read::slot_sequences(&mut *conn, &wanted).await?;
                sequences.extend(feed_tokens::sequence_updates(old, r, |id| {
                    Ok(recorded.get(id).copied())
                })?);
            }
        }
    }
    let n = items.len();
    let mut offering = Vec::with_capacity(n);
    let mut project = Vec::with_capacity(n);
    let mut name = Vec::with_capacity(n);
    let mut slug = Vec::with_capacity(n);
    let mut backend_id = Vec::with_capacity(n);
    let mut state = Vec::with_capacity(n);
    let mut created: Vec<DateTime<Utc>> = Vec::with_capacity(n);
    let mut modified: Vec<DateTime<Utc>> = Vec::with_capacity(n);
    let mut created_by = Vec::with_capacity(n);
    let mut first_start: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(n);
    let mut creation_order: Vec<Option<Uuid>> = Vec::with_capacity(n);
    let mut docs = Vec::with_capacity(n);
    // The searched texts folded (see `folded`).
    let (mut name_f, mut slug_f, mut backend_id_f) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut s_res, mut s_n, mut s_off, mut s_bid, mut s_start, mut s_end, mut s_live) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::<DateTime<Utc>>::new(),
        Vec::<DateTime<Utc>>::new(),
        Vec::new(),
    );
    for r in &items {
        offering.push(uuid(r.offering));
        project.push(uuid(r.project));
        name.push(r.name.clone());
        slug.push(r.slug.clone());
        backend_id.push(r.backend_id.clone());
        name_f.push(fold(&r.name));
        slug_f.push(fold(&r.slug));
        backend_id_f.push(fold(&r.backend_id));
        state.push(r.state.as_str().to_string());
        created.push(r.created);
        modified.push(r.modified);
        created_by.push(uuid(r.created_by));
        first_start.push(r.slots.iter().map(|s| s.start).min());
        creation_order.push(r.creation_order.map(uuid));
        docs.push(text(&ResourceRecord::from(*r))?);
        for (k, s) in r.slots.iter().enumerate() {
            s_res.push(uuid(r.id));
            s_n.push(k as i32);
            s_off.push(uuid(r.offering));
            s_bid.push(s.backend_id.clone());
            s_start.push(s.start);
            s_end.push(s.end);
            s_live.push(r.state.holds_slots());
        }
    }
    sqlx::query(
        "INSERT INTO resources (id, offering, project, customer, provider, name, slug,
             backend_id, state, created, modified, created_by, first_start, creation_order, doc,
             name_folded, slug_folded, backend_id_folded)
         SELECT u.id, u.offering, u.project, COALESCE(p.customer, u.project),
                COALESCE(o.customer, u.offering), u.name, u.slug, u.backend_id, u.state,
                u.created, u.modified, u.created_by, u.first_start, u.creation_order,
                u.doc::jsonb, u.name_folded, u.slug_folded, u.backend_id_folded
         FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::timestamptz[], $9::timestamptz[], $10::uuid[],
                     $11::timestamptz[], $12::uuid[], $13::text[], $14::text[], $15::text[],
                     $16::text[])
              AS u(id, offering, project, name, slug, backend_id, state, created, modified,
                   created_by, first_start, creation_order, doc, name_folded, slug_folded,
                   backend_id_folded)
         LEFT JOIN projects p ON p.id = u.project
         LEFT JOIN offerings o ON o.id = u.offering
         ON CONFLICT (id) DO UPDATE SET offering = EXCLUDED.offering,
             project = EXCLUDED.project, customer = EXCLUDED.customer,
             provider = EXCLUDED.provider, name = EXCLUDED.name, slug = EXCLUDED.slug,
             backend_id = EXCLUDED.backend_id, state = EXCLUDED.state,
             created = EXCLUDED.created, modified = EXCLUDED.modified,
             created_by = EXCLUDED.created_by, first_start = EXCLUDED.first_start,
             creation_order = EXCLUDED.creation_order, doc = EXCLUDED.doc,
             name_folded = EXCLUDED.name_folded, slug_folded = EXCLUDED.slug_folded,
             backend_id_folded = EXCLUDED.backend_id_folded",
    )
    .bind(&ids)
    .bind(&offering)
    .bind(&project)
    .bind(&name)
    .bind(&slug)
    .bind(&backend_id)
    .bind(&state)
    .bind(&created)
    .bind(&modified)
    .bind(&created_by)
    .bind(&first_start)
    .bind(&creation_order)
    .bind(&docs)
    .bind(&name_f)
    .bind(&slug_f)
    .bind(&backend_id_f)
    .execute(&mut *conn)
    .await?;
    // Orders carry their resource's name and its folding for the orders' text search
    // (an order written before its resource gets them here).
    sqlx::query(
        "UPDATE orders o SET resource_name = r.name, resource_name_folded = r.name_folded
         FROM resources r
         WHERE r.id = ANY($1) AND o.resource = r.id
           AND (o.resource_name IS DISTINCT FROM r.name
                OR o.resource_name_folded IS DISTINCT FROM r.name_folded)",
    )
    .bind(&ids)
    .execute(&mut *conn)
    .await?;
    // Slots: the old ones go first, so a booking moved within its own time never
    // collides with itself.
    if !stored.is_empty() {
        sqlx::query("DELETE FROM slots WHERE resource = ANY($1)")
            .bind(&ids)
            .execute(&mut *conn)
            .await?;
    }
    if !s_res.is_empty() {
        sqlx::query(
            "INSERT INTO slots (resource, n, offering, backend_id, start_at, end_at, live)
             SELECT * FROM UNNEST($1::uuid[], $2::int4[], $3::uuid[], $4::text[],
                                  $5::timestamptz[], $6::timestamptz[], $7::bool[])",
        )
        .bind(&s_res)
        .bind(&s_n)
        .bind(&s_off)
        .bind(&s_bid)
        .bind(&s_start)
        .bind(&s_end)
        .bind(&s_live)
        .execute(&mut *conn)
        .await?;
    }
    for (backend_id, seq) in sequences {
        sqlx::query(
            "INSERT INTO slot_sequences (backend_id, doc) VALUES ($1, $2::jsonb)
             ON CONFLICT (backend_id) DO UPDATE SET doc = EXCLUDED.doc",
        )
        .bind(&backend_id)
        .bind(String::from_utf8_lossy(&feed_tokens::encode_sequence(&seq)?).into_owned())
        .execute(&mut *conn)
        .await?;
    }
    Ok(touched)
}

async fn orders(conn: &mut PgConnection, run: &[Change]) -> Result<(), StoreError> {
    let items = last_per_id(
        run.iter().filter_map(|c| match c {
            Change::Order(x) => Some(x),
            _ => None,
        }),
        |x: &Order| x.id,
    );
    let n = items.len();
    let mut ids = Vec::with_capacity(n);
    let mut offering = Vec::with_capacity(n);
    let mut project = Vec::with_capacity(n);
    let mut resource = Vec::with_capacity(n);
    let mut state = Vec::with_capacity(n);
    let mut kind = Vec::with_capacity(n);
    let mut created: Vec<DateTime<Utc>> = Vec::with_capacity(n);
    let mut modified: Vec<DateTime<Utc>> = Vec::with_capacity(n);
    let mut created_by = Vec::with_capacity(n);
    let mut docs = Vec::with_capacity(n);
    for o in items {
        ids.push(uuid(o.id));
        offering.push(uuid(o.offering));
        project.push(uuid(o.project));
        resource.push(uuid(o.resource));
        state.push(o.state.as_str().to_string());
        kind.push(o.kind.as_str().to_string());
        created.push(o.created);
        modified.push(o.modified);
        created_by.push(uuid(o.created_by));
        docs.push(text(&OrderRecord::from(o))?);
    }
    sqlx::query(
        "INSERT INTO orders (id, offering, project, customer, provider, resource, state, kind,
             created, modified, created_by, resource_name, resource_name_folded, doc)
         SELECT u.id, u.offering, u.project, COALESCE(p.customer, u.project),
                COALESCE(o.customer, u.offering), u.resource, u.state, u.kind, u.created,
                u.modified, u.created_by, r.name, r.name_folded, u.doc::jsonb
         FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[],
                     $7::timestamptz[], $8::timestamptz[], $9::uuid[], $10::text[])
              AS u(id, offering, project, resource, state, kind, created, modified,
                   created_by, doc)
         LEFT JOIN projects p ON p.id = u.project
         LEFT JOIN offerings o ON o.id = u.offering
         LEFT JOIN resources r ON r.id = u.resource
         ON CONFLICT (id) DO UPDATE SET offering = EXCLUDED.offering,
             project = EXCLUDED.project, customer = EXCLUDED.customer,
             provider = EXCLUDED.provider, resource = EXCLUDED.resource,
             state = EXCLUDED.state, kind = EXCLUDED.kind, created = EXCLUDED.created,
             modified = EXCLUDED.modified, created_by = EXCLUDED.created_by,
             resource_name = EXCLUDED.resource_name,
             resource_name_folded = EXCLUDED.resource_name_folded, doc = EXCLUDED.doc",
    )
    .bind(&ids)
    .bind(&offering)
    .bind(&project)
    .bind(&resource)
    .bind(&state)
    .bind(&kind)
    .bind(&created)
    .bind(&modified)
    .bind(&created_by)
    .bind(&docs)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn mapping(conn: &mut PgConnection, run: &[Change]) -> Result<(), StoreError> {
    // Deletions and writes keep their order per slot: the last change of each wins.
    let mut last: HashMap<(Id, &str), &Option<crate::domain::calendar::MappedEvent>> =
        HashMap::new();
    let mut order = Vec::new();
    for c in run {
        if let Change::Mapping {
            offering,
            backend_id,
            event,
        } = c
        {
            let key = (*offering, backend_id.as_str());
            if last.insert(key, event).is_none() {
                order.push(key);
            }
        }
    }
    let (mut del_o, mut del_b) = (Vec::new(), Vec::new());
    let (mut put_o, mut put_b, mut put_d) = (Vec::new(), Vec::new(), Vec::new());
    for key in order {
        match last.get(&key) {
            Some(Some(m)) => {
                put_o.push(uuid(key.0));
                put_b.push(key.1.to_string());
                put_d.push(text(&MappedRecord::from(m))?);
            }
            _ => {
                del_o.push(uuid(key.0));
                del_b.push(key.1.to_string());
            }
        }
    }
    if !del_o.is_empty() {
        sqlx::query(
            "DELETE FROM slot_map m USING UNNEST($1::uuid[], $2::text[]) AS d(offering, backend_id)
             WHERE m.offering = d.offering AND m.backend_id = d.backend_id",
        )
        .bind(&del_o)
        .bind(&del_b)
        .execute(&mut *conn)
        .await?;
    }
    if !put_o.is_empty() {
        sqlx::query(
            "INSERT INTO slot_map (offering, backend_id, doc)
             SELECT u.offering, u.backend_id, u.doc::jsonb
             FROM UNNEST($1::uuid[], $2::text[], $3::text[]) AS u(offering, backend_id, doc)
             ON CONFLICT (offering, backend_id) DO UPDATE SET doc = EXCLUDED.doc",
        )
        .bind(&put_o)
        .bind(&put_b)
        .bind(&put_d)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn one(conn: &mut PgConnection, c: &Change) -> Result<(), StoreError> {
    match c {
        Change::DeleteOrder(id) => {
            sqlx::query("DELETE FROM orders WHERE id = $1")
                .bind(uuid(*id))
                .execute(&mut *conn)
                .await?;
        }
        Change::Busy(offering, slots) => {
            let generation: i64 = sqlx::query_scalar("SELECT nextval('ids')")
                .fetch_one(&mut *conn)
                .await?;
            let rec = BusyRecord::V1 {
                generation: generation as u64,
                slots: slots.clone(),
            };
            sqlx::query(
                "INSERT INTO busy (offering, generation, doc) VALUES ($1, $2, $3::jsonb)
                 ON CONFLICT (offering) DO UPDATE
                 SET generation = EXCLUDED.generation, doc = EXCLUDED.doc",
            )
            .bind(uuid(*offering))
            .bind(generation)
            .bind(text(&rec)?)
            .execute(&mut *conn)
            .await?;
        }
        Change::Calendar(cal) => {
            sqlx::query(
                "INSERT INTO calendars (offering, doc) VALUES ($1, $2::jsonb)
                 ON CONFLICT (offering) DO UPDATE SET doc = EXCLUDED.doc",
            )
            .bind(uuid(cal.offering))
            .bind(text(&CalendarRecord::from(cal))?)
            .execute(&mut *conn)
            .await?;
        }
        Change::Externals(offering, events) => {
            sqlx::query(
                "INSERT INTO externals (offering, doc) VALUES ($1, $2::jsonb)
                 ON CONFLICT (offering) DO UPDATE SET doc = EXCLUDED.doc",
            )
            .bind(uuid(*offering))
            .bind(text(&ExternalsRecord::of(events))?)
            .execute(&mut *conn)
            .await?;
        }
        Change::Attachment(order, Some(a)) => {
            sqlx::query(
                "INSERT INTO attachments (order_id, doc) VALUES ($1, $2::jsonb)
                 ON CONFLICT (order_id) DO UPDATE SET doc = EXCLUDED.doc",
            )
            .bind(uuid(*order))
            .bind(text(&AttachmentRecord::of(a))?)
            .execute(&mut *conn)
            .await?;
        }
        Change::Attachment(order, None) => {
            sqlx::query("DELETE FROM attachments WHERE order_id = $1")
                .bind(uuid(*order))
                .execute(&mut *conn)
                .await?;
        }
        Change::FeedToken(t) => {
            let (kind, id) = match t.scope {
                FeedScope::Offering(id) => ("offering", id),
                FeedScope::User(id) => ("user", id),
            };
            sqlx::query(
                "INSERT INTO feed_tokens (hash, scope_kind, scope_id, doc)
                 VALUES ($1, $2, $3, $4::jsonb)
                 ON CONFLICT (hash) DO UPDATE SET scope_kind = EXCLUDED.scope_kind,
                     scope_id = EXCLUDED.scope_id, doc = EXCLUDED.doc",
            )
            .bind(t.hash.as_slice())
            .bind(kind)
            .bind(uuid(id))
            .bind(String::from_utf8_lossy(&feed_tokens::encode_token(t)?).into_owned())
            .execute(&mut *conn)
            .await?;
        }
        Change::RevokeFeedToken(hash) => {
            sqlx::query("DELETE FROM feed_tokens WHERE hash = $1")
                .bind(hash.as_slice())
                .execute(&mut *conn)
                .await?;
        }
        // Queued by the caller with the syncs the batch implies (`PgStore::apply`).
        Change::Enqueue(_) => {}
        Change::Push(offering, Some(state)) => {
            sqlx::query(
                "INSERT INTO push_channels (offering, channel_id, pending_id, doc)
                 VALUES ($1, $2, $3, $4::jsonb)
                 ON CONFLICT (offering) DO UPDATE
                 SET channel_id = EXCLUDED.channel_id, pending_id = EXCLUDED.pending_id,
                     doc = EXCLUDED.doc",
            )
            .bind(uuid(*offering))
            .bind(state.channel.as_ref().map(|c| c.id.as_str()))
            .bind(state.pending.as_ref().map(|p| p.id.as_str()))
            .bind(text(&PushRecord::from(state))?)
            .execute(&mut *conn)
            .await?;
        }
        Change::Push(offering, None) => {
            sqlx::query("DELETE FROM push_channels WHERE offering = $1")
                .bind(uuid(*offering))
                .execute(&mut *conn)
                .await?;
        }
        // Batched kinds never come here.
        Change::User(_)
        | Change::Customer(_)
        | Change::Project(_)
        | Change::Offering(_)
        | Change::Resource(_)
        | Change::Order(_)
        | Change::Mapping { .. } => {}
    }
    Ok(())
}
