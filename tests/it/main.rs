//! bookcal's integration tests, compiled as one binary (linking the whole crate once
//! instead of once per file). Each module spawns what it needs on 127.0.0.1:0 with
//! temporary data; shared set-up lives in [`helpers`].

mod helpers;

mod api;
mod attack;
mod authz;
mod browser;
mod demo;
mod emulator_fidelity;
mod emulator_google_calendar3_client;
mod emulator_google_python_client;
mod emulator_push;
mod emulator_rust_oauth_client;
mod fairness;
mod feed_service;
mod feeds;
mod feeds_realclients;
mod first_hour;
mod google_adapter;
mod google_reality;
mod ical_feeds;
mod integrity;
mod limits;
mod openapi;
mod operations;
mod pg_lists;
mod postgres;
mod push;
mod scheduler;
mod secrets;
mod sync;
mod sync_crash;
mod tidy;
mod waldur_client;
mod web;
