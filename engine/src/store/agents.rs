//! The people who answer handed-off conversations: one row per agent.
//!
//! Key: the agent's name. Value: [`AgentRecord`] (the sign-in secret only as its argon2 hash).

use serde::{Deserialize, Serialize};

use super::codec::json_value;
use super::table::Table;
use super::{Result, Store, TableId};

/// What an agent may do beyond answering: a supervisor also assigns to others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Answers the conversations of their queues.
    Agent,
    /// An agent who can also assign conversations to others.
    Supervisor,
}

/// Whether an agent takes new conversations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Takes new conversations.
    Available,
    /// Signed in, takes none for now.
    Busy,
    /// Not signed in.
    #[default]
    Offline,
}

/// One agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRecord {
    /// The agent's name, unique.
    pub name: String,
    /// The queues the agent serves.
    pub queues: Vec<String>,
    /// Agent or supervisor.
    pub role: Role,
    /// Available, busy or offline.
    pub presence: Presence,
    /// A disabled agent's secret and sessions are refused.
    pub disabled: bool,
    /// The sign-in secret's argon2 hash, in PHC form.
    pub secret_hash: String,
    /// When the agent was added, milliseconds since the Unix epoch.
    pub created_ms: i64,
}

json_value!(AgentRecord);

/// The agents table.
#[derive(Debug, Clone)]
pub struct AgentsTable {
    table: Table<String, AgentRecord>,
}

impl AgentsTable {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::Agents),
        }
    }

    /// The agent called `name`.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn get(&self, name: &str) -> Result<Option<AgentRecord>> {
        self.table.get(&name.to_owned())
    }

    /// Adds `agent` unless an agent of that name exists; whether it was added.
    ///
    /// # Errors
    ///
    /// When the store cannot be written.
    pub fn add(&self, agent: &AgentRecord) -> Result<bool> {
        self.table.insert_new(&agent.name, agent)
    }

    /// Writes `agent` over the agent of its name.
    ///
    /// # Errors
    ///
    /// When the store cannot be written.
    pub fn put(&self, agent: &AgentRecord) -> Result<()> {
        self.table.insert(&agent.name, agent)
    }

    /// Every agent, by name.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn all(&self) -> Result<Vec<AgentRecord>> {
        self.table
            .all()
            .map(|row| row.map(|(_, agent)| agent))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(name: &str) -> AgentRecord {
        AgentRecord {
            name: name.to_owned(),
            queues: vec!["billing".to_owned()],
            role: Role::Agent,
            presence: Presence::Offline,
            disabled: false,
            secret_hash: "$argon2id$...".to_owned(),
            created_ms: 1,
        }
    }

    #[test]
    fn an_agent_is_added_once_and_listed_by_name() {
        let store = Store::temporary().unwrap();
        let agents = AgentsTable::new(&store);
        assert!(agents.add(&agent("zoe")).unwrap());
        assert!(agents.add(&agent("ana")).unwrap());
        let mut again = agent("ana");
        again.role = Role::Supervisor;
        assert!(
            !agents.add(&again).unwrap(),
            "a second `ana` must be refused"
        );
        assert_eq!(agents.get("ana").unwrap().unwrap().role, Role::Agent);
        let names: Vec<String> = agents.all().unwrap().into_iter().map(|a| a.name).collect();
        assert_eq!(names, ["ana", "zoe"]);
        again.disabled = true;
        agents.put(&again).unwrap();
        assert!(agents.get("ana").unwrap().unwrap().disabled);
        assert_eq!(agents.get("bob").unwrap(), None);
    }
}
