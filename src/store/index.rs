//! Compact secondary-index records: what the catalog needs of each booking resource
//! and order, in a small binary layout (`idx_resources`, `idx_orders` trees).
//!
//! They are written in the same transaction as the full records, and the catalog is
//! rebuilt from them alone when the store opens. Scanning the full JSON records of a
//! large store made sled hold on to memory proportional to their size (about 120 MB
//! for 100,000 bookings, see BENCHMARKS.md); the index is a tenth of that.
//!
//! Layout (little endian): a version byte (1), then the fields in order; ids are 16
//! bytes, strings a u32 length and UTF-8 bytes, instants i64 microseconds since the
//! epoch, enums one byte, interval lists a u32 count and pairs of instants.

use chrono::{DateTime, Utc};

use crate::domain::{Id, Interval, Order, OrderState, OrderType, Resource, ResourceState};

/// The catalog's view of a booking resource.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceIdx {
    pub id: Id,
    pub name: String,
    pub slug: String,
    pub backend_id: String,
    pub offering: Id,
    pub project: Id,
    pub state: ResourceState,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub created_by: Id,
    pub slots: Vec<Interval>,
}

impl ResourceIdx {
    pub fn of(r: &Resource) -> Self {
        ResourceIdx {
            id: r.id,
            name: r.name.clone(),
            slug: r.slug.clone(),
            backend_id: r.backend_id.clone(),
            offering: r.offering,
            project: r.project,
            state: r.state,
            created: r.created,
            modified: r.modified,
            created_by: r.created_by,
            slots: r.slots.iter().map(|s| s.interval()).collect(),
        }
    }
}

/// The catalog's view of an order.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderIdx {
    pub id: Id,
    pub offering: Id,
    pub project: Id,
    pub resource: Id,
    pub state: OrderState,
    pub kind: OrderType,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub created_by: Id,
    pub requested: Vec<Interval>,
}

impl OrderIdx {
    pub fn of(o: &Order) -> Self {
        OrderIdx {
            id: o.id,
            offering: o.offering,
            project: o.project,
            resource: o.resource,
            state: o.state,
            kind: o.kind,
            created: o.created,
            modified: o.modified,
            created_by: o.created_by,
            requested: o.requested(),
        }
    }
}

const VERSION: u8 = 1;
const KINDS: [OrderType; 4] = [
    OrderType::Create,
    OrderType::Update,
    OrderType::Terminate,
    OrderType::Restore,
];

struct W(Vec<u8>);

impl W {
    fn id(&mut self, id: Id) {
        self.0.extend_from_slice(id.as_bytes());
    }
    fn str(&mut self, s: &str) {
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn time(&mut self, t: DateTime<Utc>) {
        self.0
            .extend_from_slice(&t.timestamp_micros().to_le_bytes());
    }
    fn intervals(&mut self, v: &[Interval]) {
        self.0.extend_from_slice(&(v.len() as u32).to_le_bytes());
        for i in v {
            self.time(i.start);
            self.time(i.end);
        }
    }
}

struct R<'a>(&'a [u8]);

impl R<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }
    fn id(&mut self) -> Option<Id> {
        self.take(16).and_then(Id::from_slice)
    }
    fn str(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        self.take(n)
            .and_then(|b| String::from_utf8(b.to_vec()).ok())
    }
    fn time(&mut self) -> Option<DateTime<Utc>> {
        let micros = self
            .take(8)
            .and_then(|b| b.try_into().ok())
            .map(i64::from_le_bytes)?;
        DateTime::from_timestamp_micros(micros)
    }
    fn intervals(&mut self) -> Option<Vec<Interval>> {
        let n = self.u32()? as usize;
        (0..n)
            .map(|_| Some(Interval::new(self.time()?, self.time()?)))
            .collect()
    }
}

