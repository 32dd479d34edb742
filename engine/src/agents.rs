//! Agents: the people who answer handed-off conversations, and how they prove who they are.
//!
//! An agent signs in with a secret shown once when the agent is added (`smsflow agents add`):
//! `<name>.<43 characters>`, 32 random bytes after the name. Only its argon2 hash is stored. An
//! argon2 check costs tens of milliseconds by design, so a secret that passed is remembered (by
//! its SHA-256, in memory) and later calls cost a map lookup and a read of the agent's row,
//! which is what makes disabling an agent take effect at the next call.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore as _};
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::clock::SharedClock;
use crate::store::agents::{AgentRecord, AgentsTable, Presence, Role};
use crate::store::{Store, StoreError};

/// The longest agent or queue name.
pub const MAX_NAME_BYTES: usize = 64;

/// Why an agent could not be added or changed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The name has characters other than letters, digits, `-` and `_`, or is too long.
    #[error("agent name `{0}` is not valid: use 1 to {MAX_NAME_BYTES} letters, digits, `-` or `_`")]
    InvalidName(String),
    /// A queue name is not valid.
    #[error("queue name `{0}` is not valid: use 1 to {MAX_NAME_BYTES} letters, digits, `-` or `_`")]
    InvalidQueue(String),
    /// An agent has no queue.
    #[error("agent `{0}` needs at least one queue: pass --queues billing,support")]
    NoQueue(String),
    /// The name is taken.
    #[error("there is already an agent called `{0}`: pick another name")]
    Exists(String),
    /// No agent has the name.
    #[error("there is no agent called `{0}`: `smsflow agents list` shows them")]
    Unknown(String),
    /// The agent is disabled.
    #[error("agent `{0}` is disabled")]
    Disabled(String),
    /// The secret could not be hashed.
    #[error("cannot hash the sign-in secret: {0}")]
    Hash(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a secret was refused. The caller answers each the same way (401), so a guesser learns
/// nothing; the variants are for the log.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// Not `<name>.<secret>`, or no such agent, or the wrong secret.
    #[error("unknown agent or wrong secret")]
    Refused,
    /// The agent is disabled.
    #[error("agent `{0}` is disabled")]
    Disabled(String),
    /// The store failed.
    #[error("cannot read the agents: {0}")]
    Store(String),
}

/// An agent to add.
#[derive(Debug, Clone)]
pub struct NewAgent {
    /// The agent's name.
    pub name: String,
    /// The queues the agent serves.
    pub queues: Vec<String>,
    /// Agent or supervisor.
    pub role: Role,
}

/// An agent just added, with the secret that is shown this once.
#[derive(Debug, Clone)]
pub struct Added {
    /// The agent.
    pub agent: AgentRecord,
    /// The sign-in secret: not stored, not shown again.
    pub secret: String,
}

/// The agents, and sign-in.
pub struct Agents {
    table: AgentsTable,
    /// Flushed after each change: an agent added or disabled stays so after a crash.
    store: Store,
    clock: SharedClock,
    /// SHA-256 of each secret that passed argon2, to the agent's name.
    verified: Mutex<HashMap<[u8; 32], String>>,
    /// SHA-256 of each page session's token, to the agent's name and when it expires.
    sessions: Mutex<HashMap<[u8; 32], (String, i64)>>,
    /// Held by each read-modify-write of an agent's row, so a presence change cannot undo a
    /// disable made at the same time.
    writes: Mutex<()>,
}

/// How long a page session lasts: a working day and then some.
pub const SESSION_MS: i64 = 12 * 3_600_000;

impl Agents {
    /// The agents in `store`.
    pub fn new(store: &Store, clock: SharedClock) -> Self {
        Self {
            table: store.tables().agents,
            store: store.clone(),
            clock,
            verified: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            writes: Mutex::new(()),
        }
    }

    /// Adds an agent, durably (this blocks on a flush and on argon2: call it off the async
    /// threads); returns it with its one-time secret.
    ///
    /// # Errors
    ///
    /// An invalid name or queue, a taken name, or a store failure.
    pub fn add(&self, new: NewAgent) -> Result<Added, AgentError> {
        if !valid_name(&new.name) {
            return Err(AgentError::InvalidName(new.name));
        }
        if new.queues.is_empty() {
            return Err(AgentError::NoQueue(new.name));
        }
        if let Some(queue) = new.queues.iter().find(|queue| !valid_name(queue)) {
            return Err(AgentError::InvalidQueue(queue.clone()));
        }
        let mut random = [0_u8; 32];
        OsRng.fill_bytes(&mut random);
        let secret = format!(
            "{}.{}",
            new.name,
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
        );
        let salt = SaltString::generate(&mut OsRng);
        let secret_hash = Argon2::default()
            .hash_password(secret.as_bytes(), &salt)
            .map_err(|error| AgentError::Hash(error.to_string()))?
            .to_string();
        let mut queues = new.queues;
        queues.sort();
        queues.dedup();
        let agent = AgentRecord {
            name: new.name,
            queues,
            role: new.role,
            presence: Presence::Offline,
            disabled: false,
            secret_hash,
            created_ms: self.clock.now_ms(),
        };
        if !self.table.add(&agent)? {
            return Err(AgentError::Exists(agent.name));
        }
        self.store.flush_sync()?;
        Ok(Added { agent, secret })
    }

