//! `bookcal import FILE`: loads a JSON data set (users, organisations, projects,
//! offerings, bookings) into the store in one atomic batch.
//!
//! References are by username (users) and by slug or UUID (customers, projects,
//! offerings). Times may be absolute (RFC 3339) or relative to the import day in the
//! offering's zone, so a demo data set stays current: `{"days": 3, "at": "10:00",
//! "hours": 2}` for a booking slot, `{"from_days": -7, "to_days": 400}` for an
//! availability window. Importing the same file twice updates records in place
//! (ids are derived from the file's uuids or names), it does not duplicate them.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::domain::format::{slugify, ts};
use crate::domain::{
    Category, Customer, Id, Offering, OfferingState, Order, OrderState, OrderType, Project,
    Resource, ResourceState, Slot, User,
};
use crate::store::{Change, Load, MutateError, Store, StoreError};

/// Errors of an import; nothing is written when one occurs.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("data set is not valid JSON for bookcal")]
    Parse(#[source] serde_json::Error),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSet {
    #[serde(default)]
    pub users: Vec<UserIn>,
    #[serde(default)]
    pub customers: Vec<CustomerIn>,
    #[serde(default)]
    pub projects: Vec<ProjectIn>,
    #[serde(default)]
    pub offerings: Vec<OfferingIn>,
    #[serde(default)]
    pub bookings: Vec<BookingIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserIn {
    pub username: String,
    #[serde(default)]
    pub full_name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub is_staff: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerIn {
    pub uuid: Option<Id>,
    pub name: String,
    pub slug: String,
    #[serde(default)]
    pub owners: Vec<String>,
    #[serde(default)]
    pub managers: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectIn {
    pub uuid: Option<Id>,
    pub name: String,
    pub slug: String,
    pub customer: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub members: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferingIn {
    pub uuid: Option<Id>,
    pub name: String,
    pub slug: String,
    pub customer: String,
    #[serde(default)]
    pub description: String,
    pub time_zone: String,
    #[serde(default)]
    pub location: String,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    #[serde(default = "default_category")]
    pub category: String,
    #[serde(default = "yes")]
    pub shared: bool,
    /// Availability windows: absolute `{start, end}` or relative `{from_days, to_days}`.
    pub availability: Vec<Value>,
}

fn default_category() -> String {
    "Bookable resources".into()
}
fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookingIn {
    pub uuid: Option<Id>,
    pub name: String,
    pub offering: String,
    pub project: String,
    pub created_by: String,
    /// `Creating` (pending the provider's acceptance) or `OK`.
    pub state: ResourceState,
    pub slots: Vec<Value>,
}

/// A stable id for a named record when the file gives none (re-imports update).
fn derived(kind: &str, key: &str) -> Id {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("bookcal:{kind}:{key}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    // Mark it as an RFC 4122 name-based id (version 5 layout, SHA-256 digest).
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    Id(uuid::Uuid::from_bytes(b))
}

fn bad(msg: impl Into<String>) -> ImportError {
    ImportError::Invalid(msg.into())
}

fn abs_time(v: &Value, what: &str) -> Result<DateTime<Utc>, ImportError> {
    let s = v
        .as_str()
        .ok_or_else(|| bad(format!("{what}: expected an RFC 3339 string")))?;
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| bad(format!("{what}: {s:?} is not RFC 3339 ({e})")))
}

fn local(
    tz: chrono_tz::Tz,
    day: chrono::NaiveDate,
    at: NaiveTime,
) -> Result<DateTime<Utc>, ImportError> {
    tz.from_local_datetime(&day.and_time(at))
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| bad(format!("{day} {at} does not exist in {tz}")))
}

/// Resolves a window or slot spec to UTC instants.
fn interval_of(
    v: &Value,
    tz: chrono_tz::Tz,
    today: chrono::NaiveDate,
    what: &str,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ImportError> {
    if let (Some(s), Some(e)) = (v.get("start"), v.get("end")) {
        return Ok((abs_time(s, what)?, abs_time(e, what)?));
    }
    if let (Some(f), Some(t)) = (
        v.get("from_days").and_then(Value::as_i64),
        v.get("to_days").and_then(Value::as_i64),
    ) {
        let midnight = NaiveTime::MIN;
        return Ok((
            local(tz, today + Duration::days(f), midnight)?,
            local(tz, today + Duration::days(t), midnight)?,
        ));
    }
    if let (Some(d), Some(at)) = (
        v.get("days").and_then(Value::as_i64),
        v.get("at").and_then(Value::as_str),
    ) {
        let at = NaiveTime::parse_from_str(at, "%H:%M")
            .map_err(|_| bad(format!("{what}: `at` must be HH:MM")))?;
        let hours = v.get("hours").and_then(Value::as_f64).unwrap_or(1.0);
        let start = local(tz, today + Duration::days(d), at)?;
        return Ok((
            start,
            start + Duration::minutes((hours * 60.0).round() as i64),
        ));
    }
    Err(bad(format!(
        "{what}: expected {{start, end}}, {{from_days, to_days}} or {{days, at, hours}}"
    )))
}

/// Reads and imports a data set file.
///
/// # Errors
/// The file cannot be read or is invalid; nothing is written then.
pub async fn import_file(
    store: &Store,
    path: &std::path::Path,
) -> Result<ImportSummary, ImportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ImportError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let ds: DataSet = serde_json::from_str(&text).map_err(ImportError::Parse)?;
    import(store, &ds, Utc::now()).await
}

/// What an import wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub users: usize,
    pub customers: usize,
    pub projects: usize,
    pub offerings: usize,
    pub bookings: usize,
}

/// Imports a parsed data set atomically.
///
/// # Errors
/// A dangling reference or invalid value; nothing is written then.
pub async fn import(
    store: &Store,
    ds: &DataSet,
    now: DateTime<Utc>,
) -> Result<ImportSummary, ImportError> {
    let load = Load {
        directory: true,
        ..Load::default()
    };
    let r = store
        .mutate(&load, |view| {
            let cat = &view.directory;
            let mut changes = Vec::new();
            let mut users: HashMap<String, Id> = cat
                .users
                .values()
                .map(|u| (u.username.clone(), u.id))
                .collect();
            for u in &ds.users {
                let id = users
                    .get(&u.username)
                    .copied()
                    .unwrap_or_else(|| derived("user", &u.username));
                users.insert(u.username.clone(), id);
                let created = cat.users.get(&id).map(|x| x.created).unwrap_or(now);
                changes.push(Change::User(User {
                    id,
                    username: u.username.clone(),
                    full_name: u.full_name.clone(),
                    email: u.email.clone(),
                    is_staff: u.is_staff,
                    created,
                }));
            }
            let user = |name: &str| {
                users
                    .get(name)
                    .copied()
                    .ok_or_else(|| bad(format!("unknown user {name:?}")))
            };
            let mut customers: HashMap<String, Id> = cat
                .customers
                .values()
                .map(|c| (c.slug.clone(), c.id))
                .collect();
            for c in &ds.customers {
                let id = c.uuid.unwrap_or_else(|| derived("customer", &c.slug));
                customers.insert(c.slug.clone(), id);
                changes.push(Change::Customer(Customer {
                    id,
                    name: c.name.clone(),
                    slug: c.slug.clone(),
                    owners: c.owners.iter().map(|u| user(u)).collect::<Result<_, _>>()?,
                    managers: c
                        .managers
                        .iter()
                        .map(|u| user(u))
                        .collect::<Result<_, _>>()?,
                    created: cat.customers.get(&id).map(|x| x.created).unwrap_or(now),
                }));
            }
            let by_ref = |m: &HashMap<String, Id>, r: &str, what: &str| {
                m.get(r)
                    .copied()
                    .or_else(|| Id::parse(r))
                    .ok_or_else(|| bad(format!("unknown {what} {r:?}")))
            };
            let mut projects: HashMap<String, Id> = cat
                .projects
                .values()
                .map(|p| (p.slug.clone(), p.id))
                .collect();
            for p in &ds.projects {
                let id = p.uuid.unwrap_or_else(|| derived("project", &p.slug));
                projects.insert(p.slug.clone(), id);
                changes.push(Change::Project(Project {
                    id,
                    customer: by_ref(&customers, &p.customer, "customer")?,
                    name: p.name.clone(),
                    slug: p.slug.clone(),
                    description: p.description.clone(),
                    members: p
                        .members
                        .iter()
                        .map(|u| user(u))
                        .collect::<Result<_, _>>()?,
                    created: cat.projects.get(&id).map(|x| x.created).unwrap_or(now),
                }));
            }
            let mut offerings: HashMap<String, (Id, chrono_tz::Tz)> = cat
                .offerings
                .values()
                .map(|o| (o.slug.clone(), (o.id, o.time_zone)))
                .collect();
            for o in &ds.offerings {
                let id = o.uuid.unwrap_or_else(|| derived("offering", &o.slug));
                let tz: chrono_tz::Tz = o.time_zone.parse().map_err(|_| {
                    bad(format!(
                        "offering {:?}: unknown time zone {:?}",
                        o.slug, o.time_zone
                    ))
                })?;
                offerings.insert(o.slug.clone(), (id, tz));
                let today = now.with_timezone(&tz).date_naive();
                let mut schedules = Vec::new();
                for (i, w) in o.availability.iter().enumerate() {
                    let (s, e) =
                        interval_of(w, tz, today, &format!("offering {:?} availability", o.slug))?;
                    schedules.push(json!({
                        "start": ts(&s),
                        "end": ts(&e),
                        "title": "Availability",
                        "id": format!("availability-{i}"),
                        "allDay": false,
                        "extendedProps": {"type": "Availability"},
                    }));
                }
                let created = cat.offerings.get(&id).map(|x| x.created).unwrap_or(now);
                changes.push(Change::Offering(Offering {
                    id,
                    customer: by_ref(&customers, &o.customer, "customer")?,
                    name: o.name.clone(),
                    slug: o.slug.clone(),
                    description: o.description.clone(),
                    full_description: o.description.clone(),
                    category: Category {
                        id: derived("category", &o.category),
                        title: o.category.clone(),
                    },
                    state: OfferingState::Active,
                    time_zone: tz,
                    location: o.location.clone(),
                    latitude: o.latitude,
                    longitude: o.longitude,
                    attributes: json!({ "schedules": schedules }),
                    plugin_options: json!({}),
                    shared: o.shared,
                    billable: false,
                    backend_id: String::new(),
                    created,
                    modified: now,
                }));
            }
            for b in &ds.bookings {
                let (offering, tz) = offerings
                    .get(&b.offering)
                    .copied()
                    .or_else(|| {
                        Id::parse(&b.offering)
                            .and_then(|id| cat.offerings.get(&id).map(|o| (id, o.time_zone)))
                    })
                    .ok_or_else(|| bad(format!("unknown offering {:?}", b.offering)))?;
                let project = by_ref(&projects, &b.project, "project")?;
                let creator = user(&b.created_by)?;
                let id = b
                    .uuid
                    .unwrap_or_else(|| derived("booking", &format!("{}/{}", b.offering, b.name)));
                let order_id = derived("order", &id.hex());
                let today = now.with_timezone(&tz).date_naive();
                let mut slots = Vec::new();
                let mut schedules = Vec::new();
                for (i, s) in b.slots.iter().enumerate() {
                    let (start, end) = interval_of(s, tz, today, &format!("booking {:?}", b.name))?;
                    let backend_id = format!(
                        "booking_{}",
                        derived("slot", &format!("{}/{i}", id.hex())).hex()
                    );
                    schedules.push(json!({"start": ts(&start), "end": ts(&end)}));
                    slots.push(Slot {
                        start,
                        end,
                        backend_id,
                    });
                }
                let attributes = json!({"name": b.name, "schedules": schedules});
                let (order_state, completed) = match b.state {
                    ResourceState::Ok => (OrderState::Done, Some(now)),
                    ResourceState::Creating => (OrderState::Executing, None),
                    other => {
                        return Err(bad(format!(
                            "booking {:?}: state {} cannot be imported",
                            b.name,
                            other.as_str()
                        )))
                    }
                };
                changes.push(Change::Resource(Resource {
                    id,
                    name: b.name.clone(),
                    slug: slugify(&b.name),
                    description: String::new(),
                    offering,
                    project,
                    state: b.state,
                    backend_id: String::new(),
                    attributes: attributes.clone(),
                    slots,
                    created: now,
                    modified: now,
                    created_by: creator,
                    consumer_reviewed_by: Some(creator),
                    creation_order: Some(order_id),
                    end_date: None,
                    error_message: String::new(),
                }));
                changes.push(Change::Order(Order {
                    id: order_id,
                    offering,
                    project,
                    resource: id,
                    kind: OrderType::Create,
                    state: order_state,
                    attributes,
                    created: now,
                    modified: now,
                    created_by: creator,
                    consumer_reviewed_by: Some(creator),
                    consumer_reviewed_at: Some(now),
                    provider_reviewed_by: None,
                    provider_reviewed_at: None,
                    completed_at: completed,
                    error_message: String::new(),
                    error_traceback: String::new(),
                    backend_id: String::new(),
                    attachment: None,
                    request_comment: String::new(),
                    callback_url: String::new(),
                    start_date: None,
                    termination_comment: String::new(),
                }));
            }
            let summary = ImportSummary {
                users: ds.users.len(),
                customers: ds.customers.len(),
                projects: ds.projects.len(),
                offerings: ds.offerings.len(),
                bookings: ds.bookings.len(),
            };
            Ok((changes, summary))
        })
        .await;
    match r {
        Ok(s) => Ok(s),
        Err(MutateError::Refused(e)) => Err(e),
        Err(MutateError::Store(e)) => Err(ImportError::Store(e)),
    }
}
