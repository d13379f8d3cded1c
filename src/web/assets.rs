//! The pages' own stylesheet and script, served from the binary (`/static/app.css`,
//! `/static/app.js`), and the security headers every web answer carries.
//!
//! Nothing is loaded from elsewhere: the Content-Security-Policy allows only this
//! origin and no inline script or style (so the pages use classes, never `style=`
//! attributes, and the week grid's positions are classes from [`super::grid`]).

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The hand-written part of the stylesheet.
pub const CSS: &str = include_str!("app.css");
/// The copy-to-clipboard script.
pub const JS: &str = include_str!("app.js");

/// The policy: this origin only, no framing, no inline code, forms post here only.
pub const CSP: &str =
    "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The whole stylesheet: [`CSS`] and the grid classes.
pub fn stylesheet() -> String {
    let mut css = CSS.to_owned();
    css.push_str(&super::grid::stylesheet());
    css
}

/// An asset answer: its type, cached for an hour.
pub fn asset(content_type: &'static str, body: impl Into<axum::body::Body>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body.into(),
    )
        .into_response()
}

/// Adds the security headers to every answer of the web router, and `no-store` to
/// every answer that does not set its own caching (pages show private data).
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WCAG 2 relative luminance of `#rrggbb`.
    fn luminance(hex: &str) -> f64 {
        let v = u32::from_str_radix(hex.trim_start_matches('#'), 16).expect("colour");
        let channel = |shift: u32| {
            let c = f64::from((v >> shift) & 0xff) / 255.0;
            if c <= 0.039_28 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(16) + 0.7152 * channel(8) + 0.0722 * channel(0)
    }

    fn contrast(a: &str, b: &str) -> f64 {
        let (la, lb) = (luminance(a), luminance(b));
        let (hi, lo) = if la > lb { (la, lb) } else { (lb, la) };
        (hi + 0.05) / (lo + 0.05)
    }

    /// Every text colour the stylesheet puts on a background, as the rule that does
    /// so (the rule must be in the stylesheet as written here).
    const PAIRS: &[(&str, &str, &str)] = &[
        ("body", "#1b1f24", "#ffffff"),
        (".tone-ok", "#0b5a2a", "#dff3e4"),
        (".tone-busy", "#0b3d91", "#e1ecfb"),
        (".tone-warn", "#6b4500", "#fff1cc"),
        (".tone-error", "#8a1111", "#fde2e2"),
        (".tone-off", "#3d4450", "#eceef1"),
        (".week .avail", "#0b5a2a", "#eaf6ec"),
        (".week .confirmed", "#ffffff", "#0b57d0"),
        (".week .pending", "#6b4500", "#fff1cc"),
        (".week .busy", "#ffffff", "#4b5260"),
        (".week .dayhead.today", "#0b3d91", "#e1ecfb"),
        (".month .md.out", "#4b5260", "#f4f6f8"),
        ("button.danger", "#ffffff", "#b3261e"),
        ("button.secondary", "#0b57d0", "#ffffff"),
    ];

    #[test]
    fn every_colour_pair_of_the_stylesheet_meets_wcag_aa() {
        for (rule, fg, bg) in PAIRS {
            let ratio = contrast(fg, bg);
            assert!(ratio >= 4.5, "{rule}: {fg} on {bg} is {ratio:.2}:1");
            let needle = format!("{rule}{{color:{fg};background:{bg}");
            assert!(
                CSS.contains(&needle) || *rule == "body",
                "{rule} is not in app.css as {needle}"
            );
        }
        assert!(CSS.contains("body{margin:0;color:#1b1f24;background:#ffffff}"));
        // Plain text colours on the page background and the header.
        for fg in ["#0b57d0", "#3d4450", "#4b5260", "#1b1f24"] {
            for bg in ["#ffffff", "#f4f6f8"] {
                assert!(contrast(fg, bg) >= 4.5, "{fg} on {bg}");
            }
        }
    }

    #[test]
    fn the_contrast_formula_matches_known_values() {
        assert!((contrast("#000000", "#ffffff") - 21.0).abs() < 0.01);
        assert!((contrast("#777777", "#ffffff") - 4.48).abs() < 0.01);
    }

    #[test]
    fn neither_the_stylesheet_nor_the_script_loads_anything_from_elsewhere() {
        for text in [CSS, JS] {
            assert!(
                !text.contains("http://")
                    && !text.contains("https://")
                    && !text.contains("@import")
            );
        }
    }
}
