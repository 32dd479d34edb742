//! The keyword table: for each intent, the words and phrases that signal it, written in normalised
//! form (see [`crate::normalize`]: lower case, no accents, no apostrophes, single spaces).

/// An intent the rules can return.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Intent {
    /// The contact confirms (an appointment, an order, a question asked by the flow).
    Confirm,
    /// The contact cancels or declines.
    Cancel,
    /// The contact asks for another date or time.
    Reschedule,
    /// The contact asks for help or for a person.
    HelpRequest,
    /// The contact asks about prices or fees.
    PricingQuestion,
    /// The contact complains, asks for a refund or threatens to leave: an escalation cue.
    Complaint,
}

impl Intent {
    /// Every intent, in the order of [`crate::INTENTS`].
    pub const ALL: [Intent; 6] = [
        Intent::Confirm,
        Intent::Cancel,
        Intent::Reschedule,
        Intent::HelpRequest,
        Intent::PricingQuestion,
        Intent::Complaint,
    ];

    /// The intent's name as the host sees it.
    pub const fn name(self) -> &'static str {
        match self {
            Intent::Confirm => "confirm",
            Intent::Cancel => "cancel",
            Intent::Reschedule => "reschedule",
            Intent::HelpRequest => "help_request",
            Intent::PricingQuestion => "pricing_question",
            Intent::Complaint => "complaint",
        }
    }

    /// Which intent wins when a text has cues of several: higher wins.
    /// complaint > reschedule > cancel > confirm > pricing_question > help_request.
    pub const fn priority(self) -> u8 {
        match self {
            Intent::Complaint => 6,
            Intent::Reschedule => 5,
            Intent::Cancel => 4,
            Intent::Confirm => 3,
            Intent::PricingQuestion => 2,
            Intent::HelpRequest => 1,
        }
    }
}

/// Where in the text a keyword may match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// Anywhere, as whole words.
    Anywhere,
    /// Only as the first or last words of the text (`no` in "No, sorry" or "sorry, no", not in
    /// "is there no fee"; `si` in "Sí, claro" but not in "si puedo ir").
    Edge,
    /// Only as the whole text (`y`, `k`: "y" alone is yes, in Spanish text it is "and").
    Whole,
    /// Only inside a longer text (a lone `AYUDA` is the carrier HELP keyword the host handles).
    NotWhole,
}

/// One keyword rule. `intent` is `None` for a neutral phrase, which matches only to stop the
/// shorter keywords inside it from matching ("not sure" hides "sure").
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    /// Normalised words separated by single spaces.
    pub phrase: &'static str,
    /// What the phrase signals, or `None` for a neutral phrase.
    pub intent: Option<Intent>,
    /// Where it may match.
    pub place: Place,
}

use Place::{Anywhere, Edge, NotWhole, Whole};

/// Phrases and where each may match.
type Phrases = &'static [(&'static str, Place)];

const CONFIRM: &[(&str, Place)] = &[
    ("yes", Anywhere),
    ("y", Whole),
    ("yep", Anywhere),
    ("yeah", Anywhere),
    ("yea", Anywhere),
    ("yup", Anywhere),
    ("sure", Anywhere),
    ("confirm", Anywhere),
    ("confirmed", Anywhere),
    ("confirming", Anywhere),
    ("ok", Anywhere),
    ("okay", Anywhere),
    ("okey", Anywhere),
    ("oki", Anywhere),
    ("okie", Anywhere),
    ("k", Whole),
    ("kk", Whole),
    ("👍", Anywhere),
    ("✅", Anywhere),
    ("✔", Anywhere),
    ("☑", Anywhere),
    ("👌", Anywhere),
    ("sounds good", Anywhere),
    ("sounds great", Anywhere),
    ("see you then", Anywhere),
    ("see you there", Anywhere),
    ("see you soon", Anywhere),
    ("ill be there", Anywhere),
    ("will be there", Anywhere),
    ("well be there", Anywhere),
    ("that works", Anywhere),
    ("works for me", Anywhere),
    ("perfect", Anywhere),
    ("absolutely", Anywhere),
    ("of course", Anywhere),
    ("definitely", Anywhere),
    ("no problem", Anywhere),
    ("not a problem", Anywhere),
    ("no worries", Anywhere),
    ("for sure", Anywhere),
    ("all good", Anywhere),
    ("alright", Anywhere),
    ("all right", Anywhere),
    ("correct", Anywhere),
    ("si", Edge),
    ("claro", Anywhere),
    ("confirmo", Anywhere),
    ("confirmado", Anywhere),
    ("confirmada", Anywhere),
    ("de acuerdo", Anywhere),
    ("vale", Anywhere),
    ("perfecto", Anywhere),
    ("por supuesto", Anywhere),
    ("esta bien", Anywhere),
    ("nos vemos", Anywhere),
    ("ahi estare", Anywhere),
    ("alli estare", Anywhere),
    ("ahi estaremos", Anywhere),
    ("sin problema", Anywhere),
    ("dale", Anywhere),
    ("listo", Anywhere),
];

