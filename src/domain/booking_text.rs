//! The text of a booking wherever it is published: the title and description of its
//! events in the offering's Google calendar and in the iCalendar feeds. Written once,
//! so the calendar and the feeds say the same thing; who reads decides what is left
//! out ([`Reader`]).
//!
//! The description is a few `Label: value` lines, always in this order:
//!
//! | line | Public | Calendar | Provider | Booker |
//! |---|---|---|---|---|
//! | `Offering: <name>` | - | - | - | yes |
//! | `Booked by: <name>` | - | name only | name and e-mail | - |
//! | `Project: <name>` | - | yes | yes | yes |
//! | `Organisation: <name>` | - | yes | yes | yes |
//! | `State: <Waldur state>` | - | yes | yes | yes |
//!
//! The title is the booking's name (`Booking` when blank), or `Booked` for the public.

use std::collections::HashMap;

use super::{Customer, Id, Offering, Project, Resource, ResourceState, User};

/// Who reads the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    /// Anyone (the public busy-only feed): a generic title, no description, nothing
    /// about who booked.
    Public,
    /// The offering's Google calendar: seen by the provider's people and, once the
    /// owner shares it, by anyone with its address. Names, never e-mail addresses.
    Calendar,
    /// The provider's people through a secret owner feed: who booked, with e-mail.
    Provider,
    /// The person who booked, through their "my bookings" feed: which offering,
    /// not who booked.
    Booker,
}

/// What the text of one booking is made of.
#[derive(Clone, Copy, Debug)]
pub struct BookingFacts<'a> {
    pub name: &'a str,
    pub state: ResourceState,
    /// The offering's name.
    pub offering: Option<&'a str>,
    /// The project's name.
    pub project: Option<&'a str>,
    /// The name of the project's organisation (the client).
    pub organisation: Option<&'a str>,
    pub booked_by: Option<&'a User>,
}

/// The records a booking's facts are looked up in (the catalog's maps).
#[derive(Clone, Copy)]
pub struct Directory<'a> {
    pub offerings: &'a HashMap<Id, Offering>,
    pub projects: &'a HashMap<Id, Project>,
    pub customers: &'a HashMap<Id, Customer>,
    pub users: &'a HashMap<Id, User>,
}

impl<'a> BookingFacts<'a> {
    /// The facts of `r`, looked up in `d`; whatever is missing is left out.
    pub fn look_up(r: &'a Resource, d: Directory<'a>) -> Self {
        let project = d.projects.get(&r.project);
        BookingFacts {
            name: &r.name,
            state: r.state,
            offering: d.offerings.get(&r.offering).map(|o| o.name.as_str()),
            project: project.map(|p| p.name.as_str()),
            organisation: project
                .and_then(|p| d.customers.get(&p.customer))
                .map(|c| c.name.as_str()),
            booked_by: d.users.get(&r.created_by),
        }
    }
}

fn non_empty(s: &str) -> Option<&str> {
    let s = s.trim();
    (!s.is_empty()).then_some(s)
}

/// The event title.
pub fn title(f: &BookingFacts<'_>, reader: Reader) -> String {
    match reader {
        Reader::Public => "Booked".to_owned(),
        _ => non_empty(f.name).unwrap_or("Booking").to_owned(),
    }
}

/// The event description (`None` for the public).
pub fn description(f: &BookingFacts<'_>, reader: Reader) -> Option<String> {
    if reader == Reader::Public {
        return None;
    }
    let mut lines = Vec::with_capacity(5);
    if let (Reader::Booker, Some(o)) = (reader, f.offering) {
        lines.push(format!("Offering: {o}"));
    }
    if let (Reader::Calendar | Reader::Provider, Some(u)) = (reader, f.booked_by) {
        let name = non_empty(&u.full_name).unwrap_or(&u.username);
        match non_empty(&u.email) {
            Some(email) if reader == Reader::Provider => {
                lines.push(format!("Booked by: {name} <{email}>"));
            }
            _ => lines.push(format!("Booked by: {name}")),
        }
    }
    if let Some(p) = f.project {
        lines.push(format!("Project: {p}"));
    }
    if let Some(c) = f.organisation {
        lines.push(format!("Organisation: {c}"));
    }
    lines.push(format!("State: {}", f.state.as_str()));
    Some(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(full_name: &str, email: &str) -> User {
        User {
            id: Id::new_v4(),
            username: "alice".into(),
            full_name: full_name.into(),
            email: email.into(),
            is_staff: false,
            created: chrono::DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn each_reader_sees_the_lines_meant_for_it() {
        let alice = user("Alice Åkesson", "alice@example.org");
        let nameless = user(" ", "");
        let facts = |name, who| BookingFacts {
            name,
            state: ResourceState::Creating,
            offering: Some("Room Aurora"),
            project: Some("Imaging study"),
            organisation: Some("Alice Research"),
            booked_by: Some(who),
        };
        let full = facts("Kick-off", &alice);
        let tail = "Project: Imaging study\nOrganisation: Alice Research\nState: Creating";
        // (facts, reader, title, description)
        let cases = [
            (full, Reader::Public, "Booked", None),
            (
                full,
                Reader::Calendar,
                "Kick-off",
                Some(format!("Booked by: Alice Åkesson\n{tail}")),
            ),
            (
                full,
                Reader::Provider,
                "Kick-off",
                Some(format!(
                    "Booked by: Alice Åkesson <alice@example.org>\n{tail}"
                )),
            ),
            (
                full,
                Reader::Booker,
                "Kick-off",
                Some(format!("Offering: Room Aurora\n{tail}")),
            ),
            (
                facts("  ", &nameless),
                Reader::Provider,
                "Booking",
                Some(format!("Booked by: alice\n{tail}")),
            ),
            (
                BookingFacts {
                    project: None,
                    organisation: None,
                    ..full
                },
                Reader::Calendar,
                "Kick-off",
                Some("Booked by: Alice Åkesson\nState: Creating".to_owned()),
            ),
        ];
        for (f, reader, want_title, want_description) in cases {
            assert_eq!(title(&f, reader), want_title, "{reader:?}");
            assert_eq!(description(&f, reader), want_description, "{reader:?}");
        }
    }
}
