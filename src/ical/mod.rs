//! (module ical: being written)
