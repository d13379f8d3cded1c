//! (module api: being written)
