//! Feed tokens and the feeds' slot-sequence map: versioned JSON in the `feed_tokens`
//! tree, in two key spaces.
//!
//! - `t` ++ SHA-256(secret) (33 bytes) -> [`FeedToken`]. The secret itself is never
//!   stored: a lookup hashes the presented secret and reads that key, then compares the
//!   stored hash with the computed one in constant time.
//! - `s` ++ slot backend id -> [`SlotSequence`]: how many times a slot's time changed,
//!   with the time it changed to. RFC 5545 section 3.8.7.4 wants a feed's `SEQUENCE` to
//!   rise when a slot's time changes, and the booking records keep no history, so the
//!   write path records each change in the same transaction as the booking
//!   ([`Store::sequence_writes`]); feeds only read it ([`Store::slot_sequences`]). A
//!   slot never moved has no record (sequence 0).
//!
//! Token writes touch no [`Scope`](super::Scope): nothing a feed caches depends on a
//! token record (tokens are checked on every request). Sequence records are written
//! with their resource, which touches the feeds showing it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::tree::Tree;
use super::{decode, encode, Change, MutateError, Store, StoreError};
use crate::domain::{Id, Resource};

const TOKEN_PREFIX: u8 = b't';
pub(super) const SEQUENCE_PREFIX: u8 = b's';

/// What a feed token opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FeedScope {
    /// The owner feed of an offering (bookings with details).
    Offering(Id),
    /// A user's own bookings across offerings.
    User(Id),
}

/// One feed token (without its secret).
#[derive(Clone, Debug, PartialEq)]
pub struct FeedToken {
    pub uuid: Id,
    /// The owner's label ("Thunderbird at the front desk").
    pub name: String,
    pub scope: FeedScope,
    pub created: DateTime<Utc>,
    pub created_by: Id,
    /// Last feed request with this token, to the minute (see [`Store::touch_feed_token`]).
    pub last_used: Option<DateTime<Utc>>,
    /// SHA-256 of the secret; the record's key holds it too.
    pub hash: [u8; 32],
}

/// What a feed last published for a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotSequence {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub sequence: u32,
}

