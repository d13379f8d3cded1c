//! Who may render now: a fixed number of render slots shared fairly between clients.
//!
//! A render costs CPU (tens of milliseconds for thousands of events) and transient
//! memory (the events and the body), so at most [`RenderGate::slots`] run at once, each
//! on the blocking pool: that bounds the threads (and the allocator arenas that come
//! with them) whatever the number of requests. Fairness: one client (an IP address,
//! IPv6 by /64) renders one feed at a time and waits in line for its next, so a client
//! asking for many distinct windows takes one slot in turn with everyone else instead
//! of all of them; and at most [`MAX_WAITING_PER_CLIENT`] of its requests may wait,
//! beyond which the caller degrades to a cached body instead of queueing.
//!
//! Tokio's semaphores are first-come first-served, so a client's turn comes after the
//! requests of other clients that were already waiting.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Requests of one client that may wait for a render at once.
pub const MAX_WAITING_PER_CLIENT: usize = 4;

/// Who asks: the peer's address (IPv6 reduced to its /64), or unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Client(Option<IpAddr>);

impl Client {
    /// A client not known by address (all such requests share one turn).
    pub const UNKNOWN: Client = Client(None);

    /// The client at `addr`.
    pub fn from_addr(addr: SocketAddr) -> Client {
        Client::from_ip(addr.ip())
    }

    /// The client with address `ip`.
    pub fn from_ip(ip: IpAddr) -> Client {
        let ip = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let mut seg = v6.segments();
                    seg[4..].fill(0);
                    IpAddr::V6(seg.into())
                }
            },
            v4 => v4,
        };
        Client(Some(ip))
    }
}

struct Line {
    /// One render at a time per client.
    turn: Arc<Semaphore>,
    waiting: AtomicUsize,
}

/// The render slots and the clients' lines.
pub struct RenderGate {
    slots: Arc<Semaphore>,
    size: usize,
    lines: Mutex<HashMap<Client, Arc<Line>>>,
    /// Requests waiting for a turn or a slot, all clients (tests wait on it).
    waiting: AtomicUsize,
}

/// Permission to render, released on drop.
pub struct Ticket<'a> {
    _turn: OwnedSemaphorePermit,
    _slot: OwnedSemaphorePermit,
    _member: Member<'a>,
}

/// Whether a client's line has a length limit for this request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Join {
    /// Refused when the client already has [`MAX_WAITING_PER_CLIENT`] waiting.
    Capped,
    /// Joins the line whatever its length (the caller has nothing else to serve).
    Always,
}

/// Why [`RenderGate::enter`] gave no ticket.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The client already has [`MAX_WAITING_PER_CLIENT`] requests waiting.
    ClientBusy,
    /// The deadline passed first.
    TimedOut,
}

/// A request in its client's line (waiting or rendering); forgets an idle client on
/// drop.
struct Member<'a> {
    gate: &'a RenderGate,
    client: Client,
    line: Arc<Line>,
}

impl Drop for Member<'_> {
    fn drop(&mut self) {
        let mut lines = self.gate.lines.lock().unwrap_or_else(|p| p.into_inner());
        // Ours and the map's: the client has nothing else in flight.
        if Arc::strong_count(&self.line) == 2 {
            lines.remove(&self.client);
        }
    }
}

impl RenderGate {
    /// A gate with `slots` render slots (at least one).
    pub fn new(slots: usize) -> Self {
        let size = slots.max(1);
        RenderGate {
            slots: Arc::new(Semaphore::new(size)),
            size,
            lines: Mutex::new(HashMap::new()),
            waiting: AtomicUsize::new(0),
        }
    }

    /// Number of render slots.
    pub fn slots(&self) -> usize {
        self.size
    }

    /// Requests waiting to render.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Clients with a request in line (tests: nothing is left behind).
    pub fn clients(&self) -> usize {
        self.lines.lock().map(|l| l.len()).unwrap_or(0)
    }

