//! The web pages over HTTP, as a browser without JavaScript uses them: a client that
//! keeps cookies and does not follow redirects, against the real service.

use std::collections::HashMap;
use std::sync::Mutex;

use bookcal::domain::Id;
use bookcal::store::feed_tokens::FeedScope;
use bookcal::store::sessions::{secret_hash, Session, SignInLink};
use bookcal::web::session::create_sign_in_link;
use chrono::{Duration, Utc};
use reqwest::header::HeaderMap;

use crate::helpers::{
    at, eventually_async, spawn_app, spawn_app_with, sync_env_as, Options, TestApp,
};

/// One answer as a browser sees it.
struct Page {
    status: u16,
    headers: HeaderMap,
    text: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(String::from))
            .collect()
    }

    fn set_cookie(&self, name: &str) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    /// The first form's CSRF token.
    fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let at = self.text.find(marker).expect("a form with a CSRF token") + marker.len();
        self.text[at..]
            .split('"')
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}

/// A browser: a cookie jar, no redirects followed.
struct Browser {
    base: String,
    http: reqwest::Client,
    jar: Mutex<HashMap<String, String>>,
}

impl Browser {
    fn new(app: &TestApp) -> Browser {
        Browser {
            base: app.base.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            jar: Mutex::new(HashMap::new()),
        }
    }

