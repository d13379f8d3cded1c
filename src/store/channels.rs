//! Typed access to the push state of each offering (its Google watch channel and
//! the notifications it received). The sled engine keeps it in its channels tree, the
//! PostgreSQL engine in `push_channels` (the same versioned record).

use chrono::{DateTime, Utc};

use super::records::PushRecord;
use super::sled_engine::Sled;
use super::tree::Tree;
use super::{decode, Change, Engine, Store, StoreError};
use crate::domain::push::PushState;
use crate::domain::Id;

impl Sled {
    /// The push state of an offering, if a channel was ever attempted for it.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub fn push_state(&self, offering: Id) -> Result<Option<PushState>, StoreError> {
        self.raw_get(Tree::Channels, offering.as_bytes())?
            .map(|v| decode::<PushRecord>("channels", &v).map(PushState::from))
            .transpose()
    }

    /// Every offering's push state.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub fn push_states(&self) -> Result<Vec<PushState>, StoreError> {
        self.raw_scan(Tree::Channels, &[])?
            .into_iter()
            .map(|(_, v)| decode::<PushRecord>("channels", &v).map(PushState::from))
            .collect()
    }
}

impl Store {
    /// The offering whose current channel is `channel_id` (the webhook's lookup of a
    /// delivery for a channel another process opened).
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn push_offering_by_channel(
        &self,
        channel_id: &str,
    ) -> Result<Option<Id>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => Ok(s
                .push_states()?
                .into_iter()
                .find(|p| p.channel.as_ref().is_some_and(|c| c.id == channel_id))
                .map(|p| p.offering)),
            Engine::Postgres(p) => {
                super::pg::read::push_offering_by_channel(&p.pool, channel_id).await
            }
        }
    }

    /// The time by the clock that push claims are judged by: the database's on
    /// PostgreSQL (shared by every replica, whatever their own clocks say), this
    /// process's on sled.
    ///
    /// # Errors
    /// Storage failure.
    pub async fn push_clock(&self) -> Result<DateTime<Utc>, StoreError> {
        match &self.engine {
            Engine::Sled(_) => Ok(Utc::now()),
            Engine::Postgres(p) => super::pg::read::clock(&p.pool).await,
        }
    }

    /// The push state of an offering.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn push_state(&self, offering: Id) -> Result<Option<PushState>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.push_state(offering),
            Engine::Postgres(p) => super::pg::read::push_state(&p.pool, offering).await,
        }
    }

    /// Every offering's push state.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn push_states(&self) -> Result<Vec<PushState>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.push_states(),
            Engine::Postgres(p) => super::pg::read::push_states(&p.pool).await,
        }
    }

    /// The change that writes an offering's push state (to combine with others).
    pub fn push_change(state: &PushState) -> Change {
        Change::Push(state.offering, Some(state.clone()))
    }

    /// The change that forgets an offering's push state.
    pub fn push_removal(offering: Id) -> Change {
        Change::Push(offering, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::push::Channel;
    use crate::store::StoreOptions;

    #[tokio::test]
    async fn push_states_round_trip_and_can_be_forgotten() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), &StoreOptions::default()).expect("store");
        let offering = Id::new_v4();
        let now = chrono::Utc::now();
        let state = PushState {
            channel: Some(Channel {
                id: "c".into(),
                resource_id: "r".into(),
                calendar_id: "cal".into(),
                token_hash: "h".into(),
                address: "https://x.example/google/notifications".into(),
                created: now,
                expiration: now,
                last_message: 7,
            }),
            received: 2,
            ..PushState::new(offering)
        };
        store
            .write(vec![Store::push_change(&state)])
            .await
            .expect("write");
        assert_eq!(
            store.push_state(offering).await.expect("read"),
            Some(state.clone())
        );
        assert_eq!(store.push_states().await.expect("scan"), vec![state]);
        store
            .write(vec![Store::push_removal(offering)])
            .await
            .expect("remove");
        assert_eq!(store.push_state(offering).await.expect("read"), None);
    }
}
