//! (module sync: being written)
