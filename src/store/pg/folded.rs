//! The folded copies of searched text columns (`*_folded`, migration 11): what the
//! store writes beside each searched text, and the filling of rows that lack them.
//!
//! Invariant: a row's folded column is NULL or [`fold`] of its source column, written
//! by the same statement; the searches match only folded columns, so PostgreSQL finds
//! what sled finds. SQL cannot fold as bookcal does, so rows that predate the migration
//! (or that an older bookcal wrote during a rolling update) are folded here, by
//! bookcal: after the migrations at every start, and every
//! [`crate::store::REFOLD_EVERY`] while it runs ([`crate::store::Store::keep_folded`]),
//! through the partial indexes of unfolded rows, which an up-to-date database keeps
//! empty. An older bookcal that changes a searched text leaves its folding as it was;
//! migration 13's triggers then set the folding to NULL (unless the change is one of
//! ASCII letter case alone, which cannot change it), so the row is never found under
//! a text it no longer has, and is found under its new one once folded here.

use sqlx::PgPool;
use uuid::Uuid;

use super::super::StoreError;
use crate::domain::search::fold;

/// Rows folded per statement.
const BATCH: i64 = 1_000;

/// Folds every row whose folded columns are NULL (see the module's invariant).
///
/// Each batch writes a row's folding only if the row still lacks it and its source text
/// is still the one that was folded (a concurrent writer's newer text keeps its own
/// folding), so replicas starting together may run this side by side: the second to
/// reach a batch waits for the first's row locks, then finds nothing left to write.
///
/// # Errors
/// The database refuses.
pub async fn fill(pool: &PgPool) -> Result<(), StoreError> {
    let mut after = Uuid::nil();
    loop {
        let rows: Vec<(Uuid, String, String, String)> = sqlx::query_as(
            "SELECT id, name, slug, backend_id FROM resources
             WHERE (name_folded IS NULL OR slug_folded IS NULL OR backend_id_folded IS NULL)
               AND id > $1
             ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(BATCH)
        .fetch_all(pool)
        .await?;
        let Some(last) = rows.last().map(|r| r.0) else {
            break;
        };
        let mut cols: [Vec<String>; 6] = Default::default();
        let mut ids = Vec::with_capacity(rows.len());
        for (id, name, slug, backend_id) in rows {
            ids.push(id);
            cols[3].push(fold(&name));
            cols[4].push(fold(&slug));
            cols[5].push(fold(&backend_id));
            cols[0].push(name);
            cols[1].push(slug);
            cols[2].push(backend_id);
        }
        sqlx::query(
            "UPDATE resources r SET name_folded = u.nf, slug_folded = u.sf,
                 backend_id_folded = u.bf
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::text[]) AS u(id, name, slug, backend_id, nf, sf, bf)
             WHERE r.id = u.id AND r.name = u.name AND r.slug = u.slug
               AND r.backend_id = u.backend_id
               AND (r.name_folded IS NULL OR r.slug_folded IS NULL
                    OR r.backend_id_folded IS NULL)",
        )
        .bind(&ids)
        .bind(&cols[0])
        .bind(&cols[1])
        .bind(&cols[2])
        .bind(&cols[3])
        .bind(&cols[4])
        .bind(&cols[5])
        .execute(pool)
        .await?;
        after = last;
    }
    for table in ["projects", "offerings"] {
        fill_names(pool, table).await?;
    }
    // Orders copy their resource's folding (an order whose resource is not written
    // yet gets it with the resource).
    sqlx::query(
        "UPDATE orders o SET resource_name_folded = r.name_folded FROM resources r
         WHERE o.resource_name_folded IS NULL AND r.id = o.resource
           AND r.name_folded IS NOT NULL",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Folds the `name` of a table's rows whose `name_folded` is NULL.
async fn fill_names(pool: &PgPool, table: &str) -> Result<(), StoreError> {
    let mut after = Uuid::nil();
    loop {
        let rows: Vec<(Uuid, String)> = sqlx::query_as(&format!(
            "SELECT id, name FROM {table} WHERE name_folded IS NULL AND id > $1
             ORDER BY id LIMIT $2"
        ))
        .bind(after)
        .bind(BATCH)
        .fetch_all(pool)
        .await?;
        let Some(last) = rows.last().map(|r| r.0) else {
            break;
        };
        let folded: Vec<String> = rows.iter().map(|r| fold(&r.1)).collect();
        let (ids, names): (Vec<Uuid>, Vec<String>) = rows.into_iter().unzip();
        sqlx::query(&format!(
            "UPDATE {table} t SET name_folded = u.folded
             FROM UNNEST($1::uuid[], $2::text[], $3::text[]) AS u(id, name, folded)
             WHERE t.id = u.id AND t.name = u.name AND t.name_folded IS NULL"
        ))
        .bind(&ids)
        .bind(&names)
        .bind(&folded)
        .execute(pool)
        .await?;
        after = last;
    }
    Ok(())
}
