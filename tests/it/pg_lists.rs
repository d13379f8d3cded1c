//! Lists on PostgreSQL give what they give on sled: one data set in both engines
//! (imported on sled, copied into PostgreSQL with `copy_to`), then every list whose
//! SQL was reshaped for its index (orders by first slot and by creation, text
//! searches over resources and orders, deep pages of an offering, visibility
//! filters) compared page by page: the same records in the same order, the same
//! totals. The data has ties everywhere a tie-breaker decides (names repeated across
//! and within offerings, first slots shared by every offering, one creation time for
//! all), matches by resource name and by project name, and a resource renamed after
//! the copy (its orders must be found by the new name). Names and needles include
//! non-ASCII text (accents, `ß`, Turkish `İ`, Greek final sigma, a combining mark),
//! each needle folded as the API folds it: both engines find the same records, and
//! nothing where the folding keeps texts apart.

use bookcal::domain::search::fold;
use bookcal::domain::{Id, ResourceState};
use bookcal::store::query::{OrderKey, OrderQuery, PageRange, ResourceKey, ResourceQuery, Visible};
use bookcal::store::{Change, Store, StoreOptions};
use serde_json::{json, Value};

use crate::helpers::pg::database;

/// Names (with a number each); the non-ASCII ones are matched by case-insensitive
/// searches through the one folding both engines use.
const WORDS: [&str; 10] = [
    "Imaging",
    "Seminar",
    "Calibration",
    "SEMINAR room",
    "Review",
    "Workshop",
    "ÉMILE Straße",
    "émile's ÉTUDE",
    "İZMİR ΟΔΟΣ",
    // A decomposed é (e and a combining acute).
    "Cafe\u{301} Σοφία",
];

/// 4 providers with 2 offerings each, 3 clients with 2 projects each (one project
/// named after a seminar), 640 bookings round-robin over the offerings.
fn data_set() -> Value {
    let mut users = vec![json!({"username": "admin", "full_name": "Admin", "is_staff": true})];
    let (mut customers, mut projects, mut offerings, mut bookings) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for p in 0..4 {
        users.push(json!({"username": format!("provider{p}"), "full_name": format!("P {p}")}));
        customers.push(json!({"name": format!("Provider {p}"), "slug": format!("provider-{p}"), "owners": [format!("provider{p}")]}));
        for o in 0..2 {
            offerings.push(json!({
                "name": format!("Instrument {p}-{o}"), "slug": format!("off-{p}-{o}"),
                "customer": format!("provider-{p}"), "time_zone": "Europe/Berlin",
                "category": "Instruments",
                "availability": [{"from_days": -7, "to_days": 2000}],
            }));
        }
    }
    for c in 0..3 {
        users.push(json!({"username": format!("client{c}"), "full_name": format!("C {c}")}));
        customers.push(json!({"name": format!("Client {c}"), "slug": format!("client-{c}"), "owners": [format!("client{c}")]}));
        for p in 0..2 {
            let name = if c == 1 && p == 0 {
                "Seminar series".to_string()
            } else if c == 2 && p == 1 {
                "ΣΕΜΙΝΆΡΙΟ Émile".to_string()
            } else {
                format!("Project {c}-{p}")
            };
            projects.push(json!({"name": name, "slug": format!("proj-{c}-{p}"), "customer": format!("client-{c}")}));
        }
    }
    let base = chrono::Utc::now() + chrono::Duration::days(1);
    for i in 0..640usize {
        let (off, k) = (i % 8, i / 8);
        let proj = i % 6;
        let start = base + chrono::Duration::hours(2 * k as i64);
        bookings.push(json!({
            // Names repeat within an offering (k % 23) and across offerings.
            "name": format!("{} {}", WORDS[k % WORDS.len()], k % 23),
            "offering": format!("off-{}-{}", off / 2, off % 2),
            "project": format!("proj-{}-{}", proj / 2, proj % 2),
            "created_by": format!("client{}", proj / 2),
            "state": if k % 5 == 0 { "Creating" } else { "OK" },
            "slots": [{"start": start.to_rfc3339(), "end": (start + chrono::Duration::minutes(90)).to_rfc3339()}],
        }));
    }
    json!({"users": users, "customers": customers, "projects": projects, "offerings": offerings, "bookings": bookings})
}

/// Every page of a resource list on both engines: the same ids, in the same order.
async fn same_resources(what: &str, sled: &Store, pg: &Store, q: &ResourceQuery) -> usize {
    let mut offset = 0;
    loop {
        let q = ResourceQuery {
            page: Some(PageRange { offset, limit: 50 }),
            ..q.clone()
        };
        let a = sled.list_resources(&q).await.expect("sled list");
        let b = pg.list_resources(&q).await.expect("postgres list");
        assert_eq!(a.total, b.total, "{what}: totals");
        let ids =
            |p: &bookcal::store::query::Page<bookcal::domain::Resource>| -> Vec<(Id, String)> {
                p.items.iter().map(|r| (r.id, r.name.clone())).collect()
            };
        assert_eq!(ids(&a), ids(&b), "{what}: page at {offset}");
        offset += 50;
        if offset >= a.total {
            return a.total;
        }
    }
}