    fn cookie_header(&self) -> String {
        let jar = self.jar.lock().expect("jar");
        jar.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn set(&self, name: &str, value: &str) {
        self.jar
            .lock()
            .expect("jar")
            .insert(name.to_owned(), value.to_owned());
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.jar.lock().expect("jar").get(name).cloned()
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Page {
        let r = req
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("request");
        let page = Page {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            text: r.text().await.expect("body"),
        };
        for c in page.set_cookies() {
            let first = c.split(';').next().unwrap_or_default();
            let Some((name, value)) = first.split_once('=') else {
                continue;
            };
            let mut jar = self.jar.lock().expect("jar");
            if c.contains("Max-Age=0") {
                jar.remove(name);
            } else {
                jar.insert(name.to_owned(), value.to_owned());
            }
        }
        page
    }

    async fn get(&self, path: &str) -> Page {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        self.send(self.http.get(url)).await
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(
                    url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(fields)
                        .finish(),
                ),
        )
        .await
    }

    /// Signs in with `user`'s API token through the sign-in form.
    async fn sign_in(app: &TestApp, user: &str) -> Browser {
        let b = Browser::new(app);
        let form = b.get("/sign-in").await;
        assert_eq!(form.status, 200);
        let r = b
            .post(
                "/sign-in",
                &[("csrf", &form.csrf()), ("token", &app.tokens[user])],
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.text);
        assert_eq!(r.location(), "/");
        b
    }

    /// The CSRF token of the page at `path`.
    async fn csrf(&self, path: &str) -> String {
        let p = self.get(path).await;
        assert_eq!(p.status, 200, "{path}: {}", p.text);
        p.csrf()
    }
}

#[tokio::test]
async fn signing_in_with_an_api_token_starts_a_session_that_signing_out_ends() {
    let app = spawn_app().await;
    let b = Browser::new(&app);
    let start = b.get("/").await;
    assert_eq!(start.status, 303);
    assert_eq!(start.location(), "/sign-in");

    let form = b.get("/sign-in").await;
    assert_eq!(form.status, 200);
    assert!(form.text.contains("<label for=\"token\">API token</label>"));
    let wrong = b
        .post(
            "/sign-in",
            &[("csrf", &form.csrf()), ("token", "not-a-token")],
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.text.contains("not valid"));
    assert!(wrong.set_cookie("bookcal_session").is_none());

    let form = b.get("/sign-in").await;
    let ok = b
        .post(
            "/sign-in",
            &[("csrf", &form.csrf()), ("token", &app.tokens["owner"])],
        )
        .await;
    assert_eq!(ok.status, 303);
    assert_eq!(ok.location(), "/");
    let cookie = ok.set_cookie("bookcal_session").expect("a session cookie");
    for attribute in ["Path=/", "Max-Age=43200", "HttpOnly", "SameSite=Strict"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    let secret = b.cookie("bookcal_session").expect("kept");
    // Stored hashed: the secret is not a key, its hash is.
    assert!(app
        .store
        .session(&secret_hash(&secret), Utc::now())
        .await
        .expect("read")
        .is_some());

    let home = b.get("/").await;
    assert_eq!(home.status, 200);
    assert!(home.text.contains("My offerings"));
    // Signed in already: the sign-in page leads on.
    assert_eq!(b.get("/sign-in").await.location(), "/");
    assert!(home.text.contains("Meeting room Aurora"));
    assert!(home.text.contains("Olaf Owner"));

    let csrf = home.csrf();
    let out = b.post("/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location(), "/sign-in");
    assert!(out
        .set_cookie("bookcal_session")
        .is_some_and(|c| c.contains("Max-Age=0")));
    // The old cookie no longer signs in: the session is gone from the store.
    b.set("bookcal_session", &secret);
    assert_eq!(b.get("/").await.location(), "/sign-in");
    assert!(app
        .store
        .session(&secret_hash(&secret), Utc::now())
        .await
        .expect("read")
        .is_none());
}

#[tokio::test]
async fn the_session_cookie_is_secure_when_the_public_url_is_https() {
    let app = spawn_app_with(Options {
        public_url: Some("https://bookcal.example.org".into()),
        ..Options::default()
    })
    .await;
    let b = Browser::new(&app);
    let form = b.get("/sign-in").await;
    assert!(form
        .set_cookie("bookcal_signin")
        .is_some_and(|c| c.ends_with("; Secure")));
    let ok = b
        .post(
            "/sign-in",
            &[("csrf", &form.csrf()), ("token", &app.tokens["alice"])],
        )
        .await;
    let cookie = ok.set_cookie("bookcal_session").expect("session cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(cookie.ends_with("; Secure"), "{cookie}");
}

#[tokio::test]
async fn the_sign_in_form_is_refused_without_its_csrf_token_or_with_a_wrong_one() {
    let app = spawn_app().await;
    let b = Browser::new(&app);
    let token = app.tokens["owner"].clone();
    // No form cookie, no token.
    let r = b.post("/sign-in", &[("token", &token)]).await;
    assert_eq!(r.status, 403);
    let form = b.get("/sign-in").await;
    let r = b
        .post("/sign-in", &[("csrf", "forged"), ("token", &token)])
        .await;
    assert_eq!(r.status, 403);
    // The form's token without its cookie (another site cannot set it).
    let fresh = Browser::new(&app);
    let r = fresh
        .post("/sign-in", &[("csrf", &form.csrf()), ("token", &token)])
        .await;
    assert_eq!(r.status, 403);
    assert!(r.set_cookie("bookcal_session").is_none());
    assert_eq!(b.get("/").await.status, 303);
}

#[tokio::test]
async fn an_expired_session_signs_nobody_in() {
    let app = spawn_app().await;
    let owner = app.store.directory().await.expect("dir");
    let owner = owner.user_by_name("owner").expect("owner").id;
    let now = Utc::now();
    let put = |secret: &'static str, expires| {
        let store = app.store.clone();
        async move {
            let s = Session {
                user: owner,
                created: now - Duration::hours(13),
                expires,
            };
            store
                .put_session(&secret_hash(secret), &s)
                .await
                .expect("put");
        }
    };
    put("expired-session-secret", now - Duration::minutes(1)).await;
    put("live-session-secret", now + Duration::hours(1)).await;
    let b = Browser::new(&app);
    b.set("bookcal_session", "expired-session-secret");
    let r = b.get("/").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location(), "/sign-in");
    // A POST with an expired session is refused and changes nothing.
    let room = app.offering_id("room-aurora");
    let r = b
        .post(
            &format!("/offerings/{}/share", room.hex()),
            &[("csrf", "x")],
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(app.store.calendar(room).await.expect("read").is_none());
    // The same store with a live session: signed in.
    b.set("bookcal_session", "live-session-secret");
    assert_eq!(b.get("/").await.status, 200);
}

#[tokio::test]
async fn expired_sessions_and_links_are_deleted_without_anyone_signing_in() {
    let app = spawn_app().await;
    let dir = app.store.directory().await.expect("dir");
    let owner = dir.user_by_name("owner").expect("owner").id;
    let now = Utc::now();
    let soon = now + Duration::milliseconds(300);
    let session = Session {
        user: owner,
        created: now,
        expires: soon,
    };
    let short = secret_hash("short-session-secret");
    app.store.put_session(&short, &session).await.expect("put");
    let link = secret_hash("short-link-secret");
    app.store
        .put_sign_in_link(
            &link,
            &SignInLink {
                user: owner,
                expires: soon,
            },
        )
        .await
        .expect("put");
    let long = secret_hash("long-session-secret");
    let live = Session {
        expires: now + Duration::hours(1),
        ..session.clone()
    };
    app.store.put_session(&long, &live).await.expect("put");
    // Read as of its creation, a session is found for as long as it is stored.
    let stored = |hash| {
        let store = app.store.clone();
        async move { store.session(&hash, now).await.expect("read").is_some() }
    };
    assert!(
        eventually_async(30, || async { !stored(short).await }).await,
        "the expired session is still stored"
    );
    // Its link went with it (a take as of its creation finds nothing), the live
    // session stays, and the expired one signs nobody in.
    assert_eq!(
        app.store.take_sign_in_link(&link, now).await.expect("take"),
        None
    );
    assert!(stored(long).await);
    let b = Browser::new(&app);
    b.set("bookcal_session", "short-session-secret");
    assert_eq!(b.get("/").await.status, 303);
    b.set("bookcal_session", "long-session-secret");
    assert_eq!(b.get("/").await.status, 200);
}

#[tokio::test]
async fn a_one_time_sign_in_link_signs_in_once() {
    let app = spawn_app().await;
    let dir = app.store.directory().await.expect("dir");
    let alice = dir.user_by_name("alice").expect("alice").id;
    let link = create_sign_in_link(&app.store, alice, &app.base)
        .await
        .expect("link");
    assert!(link.starts_with(&format!("{}/sign-in/link/", app.base)));
    let b = Browser::new(&app);
    // A link preview (HEAD) does not use it up.
    let head = b.http.head(&link).send().await.expect("head");
    assert_eq!(head.status(), 200);
    assert!(head.headers().get("set-cookie").is_none());
    let r = b.get(&link).await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(r.location(), "/");
    assert!(r.set_cookie("bookcal_session").is_some());
    let bookings = b.get("/bookings").await;
    assert_eq!(bookings.status, 200);
    assert!(bookings.text.contains("Alice"));

    let again = Browser::new(&app);
    let r = again.get(&link).await;
    assert_eq!(r.status, 404);
    assert!(r.set_cookie("bookcal_session").is_none());
    assert!(r.text.contains("used"));

    // An expired link does not sign in either.
    let secret = "an-expired-link-secret";
    app.store
        .put_sign_in_link(
            &secret_hash(secret),
            &SignInLink {
                user: alice,
                expires: Utc::now() - Duration::seconds(1),
            },
        )
        .await
        .expect("put");
    let r = again.get(&format!("/sign-in/link/{secret}")).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn posts_without_the_csrf_token_or_with_a_wrong_one_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let room = app.offering_id("room-aurora");
    let r = app
        .post(
            "alice",
            "/api/marketplace-orders/",
            app.order_body("room-aurora", &[(at(20, 9), at(20, 10))]),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let res = r.body["marketplace_resource_uuid"]
        .as_str()
        .expect("resource")
        .to_owned();
    let owner = Browser::sign_in(&app, "owner").await;
    let before = app.snapshot().await;
    let posts = [
        format!("/offerings/{}/share", room.hex()),
        format!("/offerings/{}/sync", room.hex()),
        format!("/offerings/{}/feed-tokens", room.hex()),
        format!("/requests/{res}/accept"),
        format!("/requests/{res}/reject"),
        format!("/bookings/{res}/cancel"),
        "/feed-tokens".to_owned(),
        "/sign-out".to_owned(),
    ];
    for path in &posts {
        for fields in [
            vec![("name", "x")],
            vec![("csrf", "0123abcd"), ("name", "x")],
        ] {
            let r = owner.post(path, &fields).await;
            assert_eq!(r.status, 403, "{path} {fields:?}: {}", r.text);
        }
    }
    assert_eq!(app.snapshot().await, before);
    assert!(app.store.calendar(room).await.expect("read").is_none());
    assert!(app.store.jobs().await.expect("jobs").is_empty());
    assert!(app
        .store
        .feed_tokens(FeedScope::Offering(room))
        .await
        .expect("tokens")
        .is_empty());
    // Still signed in (sign-out was refused too).
    assert_eq!(owner.get("/").await.status, 200);
    // Another session's token is a wrong token.
    let alice = Browser::sign_in(&app, "alice").await;
    let alices = alice.csrf("/bookings").await;
    let r = owner
        .post(&format!("/requests/{res}/accept"), &[("csrf", &alices)])
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn a_consumer_cannot_open_another_owners_offering_page() {
    let app = spawn_app().await;
    let room = app.offering_id("room-aurora");
    let api = app
        .get("alice", &format!("/api/booking-offerings/{}/", room.hex()))
        .await;
    let alice = Browser::sign_in(&app, "alice").await;
    let page = alice.get(&format!("/offerings/{}", room.hex())).await;
    assert_eq!(page.status, api.status);
    assert_eq!(page.status, 404);
    assert!(!page.text.contains("Meeting room Aurora"));
    // Nor the owner's list, nor the scheduler.
    let home = alice.get("/").await;
    assert_eq!(home.status, 200);
    assert!(!home.text.contains("Meeting room Aurora"));
    assert_eq!(alice.get("/scheduler").await.status, 404);
    // Nor act on it.
    let csrf = alice.csrf("/").await;
    let r = alice
        .post(
            &format!("/offerings/{}/share", room.hex()),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 404);
    assert!(app.store.calendar(room).await.expect("read").is_none());
    // The owner and staff do see it.
    let owner = Browser::sign_in(&app, "owner").await;
    assert_eq!(
        owner
            .get(&format!("/offerings/{}", room.hex()))
            .await
            .status,
        200
    );
    let admin = Browser::sign_in(&app, "admin").await;
    assert_eq!(
        admin
            .get(&format!("/offerings/{}", room.hex()))
            .await
            .status,
        200
    );
    assert_eq!(admin.get("/scheduler").await.status, 200);
    // A manager sees the offering but not the calendar buttons (the API's 403).
    let manager = Browser::sign_in(&app, "manager").await;
    let home = manager.get("/").await;
    assert!(home.text.contains("Meeting room Aurora"));
    assert!(!home.text.contains(">Sync now<"));
    let csrf = home.csrf();
    let r = manager
        .post(
            &format!("/offerings/{}/sync", room.hex()),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn accepting_and_rejecting_on_the_offering_page_change_the_order_as_the_api_would() {
    let app = spawn_app().await;
    let room = app.offering_id("room-aurora");
    let mut made = Vec::new();
    for day in [21, 22] {
        let r = app
            .post(
                "alice",
                "/api/marketplace-orders/",
                app.order_body("room-aurora", &[(at(day, 9), at(day, 10))]),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        made.push((
            r.body["uuid"].as_str().expect("order").to_owned(),
            r.body["marketplace_resource_uuid"]
                .as_str()
                .expect("resource")
                .to_owned(),
        ));
    }
    let owner = Browser::sign_in(&app, "owner").await;
    let week = at(21, 9).date_naive().format("%Y-%m-%d").to_string();
    let page = owner
        .get(&format!("/offerings/{}?week={week}", room.hex()))
        .await;
    assert_eq!(page.status, 200);
    for (_, res) in &made {
        assert!(page.text.contains(&format!("/requests/{res}/accept")));
    }
    assert!(page.text.contains("block pending"));
    assert!(page.text.contains("Alice Åkesson"));
    assert!(page.text.contains("(the offering's time zone)"));
    let csrf = page.csrf();
    let hex = room.hex();
    let (order, res) = &made[0];
    let r = owner
        .post(
            &format!("/requests/{res}/accept"),
            &[("csrf", &csrf), ("offering", &hex)],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(r.location(), format!("/offerings/{hex}"));
    let o = app
        .get("owner", &format!("/api/marketplace-orders/{order}/"))
        .await;
    assert_eq!(o.body["state"], "done");
    let rr = app
        .get("owner", &format!("/api/booking-resources/{res}/"))
        .await;
    assert_eq!(rr.body["state"], "OK");
    let after = owner.get(&format!("/offerings/{hex}?week={week}")).await;
    assert!(after.text.contains("The booking is accepted."));
    assert!(after.text.contains("block confirmed"));
    // The message shows once.
    let again = owner.get(&format!("/offerings/{hex}?week={week}")).await;
    assert!(!again.text.contains("The booking is accepted."));
    // Accepting again: the API's 409, as a message; nothing changes.
    let r = owner
        .post(
            &format!("/requests/{res}/accept"),
            &[("csrf", &csrf), ("offering", &hex)],
        )
        .await;
    assert_eq!(r.status, 303);
    let msg = owner.get(&format!("/offerings/{hex}")).await;
    assert!(
        msg.text.contains("cannot be done in its current state"),
        "{}",
        msg.text
    );

    let (order, res) = &made[1];
    let r = owner
        .post(
            &format!("/requests/{res}/reject"),
            &[("csrf", &csrf), ("offering", &hex)],
        )
        .await;
    assert_eq!(r.status, 303);
    // As the API's reject does: the order is cancelled, the booking ends.
    let o = app
        .get("owner", &format!("/api/marketplace-orders/{order}/"))
        .await;
    assert_eq!(o.body["state"], "canceled");
    let rr = app
        .get("owner", &format!("/api/booking-resources/{res}/"))
        .await;
    assert_eq!(rr.body["state"], "Terminated");
    // Its requester reads it as rejected, not as cancelled.
    let alice = Browser::sign_in(&app, "alice").await;
    let mine = alice.get("/bookings").await;
    let row = row_of(&mine.text, &format!("booking-{res}"));
    assert!(row.contains("Rejected"), "{row}");
    assert!(!row.contains("Cancelled"), "{row}");
}

/// The table row with this id, as the page's text.
fn row_of<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no row {id} in {page}"));
    let rest = &page[start..];
    &rest[..rest.find("</tr>").unwrap_or(rest.len())]
}

#[tokio::test]
async fn a_consumer_cancels_a_booking_from_my_bookings() {
    let app = spawn_app().await;
    let r = app
        .post(
            "alice",
            "/api/marketplace-orders/",
            app.order_body("room-aurora", &[(at(25, 9), at(25, 10))]),
        )
        .await;
    let order = r.body["uuid"].as_str().expect("order").to_owned();
    let res = r.body["marketplace_resource_uuid"]
        .as_str()
        .expect("resource")
        .to_owned();
    // Bob did not create it: he cannot cancel it (the API's 404 for him).
    let bob = Browser::sign_in(&app, "bob").await;
    let csrf = bob.csrf("/bookings").await;
    let r = bob
        .post(&format!("/bookings/{res}/cancel"), &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 404);

    let alice = Browser::sign_in(&app, "alice").await;
    let page = alice.get("/bookings").await;
    assert!(page.text.contains("Upcoming"));
    assert!(page.text.contains(&format!("/bookings/{res}/cancel")));
    assert!(page.text.contains("Pending"));
    let r = alice
        .post(
            &format!("/bookings/{res}/cancel"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location(), "/bookings");
    let o = app
        .get("alice", &format!("/api/marketplace-orders/{order}/"))
        .await;
    assert_eq!(o.body["state"], "canceled");
    let after = alice.get("/bookings").await;
    assert!(after.text.contains("The booking request is cancelled."));
    assert!(!after.text.contains(&format!("/bookings/{res}/cancel")));
    let row = row_of(&after.text, &format!("booking-{res}"));
    assert!(row.contains("Cancelled"), "{row}");
    assert!(!row.contains("Rejected"), "{row}");
}

#[tokio::test]
async fn a_request_nobody_accepted_before_its_time_reads_expired_not_cancelled() {
    let app = spawn_app().await;
    let r = app
        .post(
            "alice",
            "/api/marketplace-orders/",
            app.order_body("room-aurora", &[(at(23, 9), at(23, 10))]),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let order = r.body["uuid"].as_str().expect("order").to_owned();
    let res = r.body["marketplace_resource_uuid"]
        .as_str()
        .expect("resource")
        .to_owned();
    // The clean-up runs after the booked time: nobody accepted it.
    let later = Utc::now() + Duration::days(30);
    let expired = bookcal::scheduler::cancel_stale_requests(&app.store, later)
        .await
        .expect("clean-up");
    assert!(expired >= 1, "{expired}");
    // The API keeps Waldur's contract: the order is canceled, the booking ended.
    let o = app
        .get("alice", &format!("/api/marketplace-orders/{order}/"))
        .await;
    assert_eq!(o.body["state"], "canceled");
    let alice = Browser::sign_in(&app, "alice").await;
    let page = alice.get("/bookings").await;
    let row = row_of(&page.text, &format!("booking-{res}"));
    assert!(row.contains("Expired"), "{row}");
    assert!(!row.contains("Cancelled"), "{row}");
    assert!(!row.contains("Rejected"), "{row}");
}

#[tokio::test]
async fn sharing_and_unsharing_from_my_offerings() {
    let app = spawn_app().await;
    let room = app.offering_id("room-aurora");
    let hex = room.hex();
    let owner = Browser::sign_in(&app, "owner").await;
    let home = owner.get("/").await;
    assert!(home.text.contains("No Google calendar yet"));
    assert!(home.text.contains(">Share<"));
    let r = owner
        .post(
            &format!("/offerings/{hex}/share"),
            &[("csrf", &home.csrf())],
        )
        .await;
    assert_eq!(r.status, 303);
    let next = owner.get("/").await;
    assert!(next.text.contains("Calendar sharing has been scheduled."));
    assert!(next.text.contains("Calendar creation scheduled"));
    let scheduler = app.start_scheduler();
    let public = crate::helpers::eventually_async(30, || async {
        app.store
            .calendar(room)
            .await
            .ok()
            .flatten()
            .is_some_and(|c| c.public && c.state.is_idle())
    })
    .await;
    assert!(public, "the share job ran");
    let shared = owner.get("/").await;
    assert!(shared.text.contains("In sync"), "{}", shared.text);
    assert!(shared.text.contains(&format!("/feeds/offerings/{hex}.ics")));
    assert!(shared.text.contains(">Unshare<"));
    let r = owner
        .post(
            &format!("/offerings/{hex}/unshare"),
            &[("csrf", &shared.csrf())],
        )
        .await;
    assert_eq!(r.status, 303);
    assert!(owner
        .get("/")
        .await
        .text
        .contains("Calendar unsharing has been scheduled."));
    let private = crate::helpers::eventually_async(30, || async {
        app.store
            .calendar(room)
            .await
            .ok()
            .flatten()
            .is_some_and(|c| !c.public && c.state.is_idle())
    })
    .await;
    assert!(private, "the unshare job ran");
    let after = owner.get("/").await;
    assert!(!after.text.contains(&format!("/feeds/offerings/{hex}.ics")));
    scheduler.stop().await;
}

#[tokio::test]
async fn feed_tokens_are_shown_once_on_creation_and_revoked_from_the_pages() {
    let app = spawn_app().await;
    let room = app.offering_id("room-aurora");
    let hex = room.hex();
    let owner = Browser::sign_in(&app, "owner").await;
    let csrf = owner.csrf("/").await;
    let made = owner
        .post(
            &format!("/offerings/{hex}/feed-tokens"),
            &[("csrf", &csrf), ("name", "Front desk")],
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.text);
    assert_eq!(
        made.headers
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let marker = "value=\"";
    let url_at = made.text.find("/feeds/t/").expect("the feed URL");
    let start = made.text[..url_at].rfind(marker).expect("input") + marker.len();
    let url = made.text[start..]
        .split('"')
        .next()
        .expect("url")
        .to_owned();
    assert!(url.starts_with("http://") && url.ends_with(".ics"), "{url}");
    let feed = reqwest::get(&url).await.expect("feed");
    assert_eq!(feed.status(), 200);
    // Listed by name, without its secret.
    let home = owner.get("/").await;
    assert!(home.text.contains("Front desk"));
    let secret = url
        .rsplit('/')
        .next()
        .expect("file")
        .trim_end_matches(".ics");
    assert!(!home.text.contains(secret));
    let tokens = app
        .store
        .feed_tokens(FeedScope::Offering(room))
        .await
        .expect("tokens");
    assert_eq!(tokens.len(), 1);
    let r = owner
        .post(
            &format!(
                "/offerings/{hex}/feed-tokens/{}/revoke",
                tokens[0].uuid.hex()
            ),
            &[("csrf", &home.csrf())],
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(reqwest::get(&url).await.expect("feed").status(), 404);

    // A blank name: the API's message, nothing created.
    let r = owner
        .post(
            &format!("/offerings/{hex}/feed-tokens"),
            &[("csrf", &csrf), ("name", "  ")],
        )
        .await;
    assert_eq!(r.status, 303);
    assert!(owner.get("/").await.text.contains("may not be blank"));

    // "My bookings" tokens, with webcal:// and Google Calendar links.
    let alice = Browser::sign_in(&app, "alice").await;
    let csrf = alice.csrf("/bookings").await;
    let made = alice
        .post("/feed-tokens", &[("csrf", &csrf), ("name", "My phone")])
        .await;
    assert_eq!(made.status, 200);
    assert!(made.text.contains("href=\"webcal://"));
    assert!(made
        .text
        .contains("https://calendar.google.com/calendar/render?cid=webcal"));
    let dir = app.store.directory().await.expect("dir");
    let me = dir.user_by_name("alice").expect("alice").id;
    let mine = app
        .store
        .feed_tokens(FeedScope::User(me))
        .await
        .expect("tokens");
    assert_eq!(mine.len(), 1);
    let page = alice.get("/bookings").await;
    assert!(page.text.contains("My phone"));
    let r = alice
        .post(
            &format!("/feed-tokens/{}/revoke", mine[0].uuid.hex()),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(r.status, 303);
    assert!(app
        .store
        .feed_tokens(FeedScope::User(me))
        .await
        .expect("tokens")
        .is_empty());
}

#[tokio::test]
async fn the_offering_page_shows_busy_time_from_google_with_its_title_to_the_owner() {
    let app = spawn_app().await;
    let room = app.offering_id("room-aurora");
    let env = sync_env_as(&app, Some("owner@northlab.example.org")).await;
    env.sync(room).await;
    let cal = app.calendar_id(room).await;
    let start = at(15, 13);
    let event = bookcal::google::Event {
        id: "e0dentist".into(),
        summary: Some("Dentist appointment".into()),
        start: Some(bookcal::google::EventTime::DateTime {
            at: start.fixed_offset(),
            time_zone: None,
        }),
        end: Some(bookcal::google::EventTime::DateTime {
            at: (start + Duration::hours(1)).fixed_offset(),
            time_zone: None,
        }),
        ..bookcal::google::Event::default()
    };
    env.human.event_insert(&cal, &event).await.expect("insert");
    env.sync(room).await;
    assert_eq!(app.store.busy_slots(room).await.expect("busy").len(), 1);
    let owner = Browser::sign_in(&app, "owner").await;
    let week = start.date_naive().format("%Y-%m-%d").to_string();
    let page = owner
        .get(&format!("/offerings/{}?week={week}", room.hex()))
        .await;
    assert!(
        page.text.contains("Busy in Google: Dentist appointment"),
        "{}",
        page.text
    );
    assert!(page.text.contains("block busy"));
    let home = owner.get("/").await;
    assert!(home.text.contains("In sync"));
    assert!(home.text.contains("busy slots imported"));
}

#[tokio::test]
async fn every_page_carries_the_security_headers_and_a_phone_viewport() {
    let app = spawn_app().await;
    let room = app.offering_id("room-aurora");
    let admin = Browser::sign_in(&app, "admin").await;
    let anonymous = Browser::new(&app);
    let pages = [
        (&anonymous, "/sign-in".to_owned(), 200, true),
        (&anonymous, "/".to_owned(), 303, false),
        (&anonymous, "/sign-in/link/nothing".to_owned(), 404, true),
        (&anonymous, "/static/app.css".to_owned(), 200, false),
        (&anonymous, "/static/app.js".to_owned(), 200, false),
        (&admin, "/".to_owned(), 200, true),
        (&admin, format!("/offerings/{}", room.hex()), 200, true),
        (
            &admin,
            format!("/offerings/{}", Id::new_v4().hex()),
            404,
            true,
        ),
        (&admin, "/bookings".to_owned(), 200, true),
        (&admin, "/scheduler".to_owned(), 200, true),
    ];
    for (who, path, status, html) in pages {
        let p = who.get(&path).await;
        assert_eq!(p.status, status, "{path}");
        let h = |name: &str| {
            p.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let csp = h("content-security-policy");
        assert!(
            csp.starts_with("default-src 'self'; frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(h("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(h("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(h("x-frame-options"), "DENY", "{path}");
        if html {
            assert!(h("content-type").starts_with("text/html"), "{path}");
            assert!(
                p.text.contains(
                    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                ),
                "{path}"
            );
            assert!(p.text.starts_with("<!DOCTYPE html>"), "{path}");
            assert!(p.text.contains("<html lang=\"en\">"));
            // Nothing inline for the CSP to refuse, nothing from elsewhere.
            assert!(!p.text.contains("style="), "{path}");
            assert!(!p.text.contains("<style"), "{path}");
            assert_eq!(
                p.text.matches("<script").count(),
                p.text.matches("<script src=\"/static/app.js\"").count(),
                "{path}"
            );
            assert!(!p.text.contains("src=\"http"), "{path}");
        }
    }
}

#[tokio::test]
async fn sign_in_counts_against_the_clients_anonymous_request_rate() {
    let app = spawn_app_with(Options {
        http: bookcal::config::HttpSettings {
            client_requests_per_sec: 1,
            client_burst: 3,
            ..bookcal::config::HttpSettings::default()
        },
        ..Options::default()
    })
    .await;
    let b = Browser::new(&app);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            b.post("/sign-in", &[("csrf", "x"), ("token", "guess")])
                .await
                .status,
        );
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    // Calls with credentials are not counted: the owner's API still answers.
    assert_eq!(
        app.get("owner", "/api/booking-offerings/").await.status,
        200
    );
}
