//! `[[queues]]`, `[handoff]` and `[canned]` in `smsflow.toml`: how each queue assigns, its
//! service levels and business hours, and the agents' canned replies. Checked when the server
//! starts, with messages that name the queue and the key.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::hours::BusinessHours;
use crate::template::Template;

/// How a queue's conversations reach agents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Assignment {
    /// Agents claim them.
    #[default]
    Manual,
    /// The engine gives each to the available agent with the fewest open conversations.
    Balanced,
}

impl Assignment {
    /// The mode's name, as the API shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Balanced => "balanced",
        }
    }
}

/// One `[[queues]]` entry, as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// The queue flows hand off to.
    pub name: String,
    /// `manual` (claim) or `balanced`.
    #[serde(default)]
    pub assignment: Assignment,
    /// Open conversations an agent holds at most before balanced assignment passes them by.
    #[serde(default = "default_cap")]
    pub max_per_agent: usize,
    /// The queue's time zone (IANA), for business hours.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Business hours, e.g. `["mon-fri 09:00-17:00"]`; none means always open.
    #[serde(default)]
    pub hours: Vec<String>,
    /// Target for a person's first reply after the handoff (`"5m"`).
    #[serde(default)]
    pub first_response: Option<String>,
    /// Target for a person's reply to each later text from the contact.
    #[serde(default)]
    pub next_response: Option<String>,
    /// Target for resolution.
    #[serde(default)]
    pub resolution: Option<String>,
    /// Where a conversation goes when it breaches a target (another queue).
    #[serde(default)]
    pub breach_route: Option<String>,
    /// Wait before the no-answer auto-reply (with `no_answer_reply`).
    #[serde(default)]
    pub no_answer_after: Option<String>,
    /// Sent once when nobody has answered within `no_answer_after`.
    #[serde(default)]
    pub no_answer_reply: Option<String>,
    /// Sent once to a handoff outside business hours.
    #[serde(default)]
    pub after_hours_reply: Option<String>,
}

fn default_cap() -> usize {
    5
}

impl Default for QueueConfig {
    /// A manual queue called nothing, with no targets: fill in `name`.
    fn default() -> Self {
        Self {
            name: String::new(),
            assignment: Assignment::default(),
            max_per_agent: default_cap(),
            time_zone: None,
            hours: Vec::new(),
            first_response: None,
            next_response: None,
            resolution: None,
            breach_route: None,
            no_answer_after: None,
            no_answer_reply: None,
            after_hours_reply: None,
        }
    }
}

/// The `[handoff]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HandoffConfig {
    /// A contact's text this soon after resolution reopens the conversation (`"3d"`), unless it
    /// starts a flow by keyword.
    #[serde(default = "default_reopen")]
    pub reopen_within: String,
}

impl Default for HandoffConfig {
    fn default() -> Self {
        Self {
            reopen_within: default_reopen(),
        }
    }
}

fn default_reopen() -> String {
    "3d".to_owned()
}

/// A queue's settings, checked.
#[derive(Debug, Clone)]
pub struct QueuePolicy {
    /// The queue.
    pub name: String,
    /// Manual or balanced.
    pub assignment: Assignment,
    /// The per-agent cap of balanced assignment.
    pub max_per_agent: usize,
    /// Business hours, when it has them.
    pub hours: Option<BusinessHours>,
    /// The targets, in milliseconds (of business time when it has hours).
    pub targets: BTreeMap<crate::store::handoffs::SlaKind, i64>,
    /// Where a breach moves the conversation.
    pub breach_route: Option<String>,
    /// The no-answer auto-reply and its wait.
    pub no_answer: Option<(i64, String)>,
    /// The after-hours auto-reply.
    pub after_hours_reply: Option<String>,
}

impl QueuePolicy {
    /// The policy of a queue nobody configured: manual, always open, no targets.
    pub fn unconfigured(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            assignment: Assignment::Manual,
            max_per_agent: default_cap(),
            hours: None,
            targets: BTreeMap::new(),
            breach_route: None,
            no_answer: None,
            after_hours_reply: None,
        }
    }
}

/// The checked settings of every queue, and the canned replies.
#[derive(Debug, Clone, Default)]
pub struct DeskConfig {
    /// Configured queues by name.
    pub queues: BTreeMap<String, QueuePolicy>,
    /// How soon after resolution a text reopens a conversation, in milliseconds.
    pub reopen_within_ms: i64,
    /// Canned replies by shortcode.
    pub canned: BTreeMap<String, Template>,
}

impl DeskConfig {
    /// Checks the sections.
    ///
    /// # Errors
    ///
    /// A message naming the queue (or shortcode) and the key, and how to write it.
    pub fn new(
        queues: &[QueueConfig],
        handoff: &HandoffConfig,
        canned: &BTreeMap<String, String>,
    ) -> Result<Self, String> {
        let mut checked = BTreeMap::new();
        for queue in queues {
            let policy = check_queue(queue)
                .map_err(|error| format!("[[queues]] `{}`: {error}", queue.name))?;
            if checked.insert(queue.name.clone(), policy).is_some() {
                return Err(format!("[[queues]] `{}` is configured twice", queue.name));
            }
        }
        for policy in checked.values() {
            if let Some(route) = &policy.breach_route
                && route == &policy.name
            {
                return Err(format!(
                    "[[queues]] `{}`: breach_route names the queue itself",
                    policy.name
                ));
            }
        }
        let reopen_within_ms = millis("reopen_within", &handoff.reopen_within)
            .map_err(|error| format!("[handoff] {error}"))?;
        let mut templates = BTreeMap::new();
        for (shortcode, text) in canned {
            if !crate::agents::valid_name(shortcode) {
                return Err(format!(
                    "[canned] `{shortcode}`: a shortcode is letters, digits, `-` or `_`"
                ));
            }
            let template = Template::parse(text)
                .map_err(|error| format!("[canned] `{shortcode}`: {error}"))?;
            templates.insert(shortcode.clone(), template);
        }
        Ok(Self {
            queues: checked,
            reopen_within_ms,
            canned: templates,
        })
    }

