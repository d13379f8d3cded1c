//! Waldur's own published Python client (`waldur-api-client` on PyPI) against the real
//! server: `tests/realclients/waldur_client_check.py` drives the booking slice with the
//! client's generated functions and models and checks every parsed value.
//!
//! Real-client setup (the test skips with a note when `BOOKCAL_PYTHON` is unset):
//! ```text
//! python3 -m venv /tmp/wvenv && /tmp/wvenv/bin/pip install waldur-api-client==8.1.3
//! BOOKCAL_PYTHON=/tmp/wvenv/bin/python cargo test --test it waldur_client:: -- --nocapture
//! ```

use crate::helpers::{spawn_app_with, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waldurs_python_client_drives_the_booking_api_and_parses_every_answer() {
    let Some(python) = std::env::var_os("BOOKCAL_PYTHON") else {
        eprintln!(
            "skipping the waldur-api-client check: set BOOKCAL_PYTHON to an interpreter with \
             the client installed (python3 -m venv /tmp/wvenv && \
             /tmp/wvenv/bin/pip install waldur-api-client==8.1.3)"
        );
        return;
    };
    // Google credentials configured: the calendar actions can succeed.
    let app = spawn_app_with(Options {
        google_credentials: true,
        ..Options::default()
    })
    .await;
    // tem-2100: a public calendar (unshare succeeds, share says "public already");
    // telescope: a private one (share succeeds, unshare says "private already");
    // room-aurora: none yet (unshare says "does not exist", sync creates it).
    app.seed_calendar("tem-2100", "tem-2100@group.calendar.google.com", true)
        .await;
    app.seed_calendar("telescope", "telescope@group.calendar.google.com", false)
        .await;
    // No credentials: every calendar action is a 400.
    let nocred = spawn_app_with(Options {
        google_credentials: false,
        ..Options::default()
    })
    .await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/realclients/waldur_client_check.py"
    );
    let out = tokio::process::Command::new(python)
        .arg(script)
        .envs(app.client_env("BOOKCAL"))
        .envs(nocred.client_env("BOOKCAL_NOCRED"))
        .output()
        .await
        .expect("run the waldur-api-client check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "waldur-api-client check failed ({}): see its output above",
        out.status
    );
    assert!(
        stdout.lines().any(|l| l.ends_with(" passed, 0 failed")),
        "no summary line:\n{stdout}"
    );
}