/// The stored layout of a feed token (field names as the first layout wrote them).
#[derive(Serialize, Deserialize)]
struct FeedTokenV1 {
    uuid: Id,
    name: String,
    scope: FeedScopeV1,
    created: DateTime<Utc>,
    created_by: Id,
    last_used: Option<DateTime<Utc>>,
    #[serde(with = "hex_bytes")]
    hash: [u8; 32],
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
enum FeedScopeV1 {
    Offering(Id),
    User(Id),
}

impl From<&FeedToken> for FeedTokenV1 {
    fn from(t: &FeedToken) -> Self {
        FeedTokenV1 {
            uuid: t.uuid,
            name: t.name.clone(),
            scope: match t.scope {
                FeedScope::Offering(id) => FeedScopeV1::Offering(id),
                FeedScope::User(id) => FeedScopeV1::User(id),
            },
            created: t.created,
            created_by: t.created_by,
            last_used: t.last_used,
            hash: t.hash,
        }
    }
}

impl From<FeedTokenV1> for FeedToken {
    fn from(t: FeedTokenV1) -> Self {
        FeedToken {
            uuid: t.uuid,
            name: t.name,
            scope: match t.scope {
                FeedScopeV1::Offering(id) => FeedScope::Offering(id),
                FeedScopeV1::User(id) => FeedScope::User(id),
            },
            created: t.created,
            created_by: t.created_by,
            last_used: t.last_used,
            hash: t.hash,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
enum FeedTokenRecord {
    #[serde(rename = "1")]
    V1(FeedTokenV1),
}

#[derive(Serialize, Deserialize)]
struct SlotSequenceV1 {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    sequence: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
enum SlotSequenceRecord {
    #[serde(rename = "1")]
    V1(SlotSequenceV1),
}

pub(super) fn encode_token(t: &FeedToken) -> Result<Vec<u8>, StoreError> {
    encode(&FeedTokenRecord::V1(FeedTokenV1::from(t)))
}

pub(super) fn encode_sequence(s: &SlotSequence) -> Result<Vec<u8>, StoreError> {
    encode(&SlotSequenceRecord::V1(SlotSequenceV1 {
        start: s.start,
        end: s.end,
        sequence: s.sequence,
    }))
}

pub(super) fn decode_sequence(v: &[u8]) -> Result<SlotSequence, StoreError> {
    decode::<SlotSequenceRecord>("feed_tokens", v).map(|SlotSequenceRecord::V1(s)| SlotSequence {
        start: s.start,
        end: s.end,
        sequence: s.sequence,
    })
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let v = hex::decode(&s).map_err(serde::de::Error::custom)?;
        v.try_into()
            .map_err(|_| serde::de::Error::custom("expected 32 bytes"))
    }
}

/// SHA-256 of a feed token secret: the token's key.
pub fn feed_token_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

pub(super) fn token_key(hash: &[u8; 32]) -> Vec<u8> {
    let mut k = Vec::with_capacity(33);
    k.push(TOKEN_PREFIX);
    k.extend_from_slice(hash);
    k
}

pub(super) fn sequence_key(backend_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(backend_id.len() + 1);
    k.push(SEQUENCE_PREFIX);
    k.extend_from_slice(backend_id.as_bytes());
    k
}

pub(super) fn decode_token(v: &[u8]) -> Result<FeedToken, StoreError> {
    decode::<FeedTokenRecord>("feed_tokens", v).map(|FeedTokenRecord::V1(t)| FeedToken::from(t))
}

fn flatten(e: MutateError<StoreError>) -> StoreError {
    match e {
        MutateError::Refused(e) | MutateError::Store(e) => e,
    }
}

/// How often the last-use time of a token is written at most.
pub const LAST_USED_RESOLUTION: chrono::Duration = chrono::Duration::minutes(1);

impl super::sled_engine::Sled {
    /// The token whose secret this is, if it exists (revoked tokens do not).
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub(crate) fn feed_token(&self, hash: &[u8; 32]) -> Result<Option<FeedToken>, StoreError> {
        self.raw_get(Tree::FeedTokens, &token_key(hash))?
            .map(|v| decode_token(&v))
            .transpose()
    }

    /// The tokens of one scope, oldest first.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub fn feed_tokens(&self, scope: FeedScope) -> Result<Vec<FeedToken>, StoreError> {
        let mut out = Vec::new();
        for (_, v) in self.raw_scan(Tree::FeedTokens, &[TOKEN_PREFIX])? {
            let t = decode_token(&v)?;
            if t.scope == scope {
                out.push(t);
            }
        }
        out.sort_by_key(|t| (t.created, t.uuid));
        Ok(out)
    }

    /// Records a use of a token at `now`, unless a use within [`LAST_USED_RESOLUTION`]
    /// is already recorded or the token was revoked meanwhile (checked under the write
    /// lock, so a revocation is never undone). Returns whether it wrote.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub fn touch_feed_token(
        &self,
        hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.mutate(|_| {
            let Some(v) = self.raw_get(Tree::FeedTokens, &token_key(hash))? else {
                return Ok((Vec::new(), false));
            };
            let mut t = decode_token(&v)?;
            if t.last_used.is_some_and(|u| now - u < LAST_USED_RESOLUTION) {
                return Ok((Vec::new(), false));
            }
            t.last_used = Some(now);
            Ok((vec![Change::FeedToken(t)], true))
        })
        .map_err(flatten)
    }

    /// The `SEQUENCE` of each slot `(backend_id, start, end)`: how many times its time
    /// changed, as recorded with the booking (see [`Store::sequence_writes`]). A read:
    /// nothing is written. A record whose time differs from the slot's (left by an
    /// older version, which recorded sequences when feeds were rendered) counts as one
    /// change more.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub fn slot_sequences(
        &self,
        slots: &[(&str, DateTime<Utc>, DateTime<Utc>)],
    ) -> Result<Vec<u32>, StoreError> {
        slots
            .iter()
            .map(|(id, start, end)| Ok(derived_sequence(self.read_sequence(id)?, *start, *end)))
            .collect()
    }

