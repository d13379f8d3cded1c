-- Indexes for the list orders and text searches that scanned or sorted whole tables
-- (EXPLAIN on 100,000 booking resources; BENCHMARKS.md, "Store engines at 100,000
-- booking resources").
--
-- Ordering by first slot (`o=schedules` / `o=-schedules`), over everything and per
-- offering: the index's order is the list's whole ORDER BY (first slot start, no slot
-- first ascending and last descending, then name and id ascending), so a page is the
-- first rows of an index walk instead of a sort of every row.
CREATE INDEX resources_first_start ON resources (first_start NULLS FIRST, name, id);
CREATE INDEX resources_first_start_desc ON resources (first_start DESC NULLS LAST, name, id);
CREATE INDEX resources_offering_first_start
    ON resources (offering, first_start NULLS FIRST, name, id);
CREATE INDEX resources_offering_first_start_desc
    ON resources (offering, first_start DESC NULLS LAST, name, id);

-- An offering's resources in one state by name (`offering_uuid=..&state=OK`): the list
-- reads a page's ids first, so a deep page (`page=20`) skips entries of this index
-- (an index-only scan) instead of fetching every skipped row.
CREATE INDEX resources_offering_state ON resources (offering, state, name, id);

-- Resources newest first (`o=-created`), ties by name and id ascending. (Orders
-- newest first break ties by id descending, as on sled: a backward walk of
-- `orders_created`.)
CREATE INDEX resources_created_desc ON resources (created DESC, name, id);

-- The name of an order's booking resource, kept by the store's writes (an order's
-- write reads it from its resource, a resource's write passes its name on to its
-- orders), so the orders' text search (`query=`, `resource_name=`) is a trigram index
-- scan of the orders themselves rather than a probe into resources for every order.
ALTER TABLE orders ADD COLUMN resource_name text COLLATE "C";
UPDATE orders o SET resource_name = r.name FROM resources r WHERE r.id = o.resource;
CREATE INDEX orders_resource_name_trgm ON orders USING gin (lower(resource_name) gin_trgm_ops);
