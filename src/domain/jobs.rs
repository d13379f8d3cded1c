//! The durable jobs of the scheduler and the rules that coalesce and reschedule them.
//!
//! Every offering has at most one *pending* job of each kind; a new request for the
//! same offering and kind merges into it (the earlier due time wins). A job that is
//! running is not pending, so a request that arrives during a run creates exactly one
//! follow-up, which waits until the run ends. After a run, a sync job becomes the
//! offering's next periodic sync (merged with any follow-up), a failed run is held
//! back for a while, and a run that reported "retry after T" is held until T.
//!
//! Pure: "now" and the random jitter are parameters, so the rules are table-tested.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Id, Interval, Offering, ResourceState};

/// What a queued job asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum JobKind {
    Sync,
    Share,
    Unshare,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Sync => "sync",
            JobKind::Share => "share",
            JobKind::Unshare => "unshare",
        }
    }
}

/// Why a job was queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Trigger {
    /// Someone asked (a calendar action of the API): runs at once, even while held.
    Action,
    /// A local change altered what the offering's calendar should show.
    Change,
    /// The calendar changed on Google's side (a push notification).
    Remote,
    /// The offering's regular sync.
    Periodic,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Action => "action",
            Trigger::Change => "change",
            Trigger::Remote => "remote",
            Trigger::Periodic => "periodic",
        }
    }

    /// Whether a request with this trigger waits for a hold (only an explicit action
    /// does not).
    fn respects_hold(self) -> bool {
        self != Trigger::Action
    }
}

/// A durable job: it stays in the store until the scheduler finished it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub seq: u64,
    pub offering: Id,
    pub kind: JobKind,
    pub trigger: Trigger,
    pub created: DateTime<Utc>,
    /// When it may run.
    pub due: DateTime<Utc>,
    /// Runs started for it (counted when claimed, so a run cut short by a crash or a
    /// panic counts too).
    pub attempts: u32,
    /// Requests other than explicit actions do not bring it before this time (a
    /// failing offering's back-off, or the time a run said to retry after).
    pub hold_until: Option<DateTime<Utc>>,
}

/// A request to run `kind` for `offering` at `due` (or earlier, if already queued
/// earlier).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobRequest {
    pub offering: Id,
    pub kind: JobKind,
    pub trigger: Trigger,
    pub due: DateTime<Utc>,
}

/// What a request does to the queue, given the pending job of its offering and kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Merge {
    /// Nothing to write: the pending job already runs early enough.
    Keep,
    /// The pending job changes (an earlier due time, a hold lifted).
    Update(Job),
    /// No job was pending: a new one.
    New(Job),
}

/// Coalesces a request into the pending job of the same offering and kind.
/// `seq` numbers a new job; `now` is its creation time.
pub fn merge(pending: Option<&Job>, req: &JobRequest, seq: u64, now: DateTime<Utc>) -> Merge {
    let Some(p) = pending else {
        return Merge::New(Job {
            seq,
            offering: req.offering,
            kind: req.kind,
            trigger: req.trigger,
            created: now,
            due: req.due,
            attempts: 0,
            hold_until: None,
        });
    };
    let mut due = p.due.min(req.due);
    let mut hold_until = p.hold_until;
    if req.trigger.respects_hold() {
        if let Some(h) = p.hold_until {
            due = due.max(h);
        }
    } else {
        hold_until = None;
    }
    if due == p.due && hold_until == p.hold_until {
        return Merge::Keep;
    }
    let trigger = if due < p.due { req.trigger } else { p.trigger };
    Merge::Update(Job {
        due,
        hold_until,
        trigger,
        ..p.clone()
    })
}

/// How a run ended, as the scheduler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// The job did what it asked.
    Done,
    /// The run failed; the offering has now failed `failures` times in a row.
    Failed { failures: u32 },
    /// The run could not proceed before this time (a budget or a circuit breaker).
    RetryAt(DateTime<Utc>),
    /// The run panicked (its guard noticed).
    Panicked,
    /// Nothing to do: a sync that nobody asked for of an offering without a calendar
    /// (it is never created implicitly).
    Skipped,
}

