//! Push notifications from Google, as rules: what to do with an offering's watch
//! channel (open, keep, renew, stop), which process may do it (the upkeep claim),
//! when to look again, whether polling may slow down, and what an incoming
//! notification means.
//!
//! Pure: "now", the channel record and the offering's calendar are parameters.
//!
//! Invariants:
//! - at most one channel per offering is recorded; a channel is renewed (a new one
//!   opened, then the old one stopped) `renew_before` ahead of its expiration, so
//!   deliveries never lapse while bookcal runs;
//! - a channel is stopped when its calendar is no longer the offering's (the
//!   offering removed or archived, the calendar replaced or gone, push turned off)
//!   or when the calendar was unshared for good (the unshare action completed at
//!   Google); none is opened again until the calendar is shared again;
//! - a notification counts only with the channel id and token of the current
//!   channel; `sync` messages and message numbers already seen are ignored (a
//!   notification says only that something changed, and the sync it triggers reads
//!   every change up to its own run, so an older number adds nothing);
//! - a failed attempt to open or renew a channel is not repeated before its
//!   back-off ends (a renewal that failed keeps the old channel meanwhile);
//! - while the store fails, the upkeep looks again after a second, doubling up to
//!   its usual interval ([`Outage`]), and says so once per run of failures;
//! - where several processes share the push states, one at a time opens, renews or
//!   stops an offering's channel: the one whose [`Claim`] is recorded in the state
//!   and has not ended; a claim whose holder died ends with its lease, so another
//!   process takes over;
//! - a result is recorded only while the offering's channel is still the one the
//!   process decided on (compare-and-set): if two processes raced anyway (a lease
//!   ended under a slow Google call), the first to finish wins and the other stops
//!   the channel it opened, so no orphan channel keeps delivering.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::Id;

/// An open watch channel on an offering's calendar.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    /// Our random channel id (Google echoes it in `X-Goog-Channel-ID`).
    pub id: String,
    /// Google's id of the watched resource (needed to stop the channel).
    pub resource_id: String,
    /// The calendar watched.
    pub calendar_id: String,
    /// SHA-256 (hex) of the channel's secret token; the token itself is never kept.
    pub token_hash: String,
    /// The webhook address deliveries go to.
    pub address: String,
    pub created: DateTime<Utc>,
    /// When Google stops delivering.
    pub expiration: DateTime<Utc>,
    /// The highest message number received.
    pub last_message: u64,
}

/// The push state of one offering: its channel and what it received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushState {
    pub offering: Id,
    pub channel: Option<Channel>,
    /// Notifications that triggered a sync.
    pub received: u64,
    /// Notifications answered but not acted on (`sync` messages, duplicates).
    pub ignored: u64,
    pub last_notification: Option<DateTime<Utc>>,
    /// Why the last attempt to open a channel failed.
    pub last_error: Option<String>,
    /// Consecutive failed attempts to open a channel.
    pub failures: u32,
    /// No new attempt before this time.
    pub retry_at: Option<DateTime<Utc>>,
    /// The calendar was unshared for good (the unshare action completed at Google):
    /// it keeps being synced by polling, without a channel, until it is shared again.
    pub unshared: bool,
    /// The process opening, renewing or stopping the channel now, where several
    /// processes share the push states.
    pub claim: Option<Claim>,
    /// The channel being asked of Google now (recorded before `events.watch`, whose
    /// first `sync` delivery may come before the answer).
    pub pending: Option<Pending>,
}

/// A channel asked of Google and not answered yet: recorded before the request so a
/// delivery for it is recognised; removed when the answer is recorded or the request
/// fails, so it never verifies deliveries after that.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The channel id asked for.
    pub id: String,
    /// SHA-256 (hex) of its secret token.
    pub token_hash: String,
}

/// One process's turn at an offering's channel: taken in the same transaction that
/// reads the push state, held until its result is recorded or `until` passes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// Random, fresh for every claim: the result is recorded only under it.
    pub token: String,
    /// The lease: after it, another process may take the turn.
    pub until: DateTime<Utc>,
}

impl Claim {
    /// Whether the claim still holds at `now`.
    pub fn live(&self, now: DateTime<Utc>) -> bool {
        self.until > now
    }
}