    /// Every agent, by name.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn list(&self) -> Result<Vec<AgentRecord>, AgentError> {
        Ok(self.table.all()?)
    }

    /// Disables the agent called `name`, durably (this blocks on a flush): its secret is
    /// refused from the next call on.
    ///
    /// # Errors
    ///
    /// An unknown name, or a store failure.
    pub fn disable(&self, name: &str) -> Result<AgentRecord, AgentError> {
        let agent = self.change(name, |agent| {
            agent.disabled = true;
            agent.presence = Presence::Offline;
            Ok(())
        })?;
        self.store.flush_sync()?;
        Ok(agent)
    }

    /// Rewrites the agent's row with `change` applied, under the write lock.
    fn change(
        &self,
        name: &str,
        change: impl FnOnce(&mut AgentRecord) -> Result<(), AgentError>,
    ) -> Result<AgentRecord, AgentError> {
        let _writing = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
        let mut agent = self
            .table
            .get(name)?
            .ok_or_else(|| AgentError::Unknown(name.to_owned()))?;
        change(&mut agent)?;
        self.table.put(&agent)?;
        Ok(agent)
    }

    /// The agent whose secret `token` is.
    ///
    /// # Errors
    ///
    /// [`AuthError::Refused`] for anything but an enabled agent's secret,
    /// [`AuthError::Disabled`] for a disabled agent's.
    pub fn authenticate(&self, token: &str) -> Result<AgentRecord, AuthError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let known = self
            .verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&digest)
            .cloned();
        let name = match &known {
            Some(name) => name.clone(),
            None => token
                .split_once('.')
                .ok_or(AuthError::Refused)?
                .0
                .to_owned(),
        };
        let agent = self.enabled(&name)?;
        if known.is_none() {
            verify(token, &agent.secret_hash)?;
            self.verified
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(digest, agent.name.clone());
        }
        Ok(agent)
    }

    /// Sets the agent's presence (available agents get balanced assignments). Not flushed:
    /// presence after a crash is the agent's to set again.
    ///
    /// # Errors
    ///
    /// An unknown or disabled agent, or a store failure.
    pub fn set_presence(&self, name: &str, presence: Presence) -> Result<AgentRecord, AgentError> {
        self.change(name, |agent| {
            if agent.disabled {
                return Err(AgentError::Disabled(agent.name.clone()));
            }
            agent.presence = presence;
            Ok(())
        })
    }

    /// Starts a page session for `agent`; returns its token, for the cookie. Sessions live in
    /// memory: a restart signs everyone out, which a secret sign-in undoes.
    pub fn start_session(&self, agent: &str) -> String {
        let mut random = [0_u8; 32];
        OsRng.fill_bytes(&mut random);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random);
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = self.clock.now_ms();
        let expires = now + SESSION_MS;
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.retain(|_, (_, until)| *until > now);
        sessions.insert(digest, (agent.to_owned(), expires));
        token
    }

    /// The agent whose live session `token` is; the agent's row is read, so a disabled agent's
    /// session stops working at once.
    ///
    /// # Errors
    ///
    /// [`AuthError::Refused`] for an unknown or expired session, [`AuthError::Disabled`].
    pub fn session(&self, token: &str) -> Result<AgentRecord, AuthError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = self.clock.now_ms();
        let name = self
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&digest)
            .filter(|(_, until)| *until > now)
            .map(|(name, _)| name.clone())
            .ok_or(AuthError::Refused)?;
        self.enabled(&name)
    }

    /// The agent called `name`, read now, unless it is unknown or disabled.
    ///
    /// # Errors
    ///
    /// [`AuthError::Refused`] for an unknown name, [`AuthError::Disabled`].
    pub fn enabled(&self, name: &str) -> Result<AgentRecord, AuthError> {
        let agent = self
            .table
            .get(name)
            .map_err(|error| AuthError::Store(error.to_string()))?
            .ok_or(AuthError::Refused)?;
        if agent.disabled {
            return Err(AuthError::Disabled(agent.name));
        }
        Ok(agent)
    }

    /// Whether `token` is a secret already checked (so using it costs no argon2 check).
    pub fn remembers(&self, token: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&digest)
    }

    /// Ends the session `token` (signing out).
    pub fn end_session(&self, token: &str) {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&digest);
    }
}

