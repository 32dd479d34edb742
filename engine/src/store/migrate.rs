//! Migration from layout 1 (one sled tree per table, the same key layouts) to layout 2 (one
//! tree, a table byte in front of each key).
//!
//! Rows are copied, flushed, and only then are the old trees dropped, so a crash at any point
//! leaves either the old trees or a complete copy: opening again finishes the job.

use super::table::TableId;
use super::{Result, StoreError};

/// Rows copied per batch: bounds the memory a migration holds.
const ROWS_PER_BATCH: usize = 10_000;

/// Copies every layout-1 tree of `db` into `tree` and drops it. A new store has none.
pub(super) fn from_tree_per_table(db: &sled::Db, tree: &sled::Tree) -> Result<()> {
    let names = db.tree_names();
    let old: Vec<TableId> = TableId::ALL
        .into_iter()
        .filter(|id| {
            names
                .iter()
                .any(|name| name.as_ref() == id.name().as_bytes())
        })
        .collect();
    if old.is_empty() {
        return Ok(());
    }
    for &id in &old {
        copy(db, tree, id)?;
    }
    db.flush().map_err(StoreError::Flush)?;
    for &id in &old {
        db.drop_tree(id.name()).map_err(|source| io(id, source))?;
    }
    tracing::info!(tables = old.len(), "store migrated to layout 2 (one tree)");
    Ok(())
}

fn copy(db: &sled::Db, tree: &sled::Tree, id: TableId) -> Result<()> {
    let source = db.open_tree(id.name()).map_err(|error| io(id, error))?;
    let mut batch = sled::Batch::default();
    let mut pending = 0;
    for row in &source {
        let (key, value) = row.map_err(|error| io(id, error))?;
        let mut full = Vec::with_capacity(key.len() + 1);
        full.push(id as u8);
        full.extend_from_slice(&key);
        batch.insert(full, value);
        pending += 1;
        if pending == ROWS_PER_BATCH {
            tree.apply_batch(std::mem::take(&mut batch))
                .map_err(|error| io(id, error))?;
            pending = 0;
        }
    }
    tree.apply_batch(batch).map_err(|error| io(id, error))
}

fn io(id: TableId, source: sled::Error) -> StoreError {
    StoreError::Io {
        table: id.name(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use super::super::conversations::ConversationKey;

    #[test]
    fn a_layout_1_store_opens_with_its_rows_in_their_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let db = sled::open(&path).unwrap();
            let conversation =
                super::super::conversations::Conversation::new("+15550001000", "+12125550100", 1);
            db.open_tree("conversations")
                .unwrap()
                .insert(
                    b"+15550001000\0+12125550100",
                    super::super::codec::encode(&conversation).unwrap(),
                )
                .unwrap();
            db.open_tree("suppressions")
                .unwrap()
                .insert(b"+12125550199", b"21610".as_slice())
                .unwrap();
            db.flush().unwrap();
        }
        let store = Store::open(&path).unwrap();
        let tables = store.tables();
        let key = ConversationKey::new("+15550001000", "+12125550100");
        assert_eq!(
            tables.conversations.get(&key).unwrap().unwrap().contact,
            "+12125550100"
        );
        assert!(tables.suppressions.contains("+12125550199").unwrap());
        drop((tables, store));
        // The old trees are gone, and opening again changes nothing.
        let store = Store::open(&path).unwrap();
        assert!(store.tables().conversations.get(&key).unwrap().is_some());
    }
}
