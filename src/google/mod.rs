//! (module google: being written)
