//! Every flow version a conversation may be pinned to: the flow file's text, so a pinned
//! version is rebuilt after a restart even when its file has changed since.
//!
//! Key: `<flow id> 0x00 <version>`. Value: the file's text (UTF-8).

use super::keys::Pair;
use super::table::Table;
use super::{Result, Store, TableId};

/// The flow-versions table.
#[derive(Debug, Clone)]
pub struct FlowVersions {
    table: Table<Pair, String>,
}

impl FlowVersions {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::FlowVersions),
        }
    }

    /// The text of version `version` of flow `id`.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn get(&self, id: &str, version: &str) -> Result<Option<String>> {
        self.table.get(&Pair(id.to_owned(), version.to_owned()))
    }

    /// Stores the text of version `version` of flow `id`.
    ///
    /// # Errors
    ///
    /// When the store cannot be written.
    pub fn insert(&self, id: &str, version: &str, source: &str) -> Result<()> {
        self.table
            .insert(&Pair(id.to_owned(), version.to_owned()), &source.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_of_one_flow_are_kept_apart() {
        let store = Store::temporary().unwrap();
        let versions = FlowVersions::new(&store);
        versions.insert("offer", "v1", "id = \"offer\"").unwrap();
        versions
            .insert("offer", "v2", "id = \"offer\" # edited")
            .unwrap();
        assert_eq!(
            versions.get("offer", "v1").unwrap().as_deref(),
            Some("id = \"offer\"")
        );
        assert_eq!(versions.get("offer", "v3").unwrap(), None);
        assert_eq!(versions.get("offe", "rv1").unwrap(), None);
    }
}
