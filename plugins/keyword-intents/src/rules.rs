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

    /// A bit of its own, to mark the tokens an intent's phrases cover in one byte.
    pub const fn bit(self) -> u8 {
        1 << self as u8
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
    RULES.iter().copied()
}

/// The table flattened, at build time.
static RULES: [Rule; RULE_COUNT] = FLAT;
const FLAT: [Rule; RULE_COUNT] = flatten();

const RULE_COUNT: usize = {
    let mut count = 0;
    let mut group = 0;
    while group < TABLE.len() {
        count += TABLE[group].1.len();
        group += 1;
    }
    count
};

const fn flatten() -> [Rule; RULE_COUNT] {
    let mut rules = [Rule {
        phrase: "",
        intent: None,
        place: Anywhere,
    }; RULE_COUNT];
    let (mut group, mut next) = (0, 0);
    while group < TABLE.len() {
        let (intent, phrases) = TABLE[group];
        let mut i = 0;
        while i < phrases.len() {
            let (phrase, place) = phrases[i];
            rules[next] = Rule {
                phrase,
                intent,
                place,
            };
            next += 1;
            i += 1;
        }
        group += 1;
    }
    rules
}

/// A word the matcher looks up, with what the table says about it.
#[derive(Clone, Copy, Debug)]
pub struct Word {
    /// The word, normalised.
    pub text: &'static str,
    /// Whether it is one of the [`FILLERS`].
    pub filler: bool,
    /// Where the rules that start with this word begin in [`Candidate`]s of the index.
    first: u16,
    /// How many rules start with this word.
    count: u16,
}

impl Word {
    /// The rules whose phrase starts with this word, in table order.
    pub fn rules(&self) -> &'static [Candidate] {
        let first = self.first as usize;
        CANDIDATES
            .get(first..first + self.count as usize)
            .unwrap_or_default()
    }
}

/// A rule as the matcher reads it: the rule, and how many words its phrase has.
#[derive(Clone, Copy, Debug)]
pub struct Candidate {
    /// The rule.
    pub rule: Rule,
    /// The number of words in `rule.phrase`.
    pub words: usize,
}

/// The [`Word`] for `token`, when some rule starts with it or it is a filler.
///
/// One hash of the token and, on average, under two slots probed: the index is laid out at
/// build time, so a call does no set-up (in the wasm build every call is a fresh instance, and
/// an index built on first use would be built on every call).
pub fn lookup(token: &str) -> Option<&'static Word> {
    let mut slot = hash(token.as_bytes()) as usize;
    loop {
        slot &= SLOTS - 1;
        // An empty slot is out of range of `WORDS`: the word is not there.
        let word = WORDS.get(*SLOT_TABLE.get(slot)? as usize)?;
        if word.text == token {
            return Some(word);
        }
        slot += 1;
    }
}

/// Slots of the open-addressing table: a power of two, at least twice the words, so a lookup of
/// a word that is not there (most words of a text) probes about two slots.
const SLOTS: usize = 512;
/// A slot holding no word.
const EMPTY: u16 = u16::MAX;

/// FNV-1a: a few instructions a byte, and it spreads these words well over the table.
const fn hash(bytes: &[u8]) -> u32 {
    let mut hash = 0x811c_9dc5_u32;
    let mut i = 0;
    while i < bytes.len() {
        hash = (hash ^ bytes[i] as u32).wrapping_mul(0x0100_0193);
        i += 1;
    }
    hash
}

/// The `n`-th key of the index: the first word of each rule, then each filler.
const fn key(n: usize) -> &'static str {
    if n >= RULE_COUNT {
        return FILLERS[n - RULE_COUNT];
    }
    let phrase = FLAT[n].phrase;
    let mut end = 0;
    while end < phrase.len() && phrase.as_bytes()[end] != b' ' {
        end += 1;
    }
    phrase.split_at(end).0
}

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

const KEYS: usize = RULE_COUNT + FILLERS.len();

/// The index before it is trimmed to size, built by inserting every key into the hash table.
struct Layout {
    /// For each slot, the number of the word in it, or [`EMPTY`].
    slots: [u16; SLOTS],
    /// For each key, the number of its word.
    word_of: [u16; KEYS],
    /// For each word, the first key that is it.
    first_key: [u16; KEYS],
    /// How many distinct words there are.
    words: usize,
}

