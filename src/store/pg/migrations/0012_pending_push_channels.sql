-- bookcal on PostgreSQL, schema version 12: the id of the channel an offering's push
-- state is opening (recorded before Google's `events.watch`, whose first `sync`
-- delivery may come before its answer), derived from the record like `channel_id`
-- for the webhook's lookup of a delivery.
ALTER TABLE push_channels ADD COLUMN pending_id text UNIQUE;