/// What becomes of a claimed job after its run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// Removed; with `periodic`, the offering's next regular sync is due then.
    Finish { periodic: Option<DateTime<Utc>> },
    /// Kept and held until then (attempts kept).
    Retry { at: DateTime<Utc> },
}

/// Scheduling settings the rules need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Periodic sync interval (`None`: no periodic syncs).
    pub interval: Option<Duration>,
    /// First back-off step after a failed sync; it doubles per consecutive failure.
    pub retry_base: Duration,
    /// Upper bound of the back-off.
    pub max_backoff: Duration,
}

fn add(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl Policy {
    /// The back-off after `failures` consecutive failures (at least one).
    pub fn backoff(&self, failures: u32) -> Duration {
        let steps = failures.saturating_sub(1).min(20);
        self.retry_base
            .saturating_mul(2u32.saturating_pow(steps))
            .min(self.max_backoff)
    }

    /// The next regular sync after one that ended at `now`; `jitter` in `0.0..1.0`
    /// spreads offerings over a tenth of the interval.
    pub fn next_periodic(&self, now: DateTime<Utc>, jitter: f64) -> Option<DateTime<Utc>> {
        self.interval
            .map(|i| add(now, i + i.mul_f64(jitter.clamp(0.0, 1.0) / 10.0)))
    }

    /// What becomes of a job of `kind` whose run ended with `outcome` at `now`.
    /// Share and unshare jobs that fail are not retried (the calendar record shows the
    /// error and the owner repeats the action); a sync that fails is held back.
    pub fn after(
        &self,
        kind: JobKind,
        outcome: RunOutcome,
        now: DateTime<Utc>,
        jitter: f64,
    ) -> After {
        match (outcome, kind) {
            (RunOutcome::RetryAt(t), _) => After::Retry { at: t.max(now) },
            (RunOutcome::Done, JobKind::Sync) => After::Finish {
                periodic: self.next_periodic(now, jitter),
            },
            (RunOutcome::Failed { failures }, JobKind::Sync) => After::Retry {
                at: add(now, self.backoff(failures.max(1))),
            },
            (RunOutcome::Panicked, _) => After::Retry {
                at: add(now, self.backoff(1)),
            },
            (RunOutcome::Done | RunOutcome::Failed { .. }, JobKind::Share | JobKind::Unshare)
            | (RunOutcome::Skipped, _) => After::Finish { periodic: None },
        }
    }
}

/// What of a booking its offering's calendar shows (the events' times, title,
/// description and status).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BookingView<'a> {
    pub offering: Id,
    pub name: &'a str,
    pub project: Id,
    pub created_by: Id,
    pub state: ResourceState,
    pub slots: &'a [Interval],
}

impl BookingView<'_> {
    /// The part that reaches the calendar: nothing unless the booking holds its slots
    /// (then tentative while Creating, confirmed when OK).
    fn shown(&self) -> Option<(&str, Id, Id, ResourceState, &[Interval])> {
        self.state.holds_slots().then_some((
            self.name,
            self.project,
            self.created_by,
            self.state,
            self.slots,
        ))
    }
}

/// The offerings whose calendars must change when a booking goes from `old` (absent
/// when new) to `new`: none, one, or two when it moved between offerings.
pub fn calendars_touched(old: Option<&BookingView<'_>>, new: &BookingView<'_>) -> Vec<Id> {
    let before = old.and_then(|o| o.shown());
    let after = new.shown();
    let mut out = Vec::new();
    match old {
        Some(o) if o.offering != new.offering => {
            if before.is_some() {
                out.push(o.offering);
            }
            if after.is_some() {
                out.push(new.offering);
            }
        }
        _ => {
            if before != after {
                out.push(new.offering);
            }
        }
    }
    out
}

