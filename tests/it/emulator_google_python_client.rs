//! Google's own Python client (google-api-python-client + google-auth) against the
//! emulator: `tests/realclients/google_client_check.py`, run with the interpreter
//! named by `BOOKCAL_PYTHON` (a venv with those packages). Skipped when unset.
#![allow(clippy::unwrap_used)]

use bookcal::emulator::{Emulator, EmulatorOptions};

#[tokio::test]
async fn googles_python_client_works_against_the_emulator() {
    let Ok(python) = std::env::var("BOOKCAL_PYTHON") else {
        eprintln!(
            "skipping: BOOKCAL_PYTHON is unset (point it at a python with \
             google-api-python-client and google-auth installed)"
        );
        return;
    };
    let emulator = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("service-account.json");
    std::fs::write(&key, emulator.service_account_key_json()).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/realclients/google_client_check.py"
    );
    // tokio's Command keeps the runtime free to serve the script's requests.
    let output = tokio::process::Command::new(python)
        .arg(script)
        .arg(&key)
        .arg(emulator.root_url())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the Python check failed");
    assert!(stdout.contains(" passed, 0 failed"));
    let counters = emulator.controls().counters();
    assert!(counters
        .get("calendar.events.instances")
        .is_some_and(|n| *n >= 1));
    assert!(counters.get("oauth2.token:200").is_some_and(|n| *n >= 1));
}
