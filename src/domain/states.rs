//! The strict enums of the Waldur API (the client rejects any other value).

use serde::{Deserialize, Serialize};

/// State of a marketplace (booking) resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum ResourceState {
    Creating,
    #[serde(rename = "OK")]
    Ok,
    Erred,
    Updating,
    Terminating,
    Terminated,
}

impl ResourceState {
    pub const ALL: [ResourceState; 6] = [
        ResourceState::Creating,
        ResourceState::Ok,
        ResourceState::Erred,
        ResourceState::Updating,
        ResourceState::Terminating,
        ResourceState::Terminated,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceState::Creating => "Creating",
            ResourceState::Ok => "OK",
            ResourceState::Erred => "Erred",
            ResourceState::Updating => "Updating",
            ResourceState::Terminating => "Terminating",
            ResourceState::Terminated => "Terminated",
        }
    }

    /// Parses the wire name (case-sensitive, as Waldur's filters are... mostly).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
    }

    /// Whether a resource in this state holds its slots (blocks other bookings and
    /// is mirrored to the calendar).
    pub fn holds_slots(self) -> bool {
        matches!(self, ResourceState::Creating | ResourceState::Ok)
    }
}

/// State of a marketplace order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OrderState {
    PendingConsumer,
    PendingProvider,
    PendingProject,
    PendingStartDate,
    Executing,
    Done,
    Erred,
    Canceled,
    Rejected,
}

impl OrderState {
    pub const ALL: [OrderState; 9] = [
        OrderState::PendingConsumer,
        OrderState::PendingProvider,
        OrderState::PendingProject,
        OrderState::PendingStartDate,
        OrderState::Executing,
        OrderState::Done,
        OrderState::Erred,
        OrderState::Canceled,
        OrderState::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::PendingConsumer => "pending-consumer",
            OrderState::PendingProvider => "pending-provider",
            OrderState::PendingProject => "pending-project",
            OrderState::PendingStartDate => "pending-start-date",
            OrderState::Executing => "executing",
            OrderState::Done => "done",
            OrderState::Erred => "erred",
            OrderState::Canceled => "canceled",
            OrderState::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_pending(self) -> bool {
        matches!(
            self,
            OrderState::PendingConsumer
                | OrderState::PendingProvider
                | OrderState::PendingProject
                | OrderState::PendingStartDate
        )
    }

    /// Orders in these states hold their requested slots ("Other booking request exists.").
    pub fn holds_request(self) -> bool {
        self.is_pending() || matches!(self, OrderState::Executing | OrderState::Done)
    }
}

/// Type of a marketplace order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OrderType {
    Create,
    Update,
    Terminate,
    Restore,
}

impl OrderType {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderType::Create => "Create",
            OrderType::Update => "Update",
            OrderType::Terminate => "Terminate",
            OrderType::Restore => "Restore",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            OrderType::Create,
            OrderType::Update,
            OrderType::Terminate,
            OrderType::Restore,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// State of an offering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OfferingState {
    Active,
    Paused,
    Archived,
    Draft,
    Unavailable,
}

impl OfferingState {
    pub fn as_str(self) -> &'static str {
        match self {
            OfferingState::Active => "Active",
            OfferingState::Paused => "Paused",
            OfferingState::Archived => "Archived",
            OfferingState::Draft => "Draft",
            OfferingState::Unavailable => "Unavailable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_serialise_to_the_exact_wire_names() {
        let cases: &[(serde_json::Value, &str)] = &[
            (serde_json::json!(ResourceState::Ok), "OK"),
            (serde_json::json!(ResourceState::Creating), "Creating"),
            (
                serde_json::json!(OrderState::PendingConsumer),
                "pending-consumer",
            ),
            (
                serde_json::json!(OrderState::PendingStartDate),
                "pending-start-date",
            ),
            (serde_json::json!(OrderState::Canceled), "canceled"),
            (serde_json::json!(OrderType::Create), "Create"),
            (serde_json::json!(OfferingState::Active), "Active"),
        ];
        for (v, want) in cases {
            assert_eq!(v.as_str(), Some(*want));
        }
        for st in OrderState::ALL {
            assert_eq!(serde_json::json!(st).as_str(), Some(st.as_str()));
            assert_eq!(OrderState::parse(st.as_str()), Some(st));
        }
        for st in ResourceState::ALL {
            assert_eq!(serde_json::json!(st).as_str(), Some(st.as_str()));
        }
    }
}
