//! (module scheduler: being written)
