-- bookcal on PostgreSQL, schema version 11: the searched texts, folded.
--
-- Text searches (`query=`, `name=`, `project_name=`, `resource_name=`) compare the
-- needle folded by bookcal (`domain::search::fold`: Unicode's lowercase mapping) with
-- these columns, holding the same folding of their source column, by `LIKE` under
-- byte comparison: the matches the sled engine finds, non-ASCII text included. (Before
-- this, searches compared `lower(name)`, which under `COLLATE "C"` lowercases ASCII
-- letters only: `émile` did not find `ÉMILE`.)
--
-- The store writes each folded column in the statement that writes its source. SQL
-- cannot fold exactly as bookcal does, so the rows this migration finds stay NULL here
-- and bookcal folds them itself right after the migrations run (`pg::folded::fill`, at
-- every start, so rows an older bookcal still writes during a rolling update are
-- folded by the next start too); the `*_unfolded` partial indexes find such rows
-- without reading the tables.
ALTER TABLE resources
    ADD COLUMN name_folded text COLLATE "C",
    ADD COLUMN slug_folded text COLLATE "C",
    ADD COLUMN backend_id_folded text COLLATE "C";
ALTER TABLE projects ADD COLUMN name_folded text COLLATE "C";
ALTER TABLE offerings ADD COLUMN name_folded text COLLATE "C";
-- The order's resource's folded name, kept with `resource_name` (see 0010).
ALTER TABLE orders ADD COLUMN resource_name_folded text COLLATE "C";

-- The trigram indexes of the searches move to the folded columns.
DROP INDEX resources_name_trgm, resources_slug_trgm, resources_backend_id_trgm,
    projects_name_trgm, orders_resource_name_trgm;
CREATE INDEX resources_name_trgm ON resources USING gin (name_folded gin_trgm_ops);
CREATE INDEX resources_slug_trgm ON resources USING gin (slug_folded gin_trgm_ops);
CREATE INDEX resources_backend_id_trgm ON resources USING gin (backend_id_folded gin_trgm_ops);
CREATE INDEX projects_name_trgm ON projects USING gin (name_folded gin_trgm_ops);
CREATE INDEX orders_resource_name_trgm ON orders USING gin (resource_name_folded gin_trgm_ops);

-- Rows whose folding is still to be written (empty once bookcal has started).
CREATE INDEX resources_unfolded ON resources (id)
    WHERE name_folded IS NULL OR slug_folded IS NULL OR backend_id_folded IS NULL;
CREATE INDEX projects_unfolded ON projects (id) WHERE name_folded IS NULL;
CREATE INDEX offerings_unfolded ON offerings (id) WHERE name_folded IS NULL;
CREATE INDEX orders_unfolded ON orders (resource) WHERE resource_name_folded IS NULL;