const CANCEL: &[(&str, Place)] = &[
    ("cancel", Anywhere),
    ("cancel it", Anywhere),
    ("cancel that", Anywhere),
    ("please cancel", Anywhere),
    ("cant make it", Anywhere),
    ("cannot make it", Anywhere),
    ("can not make it", Anywhere),
    ("cant come", Anywhere),
    ("cannot come", Anywhere),
    ("can not come", Anywhere),
    ("cant go", Anywhere),
    ("cannot go", Anywhere),
    ("wont make it", Anywhere),
    ("will not make it", Anywhere),
    ("not going to make it", Anywhere),
    ("wont be able", Anywhere),
    ("will not be able", Anywhere),
    ("not coming", Anywhere),
    ("no", Edge),
    ("nope", Anywhere),
    ("nah", Anywhere),
    ("no thanks", Anywhere),
    ("no thank you", Anywhere),
    ("👎", Anywhere),
    ("❌", Anywhere),
    ("cancelar", Anywhere),
    ("cancela", Anywhere),
    ("cancelo", Anywhere),
    ("cancelen", Anywhere),
    ("cancelala", Anywhere),
    ("cancelalo", Anywhere),
    ("no puedo", Anywhere),
    ("no podre", Anywhere),
    ("no podemos", Anywhere),
    ("no voy", Anywhere),
    ("no asistire", Anywhere),
];

const RESCHEDULE: &[(&str, Place)] = &[
    ("reschedule", Anywhere),
    ("rescheduling", Anywhere),
    ("another time", Anywhere),
    ("another day", Anywhere),
    ("different day", Anywhere),
    ("different time", Anywhere),
    ("move it", Anywhere),
    ("move my appointment", Anywhere),
    ("move the appointment", Anywhere),
    ("change the time", Anywhere),
    ("change the date", Anywhere),
    ("change the day", Anywhere),
    ("change my appointment", Anywhere),
    ("later date", Anywhere),
    ("later time", Anywhere),
    ("postpone", Anywhere),
    ("push it back", Anywhere),
    ("instead", Anywhere),
    ("how about", Anywhere),
    ("can we do", Anywhere),
    ("could we do", Anywhere),
    ("can we make it", Anywhere),
    ("next week", Anywhere),
    ("otro dia", Anywhere),
    ("otra hora", Anywhere),
    ("otra fecha", Anywhere),
    ("otro horario", Anywhere),
    ("cambiar", Anywhere),
    ("cambiarla", Anywhere),
    ("cambiarlo", Anywhere),
    ("cambio de", Anywhere),
    ("reprogramar", Anywhere),
    ("reprogramarla", Anywhere),
    ("reprogramemos", Anywhere),
    ("posponer", Anywhere),
    ("mas tarde", Anywhere),
    ("en vez", Anywhere),
    ("en lugar", Anywhere),
];

const HELP_REQUEST: &[(&str, Place)] = &[
    ("help me", Anywhere),
    ("need help", Anywhere),
    ("can you help", Anywhere),
    ("could you help", Anywhere),
    ("help with", Anywhere),
    ("need assistance", Anywhere),
    ("question", Anywhere),
    ("questions", Anywhere),
    ("how do i", Anywhere),
    ("how can i", Anywhere),
    ("can someone call", Anywhere),
    ("someone call me", Anywhere),
    ("call me", Anywhere),
    ("please call", Anywhere),
    ("talk to a person", Anywhere),
    ("talk to a human", Anywhere),
    ("talk to an agent", Anywhere),
    ("talk to someone", Anywhere),
    ("speak to a person", Anywhere),
    ("speak to a human", Anywhere),
    ("speak to an agent", Anywhere),
    ("speak to someone", Anywhere),
    ("speak with someone", Anywhere),
    ("real person", Anywhere),
    ("customer service", Anywhere),
    ("representative", Anywhere),
    ("ayuda", NotWhole),
    ("necesito ayuda", Anywhere),
    ("pregunta", Anywhere),
    ("duda", Anywhere),
    ("tengo una duda", Anywhere),
    ("como puedo", Anywhere),
    ("como hago", Anywhere),
    ("llamenme", Anywhere),
    ("me pueden llamar", Anywhere),
    ("hablar con alguien", Anywhere),
    ("hablar con una persona", Anywhere),
    ("hablar con un agente", Anywhere),
    ("no entiendo", Anywhere),
];