    /// The policy of `queue` (an unconfigured queue gets the defaults).
    pub fn policy(&self, queue: &str) -> std::borrow::Cow<'_, QueuePolicy> {
        match self.queues.get(queue) {
            Some(policy) => std::borrow::Cow::Borrowed(policy),
            None => std::borrow::Cow::Owned(QueuePolicy::unconfigured(queue)),
        }
    }
}

fn check_queue(queue: &QueueConfig) -> Result<QueuePolicy, String> {
    use crate::store::handoffs::SlaKind;
    if !crate::agents::valid_name(&queue.name) {
        return Err("a queue name is letters, digits, `-` or `_`".to_owned());
    }
    if queue.max_per_agent == 0 {
        return Err("max_per_agent must be at least 1".to_owned());
    }
    let hours = match (&queue.time_zone, queue.hours.is_empty()) {
        (Some(_), true) => {
            return Err("time_zone is for business hours: add hours (e.g. [\"mon-fri 09:00-17:00\"]) or remove it".to_owned());
        }
        (None, true) => None,
        (Some(zone), false) => Some(BusinessHours::parse(zone, &queue.hours)?),
        (None, false) => return Err("hours need a time_zone (e.g. `America/New_York`)".to_owned()),
    };
    let mut targets = BTreeMap::new();
    for (kind, text) in [
        (SlaKind::FirstResponse, &queue.first_response),
        (SlaKind::NextResponse, &queue.next_response),
        (SlaKind::Resolution, &queue.resolution),
    ] {
        if let Some(text) = text {
            targets.insert(kind, millis(kind.as_str(), text)?);
        }
    }
    let no_answer = match (&queue.no_answer_after, &queue.no_answer_reply) {
        (Some(after), Some(text)) => Some((millis("no_answer_after", after)?, text.clone())),
        (None, None) => None,
        _ => return Err("no_answer_after and no_answer_reply go together".to_owned()),
    };
    if queue.after_hours_reply.is_some() && hours.is_none() {
        return Err("after_hours_reply needs business hours: add time_zone and hours".to_owned());
    }
    Ok(QueuePolicy {
        name: queue.name.clone(),
        assignment: queue.assignment,
        max_per_agent: queue.max_per_agent,
        hours,
        targets,
        breach_route: queue.breach_route.clone(),
        no_answer,
        after_hours_reply: queue.after_hours_reply.clone(),
    })
}

/// A duration such as `"5m"` in milliseconds.
fn millis(key: &str, text: &str) -> Result<i64, String> {
    let duration: Duration = humantime::parse_duration(text).map_err(|error| {
        format!("{key} = \"{text}\" is not a duration ({error}): write e.g. \"15m\" or \"2h\"")
    })?;
    i64::try_from(duration.as_millis()).map_err(|_| format!("{key} = \"{text}\" is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(toml_text: &str) -> Result<DeskConfig, String> {
        #[derive(Deserialize)]
        struct File {
            queues: Vec<QueueConfig>,
        }
        let file: File = toml::from_str(toml_text).unwrap();
        DeskConfig::new(&file.queues, &HandoffConfig::default(), &BTreeMap::new())
    }

    #[test]
    fn a_queue_with_hours_and_targets_is_checked() {
        let config = queue(
            r#"
            [[queues]]
            name = "billing"
            assignment = "balanced"
            time_zone = "America/New_York"
            hours = ["mon-fri 09:00-17:00"]
            first_response = "5m"
            "#,
        )
        .unwrap();
        let policy = config.policy("billing");
        assert_eq!(policy.assignment, Assignment::Balanced);
        assert!(policy.hours.is_some());
        assert_eq!(
            policy.targets[&crate::store::handoffs::SlaKind::FirstResponse],
            300_000
        );
        assert_eq!(config.policy("other").assignment, Assignment::Manual);
    }

    #[test]
    fn mistakes_name_the_queue_and_the_key() {
        let error = queue("[[queues]]\nname = \"billing\"\nfirst_response = \"soon\"").unwrap_err();
        assert!(
            error.contains("`billing`") && error.contains("first_response"),
            "{error}"
        );
        let error =
            queue("[[queues]]\nname = \"b\"\nhours = [\"mon-fri 09:00-17:00\"]").unwrap_err();
        assert!(error.contains("time_zone"), "{error}");
        let error = queue("[[queues]]\nname = \"b\"\nno_answer_reply = \"hi\"").unwrap_err();
        assert!(error.contains("go together"), "{error}");
        let error = queue("[[queues]]\nname = \"b\"\nafter_hours_reply = \"hi\"").unwrap_err();
        assert!(error.contains("needs business hours"), "{error}");
        let error = queue("[[queues]]\nname = \"b\"\ntime_zone = \"UTC\"").unwrap_err();
        assert!(error.contains("add hours"), "{error}");
    }

    #[test]
    fn a_canned_reply_must_parse() {
        let canned = BTreeMap::from([("refund".to_owned(), "Hi {{first_name".to_owned())]);
        let error = DeskConfig::new(&[], &HandoffConfig::default(), &canned).unwrap_err();
        assert!(error.contains("[canned] `refund`"), "{error}");
    }
}
