//! The authorization matrix: every operation of the OpenAPI document x every kind of
//! caller (anonymous, a user of another tenant, a project member, the consumer's
//! owner, the provider's owner and its manager, staff), aimed at the demo tenant's
//! objects. Each answer must have the expected status (errors in DRF shape); a
//! refusal changes nothing (no store commit, the same records); and nothing that
//! anonymous callers or the other tenant get back names the demo tenant's private
//! objects (orders, bookings, projects, the consumer organisation, its people, an
//! unshared offering, feed tokens). Lists must show each caller exactly what the
//! visibility rules give them.

use std::collections::BTreeSet;

use bookcal::domain::Id;
use reqwest::Method;
use serde_json::Value;

use crate::helpers::{at, spawn_app, TestApp};

/// The callers, in the order of [`Row::expect`].
const CALLERS: [Option<&str>; 7] = [
    None,
    Some("eve"),
    Some("bob"),
    Some("alice"),
    Some("owner"),
    Some("manager"),
    Some("admin"),
];

/// The order a fresh target is in.
#[derive(Clone, Copy, Debug)]
enum Stage {
    /// Made by bob, a member of the project who may not approve for it: waits for
    /// the consumer's approval.
    PendingConsumer,
    /// Made by alice, the consumer's owner (her approval is implied): executing, the
    /// booking waits to be accepted.
    Executing,
    /// Made by alice and accepted: the booking holds its slot.
    Accepted,
    /// Made by bob, with an attachment.
    WithAttachment,
}

/// What a row's `{uuid}`, `{token_uuid}` or `{file}` stands for.
#[derive(Clone, Copy, Debug)]
enum Target {
    Nothing,
    /// The demo's shared room offering.
    Offering,
    /// An unshared offering of the same provider.
    PrivateOffering,
    /// An offering of the provider with no calendar yet (one per successful call).
    FreshOffering,
    /// An offering with a public calendar (one per successful call).
    PublicCalendarOffering,
    /// An order at a stage (`{uuid}` is the order).
    Order(Stage),
    /// The booking of an order at a stage (`{uuid}` is the booking resource).
    Booking(Stage),
    /// A feed token of the room offering (`{uuid}` the offering, `{token_uuid}` it).
    OfferingToken,
    /// One of alice's "my bookings" feed tokens.
    AlicesToken,
    /// The room's public feed (`{file}`), its calendar public.
    PublicFeed,
    /// The microscope's feed, its calendar private.
    PrivateFeed,
    /// Alice's "my bookings" feed by its secret.
    TokenFeed,
    /// The demo's project (`imaging`).
    Project,
    /// The demo's consumer organisation (the project's).
    Consumer,
    /// The demo's provider organisation (the room's).
    Provider,
    /// The user alice.
    Alice,
    /// The room's marketplace category.
    Category,
    /// The category of the unshared offering alone.
    PrivateCategory,
    /// A well-formed secret that is no token.
    UnknownTokenFeed,
}

