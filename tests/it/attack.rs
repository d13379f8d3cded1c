//! The standing attack suite on stable Rust: every input kept in `fuzz/corpus/`
//! (the fuzz targets' seeds) and `fuzz/regressions/` (inputs a fuzz run once broke
//! bookcal with, kept after the fix) replayed through the same checks the cargo-fuzz
//! targets run (`fuzz/src/checks.rs`).

use std::path::Path;

#[path = "../../fuzz/src/checks.rs"]
mod checks;

/// Runs `check` on every kept input of `target`; names the input that fails.
fn replay(target: &str, check: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut count = 0;
    for kind in ["corpus", "regressions"] {
        let dir = root.join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        for file in files {
            let data = std::fs::read(&file).expect("read input");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{target}: {} breaks it", file.display());
            count += 1;
        }
    }
    assert!(count > 0, "{target} has no kept inputs");
}

#[test]
fn every_kept_order_body_gets_201_or_a_drf_4xx_and_never_double_books() {
    replay("order_body", |data| {
        checks::order_body(data);
    });
    // The seeds that book do book, so the double-booking check has run (a second
    // replay finds their slots taken and is refused).
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/order_body");
    let fresh = std::fs::read(seeds.join("valid-one-slot.json")).expect("seed");
    let moved = String::from_utf8(fresh)
        .expect("utf-8")
        .replace("T10:00:00Z", "T06:00:00Z")
        .replace("T11:00:00Z", "T07:00:00Z");
    assert!(
        checks::order_body(moved.as_bytes()),
        "a free slot was refused"
    );
    assert!(
        !checks::order_body(moved.as_bytes()),
        "the same slot was booked twice"
    );
}

#[test]
fn every_kept_query_string_is_answered_without_a_server_error() {
    replay("query_strings", checks::query_strings);
}

#[test]
fn every_kept_datetime_parses_without_panicking_and_reads_back() {
    replay("datetimes", checks::datetimes);
}

#[test]
fn every_kept_recurrence_expands_to_ordered_slots_inside_the_window() {
    replay("rrule_expansion", checks::rrule_expansion);
}

#[test]
fn every_kept_feed_input_renders_to_valid_content_lines_that_read_back() {
    replay("feed_render", checks::feed_render);
}