impl PushState {
    pub fn new(offering: Id) -> Self {
        PushState {
            offering,
            channel: None,
            received: 0,
            ignored: 0,
            last_notification: None,
            last_error: None,
            failures: 0,
            retry_at: None,
            unshared: false,
            claim: None,
            pending: None,
        }
    }

    /// Which of the offering's channels a delivery for `channel_id` is for: the
    /// current one, the one being opened, or neither.
    pub fn delivered_to(&self, channel_id: &str) -> Option<Delivered<'_>> {
        if let Some(c) = self.channel.as_ref().filter(|c| c.id == channel_id) {
            return Some(Delivered::Current(c));
        }
        self.pending
            .as_ref()
            .filter(|p| p.id == channel_id)
            .map(Delivered::Pending)
    }

    /// Forgets the pending channel `id`, if it is still the recorded one.
    pub fn forget_pending(&mut self, id: &str) {
        if self.pending.as_ref().is_some_and(|p| p.id == id) {
            self.pending = None;
        }
    }

    /// Whether the channel is open and not yet expired: the offering's changes in
    /// Google arrive by push, and polling may slow down.
    pub fn healthy(&self, now: DateTime<Utc>) -> bool {
        self.channel.as_ref().is_some_and(|c| c.expiration > now)
    }
}

/// What the offering's calendar looks like to the channel rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watched<'a> {
    /// The offering exists and is not archived.
    pub offering_live: bool,
    /// The offering's calendar in Google, once created.
    pub calendar_id: Option<&'a str>,
}

/// What to do with an offering's channel now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelAction {
    /// Nothing (no calendar yet and no channel, or the channel is fine).
    Keep,
    /// Open a channel (none is open).
    Open,
    /// Open a new channel, then stop the current one.
    Renew,
    /// Stop the current channel and open none.
    Stop,
    /// A failed attempt is being backed off: nothing before `retry_at`.
    Wait,
}

/// Decides what to do with an offering's channel. `address` is the webhook
/// address (`None`: push is off); `renew_before` how long ahead of its expiration a
/// channel is replaced.
pub fn channel_action(
    state: Option<&PushState>,
    watched: Watched<'_>,
    address: Option<&str>,
    now: DateTime<Utc>,
    renew_before: Duration,
) -> ChannelAction {
    let channel = state.and_then(|s| s.channel.as_ref());
    let unshared = state.is_some_and(|s| s.unshared);
    let wanted = match (address, watched.offering_live, watched.calendar_id) {
        (Some(a), true, Some(c)) if !unshared => Some((a, c)),
        _ => None,
    };
    match (channel, wanted) {
        (None, None) => ChannelAction::Keep,
        (Some(_), None) => ChannelAction::Stop,
        (None, Some(_)) => {
            if state.and_then(|s| s.retry_at).is_some_and(|at| at > now) {
                ChannelAction::Wait
            } else {
                ChannelAction::Open
            }
        }
        (Some(ch), Some((address, calendar))) => {
            if ch.calendar_id != calendar
                || ch.address != address
                || ch.expiration - renew_before <= now
            {
                if state.and_then(|s| s.retry_at).is_some_and(|at| at > now) {
                    ChannelAction::Wait
                } else {
                    ChannelAction::Renew
                }
            } else {
                ChannelAction::Keep
            }
        }
    }
}

/// Whose turn an offering's channel upkeep is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// Nothing to do now (the channel is fine, or a failure is being backed off).
    Idle,
    /// Another process holds the claim until then.
    Busy(DateTime<Utc>),
    /// This process may take the claim and do this (open, renew or stop).
    Act(ChannelAction),
}

/// Decides the upkeep's turn on the stored state: what the channel needs (see
/// [`channel_action`]) and whether another process is already at it. `shared`:
/// several processes share the push states (otherwise claims are not taken and a
/// recorded one is left over from another engine: ignored).
pub fn upkeep_turn(
    state: Option<&PushState>,
    watched: Watched<'_>,
    address: Option<&str>,
    now: DateTime<Utc>,
    renew_before: Duration,
    shared: bool,
) -> Turn {
    match channel_action(state, watched, address, now, renew_before) {
        ChannelAction::Keep | ChannelAction::Wait => Turn::Idle,
        action => match state.and_then(|s| s.claim.as_ref()) {
            Some(c) if shared && c.live(now) => Turn::Busy(c.until),
            _ => Turn::Act(action),
        },
    }
}

