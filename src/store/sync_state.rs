//! Raw access to the sync engine's trees (calendars, slot mapping, feed tokens, jobs,
//! attachments). The typed records live with their users (`sync`, `api::feeds`,
//! `scheduler`); the store only guarantees atomic writes and prefix scans.

/// Which sync-state tree a key belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// offering id -> calendar record.
    Calendars,
    /// offering id ++ slot backend_id -> mapping record.
    SlotMap,
    /// token hash -> feed token record.
    FeedTokens,
    /// big-endian sequence -> job record.
    Jobs,
    /// order id -> attachment (name and bytes).
    Attachments,
    /// offering id -> the external events of its calendar.
    Externals,
}

impl Kind {
    pub(crate) fn tree_index(self) -> usize {
        match self {
            Kind::Calendars => 8,
            Kind::SlotMap => 9,
            Kind::FeedTokens => 10,
            Kind::Jobs => 11,
            Kind::Attachments => 12,
            Kind::Externals => 13,
        }
    }
}