    fn read_sequence(&self, backend_id: &str) -> Result<Option<SlotSequence>, StoreError> {
        self.raw_get(Tree::FeedTokens, &sequence_key(backend_id))?
            .map(|v| decode_sequence(&v))
            .transpose()
    }

    /// The sequence records to write with a changed booking resource: for each slot
    /// whose time differs from the stored resource's, one change more than before.
    /// Called by the write path under the write lock; new resources and resources
    /// whose slot times are unchanged (the common case: the catalog tells) cost no read.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub(crate) fn sequence_writes(
        &self,
        cat: &super::Catalog,
        r: &Resource,
    ) -> Result<Vec<super::RawWrite>, StoreError> {
        let Some(old) = cat.resources.get(&r.id) else {
            return Ok(Vec::new());
        };
        let same = old.slots.len() == r.slots.len()
            && old
                .slots
                .iter()
                .zip(&r.slots)
                .all(|(o, n)| o.start == n.start && o.end == n.end);
        if same {
            return Ok(Vec::new());
        }
        let Some(stored) = self.resource(r.id)? else {
            return Ok(Vec::new());
        };
        sequence_updates(&stored, r, |id| self.read_sequence(id))?
            .into_iter()
            .map(|(backend_id, rec)| {
                Ok((
                    Tree::FeedTokens,
                    sequence_key(&backend_id),
                    Some(encode_sequence(&rec)?),
                ))
            })
            .collect()
    }
}

/// The sequence records to write when `stored` becomes `new`: for each slot whose time
/// changed, one change more than `recorded` says (by backend id).
///
/// # Errors
/// Whatever `recorded` fails with.
pub(super) fn sequence_updates(
    stored: &Resource,
    new: &Resource,
    mut recorded: impl FnMut(&str) -> Result<Option<SlotSequence>, StoreError>,
) -> Result<Vec<(String, SlotSequence)>, StoreError> {
    let mut out = Vec::new();
    for slot in &new.slots {
        let Some(before) = stored
            .slots
            .iter()
            .find(|s| s.backend_id == slot.backend_id)
        else {
            continue;
        };
        if before.start == slot.start && before.end == slot.end {
            continue;
        }
        let previous = derived_sequence(recorded(&slot.backend_id)?, before.start, before.end);
        out.push((
            slot.backend_id.clone(),
            SlotSequence {
                start: slot.start,
                end: slot.end,
                sequence: previous.saturating_add(1),
            },
        ));
    }
    Ok(out)
}

