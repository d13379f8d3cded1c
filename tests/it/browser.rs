//! The web pages in a real browser (headless chromium over WebDriver, see
//! `helpers::browser`): what a person signing in sees and does, at desktop and phone
//! width, with screenshots of every page when `BOOKCAL_SCREENSHOTS` names a directory.

use crate::helpers::browser::{Browser, PHONE};
use crate::helpers::spawn_app;

#[tokio::test]
async fn the_browser_opens_the_service_at_both_widths_and_reads_its_health() {
    let app = spawn_app().await;
    let Some(browser) = Browser::start(&app.base).await else {
        return;
    };
    browser.goto("/health").await;
    browser.wait_text("body", "ok").await;
    browser.page("health").await;
    browser.resize(PHONE).await;
    assert_eq!(browser.viewport().await, (375, 812));
    browser.close().await;
}