pub fn encode_resource(r: &ResourceIdx) -> Vec<u8> {
    let mut w = W(Vec::with_capacity(128 + r.name.len()));
    w.0.push(VERSION);
    w.id(r.id);
    w.str(&r.name);
    w.str(&r.slug);
    w.str(&r.backend_id);
    w.id(r.offering);
    w.id(r.project);
    w.0.push(
        ResourceState::ALL
            .iter()
            .position(|s| *s == r.state)
            .unwrap_or(0) as u8,
    );
    w.time(r.created);
    w.time(r.modified);
    w.id(r.created_by);
    w.intervals(&r.slots);
    w.0
}

pub fn decode_resource(b: &[u8]) -> Option<ResourceIdx> {
    let mut r = R(b);
    if r.u8()? != VERSION {
        return None;
    }
    Some(ResourceIdx {
        id: r.id()?,
        name: r.str()?,
        slug: r.str()?,
        backend_id: r.str()?,
        offering: r.id()?,
        project: r.id()?,
        state: *ResourceState::ALL.get(usize::from(r.u8()?))?,
        created: r.time()?,
        modified: r.time()?,
        created_by: r.id()?,
        slots: r.intervals()?,
    })
}

pub fn encode_order(o: &OrderIdx) -> Vec<u8> {
    let mut w = W(Vec::with_capacity(128));
    w.0.push(VERSION);
    w.id(o.id);
    w.id(o.offering);
    w.id(o.project);
    w.id(o.resource);
    w.0.push(
        OrderState::ALL
            .iter()
            .position(|s| *s == o.state)
            .unwrap_or(0) as u8,
    );
    w.0.push(KINDS.iter().position(|k| *k == o.kind).unwrap_or(0) as u8);
    w.time(o.created);
    w.time(o.modified);
    w.id(o.created_by);
    w.intervals(&o.requested);
    w.0
}

pub fn decode_order(b: &[u8]) -> Option<OrderIdx> {
    let mut r = R(b);
    if r.u8()? != VERSION {
        return None;
    }
    Some(OrderIdx {
        id: r.id()?,
        offering: r.id()?,
        project: r.id()?,
        resource: r.id()?,
        state: *OrderState::ALL.get(usize::from(r.u8()?))?,
        kind: *KINDS.get(usize::from(r.u8()?))?,
        created: r.time()?,
        modified: r.time()?,
        created_by: r.id()?,
        requested: r.intervals()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, h, 0, 0)
            .single()
            .expect("t")
            + chrono::Duration::microseconds(7)
    }

    #[test]
    fn index_records_round_trip_and_refuse_damage() {
        let r = ResourceIdx {
            id: Id::new_v4(),
            name: "Zürich 東京 🎉".into(),
            slug: "z".into(),
            backend_id: String::new(),
            offering: Id::new_v4(),
            project: Id::new_v4(),
            state: ResourceState::Terminated,
            created: t(1),
            modified: t(2),
            created_by: Id::new_v4(),
            slots: vec![Interval::new(t(3), t(4)), Interval::new(t(5), t(6))],
        };
        let b = encode_resource(&r);
        assert_eq!(decode_resource(&b), Some(r));
        for cut in [0, 1, 17, b.len() - 1] {
            assert_eq!(decode_resource(&b[..cut]), None, "cut at {cut}");
        }
        let o = OrderIdx {
            id: Id::new_v4(),
            offering: Id::new_v4(),
            project: Id::new_v4(),
            resource: Id::new_v4(),
            state: OrderState::PendingStartDate,
            kind: OrderType::Restore,
            created: t(1),
            modified: t(2),
            created_by: Id::new_v4(),
            requested: vec![Interval::new(t(3), t(4))],
        };
        assert_eq!(decode_order(&encode_order(&o)), Some(o));
        let mut bad = encode_order(&OrderIdx {
            requested: vec![],
            ..OrderIdx::of_test()
        });
        bad[0] = 9;
        assert_eq!(decode_order(&bad), None, "unknown versions are refused");
    }

    impl OrderIdx {
        fn of_test() -> Self {
            OrderIdx {
                id: Id::default(),
                offering: Id::default(),
                project: Id::default(),
                resource: Id::default(),
                state: OrderState::Done,
                kind: OrderType::Create,
                created: t(1),
                modified: t(1),
                created_by: Id::default(),
                requested: vec![],
            }
        }
    }
}