/// The sequence of a slot at `start..end` given its record.
pub(super) fn derived_sequence(
    rec: Option<SlotSequence>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> u32 {
    match rec {
        None => 0,
        Some(s) if s.start == start && s.end == end => s.sequence,
        Some(s) => s.sequence.saturating_add(1),
    }
}

impl Store {
    /// The change that writes (creates or replaces) a token record.
    ///
    /// # Errors
    /// The record cannot be encoded.
    pub fn feed_token_change(token: &FeedToken) -> Result<Change, StoreError> {
        Ok(Change::FeedToken(token.clone()))
    }

    /// The change that revokes (deletes) a token.
    pub fn feed_token_delete_change(token: &FeedToken) -> Change {
        Change::RevokeFeedToken(token.hash)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Scope;
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, h, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn token(store_scope: FeedScope, secret: &str) -> FeedToken {
        FeedToken {
            uuid: Id::new_v4(),
            name: "desk".into(),
            scope: store_scope,
            created: t(8),
            created_by: Id::new_v4(),
            last_used: None,
            hash: feed_token_hash(secret),
        }
    }

    #[tokio::test]
    async fn a_token_is_found_by_its_secret_only_until_it_is_revoked() -> Result<(), StoreError> {
        let store = Store::temporary()?;
        let scope = FeedScope::User(Id::new_v4());
        let tok = token(scope, "secret-a");
        store.write(vec![Store::feed_token_change(&tok)?]).await?;
        assert_eq!(
            store.feed_token_by_secret("secret-a").await?,
            Some(tok.clone())
        );
        assert_eq!(store.feed_token_by_secret("secret-b").await?, None);
        assert_eq!(store.feed_tokens(scope).await?, vec![tok.clone()]);
        assert_eq!(
            store.feed_tokens(FeedScope::User(tok.created_by)).await?,
            vec![]
        );
        store
            .write(vec![Store::feed_token_delete_change(&tok)])
            .await?;
        assert_eq!(store.feed_token_by_secret("secret-a").await?, None);
        assert!(!store.touch_feed_token(&tok.hash, t(9)).await?);
        assert_eq!(store.feed_token_by_secret("secret-a").await?, None);
        Ok(())
    }

    #[tokio::test]
    async fn last_use_is_written_at_most_once_a_minute_and_touches_no_feed(
    ) -> Result<(), StoreError> {
        let store = Store::temporary()?;
        let user = Id::new_v4();
        let tok = token(FeedScope::User(user), "s");
        store.write(vec![Store::feed_token_change(&tok)?]).await?;
        let scopes = [Scope::BookingsBy(user), Scope::Directory];
        let version = store.version(&scopes);
        let cases = [
            (t(9), true),
            (t(9) + chrono::Duration::seconds(59), false),
            (t(9) + chrono::Duration::seconds(60), true),
        ];
        for (now, wrote) in cases {
            assert_eq!(
                store.touch_feed_token(&tok.hash, now).await?,
                wrote,
                "{now}"
            );
        }
        let stored = store.feed_token_by_secret("s").await?.map(|t| t.last_used);
        assert_eq!(stored, Some(Some(t(9) + chrono::Duration::seconds(60))));
        assert_eq!(store.version(&scopes), version);
        Ok(())
    }

    #[tokio::test]
    async fn a_slot_sequence_rises_with_each_change_of_its_time_and_is_read_without_writing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), &super::super::StoreOptions::default()).expect("open");
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo.json");
        crate::import::import_file(&store, std::path::Path::new(fixture))
            .await
            .expect("import");
        let id = store
            .sled()
            .expect("sled")
            .read()
            .expect("read")
            .resources
            .values()
            .find(|r| r.slots.len() > 1)
            .map(|r| r.id)
            .expect("a booking with two slots");
        let original = store.resource(id).await.expect("read").expect("resource");
        let (s0, e0) = (original.slots[0].start, original.slots[0].end);
        let h = chrono::Duration::hours;
        // (first slot's new time, its expected sequence); the other slots stay at 0.
        let cases = [
            ((s0, e0), 0),
            ((s0 + h(1), e0 + h(1)), 1),
            ((s0 + h(1), e0 + h(1)), 1),
            ((s0 + h(1), e0 + h(2)), 2),
            ((s0, e0), 3),
        ];
        for ((start, end), want) in cases {
            let mut r = original.clone();
            r.slots[0].start = start;
            r.slots[0].end = end;
            store
                .write(vec![Change::Resource(r.clone())])
                .await
                .expect("write");
            let commits = store.commits();
            let keys: Vec<_> = r
                .slots
                .iter()
                .map(|s| (s.backend_id.as_str(), s.start, s.end))
                .collect();
            let got = store.slot_sequences(&keys).await.expect("read");
            assert_eq!(got[0], want, "{start} - {end}");
            assert!(got[1..].iter().all(|s| *s == 0), "{got:?}");
            assert_eq!(store.commits(), commits, "reading sequences wrote");
        }
    }

    #[test]
    fn a_sequence_recorded_at_another_time_counts_one_change_more() {
        let rec = |h, sequence| {
            Some(SlotSequence {
                start: t(h),
                end: t(h + 1),
                sequence,
            })
        };
        // (record, slot start hour, sequence)
        let cases = [
            (None, 10, 0),
            (rec(10, 0), 10, 0),
            (rec(10, 2), 10, 2),
            (rec(10, 2), 12, 3),
        ];
        for (r, h, want) in cases {
            assert_eq!(derived_sequence(r, t(h), t(h + 1)), want, "{r:?} {h}");
        }
    }
}