/// Checks `token` against an argon2 hash in PHC form.
fn verify(token: &str, hash: &str) -> Result<(), AuthError> {
    let parsed = PasswordHash::new(hash).map_err(|_| AuthError::Refused)?;
    Argon2::default()
        .verify_password(token.as_bytes(), &parsed)
        .map_err(|_| AuthError::Refused)
}

/// Letters, digits, `-` and `_`, 1 to [`MAX_NAME_BYTES`] of them.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;

    fn agents() -> (Agents, Store) {
        let store = Store::temporary().unwrap();
        let agents = Agents::new(&store, Arc::new(ManualClock::new(5)));
        (agents, store)
    }

    fn ana() -> NewAgent {
        NewAgent {
            name: "ana".into(),
            queues: vec!["support".into(), "billing".into(), "billing".into()],
            role: Role::Agent,
        }
    }

    #[test]
    fn an_added_agent_signs_in_with_its_secret_and_nothing_else() {
        let (agents, _store) = agents();
        let added = agents.add(ana()).unwrap();
        assert!(added.secret.starts_with("ana."));
        assert_eq!(added.secret.len(), "ana.".len() + 43);
        assert_eq!(added.agent.queues, ["billing", "support"]);
        assert!(added.agent.secret_hash.starts_with("$argon2id$"));
        assert!(!added.agent.secret_hash.contains(&added.secret));
        assert_eq!(agents.authenticate(&added.secret).unwrap().name, "ana");
        // Again, from the remembered digest.
        assert_eq!(agents.authenticate(&added.secret).unwrap().name, "ana");
        let mut wrong = added.secret.clone();
        wrong.pop();
        wrong.push('x');
        for token in [wrong.as_str(), "ana", "bob.secret", "", "."] {
            assert_eq!(
                agents.authenticate(token),
                Err(AuthError::Refused),
                "{token}"
            );
        }
    }

    #[test]
    fn a_disabled_agent_is_refused_even_with_a_remembered_secret() {
        let (agents, _store) = agents();
        let added = agents.add(ana()).unwrap();
        agents.authenticate(&added.secret).unwrap();
        assert!(agents.disable("ana").unwrap().disabled);
        assert_eq!(
            agents.authenticate(&added.secret),
            Err(AuthError::Disabled("ana".into()))
        );
        assert!(matches!(agents.disable("bob"), Err(AgentError::Unknown(_))));
    }

    #[test]
    fn bad_names_queues_and_a_taken_name_are_refused_with_what_to_do() {
        let (agents, _store) = agents();
        agents.add(ana()).unwrap();
        let error = agents.add(ana()).unwrap_err();
        assert!(
            error.to_string().contains("already an agent called `ana`"),
            "{error}"
        );
        for name in ["", "a b", "ana.b", "<script>", &"x".repeat(65)] {
            let new = NewAgent {
                name: name.to_owned(),
                ..ana()
            };
            assert!(
                matches!(agents.add(new), Err(AgentError::InvalidName(_))),
                "{name}"
            );
        }
        let new = NewAgent {
            name: "bob".into(),
            queues: vec!["bill ing".into()],
            role: Role::Agent,
        };
        assert!(matches!(agents.add(new), Err(AgentError::InvalidQueue(_))));
        let new = NewAgent {
            name: "bob".into(),
            queues: vec![],
            role: Role::Agent,
        };
        assert!(
            agents
                .add(new)
                .unwrap_err()
                .to_string()
                .contains("--queues")
        );
        let names: Vec<String> = agents.list().unwrap().into_iter().map(|a| a.name).collect();
        assert_eq!(names, ["ana"]);
    }

    #[test]
    fn a_session_ends_on_sign_out_on_expiry_and_when_the_agent_is_disabled() {
        let store = Store::temporary().unwrap();
        let clock = Arc::new(ManualClock::new(5));
        let agents = Agents::new(&store, clock.clone());
        agents.add(ana()).unwrap();
        let token = agents.start_session("ana");
        assert_eq!(agents.session(&token).unwrap().name, "ana");
        assert_eq!(agents.session("forged"), Err(AuthError::Refused));
        agents.end_session(&token);
        assert_eq!(agents.session(&token), Err(AuthError::Refused));
        let token = agents.start_session("ana");
        clock.advance(SESSION_MS);
        assert_eq!(agents.session(&token), Err(AuthError::Refused), "expired");
        let token = agents.start_session("ana");
        agents.disable("ana").unwrap();
        assert_eq!(
            agents.session(&token),
            Err(AuthError::Disabled("ana".into()))
        );
    }
}