    /// Waits for `client`'s turn and a free slot, at most until `deadline` if given.
    /// With [`Join::Capped`], a client that has [`MAX_WAITING_PER_CLIENT`] requests
    /// waiting is refused at once; with [`Join::Always`] it joins the line anyway.
    ///
    /// # Errors
    /// [`Refused`]: the client has too many requests waiting, or the deadline passed.
    pub async fn enter(
        &self,
        client: Client,
        join: Join,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Ticket<'_>, Refused> {
        let line = {
            let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
            let line = lines.entry(client).or_insert_with(|| {
                Arc::new(Line {
                    turn: Arc::new(Semaphore::new(1)),
                    waiting: AtomicUsize::new(0),
                })
            });
            if join == Join::Capped
                && line.waiting.load(Ordering::Relaxed) >= MAX_WAITING_PER_CLIENT
            {
                return Err(Refused::ClientBusy);
            }
            line.waiting.fetch_add(1, Ordering::Relaxed);
            line.clone()
        };
        let member = Member {
            gate: self,
            client,
            line,
        };
        // Counted as waiting until the wait ends, however it ends (a client that hangs
        // up cancels this future).
        struct Waiting<'a>(&'a AtomicUsize, Arc<Line>);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
                self.1.waiting.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let waiting = Waiting(&self.waiting, member.line.clone());
        let acquire = async {
            let turn = member.line.turn.clone().acquire_owned().await.ok()?;
            let slot = self.slots.clone().acquire_owned().await.ok()?;
            Some((turn, slot))
        };
        let got = match deadline {
            Some(d) => tokio::time::timeout_at(d, acquire).await.ok().flatten(),
            None => acquire.await,
        };
        drop(waiting);
        // (The semaphores are never closed: no permit means the deadline passed.)
        let (turn, slot) = got.ok_or(Refused::TimedOut)?;
        Ok(Ticket {
            _turn: turn,
            _slot: slot,
            _member: member,
        })
    }

    /// Holds every slot until the returned permit is dropped: renders wait meanwhile
    /// (tests pile requests up with it).
    pub async fn hold_all(&self) -> Option<OwnedSemaphorePermit> {
        let n = u32::try_from(self.size).ok()?;
        self.slots.clone().acquire_many_owned(n).await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(n: u8) -> Client {
        Client::from_addr(SocketAddr::from(([10, 0, 0, n], 4000)))
    }

    #[test]
    fn clients_are_ip_addresses_with_ipv6_by_its_64_prefix() {
        let v6 = |s: &str| Client::from_addr(SocketAddr::new(s.parse().expect("ip"), 1));
        let cases = [
            (client(1), client(1), true),
            (client(1), client(2), false),
            (v6("2001:db8::1"), v6("2001:db8::ffff:2"), true),
            (v6("2001:db8::1"), v6("2001:db8:0:1::1"), false),
            (v6("::ffff:10.0.0.1"), client(1), true),
        ];
        for (a, b, same) in cases {
            assert_eq!(a == b, same, "{a:?} {b:?}");
        }
    }

    #[tokio::test]
    async fn a_client_renders_one_at_a_time_and_may_keep_only_a_few_waiting() {
        let gate = Arc::new(RenderGate::new(2));
        let first = gate
            .enter(client(1), Join::Capped, None)
            .await
            .expect("a ticket");
        // The same client's next requests wait for its turn, even with a slot free.
        let mut waiting = Vec::new();
        for _ in 0..MAX_WAITING_PER_CLIENT {
            let g = gate.clone();
            waiting.push(tokio::spawn(async move {
                g.enter(client(1), Join::Capped, None).await.map(|_| ())
            }));
        }
        while gate.waiting() < MAX_WAITING_PER_CLIENT {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            gate.enter(client(1), Join::Capped, None).await.err(),
            Some(Refused::ClientBusy)
        );
        // Another client gets the free slot at once.
        let other = gate.enter(client(2), Join::Capped, None).await;
        assert!(other.is_ok());
        drop(other);
        drop(first);
        for w in waiting {
            assert_eq!(w.await.ok(), Some(Ok(())));
        }
        assert_eq!((gate.waiting(), gate.clients()), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_ends_the_wait_for_a_slot() {
        let gate = RenderGate::new(1);
        let held = gate.hold_all().await;
        assert!(held.is_some());
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        assert_eq!(
            gate.enter(client(1), Join::Capped, Some(deadline))
                .await
                .err(),
            Some(Refused::TimedOut)
        );
        drop(held);
        assert!(gate
            .enter(client(1), Join::Capped, Some(deadline))
            .await
            .is_ok());
        assert_eq!(gate.clients(), 0);
    }
}