const PRICING_QUESTION: &[(&str, Place)] = &[
    ("price", Anywhere),
    ("prices", Anywhere),
    ("pricing", Anywhere),
    ("cost", Anywhere),
    ("costs", Anywhere),
    ("how much", Anywhere),
    ("fee", Anywhere),
    ("fees", Anywhere),
    ("quote", Anywhere),
    ("estimate", Anywhere),
    ("what do you charge", Anywhere),
    ("precio", Anywhere),
    ("precios", Anywhere),
    ("costo", Anywhere),
    ("costos", Anywhere),
    ("coste", Anywhere),
    ("tarifa", Anywhere),
    ("tarifas", Anywhere),
    ("cuanto cuesta", Anywhere),
    ("cuanto cuestan", Anywhere),
    ("cuanto vale", Anywhere),
    ("cuanto es", Anywhere),
    ("cuanto cobran", Anywhere),
    ("cotizacion", Anywhere),
    ("presupuesto", Anywhere),
];

const COMPLAINT: &[(&str, Place)] = &[
    ("refund", Anywhere),
    ("refunds", Anywhere),
    ("money back", Anywhere),
    ("angry", Anywhere),
    ("furious", Anywhere),
    ("terrible", Anywhere),
    ("horrible", Anywhere),
    ("awful", Anywhere),
    ("worst", Anywhere),
    ("unacceptable", Anywhere),
    ("ridiculous", Anywhere),
    ("scam", Anywhere),
    ("fraud", Anywhere),
    ("rip off", Anywhere),
    ("ripoff", Anywhere),
    ("lawyer", Anywhere),
    ("attorney", Anywhere),
    ("sue", Anywhere),
    ("cancel my account", Anywhere),
    ("cancel my subscription", Anywhere),
    ("close my account", Anywhere),
    ("speak to a manager", Anywhere),
    ("talk to a manager", Anywhere),
    ("speak to your manager", Anywhere),
    ("talk to your manager", Anywhere),
    ("speak to a supervisor", Anywhere),
    ("complaint", Anywhere),
    ("😡", Anywhere),
    ("🤬", Anywhere),
    ("😠", Anywhere),
    ("reembolso", Anywhere),
    ("devuelvan mi dinero", Anywhere),
    ("abogado", Anywhere),
    ("abogados", Anywhere),
    ("queja", Anywhere),
    ("quejas", Anywhere),
    ("demanda", Anywhere),
    ("demandar", Anywhere),
    ("estafa", Anywhere),
    ("fraude", Anywhere),
    ("pesimo", Anywhere),
    ("furioso", Anywhere),
    ("furiosa", Anywhere),
    ("enojado", Anywhere),
    ("enojada", Anywhere),
    ("cancelar mi cuenta", Anywhere),
    ("hablar con un gerente", Anywhere),
    ("hablar con el gerente", Anywhere),
    ("hablar con el encargado", Anywhere),
];

/// Phrases that signal nothing but hide the keywords inside them.
const NEUTRAL: &[(&str, Place)] = &[
    ("not sure", Anywhere),
    ("make sure", Anywhere),
    ("not ok", Anywhere),
    ("not okay", Anywhere),
    ("no idea", Anywhere),
    ("not yet", Anywhere),
    ("no se", Anywhere),
    ("no estoy seguro", Anywhere),
    ("no estoy segura", Anywhere),
];

/// Words that do not count against a keyword's share of the text ("Yes please!" is as sure as
/// "Yes").
pub const FILLERS: &[&str] = &[
    "please", "pls", "plz", "thanks", "thank", "you", "thx", "ty", "hi", "hello", "hey", "oh",
    "ah", "um", "uh", "gracias", "muchas", "por", "favor", "hola", "🙂", "😊", "🙏", "😀", "😃",
];

/// The table, grouped by what the phrases signal.
const TABLE: &[(Option<Intent>, Phrases)] = &[
    (Some(Intent::Confirm), CONFIRM),
    (Some(Intent::Cancel), CANCEL),
    (Some(Intent::Reschedule), RESCHEDULE),
    (Some(Intent::HelpRequest), HELP_REQUEST),
    (Some(Intent::PricingQuestion), PRICING_QUESTION),
    (Some(Intent::Complaint), COMPLAINT),
    (None, NEUTRAL),
];

/// Every rule, in table order.
pub fn rules() -> impl Iterator<Item = Rule> {
    TABLE.iter().flat_map(|&(intent, phrases)| {
        phrases.iter().map(move |&(phrase, place)| Rule {
            phrase,
            intent,
            place,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::{FILLERS, rules};
    use crate::normalize::normalize;

    #[test]
    fn phrases_are_written_normalised() {
        for rule in rules() {
            assert_eq!(normalize(rule.phrase), rule.phrase, "rule {rule:?}");
        }
        for filler in FILLERS {
            assert_eq!(normalize(filler), *filler);
        }
    }

    #[test]
    fn no_phrase_is_listed_twice() {
        let mut seen = std::collections::HashSet::new();
        for rule in rules() {
            assert!(seen.insert(rule.phrase), "{} is listed twice", rule.phrase);
        }
    }
}