/// Whether a process may record the result of its upkeep: the offering's recorded
/// channel is still the one it decided on (`decided_on`: the id of the channel it
/// saw when it took its turn, `None` when there was none). Otherwise another process
/// recorded a result first (or Google ended the channel), and this one's is stale.
pub fn may_record(recorded: Option<&Channel>, decided_on: Option<&str>) -> bool {
    recorded.map(|c| c.id.as_str()) == decided_on
}

/// Gives up the claim `token`, if it is still the recorded one (another process's
/// later claim is left alone).
pub fn release(claim: &mut Option<Claim>, token: &str) {
    if claim.as_ref().is_some_and(|c| c.token == token) {
        *claim = None;
    }
}

/// When the upkeep should next look at an offering: when another process's claim
/// ends, else when its channel is due for renewal or a failed attempt for a retry
/// (whichever is later: a renewal is not retried before its back-off ends).
pub fn next_look(
    state: &PushState,
    now: DateTime<Utc>,
    renew_before: Duration,
) -> Option<DateTime<Utc>> {
    if let Some(c) = state.claim.as_ref().filter(|c| c.live(now)) {
        return Some(c.until);
    }
    let renewal = state.channel.as_ref().map(|c| c.expiration - renew_before);
    match (renewal, state.retry_at) {
        (Some(r), Some(retry)) => Some(r.max(retry)),
        (r, retry) => r.or(retry),
    }
}

/// How long to wait after `failures` consecutive failed attempts to open a channel:
/// a minute, doubling, at most a day.
pub fn open_backoff(failures: u32) -> Duration {
    let steps = failures.saturating_sub(1).min(11);
    Duration::minutes(1 << steps).min(Duration::days(1))
}

/// The channel a delivery names, as recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivered<'a> {
    /// The offering's current channel.
    Current(&'a Channel),
    /// The channel being opened (Google has not answered `events.watch` yet).
    Pending(&'a Pending),
}

impl Delivered<'_> {
    /// SHA-256 (hex) of the channel's token, to compare with the delivered one's.
    pub fn token_hash(&self) -> &str {
        match self {
            Delivered::Current(c) => &c.token_hash,
            Delivered::Pending(p) => &p.token_hash,
        }
    }
}

/// The upkeep's current run of store failures (the store unreachable, say): how
/// long to wait before the next look and when to say so. The wait is a second,
/// doubling with each failure in a row, at most the usual look interval; the first
/// answer of the store ends the run at once. Only the first failure of a run and
/// its end are worth a log line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outage {
    /// Failures in a row (0: the store answers).
    pub failures: u32,
}

impl Outage {
    /// Records a failure; returns whether it starts a run (the one to log).
    pub fn failed(&mut self) -> bool {
        self.failures = self.failures.saturating_add(1);
        self.failures == 1
    }

    /// Records an answer of the store; returns how many failures the run it ends
    /// had (0: there was none; otherwise say that the store answers again).
    pub fn answered(&mut self) -> u32 {
        std::mem::take(&mut self.failures)
    }

    /// How long to wait before looking again, `cap` at most (`None`: no run, the
    /// usual schedule applies).
    pub fn backoff(&self, cap: std::time::Duration) -> Option<std::time::Duration> {
        let steps = self.failures.checked_sub(1)?.min(30);
        Some(std::time::Duration::from_secs(1u64 << steps).min(cap))
    }
}

/// What an incoming notification means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Not from a channel of ours (unknown id or wrong token): 404, nothing queued.
    Unknown,
    /// The channel's first message: answered, nothing to do.
    Sync,
    /// A message number already seen: answered, nothing to do.
    Duplicate,
    /// The calendar's events changed: sync the offering.
    Changed,
    /// The watched calendar is gone: sync the offering (it finds out) and forget the
    /// channel, which Google ended.
    Gone,
}