/// Whether an offering's change alters its calendar (the calendar's name and zone,
/// the events' location).
pub fn offering_calendar_changed(old: &Offering, new: &Offering) -> bool {
    old.name != new.name || old.time_zone != new.time_zone || old.location != new.location
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn bookings_touch_the_calendars_that_show_them() {
        fn v<'a>(
            offering: Id,
            name: &'a str,
            state: ResourceState,
            slots: &'a [Interval],
        ) -> BookingView<'a> {
            BookingView {
                offering,
                name,
                project: Id::default(),
                created_by: Id::default(),
                state,
                slots,
            }
        }
        let (a, b) = (Id::new_v4(), Id::new_v4());
        let s1 = &[Interval::new(t(0), t(3600))][..];
        let s2 = &[Interval::new(t(0), t(7200))][..];
        use ResourceState::{Creating, Ok, Terminated};
        let cases = [
            // Created: shown at once, as tentative.
            (None, v(a, "x", Creating, s1), vec![a]),
            // Accepted, renamed, rescheduled: the calendar changes.
            (Some(v(a, "x", Creating, s1)), v(a, "x", Ok, s1), vec![a]),
            (Some(v(a, "x", Ok, s1)), v(a, "y", Ok, s1), vec![a]),
            (Some(v(a, "x", Ok, s1)), v(a, "x", Ok, s2), vec![a]),
            // Rejected, cancelled, terminated: the events go.
            (Some(v(a, "x", Ok, s1)), v(a, "x", Terminated, s1), vec![a]),
            // Unchanged as shown (a back-end id, a timestamp): nothing to sync.
            (Some(v(a, "x", Ok, s1)), v(a, "x", Ok, s1), vec![]),
            // Not shown before or after: nothing.
            (
                Some(v(a, "x", Terminated, s1)),
                v(a, "y", Terminated, s2),
                vec![],
            ),
            (None, v(a, "x", Terminated, s1), vec![]),
            // Moved between offerings: both calendars.
            (Some(v(a, "x", Ok, s1)), v(b, "x", Ok, s1), vec![a, b]),
            (Some(v(a, "x", Terminated, s1)), v(b, "x", Ok, s1), vec![b]),
        ];
        for (old, new, want) in cases {
            assert_eq!(
                calendars_touched(old.as_ref(), &new),
                want,
                "{old:?} -> {new:?}"
            );
        }
    }

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0)
            .single()
            .unwrap_or_default()
    }

    fn job(due: i64, hold: Option<i64>) -> Job {
        Job {
            seq: 7,
            offering: Id::default(),
            kind: JobKind::Sync,
            trigger: Trigger::Periodic,
            created: t(0),
            due: t(due),
            attempts: 2,
            hold_until: hold.map(t),
        }
    }

    fn req(trigger: Trigger, due: i64) -> JobRequest {
        JobRequest {
            offering: Id::default(),
            kind: JobKind::Sync,
            trigger,
            due: t(due),
        }
    }

    #[test]
    fn requests_merge_into_the_pending_job() {
        // (pending (due, hold), request (trigger, due), expected (due, hold, trigger) or Keep)
        type Pending = Option<(i64, Option<i64>)>;
        type Want = Option<(i64, Option<i64>, Trigger)>;
        let cases: [(Pending, (Trigger, i64), Want); 8] = [
            // Nothing pending: a new job at the requested time.
            (
                None,
                (Trigger::Change, 10),
                Some((10, None, Trigger::Change)),
            ),
            // A later request changes nothing (the burst's first change set the time).
            (Some((10, None)), (Trigger::Change, 11), None),
            (Some((10, None)), (Trigger::Change, 10), None),
            // An earlier request brings the job forward and names itself.
            (
                Some((900, None)),
                (Trigger::Change, 10),
                Some((10, None, Trigger::Change)),
            ),
            // A held job is not brought before its hold by changes or pushes...
            (Some((300, Some(300))), (Trigger::Change, 10), None),
            (
                Some((300, Some(120))),
                (Trigger::Remote, 10),
                Some((120, Some(120), Trigger::Remote)),
            ),
            // ...but an explicit action runs it now and lifts the hold.
            (
                Some((300, Some(300))),
                (Trigger::Action, 5),
                Some((5, None, Trigger::Action)),
            ),
            // An action on a job already due earlier only lifts the hold.
            (
                Some((3, Some(3))),
                (Trigger::Action, 5),
                Some((3, None, Trigger::Periodic)),
            ),
        ];
        for (pending, (trigger, due), want) in cases {
            let p = pending.map(|(d, h)| job(d, h));
            let got = merge(p.as_ref(), &req(trigger, due), 99, t(1));
            match (want, got) {
                (None, Merge::Keep) => {}
                (Some((d, h, tr)), Merge::Update(j)) if p.is_some() => {
                    assert_eq!((j.due, j.hold_until, j.trigger), (t(d), h.map(t), tr));
                    assert_eq!(
                        (j.seq, j.attempts),
                        (7, 2),
                        "the pending job keeps its identity"
                    );
                }
                (Some((d, h, tr)), Merge::New(j)) if p.is_none() => {
                    assert_eq!((j.due, j.hold_until, j.trigger), (t(d), h.map(t), tr));
                    assert_eq!((j.seq, j.attempts, j.created), (99, 0, t(1)));
                }
                (want, got) => {
                    panic!("{pending:?} + {trigger:?}@{due}: want {want:?}, got {got:?}")
                }
            }
        }
    }

    #[test]
    fn after_a_run_jobs_are_finished_repeated_or_held() {
        let p = Policy {
            interval: Some(Duration::from_secs(900)),
            retry_base: Duration::from_secs(60),
            max_backoff: Duration::from_secs(3600),
        };
        let now = t(0);
        let cases = [
            (
                JobKind::Sync,
                RunOutcome::Done,
                0.0,
                After::Finish {
                    periodic: Some(t(900)),
                },
            ),
            (
                JobKind::Sync,
                RunOutcome::Done,
                0.5,
                After::Finish {
                    periodic: Some(t(945)),
                },
            ),
            (
                JobKind::Share,
                RunOutcome::Done,
                0.0,
                After::Finish { periodic: None },
            ),
            (
                JobKind::Unshare,
                RunOutcome::Failed { failures: 3 },
                0.0,
                After::Finish { periodic: None },
            ),
            (
                JobKind::Sync,
                RunOutcome::Failed { failures: 1 },
                0.0,
                After::Retry { at: t(60) },
            ),
            (
                JobKind::Sync,
                RunOutcome::Failed { failures: 3 },
                0.0,
                After::Retry { at: t(240) },
            ),
            (
                JobKind::Sync,
                RunOutcome::Failed { failures: 30 },
                0.0,
                After::Retry { at: t(3600) },
            ),
            (
                JobKind::Sync,
                RunOutcome::RetryAt(t(500)),
                0.0,
                After::Retry { at: t(500) },
            ),
            (
                JobKind::Share,
                RunOutcome::RetryAt(t(500)),
                0.0,
                After::Retry { at: t(500) },
            ),
            (
                JobKind::Sync,
                RunOutcome::RetryAt(t(-5)),
                0.0,
                After::Retry { at: t(0) },
            ),
            (
                JobKind::Share,
                RunOutcome::Panicked,
                0.0,
                After::Retry { at: t(60) },
            ),
            (
                JobKind::Sync,
                RunOutcome::Skipped,
                0.0,
                After::Finish { periodic: None },
            ),
        ];
        for (kind, outcome, jitter, want) in cases {
            assert_eq!(
                p.after(kind, outcome, now, jitter),
                want,
                "{kind:?} {outcome:?}"
            );
        }
        let off = Policy {
            interval: None,
            ..p
        };
        assert_eq!(
            off.after(JobKind::Sync, RunOutcome::Done, now, 0.0),
            After::Finish { periodic: None }
        );
    }
}