const LAYOUT: Layout = {
    let mut layout = Layout {
        slots: [EMPTY; SLOTS],
        word_of: [0; KEYS],
        first_key: [0; KEYS],
        words: 0,
    };
    let mut n = 0;
    while n < KEYS {
        let mut slot = hash(key(n).as_bytes()) as usize & (SLOTS - 1);
        loop {
            let word = layout.slots[slot];
            if word == EMPTY {
                assert!(2 * layout.words < SLOTS, "the word index needs more slots");
                layout.slots[slot] = layout.words as u16;
                layout.first_key[layout.words] = n as u16;
                layout.word_of[n] = layout.words as u16;
                layout.words += 1;
                break;
            }
            if same(key(layout.first_key[word as usize] as usize), key(n)) {
                layout.word_of[n] = word;
                break;
            }
            slot = (slot + 1) & (SLOTS - 1);
        }
        n += 1;
    }
    layout
};

const WORD_COUNT: usize = LAYOUT.words;

/// The hash table: for each slot, the number of the word in it, or [`EMPTY`].
static SLOT_TABLE: [u16; SLOTS] = LAYOUT.slots;

/// The distinct words, each with its filler flag and its range of [`CANDIDATES`].
static WORDS: [Word; WORD_COUNT] = WORD_TABLE;
const WORD_TABLE: [Word; WORD_COUNT] = {
    let mut words = [Word {
        text: "",
        filler: false,
        first: 0,
        count: 0,
    }; WORD_COUNT];
    let mut n = 0;
    while n < KEYS {
        let word = &mut words[LAYOUT.word_of[n] as usize];
        word.text = key(n);
        if n < RULE_COUNT {
            word.count += 1;
        } else {
            word.filler = true;
        }
        n += 1;
    }
    let (mut w, mut first) = (0, 0);
    while w < WORD_COUNT {
        words[w].first = first;
        first += words[w].count;
        w += 1;
    }
    words
};

/// Every rule, grouped by its first word (in [`WORDS`] order), in table order within a group.
static CANDIDATES: [Candidate; RULE_COUNT] = {
    let mut candidates = [Candidate {
        rule: FLAT[0],
        words: 0,
    }; RULE_COUNT];
    let mut filled = [0_u16; WORD_COUNT];
    let mut n = 0;
    while n < RULE_COUNT {
        let w = LAYOUT.word_of[n] as usize;
        let rule = FLAT[n];
        candidates[(WORD_TABLE[w].first + filled[w]) as usize] = Candidate {
            rule,
            words: word_count(rule.phrase),
        };
        filled[w] += 1;
        n += 1;
    }
    candidates
};

/// The most words any phrase has.
pub const LONGEST_PHRASE: usize = {
    let (mut longest, mut n) = (0, 0);
    while n < RULE_COUNT {
        let words = word_count(FLAT[n].phrase);
        if words > longest {
            longest = words;
        }
        n += 1;
    }
    longest
};

const fn word_count(phrase: &str) -> usize {
    let mut words = 1;
    let mut i = 0;
    while i < phrase.len() {
        if phrase.as_bytes()[i] == b' ' {
            words += 1;
        }
        i += 1;
    }
    words
}
#[cfg(test)]
mod tests {
    use super::{FILLERS, LONGEST_PHRASE, lookup, rules};
    use crate::normalize::normalize;

    #[test]
    fn the_index_holds_every_rule_once_under_its_first_word() {
        let mut first_words = std::collections::BTreeSet::new();
        for rule in rules() {
            let first = rule.phrase.split(' ').next().unwrap_or_default();
            first_words.insert(first);
            let word = lookup(first).unwrap_or_else(|| panic!("{first} is not indexed"));
            assert_eq!(word.text, first);
            let words = rule.phrase.split(' ').count();
            assert!(
                word.rules()
                    .iter()
                    .any(|c| c.rule.phrase == rule.phrase && c.words == words),
                "{rule:?}"
            );
        }
        let indexed: usize = first_words
            .iter()
            .filter_map(|w| lookup(w))
            .map(|w| w.rules().len())
            .sum();
        assert_eq!(indexed, rules().count());
        let longest = rules().map(|rule| rule.phrase.split(' ').count()).max();
        assert_eq!(Some(LONGEST_PHRASE), longest);
    }

    #[test]
    fn the_index_knows_the_fillers_and_nothing_else() {
        for filler in FILLERS {
            assert!(lookup(filler).is_some_and(|word| word.filler), "{filler}");
        }
        assert!(lookup("please").is_some_and(|word| word.filler && !word.rules().is_empty()));
        assert!(lookup("yes").is_some_and(|word| !word.filler));
        for absent in ["", "yesterday", "ye", "yess", "Yes", "cancel my", "🙃"] {
            assert!(lookup(absent).is_none(), "{absent:?}");
        }
    }

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