async fn same_orders(what: &str, sled: &Store, pg: &Store, q: &OrderQuery) -> usize {
    let mut offset = 0;
    loop {
        let q = OrderQuery {
            page: Some(PageRange { offset, limit: 50 }),
            ..q.clone()
        };
        let a = sled.list_orders(&q).await.expect("sled list");
        let b = pg.list_orders(&q).await.expect("postgres list");
        assert_eq!(a.total, b.total, "{what}: totals");
        let ids = |p: &bookcal::store::query::Page<bookcal::domain::Order>| -> Vec<Id> {
            p.items.iter().map(|o| o.id).collect()
        };
        assert_eq!(ids(&a), ids(&b), "{what}: page at {offset}");
        offset += 50;
        if offset >= a.total {
            return a.total;
        }
    }
}

#[tokio::test]
async fn the_reshaped_lists_give_the_same_pages_and_totals_on_postgresql_as_on_sled() {
    let Some(url) = database().await else { return };
    let sled = Store::temporary().expect("store");
    let ds = serde_json::from_value(data_set()).expect("data set");
    bookcal::import::import(&sled, &ds, chrono::Utc::now())
        .await
        .expect("import");
    let pg = Store::connect(&url, &StoreOptions::default(), &Default::default())
        .await
        .expect("connect");
    sled.copy_to(&pg, false).await.expect("copy");

    // A rename after the copy, on both engines: its orders follow the new name.
    let all = ResourceQuery {
        visible: Visible::everything(),
        page: Some(PageRange {
            offset: 0,
            limit: 1,
        }),
        ..ResourceQuery::default()
    };
    let mut renamed = sled
        .list_resources(&all)
        .await
        .expect("list")
        .items
        .remove(0);
    renamed.name = "Renamed to a seminar".into();
    for store in [&sled, &pg] {
        store
            .write(vec![Change::Resource(renamed.clone())])
            .await
            .expect("rename");
    }

    let dir = sled.directory().await.expect("directory");
    let customer = |slug: &str| {
        dir.customers
            .values()
            .find(|c| c.slug == slug)
            .map(|c| c.id)
            .expect("customer")
    };
    let offering = dir
        .offerings
        .values()
        .find(|o| o.slug == "off-1-0")
        .map(|o| o.id)
        .expect("offering");
    let provider = Visible {
        providers: vec![customer("provider-1")],
        ..Visible::default()
    };
    let consumer = Visible {
        consumers: vec![customer("client-2")],
        ..Visible::default()
    };

    let everything = || ResourceQuery {
        visible: Visible::everything(),
        ..ResourceQuery::default()
    };
    let mut of_offering = everything();
    of_offering.common.offering.ids = Some(vec![offering]);
    let text = |field: &str, v: &str| {
        let mut q = everything();
        match field {
            "query" => q.query = Some(v.into()),
            "name" => q.name = Some(v.into()),
            _ => q.project_name = Some(v.into()),
        }
        q
    };
    let cases: Vec<(&str, ResourceQuery, usize)> = vec![
        ("default order", everything(), 640),
        (
            "o=schedules",
            ResourceQuery {
                order: vec![(ResourceKey::Schedules, false)],
                ..everything()
            },
            640,
        ),
        (
            "o=-schedules",
            ResourceQuery {
                order: vec![(ResourceKey::Schedules, true)],
                ..everything()
            },
            640,
        ),
        (
            "o=-created",
            ResourceQuery {
                order: vec![(ResourceKey::Created, true)],
                ..everything()
            },
            640,
        ),
        (
            "offering, o=schedules",
            ResourceQuery {
                order: vec![(ResourceKey::Schedules, false)],
                ..of_offering.clone()
            },
            80,
        ),
        (
            "offering, o=-schedules",
            ResourceQuery {
                order: vec![(ResourceKey::Schedules, true)],
                ..of_offering.clone()
            },
            80,
        ),
        (
            "offering, state=OK",
            ResourceQuery {
                states: Some(vec![ResourceState::Ok]),
                ..of_offering.clone()
            },
            64,
        ),
        (
            "offering, state=OK or Creating",
            ResourceQuery {
                states: Some(vec![ResourceState::Ok, ResourceState::Creating]),
                ..of_offering.clone()
            },
            80,
        ),
        ("query=seminar", text("query", "seminar"), 0),
        ("name=seminar", text("name", "seminar"), 0),
        (
            "name=seminar, o=schedules",
            ResourceQuery {
                order: vec![(ResourceKey::Schedules, false)],
                ..text("name", "seminar")
            },
            0,
        ),
        (
            "query=seminar, provider owner",
            ResourceQuery {
                visible: provider.clone(),
                ..text("query", "seminar")
            },
            0,
        ),
        (
            "name=seminar, consumer owner",
            ResourceQuery {
                visible: consumer.clone(),
                ..text("name", "seminar")
            },
            0,
        ),
        (
            "offering, query=seminar",
            ResourceQuery {
                query: Some("seminar".into()),
                ..of_offering.clone()
            },
            0,
        ),
        ("project_name=seminar", text("project", "seminar"), 0),
        (
            "provider owner, o=schedules",
            ResourceQuery {
                visible: provider.clone(),
                order: vec![(ResourceKey::Schedules, false)],
                ..everything()
            },
            160,
        ),
    ];
    for (what, q, want) in &cases {
        let total = same_resources(what, &sled, &pg, q).await;
        assert!(total > 0, "{what}: nothing matched");
        if *want > 0 {
            assert_eq!(total, *want, "{what}");
        }
    }

    // Non-ASCII needles as the API folds them: (field, needle, whether anything
    // matches). The same records on both engines, and nothing on either where the
    // folding keeps the texts apart.
    let non_ascii: [(&str, &str, bool); 20] = [
        ("query", "ÉMILE", true),
        ("query", "émile", true),
        ("name", "Émile", true),
        ("name", "ÉTUDE", true),
        ("query", "STRASSE", false),
        ("name", "straße", true),
        ("name", "STRAẞE", true),
        ("query", "emile", false),
        ("query", "İZMİR", true),
        ("query", "izmir", false),
        ("query", "İzmir", false),
        ("name", "ΟΔΟΣ", true),
        ("name", "οδος", true),
        ("name", "ΟΔΟΣ 1", true),
        ("name", "οδοσ", false),
        ("query", "CAFE\u{301}", true),
        ("query", "café", false),
        ("query", "ΣΟΦΊΑ", true),
        ("project", "σεμινάριο", true),
        ("project", "ÉMILE", true),
    ];
    for (field, needle, found) in non_ascii {
        let what = format!("{field}={needle}");
        let total = same_resources(&what, &sled, &pg, &text(field, &fold(needle))).await;
        assert_eq!(total > 0, found, "{what}: {total} found");
    }

    let orders = || OrderQuery {
        visible: Visible::everything(),
        ..OrderQuery::default()
    };
    let order_cases: Vec<(&str, OrderQuery)> = vec![
        ("orders", orders()),
        (
            "orders o=-created",
            OrderQuery {
                order: vec![(OrderKey::Created, true)],
                ..orders()
            },
        ),
        (
            "orders o=created",
            OrderQuery {
                order: vec![(OrderKey::Created, false)],
                ..orders()
            },
        ),
        (
            "orders query=seminar",
            OrderQuery {
                query: Some("seminar".into()),
                ..orders()
            },
        ),
        (
            "orders query=renamed",
            OrderQuery {
                query: Some("renamed".into()),
                ..orders()
            },
        ),
        (
            "orders query=series (a project's name)",
            OrderQuery {
                query: Some("series".into()),
                ..orders()
            },
        ),
        (
            "orders resource_name=seminar",
            OrderQuery {
                resource_name: Some("seminar".into()),
                ..orders()
            },
        ),
        (
            "orders query=seminar, provider owner",
            OrderQuery {
                visible: provider.clone(),
                query: Some("seminar".into()),
                ..orders()
            },
        ),
        (
            "orders o=-created, consumer owner",
            OrderQuery {
                visible: consumer.clone(),
                order: vec![(OrderKey::Created, true)],
                ..orders()
            },
        ),
    ];
    for (what, q) in &order_cases {
        let total = same_orders(what, &sled, &pg, q).await;
        assert!(total > 0, "{what}: nothing matched");
    }
    // Orders by a non-ASCII resource or project name: (query or resource_name,
    // needle, whether anything matches).
    let non_ascii_orders: [(bool, &str, bool); 8] = [
        (true, "ÉMILE", true),
        (true, "émile's", true),
        (false, "ÉTUDE", true),
        (false, "İZMİR", true),
        (false, "izmir", false),
        (true, "ΣΕΜΙΝΆΡΙΟ", true),
        (true, "σεμιναριο", false),
        (false, "strasse", false),
    ];
    for (query, needle, found) in non_ascii_orders {
        let what = format!(
            "orders {}={needle}",
            if query { "query" } else { "resource_name" }
        );
        let mut q = orders();
        if query {
            q.query = Some(fold(needle));
        } else {
            q.resource_name = Some(fold(needle));
        }
        let total = same_orders(&what, &sled, &pg, &q).await;
        assert_eq!(total > 0, found, "{what}: {total} found");
    }
    // The renamed resource's order is found by its new name only.
    let renamed_orders = same_orders(
        "orders query=renamed",
        &sled,
        &pg,
        &OrderQuery {
            query: Some("renamed".into()),
            ..orders()
        },
    )
    .await;
    assert_eq!(renamed_orders, 1);
}
