-- bookcal on PostgreSQL, schema version 13: a searched text renamed by an older
-- bookcal loses its stale folding.
--
-- During a rolling update, a bookcal older than migration 11 still writes rows: it
-- knows nothing of the `*_folded` columns, so renaming a resource (or its slug or
-- backend id), a project or an offering, or passing a resource's new name on to its
-- orders (`orders.resource_name`, migration 10) left the old text's folding in place,
-- and searches found the row under its old name, not its new one, until the row was
-- written again. These triggers set the folding to NULL instead when the text changes
-- and the statement leaves its folding as it was; bookcal folds NULLs at every start
-- and periodically while it runs (`pg::folded::fill`, through the `*_unfolded`
-- partial indexes of migration 11).
--
-- A change in ASCII letter case alone (`lower` under `COLLATE "C"` is the same)
-- cannot change the folding (Unicode lowercase maps those letters as ASCII does and
-- treats both cases alike for every other letter), so it keeps it: bookcal's own
-- rename from `Room` to `ROOM` writes the same folding and is not unfolded.
-- (old text, new text, old folding, new folding): whether the new folding is stale.
CREATE FUNCTION bookcal_refolds(text, text, text, text) RETURNS boolean
    LANGUAGE sql IMMUTABLE AS $$
    SELECT lower($1 COLLATE "C") IS DISTINCT FROM lower($2 COLLATE "C")
        AND $3 IS NOT DISTINCT FROM $4
$$;

CREATE FUNCTION bookcal_unfold_resource() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF bookcal_refolds(OLD.name, NEW.name, OLD.name_folded, NEW.name_folded) THEN
        NEW.name_folded := NULL;
    END IF;
    IF bookcal_refolds(OLD.slug, NEW.slug, OLD.slug_folded, NEW.slug_folded) THEN
        NEW.slug_folded := NULL;
    END IF;
    IF bookcal_refolds(OLD.backend_id, NEW.backend_id, OLD.backend_id_folded,
                       NEW.backend_id_folded) THEN
        NEW.backend_id_folded := NULL;
    END IF;
    RETURN NEW;
END $$;

CREATE FUNCTION bookcal_unfold_name() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF bookcal_refolds(OLD.name, NEW.name, OLD.name_folded, NEW.name_folded) THEN
        NEW.name_folded := NULL;
    END IF;
    RETURN NEW;
END $$;

CREATE FUNCTION bookcal_unfold_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF bookcal_refolds(OLD.resource_name, NEW.resource_name, OLD.resource_name_folded,
                       NEW.resource_name_folded) THEN
        NEW.resource_name_folded := NULL;
    END IF;
    RETURN NEW;
END $$;

-- Only statements that set a source text fire them (the folding's own fill does not).
CREATE TRIGGER resources_unfold BEFORE UPDATE OF name, slug, backend_id ON resources
    FOR EACH ROW EXECUTE FUNCTION bookcal_unfold_resource();
CREATE TRIGGER projects_unfold BEFORE UPDATE OF name ON projects
    FOR EACH ROW EXECUTE FUNCTION bookcal_unfold_name();
CREATE TRIGGER offerings_unfold BEFORE UPDATE OF name ON offerings
    FOR EACH ROW EXECUTE FUNCTION bookcal_unfold_name();
CREATE TRIGGER orders_unfold BEFORE UPDATE OF resource_name ON orders
    FOR EACH ROW EXECUTE FUNCTION bookcal_unfold_order();