/// Reads a notification for the channel it names (`None`: none of the offering's).
/// `token_matches` is the constant-time comparison of the delivered token's hash
/// with the stored one; `number` the `X-Goog-Message-Number` (unparseable numbers
/// are treated as new). A channel still being opened has seen no message and is
/// not the recorded one yet, so anything but its `sync` message only asks for a
/// sync (even `not_exists`: the sync finds out, and the current channel stays).
pub fn read_notice(
    to: Option<Delivered<'_>>,
    token_matches: bool,
    resource_state: &str,
    number: Option<u64>,
) -> Notice {
    let Some(to) = to else {
        return Notice::Unknown;
    };
    if !token_matches {
        return Notice::Unknown;
    }
    if resource_state == "sync" {
        return Notice::Sync;
    }
    let channel = match to {
        Delivered::Current(c) => c,
        Delivered::Pending(_) => return Notice::Changed,
    };
    if number.is_some_and(|n| n <= channel.last_message) {
        return Notice::Duplicate;
    }
    if resource_state == "not_exists" {
        Notice::Gone
    } else {
        Notice::Changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(mins: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
            .single()
            .expect("valid")
            + Duration::minutes(mins)
    }

    fn channel(expires_in_mins: i64) -> Channel {
        Channel {
            id: "c1".into(),
            resource_id: "r1".into(),
            calendar_id: "cal".into(),
            token_hash: "h".into(),
            address: "https://x.example/google/notifications".into(),
            created: t(-10),
            expiration: t(expires_in_mins),
            last_message: 3,
        }
    }

    fn state(ch: Option<Channel>, retry_at: Option<DateTime<Utc>>) -> PushState {
        PushState {
            channel: ch,
            retry_at,
            ..PushState::new(Id(uuid::Uuid::from_u128(1)))
        }
    }

    #[test]
    fn channel_actions_follow_the_calendar_the_address_and_the_expiration() {
        let addr = Some("https://x.example/google/notifications");
        let live = Watched {
            offering_live: true,
            calendar_id: Some("cal"),
        };
        let renew = Duration::minutes(60);
        type Case<'a> = (
            &'a str,
            Option<PushState>,
            Watched<'a>,
            Option<&'a str>,
            ChannelAction,
        );
        let cases: Vec<Case> = vec![
            (
                "no calendar yet",
                None,
                Watched {
                    calendar_id: None,
                    ..live
                },
                addr,
                ChannelAction::Keep,
            ),
            (
                "calendar without channel",
                None,
                live,
                addr,
                ChannelAction::Open,
            ),
            (
                "push off, no channel",
                None,
                live,
                None,
                ChannelAction::Keep,
            ),
            (
                "fresh channel",
                Some(state(Some(channel(600)), None)),
                live,
                addr,
                ChannelAction::Keep,
            ),
            (
                "inside the renewal margin",
                Some(state(Some(channel(59)), None)),
                live,
                addr,
                ChannelAction::Renew,
            ),
            (
                "expired",
                Some(state(Some(channel(-1)), None)),
                live,
                addr,
                ChannelAction::Renew,
            ),
            (
                "calendar replaced",
                Some(state(Some(channel(600)), None)),
                Watched {
                    calendar_id: Some("other"),
                    ..live
                },
                addr,
                ChannelAction::Renew,
            ),
            (
                "address changed",
                Some(state(Some(channel(600)), None)),
                live,
                Some("https://y.example/google/notifications"),
                ChannelAction::Renew,
            ),
            (
                "calendar gone",
                Some(state(Some(channel(600)), None)),
                Watched {
                    calendar_id: None,
                    ..live
                },
                addr,
                ChannelAction::Stop,
            ),
            (
                "offering removed",
                Some(state(Some(channel(600)), None)),
                Watched {
                    offering_live: false,
                    ..live
                },
                addr,
                ChannelAction::Stop,
            ),
            (
                "push turned off",
                Some(state(Some(channel(600)), None)),
                live,
                None,
                ChannelAction::Stop,
            ),
            (
                "failed, backing off",
                Some(state(None, Some(t(5)))),
                live,
                addr,
                ChannelAction::Wait,
            ),
            (
                "failed, back-off over",
                Some(state(None, Some(t(-5)))),
                live,
                addr,
                ChannelAction::Open,
            ),
            (
                "removed while backing off",
                Some(state(None, Some(t(5)))),
                Watched {
                    offering_live: false,
                    ..live
                },
                addr,
                ChannelAction::Keep,
            ),
            (
                "calendar unshared for good",
                Some(PushState {
                    unshared: true,
                    ..state(Some(channel(600)), None)
                }),
                live,
                addr,
                ChannelAction::Stop,
            ),
            (
                "unshared, channel stopped",
                Some(PushState {
                    unshared: true,
                    ..state(None, None)
                }),
                live,
                addr,
                ChannelAction::Keep,
            ),
            (
                "shared again",
                Some(state(None, None)),
                live,
                addr,
                ChannelAction::Open,
            ),
            (
                "renewal failed, backing off",
                Some(state(Some(channel(59)), Some(t(5)))),
                live,
                addr,
                ChannelAction::Wait,
            ),
            (
                "renewal failed, back-off over",
                Some(state(Some(channel(59)), Some(t(-5)))),
                live,
                addr,
                ChannelAction::Renew,
            ),
            (
                "stopping is not backed off",
                Some(state(Some(channel(600)), Some(t(5)))),
                Watched {
                    offering_live: false,
                    ..live
                },
                addr,
                ChannelAction::Stop,
            ),
        ];
        for (name, st, watched, address, expected) in cases {
            assert_eq!(
                channel_action(st.as_ref(), watched, address, t(0), renew),
                expected,
                "{name}"
            );
        }
    }

    fn claimed(st: PushState, until: DateTime<Utc>) -> PushState {
        PushState {
            claim: Some(Claim {
                token: "k1".into(),
                until,
            }),
            ..st
        }
    }

    #[test]
    fn one_process_at_a_time_takes_the_turn_until_its_claim_ends() {
        let addr = Some("https://x.example/google/notifications");
        let live = Watched {
            offering_live: true,
            calendar_id: Some("cal"),
        };
        let renew = Duration::minutes(60);
        let cases: Vec<(&str, Option<PushState>, bool, Turn)> = vec![
            (
                "nothing recorded",
                None,
                true,
                Turn::Act(ChannelAction::Open),
            ),
            (
                "fresh channel, unclaimed",
                Some(state(Some(channel(600)), None)),
                true,
                Turn::Idle,
            ),
            (
                "fresh channel, a claim left over",
                Some(claimed(state(Some(channel(600)), None), t(5))),
                true,
                Turn::Idle,
            ),
            (
                "renewal due, unclaimed",
                Some(state(Some(channel(59)), None)),
                true,
                Turn::Act(ChannelAction::Renew),
            ),
            (
                "renewal due, another process at it",
                Some(claimed(state(Some(channel(59)), None), t(5))),
                true,
                Turn::Busy(t(5)),
            ),
            (
                "renewal due, its holder died (lease over)",
                Some(claimed(state(Some(channel(59)), None), t(-1))),
                true,
                Turn::Act(ChannelAction::Renew),
            ),
            (
                "the lease ends right now",
                Some(claimed(state(Some(channel(59)), None), t(0))),
                true,
                Turn::Act(ChannelAction::Renew),
            ),
            (
                "opening, another process at it",
                Some(claimed(state(None, None), t(5))),
                true,
                Turn::Busy(t(5)),
            ),
            (
                "one process: a recorded claim is ignored",
                Some(claimed(state(Some(channel(59)), None), t(5))),
                false,
                Turn::Act(ChannelAction::Renew),
            ),
            (
                "backing off",
                Some(state(Some(channel(59)), Some(t(5)))),
                true,
                Turn::Idle,
            ),
        ];
        for (name, st, shared, expected) in cases {
            assert_eq!(
                upkeep_turn(st.as_ref(), live, addr, t(0), renew, shared),
                expected,
                "{name}"
            );
        }
        // Stopping is claimed like the rest.
        let gone = Watched {
            offering_live: false,
            ..live
        };
        let st = claimed(state(Some(channel(600)), None), t(5));
        assert_eq!(
            upkeep_turn(Some(&st), gone, addr, t(0), renew, true),
            Turn::Busy(t(5))
        );
    }

    #[test]
    fn a_result_is_recorded_only_over_the_channel_it_was_decided_on() {
        let c1 = channel(600);
        let c2 = Channel {
            id: "c2".into(),
            ..channel(600)
        };
        let cases: Vec<(&str, Option<&Channel>, Option<&str>, bool)> = vec![
            ("opened where none was, still none", None, None, true),
            (
                "opened, but another process opened one first",
                Some(&c2),
                None,
                false,
            ),
            (
                "renewed, the old channel still recorded",
                Some(&c1),
                Some("c1"),
                true,
            ),
            (
                "renewed, another process renewed first",
                Some(&c2),
                Some("c1"),
                false,
            ),
            (
                "renewed, Google ended the channel meanwhile",
                None,
                Some("c1"),
                false,
            ),
            ("stopped, still recorded", Some(&c1), Some("c1"), true),
        ];
        for (name, recorded, decided_on, expected) in cases {
            assert_eq!(may_record(recorded, decided_on), expected, "{name}");
        }
    }

    #[test]
    fn a_claim_is_released_only_by_its_holder() {
        let mine = Claim {
            token: "k1".into(),
            until: t(5),
        };
        let theirs = Claim {
            token: "k2".into(),
            until: t(5),
        };
        let cases: Vec<(&str, Option<Claim>, Option<Claim>)> = vec![
            ("mine", Some(mine), None),
            ("taken over", Some(theirs.clone()), Some(theirs)),
            ("none", None, None),
        ];
        for (name, before, after) in cases {
            let mut claim = before;
            release(&mut claim, "k1");
            assert_eq!(claim, after, "{name}");
        }
    }

    #[test]
    fn the_upkeep_looks_again_at_the_renewal_the_retry_or_the_end_of_a_claim() {
        let renew = Duration::minutes(60);
        let cases: Vec<(&str, PushState, Option<DateTime<Utc>>)> = vec![
            ("nothing", state(None, None), None),
            ("a channel", state(Some(channel(600)), None), Some(t(540))),
            ("a failed open", state(None, Some(t(7))), Some(t(7))),
            (
                "a failed renewal: after its back-off",
                state(Some(channel(59)), Some(t(7))),
                Some(t(7)),
            ),
            (
                "an old retry time",
                state(Some(channel(600)), Some(t(-7))),
                Some(t(540)),
            ),
            (
                "claimed by another process",
                claimed(state(Some(channel(59)), None), t(3)),
                Some(t(3)),
            ),
            (
                "a claim that ended",
                claimed(state(Some(channel(600)), None), t(-3)),
                Some(t(540)),
            ),
        ];
        for (name, st, expected) in cases {
            assert_eq!(next_look(&st, t(0), renew), expected, "{name}");
        }
    }

    #[test]
    fn a_channel_is_healthy_until_it_expires() {
        assert!(state(Some(channel(1)), None).healthy(t(0)));
        assert!(!state(Some(channel(0)), None).healthy(t(0)));
        assert!(!state(None, None).healthy(t(0)));
    }

    #[test]
    fn failed_opens_back_off_from_a_minute_to_a_day() {
        let cases = [
            (1, 1),
            (2, 2),
            (3, 4),
            (6, 32),
            (11, 1024),
            (12, 1440),
            (40, 1440),
        ];
        for (failures, minutes) in cases {
            assert_eq!(
                open_backoff(failures),
                Duration::minutes(minutes),
                "{failures}"
            );
        }
    }

    #[test]
    fn notices_are_read_from_channel_token_state_and_number() {
        let ch = channel(600);
        let current = Some(Delivered::Current(&ch));
        let opening = Pending {
            id: "c2".into(),
            token_hash: "h2".into(),
        };
        let pending = Some(Delivered::Pending(&opening));
        type Case<'a> = (
            &'a str,
            Option<Delivered<'a>>,
            bool,
            &'a str,
            Option<u64>,
            Notice,
        );
        let cases: Vec<Case> = vec![
            (
                "unknown channel",
                None,
                true,
                "exists",
                Some(9),
                Notice::Unknown,
            ),
            (
                "wrong token",
                current,
                false,
                "exists",
                Some(9),
                Notice::Unknown,
            ),
            (
                "wrong token on sync",
                current,
                false,
                "sync",
                Some(1),
                Notice::Unknown,
            ),
            (
                "first message",
                current,
                true,
                "sync",
                Some(1),
                Notice::Sync,
            ),
            (
                "new change",
                current,
                true,
                "exists",
                Some(4),
                Notice::Changed,
            ),
            (
                "repeated number",
                current,
                true,
                "exists",
                Some(3),
                Notice::Duplicate,
            ),
            (
                "older number",
                current,
                true,
                "exists",
                Some(2),
                Notice::Duplicate,
            ),
            ("no number", current, true, "exists", None, Notice::Changed),
            (
                "calendar deleted",
                current,
                true,
                "not_exists",
                Some(5),
                Notice::Gone,
            ),
            (
                "first message of a channel being opened",
                pending,
                true,
                "sync",
                Some(1),
                Notice::Sync,
            ),
            (
                "wrong token for a channel being opened",
                pending,
                false,
                "sync",
                Some(1),
                Notice::Unknown,
            ),
            (
                "change on a channel being opened",
                pending,
                true,
                "exists",
                Some(2),
                Notice::Changed,
            ),
            (
                "a channel being opened does not end the current one",
                pending,
                true,
                "not_exists",
                Some(2),
                Notice::Changed,
            ),
        ];
        for (name, channel, token, resource_state, number, expected) in cases {
            assert_eq!(
                read_notice(channel, token, resource_state, number),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn a_delivery_is_for_the_current_channel_the_one_being_opened_or_neither() {
        let opening = Pending {
            id: "c2".into(),
            token_hash: "h2".into(),
        };
        let st = PushState {
            pending: Some(opening.clone()),
            ..state(Some(channel(600)), None)
        };
        let ch = channel(600);
        let cases: Vec<(&str, PushState, &str, Option<Delivered>)> = vec![
            ("current", st.clone(), "c1", Some(Delivered::Current(&ch))),
            (
                "being opened",
                st.clone(),
                "c2",
                Some(Delivered::Pending(&opening)),
            ),
            ("neither", st.clone(), "c3", None),
            ("nothing recorded", state(None, None), "c1", None),
        ];
        for (name, st, id, expected) in cases {
            assert_eq!(st.delivered_to(id), expected, "{name}");
        }
        let mut st = st;
        st.forget_pending("c3");
        assert_eq!(st.pending, Some(opening), "another pending channel stays");
        st.forget_pending("c2");
        assert_eq!(st.pending, None);
    }

    #[test]
    fn store_failures_back_off_from_a_second_doubling_to_the_look_interval_and_end_at_the_first_answer(
    ) {
        use std::time::Duration as Std;
        let cap = Std::from_secs(30);
        // (event, said, wait afterwards): F a failure, A an answer of the store.
        let steps: Vec<(char, bool, Option<Std>)> = vec![
            ('A', false, None),
            ('F', true, Some(Std::from_secs(1))),
            ('F', false, Some(Std::from_secs(2))),
            ('F', false, Some(Std::from_secs(4))),
            ('F', false, Some(Std::from_secs(8))),
            ('F', false, Some(Std::from_secs(16))),
            ('F', false, Some(cap)),
            ('F', false, Some(cap)),
            ('A', true, None),
            ('A', false, None),
            ('F', true, Some(Std::from_secs(1))),
        ];
        let mut outage = Outage::default();
        for (n, (event, said, wait)) in steps.into_iter().enumerate() {
            let told = match event {
                'F' => outage.failed(),
                _ => outage.answered() > 0,
            };
            assert_eq!(told, said, "step {n}: said");
            assert_eq!(outage.backoff(cap), wait, "step {n}: wait");
        }
        let long = Outage { failures: u32::MAX };
        assert_eq!(long.backoff(cap), Some(cap), "no overflow");
        assert_eq!(
            Outage { failures: 3 }.backoff(Std::from_secs(3)),
            Some(Std::from_secs(3)),
            "a short look interval caps it"
        );
    }
}
