//! Consent collected elsewhere (a web form, a signed paper, an import), as the operator API
//! receives it, and the evidence rules it must meet before it enters the ledger.

use serde::Deserialize;

use super::ledger::{ConsentClass, ConsentEvent, ConsentSource, NewConsent};
use crate::phone::parse_e164;

/// `POST /v1/consent`'s body: an opt-in with its evidence.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    phone: Option<String>,
    program: Option<String>,
    class: Option<String>,
    source: Option<String>,
    disclosure: Option<String>,
    #[serde(default)]
    frequency: Option<String>,
    /// For a web form: the page, and the visitor's IP address and user agent.
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    ip: Option<String>,
    #[serde(default)]
    user_agent: Option<String>,
}

/// Why a consent request was refused: the evidence is incomplete or wrong. The message says
/// what to send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EvidenceRefused(pub String);

/// The trimmed value, or `None` when absent or blank.
fn present(value: Option<&String>) -> Option<String> {
    value
        .map(|value| value.trim())
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
}

impl ConsentRequest {
    /// The ledger record this request makes, at `at_ms`; `known_program` tells whether a
    /// program exists (a flow or a `[programs]` entry has it).
    ///
    /// # Errors
    ///
    /// [`EvidenceRefused`] naming every missing or blank field, a number that is not E.164, a
    /// class that is neither `marketing` nor `transactional`, an unknown program, or web form
    /// evidence without all of url, ip and user_agent.
    pub fn validate(
        self,
        known_program: impl Fn(&str) -> bool,
        at_ms: i64,
    ) -> Result<NewConsent, EvidenceRefused> {
        let fields = [
            ("phone", present(self.phone.as_ref())),
            ("program", present(self.program.as_ref())),
            ("class", present(self.class.as_ref())),
            ("source", present(self.source.as_ref())),
            ("disclosure", present(self.disclosure.as_ref())),
        ];
        let missing: Vec<&str> = fields
            .iter()
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| *name)
            .collect();
        let [
            (_, Some(phone)),
            (_, Some(program)),
            (_, Some(class)),
            (_, Some(source)),
            (_, Some(disclosure)),
        ] = fields
        else {
            return Err(EvidenceRefused(format!(
                "a consent record needs {}: the evidence is incomplete",
                missing.join(", ")
            )));
        };
        let number = parse_e164(&phone).map_err(|problem| EvidenceRefused(problem.to_string()))?;
        let class = match class.as_str() {
            "marketing" => ConsentClass::Marketing,
            "transactional" => ConsentClass::Transactional,
            other => {
                return Err(EvidenceRefused(format!(
                    "class is `{other}`: write \"marketing\" or \"transactional\""
                )));
            }
        };
        if !known_program(&program) {
            return Err(EvidenceRefused(format!(
                "no flow or [programs] entry has program `{program}`"
            )));
        }
        let source = match (self.url, self.ip, self.user_agent) {
            (Some(url), Some(ip), Some(user_agent)) => {
                web_form_evidence(&url, &ip, &user_agent)?;
                ConsentSource::WebForm {
                    url,
                    ip,
                    user_agent,
                }
            }
            (None, None, None) => ConsentSource::Api {
                actor: Some(source),
            },
            _ => {
                return Err(EvidenceRefused(
                    "web form evidence needs url, ip and user_agent together".to_owned(),
                ));
            }
        };
        Ok(NewConsent {
            number,
            program,
            class,
            event: ConsentEvent::OptIn,
            source,
            disclosure: Some(disclosure),
            frequency: present(self.frequency.as_ref()),
            raw_text: None,
            at_ms,
        })
    }
}

/// The page is a web page, the address an IP address, the user agent plain text: evidence a
/// regulator can read.
fn web_form_evidence(url: &str, ip: &str, user_agent: &str) -> Result<(), EvidenceRefused> {
    use crate::input;
    input::web_url("url", url)
        .and_then(|()| input::ip("ip", ip))
        .and_then(|()| input::text("user_agent", user_agent, input::MAX_USER_AGENT_CHARS))
        .map_err(|error| EvidenceRefused(error.to_string()))
}