/// The body a row sends.
#[derive(Clone, Copy, Debug)]
enum Body {
    None,
    /// A new order for the demo project on the room, at a free slot.
    NewOrder,
    Json(&'static str),
    /// A one-file multipart upload.
    Upload,
}

struct Row {
    method: Method,
    path: &'static str,
    target: Target,
    body: Body,
    /// The status for each of [`CALLERS`].
    expect: [u16; 7],
}

fn row(method: Method, path: &'static str, target: Target, expect: [u16; 7]) -> Row {
    Row {
        method,
        path,
        target,
        body: Body::None,
        expect,
    }
}

fn with_body(mut r: Row, body: Body) -> Row {
    r.body = body;
    r
}

#[rustfmt::skip]
fn table() -> Vec<Row> {
    use Stage::*;
    use Target::*;
    let (get, post, delete) = (Method::GET, Method::POST, Method::DELETE);
    // Columns: anonymous, eve (other tenant), bob (member), alice (consumer owner),
    // owner (provider), manager (provider), admin (staff).
    vec![
        // Orders. Members see their project's orders; the consumer's owner approves for
        // it; the provider's owners and managers act for the provider; the requester
        // (creator or consumer owner) cancels, withdraws and attaches; staff unlinks.
        row(get.clone(), "/api/marketplace-orders/", Nothing, [401, 200, 200, 200, 200, 200, 200]),
        with_body(row(post.clone(), "/api/marketplace-orders/", Nothing, [401, 400, 201, 201, 400, 400, 201]), Body::NewOrder),
        row(get.clone(), "/api/marketplace-orders/{uuid}/", Order(Executing), [401, 404, 200, 200, 200, 200, 200]),
        row(delete.clone(), "/api/marketplace-orders/{uuid}/", Order(PendingConsumer), [401, 404, 204, 204, 403, 403, 204]),
        row(get.clone(), "/api/marketplace-orders/{uuid}/offering/", Order(Executing), [401, 404, 200, 200, 200, 200, 200]),
        row(post.clone(), "/api/marketplace-orders/{uuid}/approve_by_consumer/", Order(PendingConsumer), [401, 404, 403, 200, 403, 403, 200]),
        row(post.clone(), "/api/marketplace-orders/{uuid}/reject_by_consumer/", Order(PendingConsumer), [401, 404, 403, 200, 403, 403, 200]),
        // A booking order never waits for the provider (the consumer's approval
        // executes it): whoever may act for the provider meets a 409 instead.
        row(post.clone(), "/api/marketplace-orders/{uuid}/approve_by_provider/", Order(PendingConsumer), [401, 404, 403, 403, 409, 409, 409]),
        row(post.clone(), "/api/marketplace-orders/{uuid}/reject_by_provider/", Order(PendingConsumer), [401, 404, 403, 403, 409, 409, 409]),
        row(post.clone(), "/api/marketplace-orders/{uuid}/cancel/", Order(Executing), [401, 404, 403, 202, 403, 403, 202]),
        row(post.clone(), "/api/marketplace-orders/{uuid}/set_state_executing/", Order(PendingConsumer), [401, 404, 403, 403, 200, 200, 200]),
        row(post.clone(), "/api/marketplace-orders/{uuid}/set_state_done/", Order(Executing), [401, 404, 403, 403, 200, 200, 200]),
        with_body(row(post.clone(), "/api/marketplace-orders/{uuid}/set_state_erred/", Order(Executing), [401, 404, 403, 403, 200, 200, 200]), Body::Json(r#"{"error_message": "matrix"}"#)),
        with_body(row(post.clone(), "/api/marketplace-orders/{uuid}/set_backend_id/", Order(Executing), [401, 404, 403, 403, 200, 200, 200]), Body::Json(r#"{"backend_id": "matrix-1"}"#)),
        row(post.clone(), "/api/marketplace-orders/{uuid}/unlink/", Order(Executing), [401, 404, 403, 403, 403, 403, 204]),
        with_body(row(post.clone(), "/api/marketplace-orders/{uuid}/update_attachment/", Order(PendingConsumer), [401, 404, 200, 200, 403, 403, 200]), Body::Upload),
        row(post.clone(), "/api/marketplace-orders/{uuid}/delete_attachment/", Order(WithAttachment), [401, 404, 204, 204, 403, 403, 204]),
        row(get.clone(), "/api/marketplace-orders/{uuid}/attachment/", Order(WithAttachment), [401, 404, 200, 200, 200, 200, 200]),
        // Bookings: staff, the provider's owners and managers and the creator see them
        // (not other members); the provider accepts; a party rejects or terminates.
        row(get.clone(), "/api/booking-resources/", Nothing, [401, 200, 200, 200, 200, 200, 200]),
        row(get.clone(), "/api/booking-resources/{uuid}/", Booking(Executing), [401, 404, 404, 200, 200, 200, 200]),
        row(post.clone(), "/api/booking-resources/{uuid}/accept/", Booking(Executing), [401, 404, 404, 403, 200, 200, 200]),
        row(post.clone(), "/api/booking-resources/{uuid}/reject/", Booking(Executing), [401, 404, 404, 200, 200, 200, 200]),
        row(post.clone(), "/api/marketplace-resources/{uuid}/terminate/", Booking(Accepted), [401, 404, 403, 200, 200, 200, 200]),
        // Booking offerings: the provider's owners and managers and staff; the calendar
        // actions are the owners' and staff's.
        row(get.clone(), "/api/booking-offerings/", Nothing, [401, 200, 200, 200, 200, 200, 200]),
        row(get.clone(), "/api/booking-offerings/{uuid}/", Offering, [401, 404, 404, 404, 200, 200, 200]),
        row(post.clone(), "/api/booking-offerings/{uuid}/google_calendar_sync/", FreshOffering, [401, 404, 404, 404, 200, 403, 200]),
        row(post.clone(), "/api/booking-offerings/{uuid}/share_google_calendar/", FreshOffering, [401, 404, 404, 404, 200, 403, 200]),
        row(post.clone(), "/api/booking-offerings/{uuid}/unshare_google_calendar/", PublicCalendarOffering, [401, 404, 404, 404, 200, 403, 200]),
        // When a shared offering is taken is for everyone signed in (not by whom);
        // an unshared one only for its provider.
        row(get.clone(), "/api/marketplace-bookings/{uuid}/", Offering, [401, 200, 200, 200, 200, 200, 200]),
        row(get.clone(), "/api/marketplace-bookings/{uuid}/", PrivateOffering, [401, 404, 404, 404, 200, 200, 200]),
        // Feed tokens: an offering's are its provider's; "my bookings" tokens are each
        // user's own (staff cannot revoke another's).
        row(get.clone(), "/api/booking-offerings/{uuid}/feed_tokens/", Offering, [401, 404, 404, 404, 200, 200, 200]),
        with_body(row(post.clone(), "/api/booking-offerings/{uuid}/feed_tokens/", Offering, [401, 404, 404, 404, 201, 201, 201]), Body::Json(r#"{"name": "matrix"}"#)),
        row(delete.clone(), "/api/booking-offerings/{uuid}/feed_tokens/{token_uuid}/", OfferingToken, [401, 404, 404, 404, 204, 204, 204]),
        row(get.clone(), "/api/feed-tokens/", Nothing, [401, 200, 200, 200, 200, 200, 200]),
        with_body(row(post.clone(), "/api/feed-tokens/", Nothing, [401, 201, 201, 201, 201, 201, 201]), Body::Json(r#"{"name": "matrix"}"#)),
        row(delete.clone(), "/api/feed-tokens/{token_uuid}/", AlicesToken, [401, 404, 404, 204, 404, 404, 404]),
        // The directory the answers link to (read-only): projects and the people of
        // one's own organisations and projects (Waldur's rules); organisations one
        // belongs to and the providers of the offerings one sees; public offering
        // details as `marketplace-bookings` shows their time.
        row(get.clone(), "/api/projects/", Nothing, [401, 200, 200, 200, 200, 200, 200]),
        row(get.clone(), "/api/projects/{uuid}/", Project, [401, 404, 200, 200, 404, 404, 200]),
        row(get.clone(), "/api/customers/", Nothing, [401, 200, 200, 200, 200, 200, 200]),
        row(get.clone(), "/api/customers/{uuid}/", Consumer, [401, 404, 200, 200, 404, 404, 200]),
        row(get.clone(), "/api/customers/{uuid}/", Provider, [401, 200, 200, 200, 200, 200, 200]),
        row(get.clone(), "/api/users/", Nothing, [401, 200, 200, 200, 200, 200, 200]),
        row(get.clone(), "/api/users/{uuid}/", Alice, [401, 404, 200, 200, 404, 404, 200]),
        row(get.clone(), "/api/marketplace-public-offerings/", Nothing, [401, 200, 200, 200, 200, 200, 200]),
        row(get.clone(), "/api/marketplace-public-offerings/{uuid}/", Offering, [401, 200, 200, 200, 200, 200, 200]),
        row(get.clone(), "/api/marketplace-public-offerings/{uuid}/", PrivateOffering, [401, 404, 404, 404, 200, 200, 200]),
        // Categories are seen with the offerings in them.
        row(get.clone(), "/api/marketplace-categories/", Nothing, [401, 200, 200, 200, 200, 200, 200]),
        row(get.clone(), "/api/marketplace-categories/{uuid}/", Category, [401, 200, 200, 200, 200, 200, 200]),
        row(get.clone(), "/api/marketplace-categories/{uuid}/", PrivateCategory, [401, 404, 404, 404, 200, 200, 200]),
        // Public: the same answer whoever asks.
        row(get.clone(), "/api/", Nothing, [200; 7]),
        row(get.clone(), "/api/schema/", Nothing, [200; 7]),
        row(get.clone(), "/health", Nothing, [200; 7]),
        // No scheduler runs in this test: not ready, for everyone alike.
        row(get.clone(), "/ready", Nothing, [503; 7]),
        // Metrics take only the metrics bearer token (none is set here): API tokens,
        // staff's included, are refused rather than read as anonymous.
        row(get.clone(), "/metrics", Nothing, [200, 401, 401, 401, 401, 401, 401]),
        row(get.clone(), "/feeds/offerings/{file}", PublicFeed, [200; 7]),
        row(get.clone(), "/feeds/offerings/{file}", PrivateFeed, [404; 7]),
        row(get.clone(), "/feeds/t/{file}", TokenFeed, [200; 7]),
        row(get.clone(), "/feeds/t/{file}", UnknownTokenFeed, [404; 7]),
    ]
}

/// A second tenant (eve's organisation, which both provides and orders), an unshared
/// offering and offerings without calendars for the demo's provider.
const OTHER_TENANT: &str = r#"{
  "users": [{"username": "eve", "full_name": "Eve Elsewhere", "email": "eve@southlab.example.org"}],
  "customers": [{"name": "Southlab", "slug": "southlab", "owners": ["eve"]}],
  "projects": [{"name": "Southlab survey", "slug": "survey", "customer": "southlab"}],
  "offerings": [
    {"name": "Southlab bench", "slug": "south-bench", "customer": "southlab", "time_zone": "UTC",
     "availability": [{"from_days": -7, "to_days": 400}]},
    {"name": "Cryo store (unshared)", "slug": "cryo-private", "customer": "northlab", "time_zone": "UTC",
     "shared": false, "category": "Cold storage", "availability": [{"from_days": -7, "to_days": 400}]},
    {"name": "Spare 1", "slug": "spare-1", "customer": "northlab", "time_zone": "UTC", "availability": []},
    {"name": "Spare 2", "slug": "spare-2", "customer": "northlab", "time_zone": "UTC", "availability": []},
    {"name": "Spare 3", "slug": "spare-3", "customer": "northlab", "time_zone": "UTC", "availability": []},
    {"name": "Spare 4", "slug": "spare-4", "customer": "northlab", "time_zone": "UTC", "availability": []},
    {"name": "Spare 5", "slug": "spare-5", "customer": "northlab", "time_zone": "UTC", "availability": []},
    {"name": "Spare 6", "slug": "spare-6", "customer": "northlab", "time_zone": "UTC", "availability": []},
    {"name": "Spare 7", "slug": "spare-7", "customer": "northlab", "time_zone": "UTC", "availability": []},
    {"name": "Spare 8", "slug": "spare-8", "customer": "northlab", "time_zone": "UTC", "availability": []},
    {"name": "Spare 9", "slug": "spare-9", "customer": "northlab", "time_zone": "UTC", "availability": []}
  ],
  "bookings": [
    {"name": "Survey run", "offering": "south-bench", "project": "survey", "created_by": "eve",
     "state": "OK", "slots": [{"days": 3, "at": "10:00", "hours": 1}]},
    {"name": "Cryo sample store", "offering": "cryo-private", "project": "imaging", "created_by": "alice",
     "state": "OK", "slots": [{"days": 4, "at": "10:00", "hours": 1}]}
  ]
}"#;

struct Matrix {
    app: TestApp,
    /// Day offsets of slots not yet taken on the room.
    next_day: i64,
    next_spare: usize,
    /// Alice's "my bookings" feed secret.
    alices_secret: String,
}

/// A target made concrete: what replaces `{uuid}`, `{token_uuid}` and `{file}`.
#[derive(Clone, Default)]
struct Made {
    uuid: String,
    token_uuid: String,
    file: String,
}

impl Matrix {
    async fn new() -> Matrix {
        let app = spawn_app().await;
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("other-tenant.json");
        std::fs::write(&file, OTHER_TENANT).expect("write");
        bookcal::import::import_file(&app.store, &file)
            .await
            .expect("import the other tenant");
        app.learn_ids().await;
        let mut app = app;
        let eve = app
            .store
            .user_by_name("eve")
            .await
            .expect("read")
            .expect("eve")
            .id;
        app.tokens
            .insert("eve", app.store.create_token(eve).await.expect("token"));
        app.seed_calendar("room-aurora", "room@group.calendar.google.com", true)
            .await;
        app.seed_calendar("tem-2100", "tem@group.calendar.google.com", false)
            .await;
        let mut m = Matrix {
            app,
            next_day: 120,
            next_spare: 1,
            alices_secret: String::new(),
        };
        let t = m
            .call(
                Method::POST,
                Some("alice"),
                "/api/feed-tokens/",
                Body::Json(r#"{"name": "mine"}"#),
            )
            .await;
        assert_eq!(t.0, 201, "{}", t.1);
        let url = t.2["url"].as_str().expect("url").to_owned();
        m.alices_secret = url
            .rsplit('/')
            .next()
            .and_then(|f| f.strip_suffix(".ics"))
            .expect("secret")
            .to_owned();
        m
    }

    async fn call(
        &mut self,
        method: Method,
        who: Option<&str>,
        path: &str,
        body: Body,
    ) -> (u16, String, Value, Option<String>) {
        let mut r = self
            .app
            .http
            .request(method, format!("{}{}", self.app.base, path));
        if let Some(u) = who {
            r = r.header("Authorization", format!("Token {}", self.app.tokens[u]));
        }
        r = match body {
            Body::None => r,
            Body::Json(s) => r.header("Content-Type", "application/json").body(s),
            Body::NewOrder => {
                let day = self.next_day;
                self.next_day += 1;
                r.json(
                    &self
                        .app
                        .order_body("room-aurora", &[(at(day, 9), at(day, 10))]),
                )
            }
            Body::Upload => r.multipart(
                reqwest::multipart::Form::new().part(
                    "attachment",
                    reqwest::multipart::Part::bytes(b"%PDF-1.4 matrix".to_vec())
                        .file_name("plan.pdf")
                        .mime_str("application/pdf")
                        .expect("mime"),
                ),
            ),
        };
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = resp.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, text, value, content_type)
    }

    /// Runs `path` as admin and insists on `want`.
    async fn staff(&mut self, path: &str, body: Body, want: u16) -> Value {
        let (status, text, value, _) = self.call(Method::POST, Some("admin"), path, body).await;
        assert_eq!(status, want, "setting up: POST {path}: {text}");
        value
    }

    /// A new order at `stage`: (order, booking resource).
    async fn order(&mut self, stage: Stage) -> (String, String) {
        let maker = if matches!(stage, Stage::PendingConsumer | Stage::WithAttachment) {
            "bob"
        } else {
            "alice"
        };
        let (status, text, v, _) = self
            .call(
                Method::POST,
                Some(maker),
                "/api/marketplace-orders/",
                Body::NewOrder,
            )
            .await;
        assert_eq!(status, 201, "setting up an order: {text}");
        let order = v["uuid"].as_str().expect("uuid").to_owned();
        let resource = v["marketplace_resource_uuid"]
            .as_str()
            .expect("resource uuid")
            .to_owned();
        let base = format!("/api/marketplace-orders/{order}");
        match stage {
            Stage::PendingConsumer | Stage::Executing => {}
            Stage::WithAttachment => {
                let (status, text, ..) = self
                    .call(
                        Method::POST,
                        Some("bob"),
                        &format!("{base}/update_attachment/"),
                        Body::Upload,
                    )
                    .await;
                assert_eq!(status, 200, "setting up an attachment: {text}");
            }
            Stage::Accepted => {
                self.staff(
                    &format!("/api/booking-resources/{resource}/accept/"),
                    Body::None,
                    200,
                )
                .await;
            }
        }
        (order, resource)
    }

    fn spare(&mut self) -> Id {
        let slug = format!("spare-{}", self.next_spare);
        self.next_spare += 1;
        self.app.offering_id(&slug)
    }

    /// Makes `target`; `fresh`: the call is expected to change it (a successful write).
    async fn make(&mut self, target: Target, fresh: bool) -> Made {
        let room = self.app.offering_id("room-aurora").hex();
        match target {
            Target::Nothing => Made::default(),
            Target::Offering => Made {
                uuid: room,
                ..Made::default()
            },
            Target::PrivateOffering => Made {
                uuid: self.app.offering_id("cryo-private").hex(),
                ..Made::default()
            },
            Target::Category | Target::PrivateCategory => {
                let slug = match target {
                    Target::Category => "room-aurora",
                    _ => "cryo-private",
                };
                let o = self
                    .app
                    .store
                    .offering(self.app.offering_id(slug))
                    .await
                    .expect("read")
                    .expect("offering");
                Made {
                    uuid: o.category.id.hex(),
                    ..Made::default()
                }
            }
            // Refused calls all aim at the first spare; each successful one at another.
            Target::FreshOffering | Target::PublicCalendarOffering => {
                let id = if fresh {
                    self.spare()
                } else {
                    self.app.offering_id("spare-9")
                };
                if matches!(target, Target::PublicCalendarOffering) {
                    let slug = self
                        .app
                        .store
                        .offering(id)
                        .await
                        .expect("read")
                        .expect("offering")
                        .slug;
                    self.app
                        .seed_calendar(&slug, &format!("{slug}@group.calendar.google.com"), true)
                        .await;
                }
                Made {
                    uuid: id.hex(),
                    ..Made::default()
                }
            }
            Target::Order(stage) => Made {
                uuid: self.order(stage).await.0,
                ..Made::default()
            },
            Target::Booking(stage) => Made {
                uuid: self.order(stage).await.1,
                ..Made::default()
            },
            Target::OfferingToken => {
                let v = self
                    .staff(
                        &format!("/api/booking-offerings/{room}/feed_tokens/"),
                        Body::Json(r#"{"name": "target"}"#),
                        201,
                    )
                    .await;
                Made {
                    uuid: room,
                    token_uuid: v["uuid"].as_str().expect("uuid").to_owned(),
                    ..Made::default()
                }
            }
            Target::AlicesToken => {
                let (status, text, v, _) = self
                    .call(
                        Method::POST,
                        Some("alice"),
                        "/api/feed-tokens/",
                        Body::Json(r#"{"name": "target"}"#),
                    )
                    .await;
                assert_eq!(status, 201, "{text}");
                Made {
                    token_uuid: v["uuid"].as_str().expect("uuid").to_owned(),
                    ..Made::default()
                }
            }
            Target::PublicFeed => Made {
                file: format!("{room}.ics"),
                ..Made::default()
            },
            Target::PrivateFeed => Made {
                file: format!("{}.ics", self.app.offering_id("tem-2100").hex()),
                ..Made::default()
            },
            Target::TokenFeed => Made {
                file: format!("{}.ics", self.alices_secret),
                ..Made::default()
            },
            Target::Project => Made {
                uuid: self.app.project_id("imaging").hex(),
                ..Made::default()
            },
            Target::Consumer => {
                let project = self.app.project_id("imaging");
                let p = self.app.store.project(project).await.expect("read");
                Made {
                    uuid: p.expect("project").customer.hex(),
                    ..Made::default()
                }
            }
            Target::Provider => Made {
                uuid: self
                    .app
                    .provider_of(self.app.offering_id("room-aurora"))
                    .await
                    .hex(),
                ..Made::default()
            },
            Target::Alice => {
                let alice = self.app.store.user_by_name("alice").await.expect("read");
                Made {
                    uuid: alice.expect("alice").id.hex(),
                    ..Made::default()
                }
            }
            Target::UnknownTokenFeed => Made {
                file: format!("{}.ics", "A".repeat(43)),
                ..Made::default()
            },
        }
    }

    /// Everything stored, to compare before and after a refused call (through the
    /// store's async reads: either engine).
    async fn state(&self) -> (u64, String) {
        let store = &self.app.store;
        let snapshot = self.app.snapshot().await;
        let mut orders: Vec<String> = self
            .app
            .all_orders()
            .await
            .iter()
            .map(|o| format!("{}:{:?}", o.id.hex(), o.state))
            .collect();
        orders.sort();
        let mut calendars = Vec::new();
        for o in store.all_offerings().await.expect("offerings") {
            if let Some(c) = store.calendar(o.id).await.expect("calendar") {
                calendars.push(format!("{}:{:?}:{}", o.id.hex(), c.state, c.public));
            }
        }
        calendars.sort();
        let jobs = store.jobs().await.expect("jobs").len();
        let snapshot = format!("{snapshot:?} {orders:?} {calendars:?} jobs={jobs}");
        (store.commits(), snapshot)
    }

    /// The user named `name`.
    fn user(dir: &bookcal::store::Directory, name: &str) -> Id {
        dir.user_by_name(name)
            .unwrap_or_else(|| panic!("no user {name}"))
            .id
    }

    /// What anonymous callers and the other tenant must never be shown.
    async fn private_words(&self) -> Vec<String> {
        let room = self.app.offering_id("room-aurora");
        let dir = self.app.store.directory().await.expect("directory");
        let eve = Self::user(&dir, "eve");
        let mut words = Vec::new();
        let mut id = |i: Id| {
            let hex = i.hex();
            words.push(hex.clone());
            words.push(format!(
                "{}-{}-{}-{}-{}",
                &hex[0..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..32]
            ));
        };
        for o in self
            .app
            .all_orders()
            .await
            .iter()
            .filter(|o| o.created_by != eve)
        {
            id(o.id);
        }
        for r in self
            .app
            .all_resources()
            .await
            .iter()
            .filter(|r| r.created_by != eve)
        {
            id(r.id);
        }
        let imaging = dir
            .projects
            .values()
            .find(|p| p.slug == "imaging")
            .expect("project");
        id(imaging.id);
        id(imaging.customer);
        let cryo = dir
            .offerings
            .values()
            .find(|o| o.slug == "cryo-private")
            .expect("offering");
        id(cryo.id);
        for scope in [
            bookcal::store::feed_tokens::FeedScope::Offering(room),
            bookcal::store::feed_tokens::FeedScope::User(Self::user(&dir, "alice")),
        ] {
            for t in self.app.store.feed_tokens(scope).await.expect("tokens") {
                id(t.uuid);
            }
        }
        for u in ["alice", "bob", "owner", "manager", "admin"] {
            let user = &dir.users[&Self::user(&dir, u)];
            words.push(user.email.clone());
            words.push(user.full_name.clone());
        }
        words.extend(
            [
                "Imaging study",
                "Alice Research",
                "Kick-off meeting",
                "Weekly sync",
                "Sample imaging run",
                "Follow-up imaging",
                "Cryo",
                self.alices_secret.as_str(),
            ]
            .map(str::to_owned),
        );
        words
    }

    /// The uuids a list shows `who` (all pages of 1000).
    async fn expected_list(&self, path: &str, who: &str) -> BTreeSet<String> {
        let dir = self.app.store.directory().await.expect("directory");
        let user = Self::user(&dir, who);
        let staff = dir.users[&user].is_staff;
        let owns = |c: &Id| dir.customers[c].owners.contains(&user);
        let manages = |c: &Id| dir.customers[c].managers.contains(&user);
        let provider = |c: &Id| owns(c) || manages(c);
        let member = |p: &Id| dir.projects[p].members.contains(&user);
        // The provider is the offering's customer, the consumer the project's.
        let provider_of = |offering: &Id| dir.offerings[offering].customer;
        let consumer_of = |project: &Id| dir.projects[project].customer;
        match path {
            "/api/marketplace-orders/" => self
                .app
                .all_orders()
                .await
                .iter()
                .filter(|o| {
                    staff
                        || provider(&provider_of(&o.offering))
                        || provider(&consumer_of(&o.project))
                        || member(&o.project)
                        || o.created_by == user
                })
                .map(|o| o.id.hex())
                .collect(),
            "/api/booking-resources/" => self
                .app
                .all_resources()
                .await
                .iter()
                .filter(|r| staff || provider(&provider_of(&r.offering)) || r.created_by == user)
                .map(|r| r.id.hex())
                .collect(),
            "/api/booking-offerings/" => dir
                .offerings
                .values()
                .filter(|o| staff || provider(&o.customer))
                .map(|o| o.id.hex())
                .collect(),
            "/api/projects/" => dir
                .projects
                .values()
                .filter(|p| staff || provider(&p.customer) || member(&p.id))
                .map(|p| p.id.hex())
                .collect(),
            "/api/customers/" => dir
                .customers
                .values()
                .filter(|c| {
                    staff
                        || provider(&c.id)
                        || dir
                            .projects
                            .values()
                            .any(|p| p.customer == c.id && member(&p.id))
                        || dir
                            .offerings
                            .values()
                            .any(|o| o.customer == c.id && o.shared)
                })
                .map(|c| c.id.hex())
                .collect(),
            "/api/users/" => {
                let own = |c: &Id| {
                    provider(c)
                        || dir
                            .projects
                            .values()
                            .any(|p| p.customer == *c && member(&p.id))
                };
                dir.users
                    .values()
                    .filter(|u| {
                        staff
                            || u.id == user
                            || dir.customers.values().any(|c| {
                                own(&c.id)
                                    && (c.owners.contains(&u.id) || c.managers.contains(&u.id))
                            })
                            || dir.projects.values().any(|p| {
                                (provider(&p.customer) || member(&p.id))
                                    && p.members.contains(&u.id)
                            })
                    })
                    .map(|u| u.id.hex())
                    .collect()
            }
            "/api/marketplace-public-offerings/" => dir
                .offerings
                .values()
                .filter(|o| staff || o.shared || provider(&o.customer))
                .map(|o| o.id.hex())
                .collect(),
            "/api/marketplace-categories/" => dir
                .offerings
                .values()
                .filter(|o| staff || o.shared || provider(&o.customer))
                .map(|o| o.category.id.hex())
                .collect(),
            "/api/feed-tokens/" => self
                .app
                .store
                .feed_tokens(bookcal::store::feed_tokens::FeedScope::User(user))
                .await
                .expect("tokens")
                .iter()
                .map(|t| t.uuid.hex())
                .collect(),
            other => panic!("no visibility rule for the list {other}"),
        }
    }
}

fn dashless(v: &Value) -> String {
    v.as_str().unwrap_or_default().replace('-', "")
}

/// An error body in one of DRF's shapes: `{"detail": "..."}`, a field map of
/// message lists, or a list of messages.
fn is_drf_error(v: &Value) -> bool {
    let messages = |v: &Value| {
        v.as_array()
            .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string))
    };
    match v {
        Value::Object(m) if m.len() == 1 && m.get("detail").is_some_and(Value::is_string) => true,
        Value::Object(m) => !m.is_empty() && m.values().all(|x| messages(x) || x.is_string()),
        Value::Array(_) => messages(v),
        _ => false,
    }
}

#[tokio::test]
async fn every_route_answers_every_role_as_the_rules_say_and_refusals_change_and_leak_nothing() {
    let mut m = Matrix::new().await;
    let rows = table();

    // The table covers every operation the service documents, and only those.
    let (status, _, schema, _) = m.call(Method::GET, None, "/api/schema/", Body::None).await;
    assert_eq!(status, 200);
    let documented: BTreeSet<(String, String)> = schema["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .expect("operations")
                .keys()
                .filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
                .map(|k| (k.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let tabled: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    assert_eq!(
        documented.difference(&tabled).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "operations of the OpenAPI document missing from the authorization matrix"
    );
    assert_eq!(
        tabled.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "matrix rows for operations the service does not document"
    );

    let mut failures = Vec::new();
    let mut checked = 0;
    for r in &rows {
        // Refused callers share one target; each expected success gets its own.
        let shared = m.make(r.target, false).await;
        for (who, &want) in CALLERS.iter().zip(&r.expect) {
            let writes = r.method != Method::GET && want < 300;
            let made = if writes {
                m.make(r.target, true).await
            } else {
                shared.clone()
            };
            let path = r
                .path
                .replace("{uuid}", &made.uuid)
                .replace("{token_uuid}", &made.token_uuid)
                .replace("{file}", &made.file);
            let before = m.state().await;
            let words = m.private_words().await;
            let (status, text, body, content_type) =
                m.call(r.method.clone(), *who, &path, r.body).await;
            let after = m.state().await;
            let name = format!("{} {} as {}", r.method, r.path, who.unwrap_or("anonymous"));
            checked += 1;
            if status != want {
                failures.push(format!("{name}: {status}, expected {want}: {text:.300}"));
                continue;
            }
            // Every refusal in DRF shape (a probe's 503 is the readiness document).
            let json = content_type.is_some_and(|c| c.starts_with("application/json"));
            if status >= 400 && r.path != "/ready" && !(json && is_drf_error(&body)) {
                failures.push(format!("{name}: {status} not in DRF shape: {text:.300}"));
            }
            if status >= 400 && before != after {
                failures.push(format!(
                    "{name}: refused with {status} but changed the store"
                ));
            }
            if matches!(who, None | Some("eve")) && !r.path.starts_with("/feeds/t/") {
                for w in words.iter().filter(|w| text.contains(w.as_str())) {
                    failures.push(format!("{name}: the answer names {w:?}"));
                }
            }
            if let (Some(u), 200) = (who, status) {
                if matches!(
                    r.path,
                    "/api/marketplace-orders/"
                        | "/api/booking-resources/"
                        | "/api/booking-offerings/"
                        | "/api/feed-tokens/"
                        | "/api/projects/"
                        | "/api/customers/"
                        | "/api/users/"
                        | "/api/marketplace-public-offerings/"
                        | "/api/marketplace-categories/"
                ) {
                    let (_, _, page, _) = m
                        .call(
                            Method::GET,
                            *who,
                            &format!("{}?page_size=1000", r.path),
                            Body::None,
                        )
                        .await;
                    let shown: BTreeSet<String> = page
                        .as_array()
                        .expect("a list")
                        .iter()
                        .map(|x| dashless(&x["uuid"]))
                        .collect();
                    let expected = m.expected_list(r.path, u).await;
                    if shown != expected {
                        failures.push(format!(
                            "{name}: shows {shown:?}, the rules give {expected:?}"
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} calls broke the matrix:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn every_route_answers_an_undocumented_method_with_a_drf_405_naming_the_allowed_ones() {
    let mut m = Matrix::new().await;
    let (_, _, schema, _) = m.call(Method::GET, None, "/api/schema/", Body::None).await;
    let room = m.app.offering_id("room-aurora").hex();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (path, ops) in schema["paths"].as_object().expect("paths") {
        let documented: BTreeSet<String> = ops
            .as_object()
            .expect("operations")
            .keys()
            .map(|k| k.to_uppercase())
            .filter(|k| ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&k.as_str()))
            .collect();
        let mut allowed = documented.clone();
        if documented.contains("GET") {
            allowed.insert("HEAD".to_owned());
        }
        let concrete = path
            .replace("{uuid}", &room)
            .replace("{token_uuid}", &room)
            .replace("{file}", &format!("{room}.ics"));
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            if documented.contains(method) {
                continue;
            }
            let before = m.state().await;
            let method = Method::from_bytes(method.as_bytes()).expect("method");
            let (status, text, body, _) = m
                .call(method.clone(), Some("admin"), &concrete, Body::Json("{}"))
                .await;
            checked += 1;
            let name = format!("{method} {path}");
            let allow: BTreeSet<String> = m
                .app
                .http
                .request(method.clone(), format!("{}{concrete}", m.app.base))
                .header("Authorization", format!("Token {}", m.app.tokens["admin"]))
                .send()
                .await
                .expect("request")
                .headers()
                .get("allow")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            if status != 405 {
                failures.push(format!("{name}: {status}: {text:.200}"));
                continue;
            }
            if body != serde_json::json!({"detail": format!("Method \"{method}\" not allowed.")}) {
                failures.push(format!("{name}: not DRF's 405: {text:.200}"));
            }
            if allow != allowed {
                failures.push(format!("{name}: Allow {allow:?}, documented {allowed:?}"));
            }
            if m.state().await != before {
                failures.push(format!("{name}: the 405 changed the store"));
            }
        }
    }
    assert!(checked > 100, "only {checked} calls");
    assert!(
        failures.is_empty(),
        "{} of {checked} calls:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
