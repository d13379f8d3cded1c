//! The sled engine's trees: one per record kind, named once here.

/// A sled tree. Keys are the 16 raw bytes of an [`Id`](crate::domain::Id) unless
/// the variant says otherwise; values are versioned JSON records (see
/// [`records`](super::records)) unless it says otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tree {
    Users,
    Customers,
    Projects,
    Offerings,
    Resources,
    Orders,
    /// offering id -> the busy slots imported from its calendar.
    Busy,
    /// salted SHA-256 of an API token -> the user id (16 bytes).
    Tokens,
    /// offering id -> calendar record.
    Calendars,
    /// offering id ++ slot backend_id -> mapping record.
    SlotMap,
    /// `t` ++ SHA-256 of the secret -> feed token; `s` ++ slot backend_id -> the
    /// slot's feed sequence.
    FeedTokens,
    /// big-endian job sequence number -> job record.
    Jobs,
    /// order id -> attachment record.
    Attachments,
    /// offering id -> the external events of its calendar.
    Externals,
    /// resource id -> compact binary index entry (see [`index`](super::index)).
    IdxResources,
    /// order id -> compact binary index entry.
    IdxOrders,
    /// named markers (the index migration) and the feed UID key.
    Meta,
    /// offering id -> push state (its watch channel and what it received).
    Channels,
    /// `s` ++ SHA-256 of a web session's secret -> session; `l` ++ SHA-256 of a
    /// one-time sign-in link's secret -> link (see [`sessions`](super::sessions)).
    Sessions,
}

impl Tree {
    pub(crate) const ALL: [Tree; 19] = [
        Tree::Users,
        Tree::Customers,
        Tree::Projects,
        Tree::Offerings,
        Tree::Resources,
        Tree::Orders,
        Tree::Busy,
        Tree::Tokens,
        Tree::Calendars,
        Tree::SlotMap,
        Tree::FeedTokens,
        Tree::Jobs,
        Tree::Attachments,
        Tree::Externals,
        Tree::IdxResources,
        Tree::IdxOrders,
        Tree::Meta,
        Tree::Channels,
        Tree::Sessions,
    ];

    /// The tree's name in the sled database (never changes: it is on disk).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Tree::Users => "users",
            Tree::Customers => "customers",
            Tree::Projects => "projects",
            Tree::Offerings => "offerings",
            Tree::Resources => "resources",
            Tree::Orders => "orders",
            Tree::Busy => "busy",
            Tree::Tokens => "tokens",
            Tree::Calendars => "calendars",
            Tree::SlotMap => "slot_map",
            Tree::FeedTokens => "feed_tokens",
            Tree::Jobs => "jobs",
            Tree::Attachments => "attachments",
            Tree::Externals => "externals",
            Tree::IdxResources => "idx_resources",
            Tree::IdxOrders => "idx_orders",
            Tree::Meta => "meta",
            Tree::Channels => "channels",
            Tree::Sessions => "web_sessions",
        }
    }

    /// Position in [`Tree::ALL`] (and in the store's vector of open trees).
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tree_sits_at_its_own_index_with_a_distinct_name() {
        for (i, t) in Tree::ALL.iter().enumerate() {
            assert_eq!(t.index(), i, "{t:?}");
        }
        let mut names: Vec<&str> = Tree::ALL.iter().map(|t| t.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Tree::ALL.len());
    }
}
