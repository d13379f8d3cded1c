//! Which store engine the services the tests spawn run on.
//!
//! By default sled in the test's temporary directory. With
//! `BOOKCAL_TEST_STORE=postgres` every service spawned through
//! [`super::spawn_app_with`] gets a fresh database of the binary's throw-away
//! PostgreSQL cluster instead ([`super::pg::database`]), so the whole suite runs
//! against the second engine (`.ci/run` runs it both ways).
//!
//! The tests that cannot run on PostgreSQL yet are listed, each with its reason, in
//! `tests/it/not_on_postgres.txt` (one place; `.ci/run` skips exactly these on its
//! PostgreSQL pass). Run without that skip list, a listed test says why and spawns
//! its service on sled.

/// The list: one entry a line, a test path (`module::test_name`) or a whole module
/// (`module::`), then the reason; `#` starts a comment.
const NOT_ON_POSTGRES: &str = include_str!("../not_on_postgres.txt");

/// The engine the suite was asked to run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestStore {
    Sled,
    Postgres,
}

/// `BOOKCAL_TEST_STORE`: unset, empty or `sled`, or `postgres`; anything else is a
/// mistake that must not silently fall back to sled.
pub fn test_store() -> TestStore {
    match std::env::var("BOOKCAL_TEST_STORE").as_deref() {
        Err(_) | Ok("") | Ok("sled") => TestStore::Sled,
        Ok("postgres") => TestStore::Postgres,
        Ok(other) => panic!("BOOKCAL_TEST_STORE={other}: expected `sled` or `postgres`"),
    }
}

/// The entries of the list: (test path or module prefix, reason).
pub fn not_on_postgres() -> Vec<(&'static str, &'static str)> {
    NOT_ON_POSTGRES
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once(char::is_whitespace) {
            Some((name, reason)) => (name, reason.trim()),
            None => (l, ""),
        })
        .collect()
}

/// Why `test` (a libtest path) cannot run on PostgreSQL yet, if it is listed.
pub fn excluded(test: &str) -> Option<&'static str> {
    not_on_postgres()
        .into_iter()
        .find(|(name, _)| {
            if name.ends_with("::") {
                test.starts_with(name)
            } else {
                test == *name
            }
        })
        .map(|(_, reason)| reason)
}

/// The `store_url` for a service the current test spawns without naming one: none
/// (sled) unless the suite runs on PostgreSQL and the test is not listed.
pub async fn default_store_url() -> Option<String> {
    if test_store() == TestStore::Sled {
        return None;
    }
    // libtest runs each test on a thread named after its path.
    let thread = std::thread::current();
    let test = thread.name().unwrap_or_default();
    if let Some(reason) = excluded(test) {
        eprintln!("{test}: on sled, not yet on PostgreSQL: {reason}");
        return None;
    }
    Some(super::pg::database().await.unwrap_or_else(|| {
        panic!("BOOKCAL_TEST_STORE=postgres needs the PostgreSQL server binaries")
    }))
}

#[test]
fn every_entry_of_the_not_on_postgres_list_gives_a_reason() {
    for (name, reason) in not_on_postgres() {
        assert!(
            name.contains("::"),
            "{name}: a test path or a module prefix"
        );
        assert!(!reason.is_empty(), "{name}: give the reason");
    }
}
