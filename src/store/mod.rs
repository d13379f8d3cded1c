//! (module store: being written)
