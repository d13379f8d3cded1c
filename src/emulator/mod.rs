//! (module emulator: being written)
