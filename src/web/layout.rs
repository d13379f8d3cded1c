//! The shared page layout (header, navigation, sign-out, the action's message), the
//! message an action leaves for the page it redirects to ([`Flash`]), and small
//! pieces pages share (times, badges, copy fields, forms with their CSRF token).

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::session::{cookie, Viewer};
use super::words::{self, Tone};

/// The message cookie: an action's outcome, read (and removed) by the next page.
pub const FLASH_COOKIE: &str = "bookcal_flash";

/// Which navigation entry is the current page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nav {
    None,
    Offerings,
    Bookings,
    Scheduler,
}

/// An action's outcome shown once on the next page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flash {
    pub ok: bool,
    pub text: String,
}

impl Flash {
    /// The message a request carries, if any.
    pub fn from_headers(h: &HeaderMap) -> Option<Flash> {
        let raw = cookie(h, FLASH_COOKIE)?;
        let decoded = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .ok()?
            .into_owned();
        let (kind, text) = decoded.split_once(':')?;
        let text: String = text.chars().take(300).collect();
        (!text.is_empty()).then(|| Flash {
            ok: kind == "ok",
            text,
        })
    }

    fn cookie_value(&self) -> String {
        let raw = format!("{}:{}", if self.ok { "ok" } else { "error" }, self.text);
        percent_encoding::utf8_percent_encode(&raw, percent_encoding::NON_ALPHANUMERIC).to_string()
    }
}

/// POST-redirect-GET: to `to` (a path of this site), leaving `flash` for that page.
pub fn redirect(to: &str, flash: Flash, secure: bool) -> Response {
    let mut res = Redirect::to(to).into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        super::session::set_cookie(FLASH_COOKIE, &flash.cookie_value(), "/", 60, secure),
    );
    res
}

/// A page for a signed-in viewer; a message it showed is removed.
pub fn viewer_page(viewer: &Viewer, title: &str, nav: Nav, body: Markup) -> Response {
    let mut res = page(title, Some(viewer), nav, body).into_response();
    if viewer.flash.is_some() {
        res.headers_mut().append(
            header::SET_COOKIE,
            HeaderValue::from_static(
                "bookcal_flash=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict",
            ),
        );
    }
    res
}

/// The whole document.
pub fn page(title: &str, viewer: Option<&Viewer>, nav: Nav, body: Markup) -> Markup {
    let current = |n: Nav| (n == nav).then_some("page");
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · bookcal" }
                link rel="stylesheet" href="/static/app.css";
                script src="/static/app.js" defer {}
            }
            body {
                a.skip href="#content" { "Skip to the content" }
                header.top {
                    a.brand href="/" { "bookcal" }
                    @if let Some(v) = viewer {
                        nav.main aria-label="Main" {
                            ul {
                                li { a href="/" aria-current=[current(Nav::Offerings)] { "My offerings" } }
                                li { a href="/bookings" aria-current=[current(Nav::Bookings)] { "My bookings" } }
                                @if v.staff() {
                                    li { a href="/scheduler" aria-current=[current(Nav::Scheduler)] { "Scheduler" } }
                                }
                            }
                        }
                        div.who {
                            span { "Signed in as " strong { (display_name(&v.caller.user)) } @if v.staff() { " (staff)" } }
                            form.inline method="post" action="/sign-out" {
                                (csrf(v))
                                button.secondary #sign-out type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #content {
                    @if let Some(f) = viewer.and_then(|v| v.flash.as_ref()) {
                        @let tone = if f.ok { Tone::Ok } else { Tone::Error };
                        p class={"flash " (tone.class())} role=(if f.ok { "status" } else { "alert" }) { (f.text) }
                    }
                    (body)
                }
                footer { "bookcal: bookings, their Google calendars and feeds." }
            }
        }
    }
}

/// A user as the pages name them.
pub fn display_name(u: &crate::domain::User) -> String {
    if u.full_name.trim().is_empty() {
        u.username.clone()
    } else {
        format!("{} ({})", u.full_name, u.username)
    }
}

/// The hidden CSRF field of a form.
pub fn csrf(v: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(v.csrf); }
}

/// A form with one button posting to `action`.
pub fn button_form(v: &Viewer, action: &str, label: &str, class: &str, extra: Markup) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf(v))
            (extra)
            button class=(class) type="submit" { (label) }
        }
    }
}

/// A state badge: words in a colour.
pub fn badge(words: &str, tone: Tone) -> Markup {
    html! { span class={"badge " (tone.class())} { (words) } }
}

/// A time as "5 minutes ago (2026-12-02 14:03 Europe/Berlin)".
pub fn when(t: DateTime<Utc>, now: DateTime<Utc>, tz: Tz) -> Markup {
    html! {
        time datetime=(t.to_rfc3339()) {
            (words::relative(t, now)) " (" (absolute(t, tz)) ")"
        }
    }
}

/// A time in `tz`, with the zone named.
pub fn absolute(t: DateTime<Utc>, tz: Tz) -> String {
    format!(
        "{} {}",
        t.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
        tz.name()
    )
}

/// A read-only field holding `value` with a copy button (shown when scripts run).
pub fn copy_field(id: &str, label: &str, value: &str) -> Markup {
    html! {
        label for=(id) { (label) }
        div.copy {
            input type="text" id=(id) readonly value=(value) spellcheck="false";
            button.secondary type="button" data-copy=(id) hidden { "Copy" }
        }
        p.muted id={(id) "-status"} role="status" {}
    }
}

/// Marks up nothing; a place-holder where a page has no extra form fields.
pub fn nothing() -> Markup {
    PreEscaped(String::new())
}
