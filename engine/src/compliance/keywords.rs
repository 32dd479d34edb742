//! Inbound compliance keywords: what a text means for consent, decided before any flow or
//! plugin sees it.
//!
//! [`classify`] turns an inbound text into a [`KeywordAction`]: an opt-out (STOP and its
//! kin), a HELP request, an opt-in (START, only from someone who is opted out), a
//! natural-language revocation ("please stop texting me"), or nothing, in which case the text
//! goes on to the flows. The host runs it on every inbound text, so a flow or plugin can never
//! swallow a STOP.
//!
//! # Normalising
//!
//! Keywords are matched on [`normalize`]d text: NFKC (full-width `ＳＴＯＰ` is `stop`),
//! lower case, invisible characters (zero-width spaces and joiners, soft hyphens, variation
//! selectors) deleted, and everything that is not a letter or digit (spaces, punctuation,
//! emoji, symbols) treated as a word break, so the ends are trimmed and the inside collapses to
//! single spaces: `" Stop. "`, `"sToP!!!"` and `"STOP 🛑"` are all `stop`, and `"opt-out"` is
//! `opt out`.
//!
//! Inner punctuation is kept in one place only: an apostrophe between two letters (`'`, `’`,
//! `‘`, `ʼ`, all written as `'`), because it holds a contraction together: splitting
//! `don't` into `don t` would leave a stray `t` word. Nothing else inside a message changes
//! what a rule means (a hyphen, a comma or a question mark between words is just a break;
//! `"stop, please"` means the same as `"stop please"`, and no rule depends on a `?`).
//!
//! When the rule tables below are compared, each word is also folded further: apostrophes
//! dropped (`don't` = `dont`, as people type it both ways) and accents removed (`más` = `mas`,
//! as Spanish speakers often type without them). [`normalize`] itself keeps the accents.
//!
//! # The rules, in order (the first that applies decides)
//!
//! 1. **Empty** (nothing left after normalising, e.g. only emoji): [`KeywordAction::None`].
//!    A lone 🛑 is not a keyword; it goes to the flows like any other text.
//! 2. **Exact keyword**, the whole message:
//!    - STOP, STOPALL, STOP ALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT, OPT OUT, ALTO,
//!      PARAR, NO MAS (also "no más"), BAJA → [`KeywordAction::OptOut`]; STOPALL and STOP ALL
//!      with [`OptOutScope::AllPrograms`], the rest with [`OptOutScope::Program`]. These are
//!      the CTIA/carrier keywords plus the words the FCC's 2024 revocation rule lists
//!      (including CANCEL, which is why "Cancel" alone is an opt-out even inside an
//!      appointment flow: flows must not offer opt-out words as answers).
//!    - HELP, INFO, AYUDA → [`KeywordAction::Help`], whether or not the sender is opted out
//!      (carriers require HELP to be answered either way).
//!    - START, UNSTOP, YES → [`KeywordAction::OptIn`] only when the sender is opted out;
//!      otherwise [`KeywordAction::None`] so the flows see the "yes". UNSTOP is never an
//!      opt-out even though it contains "stop".
//!
//!    Only opt-outs get the more forgiving rules below. HELP and opt-ins must be the whole
//!    message: "yes please" from an opted-out contact is not an opt-in.
//! 3. **Courteous keyword**: an opt-out keyword with only courtesy or urgency words around it
//!    (please, now, already, thanks, just, ok, por favor, ya, …), repeated ("stop stop"), or
//!    with our messages as its object ("stop texts", "stop these messages"; "stop it" / "stop
//!    this" for the verbs that mean *cease*) → [`KeywordAction::OptOut`], as certain as the
//!    bare keyword: "stop please", "please stop", "stop now", "STOP!!! 🛑", "stop it already".
//!    Carriers and the FCC treat any reasonable expression of the keyword as a revocation.
//! 4. **Revocation phrases** ([`REVOCATION_PHRASES`], matched as whole words anywhere in the
//!    message, e.g. "please stop texting me", "leave me alone", "don't text me anymore",
//!    "take me off your list", "deja de escribirme"), plus a few short requests that must be
//!    the whole message ("remove me") → [`KeywordAction::Revocation`] with
//!    [`Confidence::Certain`].
//! 5. **Keyword aimed at our messages**: an opt-out keyword whose object is our texts ("can
//!    you stop sending these messages", "could you end all the notifications", "cancel all
//!    these alerts") → Revocation, Certain.
//! 6. **How-to question** about an opt-out verb that only means leaving a list or ceasing
//!    (stop, unsubscribe, opt out, revoke, parar, no más): "how do I stop these?", "how do I
//!    unsubscribe" → Revocation, Certain, when the verb ends the question or its object is us
//!    (these, them, it, you, getting, from, …). With another object ("how do I stop the
//!    payment?") → Revocation, Uncertain. Everyday verbs (cancel, end, quit, alto, baja) do not
//!    count here: "how do I cancel my appointment?" is a flow's business.
//! 7. **Leading keyword**: the message starts with an opt-out keyword but says more that the
//!    rules above do not explain, so the keyword may not be addressed to us: "Stop signs at the
//!    intersection?", "Cancel my appointment", "End of the day works" → Revocation,
//!    [`Confidence::Uncertain`].
//! 8. **Trailing keyword**: the message ends with stop, unsubscribe, opt out, revoke, parar or
//!    no más (after courtesy words and objects): "I said stop", "omg just stop it" →
//!    Revocation, Uncertain. The verb has no object, so it is probably about the conversation,
//!    but "the next bus stop" ends the same way.
//! 9. **List words anywhere**: unsubscribe, opt out, optout or revoke anywhere else ("I want to
//!    unsubscribe from this") → Revocation, Uncertain. These words mean nothing but leaving a
//!    list, unlike "stop", "cancel" or "end", which turn up in ordinary sentences ("I'll stop
//!    by", "I need to cancel my appointment").
//! 10. Otherwise [`KeywordAction::None`]: the flows handle the text. "I need to cancel my
//!     appointment" lands here: CANCEL is a keyword only as the whole message (or leading it,
//!     rule 7); in the middle of a sentence it is a flow intent, not an opt-out.
//!
//! # Certain and uncertain
//!
//! [`Confidence::Certain`] means the text clearly asks us to stop: honour it exactly like
//! STOP. [`Confidence::Uncertain`] means it might: this module does not decide, the consent
//! policy does. The safe default is to treat it as an opt-out or to ask once ("Reply STOP to
//! stop these texts"), never to ignore it: a missed revocation is a TCPA violation, a needless
//! question costs one text. Rules 7–9 trade some needless questions for never missing "I said
//! stop". Spanish sentences other than the listed phrases are not parsed ("me quiero dar de
//! baja" is [`KeywordAction::None`]); add phrases to [`REVOCATION_PHRASES`] as they are seen.
//!
//! There is no model and no scoring: every rule is in the tables below with a comment, so the
//! outcome for any text can be worked out by hand and defended.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization as _;
use unicode_normalization::char::is_combining_mark;

/// What an inbound text means for consent, decided before any flow or plugin sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum KeywordAction {
    /// An opt-out keyword (STOP and its kin): stop texting this contact.
    OptOut {
        /// The program(s) the opt-out covers.
        scope: OptOutScope,
        /// The keyword as recognised, in its canonical upper-case spelling (`STOP`,
        /// `STOP ALL`, `NO MAS`, `OPT OUT`, …), whatever case, width, accents or punctuation
        /// the contact used.
        keyword: String,
    },
    /// A HELP request (HELP, INFO, AYUDA): answer with the program's help text.
    Help {
        /// The keyword as recognised, upper case (`HELP`, `INFO`, `AYUDA`).
        keyword: String,
    },
    /// An opted-out contact asked to be opted back in (START, UNSTOP, YES).
    OptIn {
        /// The keyword as recognised, upper case (`START`, `UNSTOP`, `YES`).
        keyword: String,
    },
    /// A natural-language request to stop ("please stop texting me"), or a text that may be
    /// one.
    Revocation {
        /// Whether the text is clearly a revocation; see the module documentation for what
        /// to do with [`Confidence::Uncertain`].
        confidence: Confidence,
        /// The whole message, [`normalize`]d: what the contact said, for the ledger and for
        /// whoever reviews an uncertain case.
        phrase: String,
    },
    /// Nothing to do with consent: the flows handle the text.
    None,
}

/// Which programs an opt-out covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptOutScope {
    /// The program the contact is texting with.
    Program,
    /// Every program on the sender (STOPALL, STOP ALL).
    AllPrograms,
}

/// How sure [`classify`] is that a [`KeywordAction::Revocation`] is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// The text clearly asks us to stop: honour it like STOP.
    Certain,
    /// The text may ask us to stop. The consent policy decides; the safe default is to treat
    /// it as an opt-out or to ask once, never to ignore it.
    Uncertain,
}

/// How an opt-out keyword is used outside of opting out, which decides where else in a
/// longer message it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sense {
    /// Means nothing but leaving a list (unsubscribe, opt out, revoke): counts anywhere in a
    /// message (rule 9), at its end (rule 8) and in how-to questions (rule 6).
    ListOnly,
    /// Means "cease" (stop, parar, no más): takes pronoun objects ("stop it", rule 3), counts
    /// at the end of a message (rule 8) and in how-to questions (rule 6).
    Cease,
    /// Also an everyday word (cancel an appointment, end of the day, quit a job, alto = high,
    /// baja = low): counts only as the whole message, courteous (rule 3), aimed at our
    /// messages (rule 5) or leading a message (rule 7).
    Everyday,
}

/// One opt-out keyword.
struct OptOutKeyword {
    /// Its words in match form (lower case, no accents), separated by one space.
    words: &'static str,
    /// Its canonical spelling, reported in the `keyword` of [`KeywordAction::OptOut`].
    canonical: &'static str,
    /// The programs it covers.
    scope: OptOutScope,
    /// Where else it counts.
    sense: Sense,
}

/// Builds an [`OptOutKeyword`] table entry.
const fn opt_out(
    words: &'static str,
    canonical: &'static str,
    scope: OptOutScope,
    sense: Sense,
) -> OptOutKeyword {
    OptOutKeyword {
        words,
        canonical,
        scope,
        sense,
    }
}

/// The opt-out keywords. Two-word spellings come first so that the longest match wins
/// ("stop all" before "stop").
const OPT_OUT_KEYWORDS: &[OptOutKeyword] = &[
    // Every program; CTIA's STOPALL, also typed with a space.
    opt_out(
        "stop all",
        "STOP ALL",
        OptOutScope::AllPrograms,
        Sense::Cease,
    ),
    // FCC 2024 list; "opt-out" normalises to this.
    opt_out("opt out", "OPT OUT", OptOutScope::Program, Sense::ListOnly),
    // Spanish "no more"; "no más" folds to this.
    opt_out("no mas", "NO MAS", OptOutScope::Program, Sense::Cease),
    opt_out("stopall", "STOPALL", OptOutScope::AllPrograms, Sense::Cease),
    // CTIA, carriers, FCC.
    opt_out("stop", "STOP", OptOutScope::Program, Sense::Cease),
    opt_out(
        "unsubscribe",
        "UNSUBSCRIBE",
        OptOutScope::Program,
        Sense::ListOnly,
    ),
    // On the FCC's list, but people cancel appointments and orders.
    opt_out("cancel", "CANCEL", OptOutScope::Program, Sense::Everyday),
    // "End of the day", "the end".
    opt_out("end", "END", OptOutScope::Program, Sense::Everyday),
    // "I quit my job".
    opt_out("quit", "QUIT", OptOutScope::Program, Sense::Everyday),
    // FCC 2024 list.
    opt_out("revoke", "REVOKE", OptOutScope::Program, Sense::ListOnly),
    opt_out("optout", "OPTOUT", OptOutScope::Program, Sense::ListOnly),
    // Spanish "stop"; also "high, tall".
    opt_out("alto", "ALTO", OptOutScope::Program, Sense::Everyday),
    // Spanish "to stop".
    opt_out("parar", "PARAR", OptOutScope::Program, Sense::Cease),
    // Spanish "(dar de) baja", unsubscribe; also "low".
    opt_out("baja", "BAJA", OptOutScope::Program, Sense::Everyday),
];

/// HELP keywords (whole message only), with their canonical spelling.
const HELP_KEYWORDS: &[(&str, &str)] = &[("help", "HELP"), ("info", "INFO"), ("ayuda", "AYUDA")];

/// Opt-in keywords (whole message only, and only from an opted-out contact).
const OPT_IN_KEYWORDS: &[(&str, &str)] =
    &[("start", "START"), ("unstop", "UNSTOP"), ("yes", "YES")];

/// Words that add politeness or urgency and nothing else; rule 3 ignores them around an
/// opt-out keyword. Multi-word entries are matched as a unit.
const COURTESY: &[&str] = &[
    "please",
    "pls",
    "plz",
    "right now",
    "now",
    "already",
    "asap",
    "immediately",
    "thank you",
    "thanks",
    "thx",
    "ty",
    "just",
    "ok",
    "okay",
    "por favor",
    "ya",
    "ahora",
    "gracias",
];

/// Nouns for our messages: an opt-out keyword with one of these as its object is aimed at
/// us (rules 3, 5, 6). "text" and "message" are left out: they are verbs too ("stop, I'll
/// text you").
const MESSAGE_NOUNS: &[&str] = &[
    "texts",
    "texting",
    "messages",
    "messaging",
    "msgs",
    "sms",
    "notifications",
    "alerts",
    "mensajes",
];

/// Pronouns that, after a verb meaning "cease", stand for our messages ("stop it", "stop
/// these"); rules 3 and 6.
const PRONOUNS: &[&str] = &["it", "this", "these", "that", "them"];

/// Words that may stand between an opt-out keyword and a [`MESSAGE_NOUNS`] entry in rule 5
/// ("stop sending me these texts", "cancel all the alerts").
const NOUN_LEAD_INS: &[&str] = &[
    "all",
    "the",
    "these",
    "this",
    "those",
    "your",
    "ur",
    "me",
    "sending",
    "getting",
    "receiving",
    "los",
    "las",
    "tus",
    "sus",
];

/// Words that, right after the verb of a how-to question, show the verb is about us (rule
/// 6): "how do I stop getting these", "how do I unsubscribe from this", "how do I stop you".
const QUESTION_OBJECTS: &[&str] = &["getting", "receiving", "from", "of", "you", "all", "me"];

/// Words that open a how-to question (rule 6); "cómo" folds to "como".
const HOW: &[&str] = &["how", "como"];

/// Natural-language revocations, matched as whole words anywhere in the message (rule 4), in
/// match form (no apostrophes, no accents). Each is a request addressed to us.
pub const REVOCATION_PHRASES: &[&str] = &[
    // The plain request, with "me" making it about the sender's own texts.
    "stop texting me",
    "stop messaging me",
    "stop sending me",
    "stop contacting me",
    "stop calling me",
    // Wanting no contact at all.
    "leave me alone",
    // Negative commands; "don't" and "dont" both fold to "dont".
    "dont text me",
    "do not text me",
    "dont message me",
    "do not message me",
    "dont contact me",
    "do not contact me",
    // Refusing further texts.
    "no more messages",
    "no more texts",
    // Asking to be taken off "your" or "this" list, not some other list (a waitlist).
    "take me off your list",
    "take me off this list",
    "remove me from your list",
    "remove me from this list",
    // Keyword verbs aimed at the sender.
    "unsubscribe me",
    "opt me out",
    "revoke my consent",
    // Spanish: "stop writing/sending to me", "don't write/send to me any more".
    "deja de escribirme",
    "deja de enviarme",
    "deja de mandarme",
    "no me escribas mas",
    "no me envies mas",
    "no me mandes mas",
];

/// Short revocations that count only as the whole message (after courtesy words), because
/// inside a sentence they are about something else ("remove me from the waitlist").
const WHOLE_MESSAGE_REVOCATIONS: &[&str] = &["remove me", "take me off", "sacame"];

/// Text normalised for keyword matching (see the module documentation): NFKC, lower case,
/// invisible characters deleted, whitespace, punctuation and emoji trimmed from both ends and
/// turned into single spaces inside. The one inner punctuation mark kept is an apostrophe
/// between two letters (`don't`), written as `'`.
pub fn normalize(text: &str) -> String {
    // Invisible characters go first: left in, one between a letter and its accent keeps NFKC
    // from composing them, and deleting it later leaves a text a second pass would change
    // (found by the `keywords` fuzz target).
    let visible: String = text.chars().filter(|c| !is_invisible(*c)).collect();
    let lowered = visible.nfkc().collect::<String>().to_lowercase();
    let chars: Vec<char> = lowered.nfkc().filter(|c| !is_invisible(*c)).collect();
    let mut out = String::with_capacity(lowered.len());
    let mut in_word = false;
    let mut pending_space = false;
    for (index, &c) in chars.iter().enumerate() {
        if c.is_alphanumeric() {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(c);
            in_word = true;
        } else if in_word && is_combining_mark(c) {
            // A mark NFKC could not compose (many scripts have no precomposed forms) stays
            // with its letter.
            out.push(c);
        } else if in_word
            && is_apostrophe(c)
            && chars
                .get(index + 1)
                .is_some_and(|next| next.is_alphabetic())
        {
            out.push('\'');
        } else {
            // A break. Only one between words, and none at the ends.
            pending_space |= in_word;
            in_word = false;
        }
    }
    out
}

/// Characters that carry no meaning in a keyword and would otherwise split a word in two
/// (`ST\u{200B}OP`): zero-width space, non-joiner and joiner, word joiner, byte-order mark,
/// soft hyphen, variation selectors (the emoji-style marks).
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}'
    ) || ('\u{FE00}'..='\u{FE0F}').contains(&c)
}

/// Apostrophes as keyboards produce them; NFKC has already turned the full-width one into `'`.
fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}' | '\u{2018}' | '\u{02BC}')
}

/// Words that mark a keyword text as Spanish, in match form: the Spanish keywords and the
/// courtesy words and nouns said around them ("baja por favor", "no mas mensajes").
const SPANISH_MARKERS: &[&str] = &[
    "alto",
    "parar",
    "baja",
    "no mas",
    "ayuda",
    "por favor",
    "gracias",
    "mensajes",
];

/// The language a keyword text is written in, when its words say (`es` for BAJA, AYUDA,
/// "no más mensajes"); `None` for STOP, HELP and everything else, which every language uses.
pub fn language(text: &str) -> Option<&'static str> {
    let words: Vec<String> = normalize(text)
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(match_form)
        .collect();
    SPANISH_MARKERS
        .iter()
        .any(|marker| find(&words, marker).is_some())
        .then_some("es")
}

/// What `text` means for consent, for a contact who is (`opted_out`) or is not opted out;
/// the rules are in the module documentation.
pub fn classify(text: &str, opted_out: bool) -> KeywordAction {
    let normalized = normalize(text);
    let words: Vec<String> = normalized
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(match_form)
        .collect();

    // Rule 1: nothing left, e.g. only emoji.
    if words.is_empty() {
        return KeywordAction::None;
    }

    // Rule 2: exact keywords.
    if let Some(keyword) = OPT_OUT_KEYWORDS
        .iter()
        .find(|k| is_exactly(&words, k.words))
    {
        return KeywordAction::OptOut {
            scope: keyword.scope,
            keyword: keyword.canonical.to_owned(),
        };
    }
    if let Some((_, canonical)) = HELP_KEYWORDS.iter().find(|(k, _)| is_exactly(&words, k)) {
        return KeywordAction::Help {
            keyword: (*canonical).to_owned(),
        };
    }
    if let Some((_, canonical)) = OPT_IN_KEYWORDS.iter().find(|(k, _)| is_exactly(&words, k)) {
        return if opted_out {
            KeywordAction::OptIn {
                keyword: (*canonical).to_owned(),
            }
        } else {
            KeywordAction::None
        };
    }

    let core = without_courtesy(&words);
    let revocation = |confidence| KeywordAction::Revocation {
        confidence,
        phrase: normalized.clone(),
    };

    // Rule 3: a keyword with courtesy words, repeats or our messages as its object.
    if let Some(action) = courteous_opt_out(&core) {
        return action;
    }
    // Rule 4: revocation phrases.
    if REVOCATION_PHRASES.iter().any(|p| find(&words, p).is_some())
        || WHOLE_MESSAGE_REVOCATIONS
            .iter()
            .any(|p| is_exactly(&core, p))
    {
        return revocation(Confidence::Certain);
    }
    // Rule 5: a keyword aimed at our messages.
    if aimed_at_messages(&words) {
        return revocation(Confidence::Certain);
    }
    // Rule 6: how do I stop these?
    if let Some(confidence) = how_to_question(&words) {
        return revocation(confidence);
    }
    // Rule 7: starts with a keyword, says more.
    if leading_opt_out(&core).is_some() {
        return revocation(Confidence::Uncertain);
    }
    // Rule 8: ends with a keyword ("I said stop").
    if trailing_opt_out(&core) {
        return revocation(Confidence::Uncertain);
    }
    // Rule 9: a word that only means leaving a list, anywhere.
    let list_word = OPT_OUT_KEYWORDS
        .iter()
        .filter(|k| k.sense == Sense::ListOnly)
        .any(|k| find(&words, k.words).is_some());
    if list_word {
        return revocation(Confidence::Uncertain);
    }
    // Rule 10.
    KeywordAction::None
}

/// A normalised word as the tables are written: apostrophes dropped (`don't` → `dont`) and
/// accents removed (`más` → `mas`).
fn match_form(word: &str) -> String {
    word.nfd()
        .filter(|c| *c != '\'' && !is_combining_mark(*c))
        .collect()
}

/// How many words `phrase` (words separated by one space) covers at the start of `words`.
fn prefix_len(words: &[String], phrase: &str) -> Option<usize> {
    let mut count = 0;
    for part in phrase.split(' ') {
        if words.get(count).map(String::as_str) != Some(part) {
            return None;
        }
        count += 1;
    }
    Some(count)
}

/// Whether `words` are exactly `phrase`.
fn is_exactly(words: &[String], phrase: &str) -> bool {
    prefix_len(words, phrase) == Some(words.len())
}

/// Where `phrase` first occurs in `words`, as whole words.
fn find(words: &[String], phrase: &str) -> Option<usize> {
    (0..words.len()).find(|&start| prefix_len(&words[start..], phrase).is_some())
}

/// The opt-out keyword `words` start with, longest first, and how many words it covers.
fn leading_opt_out(words: &[String]) -> Option<(&'static OptOutKeyword, usize)> {
    OPT_OUT_KEYWORDS
        .iter()
        .find_map(|keyword| prefix_len(words, keyword.words).map(|len| (keyword, len)))
}

/// `words` without the [`COURTESY`] words, wherever they are.
fn without_courtesy(words: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(words.len());
    let mut index = 0;
    while index < words.len() {
        match COURTESY
            .iter()
            .find_map(|phrase| prefix_len(&words[index..], phrase))
        {
            Some(len) => index += len,
            None => {
                out.push(words[index].clone());
                index += 1;
            }
        }
    }
    out
}

/// Rule 3 on `core` (the words without courtesy words): an opt-out keyword followed only by
/// more opt-out keywords and objects that stand for our messages.
fn courteous_opt_out(core: &[String]) -> Option<KeywordAction> {
    let (first, mut index) = leading_opt_out(core)?;
    let mut scope = first.scope;
    while index < core.len() {
        if let Some((keyword, len)) = leading_opt_out(&core[index..]) {
            // "stop stop", "stop unsubscribe", "stop all please stop": the widest scope wins.
            if keyword.scope == OptOutScope::AllPrograms {
                scope = OptOutScope::AllPrograms;
            }
            index += len;
            continue;
        }
        let word = core[index].as_str();
        let object = MESSAGE_NOUNS.contains(&word)
            || (first.sense == Sense::Cease && PRONOUNS.contains(&word));
        if !object {
            return None;
        }
        index += 1;
    }
    Some(KeywordAction::OptOut {
        scope,
        keyword: first.canonical.to_owned(),
    })
}

/// Rule 5: somewhere an opt-out keyword is followed, through [`NOUN_LEAD_INS`] only, by one
/// of [`MESSAGE_NOUNS`].
fn aimed_at_messages(words: &[String]) -> bool {
    (0..words.len()).any(|start| {
        leading_opt_out(&words[start..]).is_some_and(|(_, len)| {
            words[start + len..]
                .iter()
                .map(String::as_str)
                .find(|word| !NOUN_LEAD_INS.contains(word))
                .is_some_and(|word| MESSAGE_NOUNS.contains(&word))
        })
    })
}

/// Rule 6: a how-to question about a non-everyday opt-out verb; certain when the verb ends the
/// message or its object is us.
fn how_to_question(words: &[String]) -> Option<Confidence> {
    let how = words.iter().position(|word| HOW.contains(&word.as_str()))?;
    (how + 1..words.len()).find_map(|start| {
        let (keyword, len) = leading_opt_out(&words[start..])?;
        if keyword.sense == Sense::Everyday {
            return None;
        }
        let about_us = words.get(start + len).is_none_or(|next| {
            let next = next.as_str();
            QUESTION_OBJECTS.contains(&next)
                || MESSAGE_NOUNS.contains(&next)
                || PRONOUNS.contains(&next)
        });
        Some(if about_us {
            Confidence::Certain
        } else {
            Confidence::Uncertain
        })
    })
}

/// Rule 8 on `core` (the words without courtesy words): after dropping objects from the end,
/// the message ends with a keyword that is not an everyday word.
fn trailing_opt_out(core: &[String]) -> bool {
    let mut end = core.len();
    while end > 0 {
        let word = core[end - 1].as_str();
        if MESSAGE_NOUNS.contains(&word) || PRONOUNS.contains(&word) {
            end -= 1;
        } else {
            break;
        }
    }
    let rest = &core[..end];
    OPT_OUT_KEYWORDS
        .iter()
        .filter(|keyword| keyword.sense != Sense::Everyday)
        .any(|keyword| {
            let len = keyword.words.split(' ').count();
            rest.len() >= len && is_exactly(&rest[rest.len() - len..], keyword.words)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opt_out(keyword: &str) -> KeywordAction {
        KeywordAction::OptOut {
            scope: OptOutScope::Program,
            keyword: keyword.to_owned(),
        }
    }

    fn opt_out_all(keyword: &str) -> KeywordAction {
        KeywordAction::OptOut {
            scope: OptOutScope::AllPrograms,
            keyword: keyword.to_owned(),
        }
    }

    fn revocation(confidence: Confidence, text: &str) -> KeywordAction {
        KeywordAction::Revocation {
            confidence,
            phrase: normalize(text),
        }
    }

    /// Classifies `text` for a contact who is not opted out and for one who is, and checks
    /// both give `expected` (everything but the opt-in keywords ignores `opted_out`).
    fn both(text: &str, expected: KeywordAction) {
        assert_eq!(classify(text, false), expected, "{text:?}, not opted out");
        assert_eq!(classify(text, true), expected, "{text:?}, opted out");
    }

    // Normalising.

    #[test]
    fn normalize_trims_folds_and_collapses() {
        assert_eq!(normalize(" Stop. "), "stop");
        assert_eq!(normalize("sToP!!!"), "stop");
        assert_eq!(normalize("STOP 🛑"), "stop");
        assert_eq!(normalize("ＳＴＯＰ"), "stop");
        assert_eq!(normalize("  stop \t\n  ALL "), "stop all");
        assert_eq!(normalize("opt-out"), "opt out");
        assert_eq!(normalize("¡¡No   Más!!"), "no más");
        assert_eq!(normalize("🙂🛑👍🏽"), "");
        assert_eq!(normalize(""), "");
    }

    #[test]
    fn normalize_keeps_apostrophes_inside_words_only() {
        assert_eq!(normalize("Don’t text me anymore!"), "don't text me anymore");
        assert_eq!(normalize("'stop'"), "stop");
        assert_eq!(normalize("rock 'n' roll"), "rock n roll");
    }

    #[test]
    fn normalize_deletes_invisible_characters() {
        assert_eq!(normalize("ST\u{200B}OP\u{FE0F}"), "stop");
        assert_eq!(normalize("\u{FEFF}stop\u{00A0}all"), "stop all");
    }

    #[test]
    fn normalize_keeps_marks_with_their_letters() {
        // Devanagari: the vowel sign and virama are combining marks, not breaks.
        assert_eq!(normalize("नमस्ते!"), "नमस्ते");
        // Decomposed input is composed.
        assert_eq!(normalize("NO MA\u{0301}S"), "no más");
    }

    // The inputs from the issue.

    #[test]
    fn stop_with_spaces_and_period() {
        both(" Stop. ", opt_out("STOP"));
    }

    #[test]
    fn stop_mixed_case_with_exclamations() {
        both("sToP!!!", opt_out("STOP"));
    }

    #[test]
    fn stop_with_emoji() {
        both("STOP 🛑", opt_out("STOP"));
        both("STOP!!! 🛑", opt_out("STOP"));
    }

    #[test]
    fn stop_full_width() {
        both("ＳＴＯＰ", opt_out("STOP"));
    }

    #[test]
    fn stop_all_covers_every_program() {
        both("stop all", opt_out_all("STOP ALL"));
        both("STOPALL", opt_out_all("STOPALL"));
        both("Stop all please", opt_out_all("STOP ALL"));
    }

    #[test]
    fn unstop_is_not_an_opt_out() {
        assert_eq!(classify("UNSTOP", false), KeywordAction::None);
        assert_eq!(
            classify("UNSTOP", true),
            KeywordAction::OptIn {
                keyword: "UNSTOP".to_owned()
            }
        );
    }

    #[test]
    fn alto() {
        both("alto", opt_out("ALTO"));
    }

    #[test]
    fn no_mas() {
        both("no mas", opt_out("NO MAS"));
    }

    #[test]
    fn no_mas_with_accent() {
        both("No más", opt_out("NO MAS"));
    }

    /// The keyword leads but is not addressed to us: uncertain, for the policy to decide.
    #[test]
    fn stop_signs_at_the_intersection_is_uncertain() {
        both(
            "Stop signs at the intersection?",
            revocation(Confidence::Uncertain, "Stop signs at the intersection?"),
        );
    }

    #[test]
    fn empty_text_is_none() {
        both("", KeywordAction::None);
        both("  \t\n", KeywordAction::None);
    }

    #[test]
    fn emoji_only_is_none() {
        both("🛑🙏", KeywordAction::None);
        both("👍🏽", KeywordAction::None);
    }

    #[test]
    fn start_when_not_opted_out_is_none() {
        assert_eq!(classify("START", false), KeywordAction::None);
    }

    #[test]
    fn start_when_opted_out_is_opt_in() {
        assert_eq!(
            classify("START", true),
            KeywordAction::OptIn {
                keyword: "START".to_owned()
            }
        );
    }

    #[test]
    fn yes_please_when_opted_out_is_none() {
        assert_eq!(classify("yes please", true), KeywordAction::None);
        assert_eq!(
            classify("Yes!", true),
            KeywordAction::OptIn {
                keyword: "YES".to_owned()
            }
        );
        assert_eq!(classify("yes", false), KeywordAction::None);
    }

    #[test]
    fn help() {
        both(
            "HELP",
            KeywordAction::Help {
                keyword: "HELP".to_owned(),
            },
        );
        both(
            "info?",
            KeywordAction::Help {
                keyword: "INFO".to_owned(),
            },
        );
    }

    #[test]
    fn ayuda() {
        both(
            "ayuda",
            KeywordAction::Help {
                keyword: "AYUDA".to_owned(),
            },
        );
    }

    #[test]
    fn please_stop_texting_me() {
        both(
            "please stop texting me",
            revocation(Confidence::Certain, "please stop texting me"),
        );
    }

    #[test]
    fn leave_me_alone() {
        both(
            "leave me alone",
            revocation(Confidence::Certain, "leave me alone"),
        );
    }

    #[test]
    fn dont_text_me_anymore() {
        both(
            "don't text me anymore",
            revocation(Confidence::Certain, "don't text me anymore"),
        );
        both(
            "Don’t text me anymore",
            revocation(Confidence::Certain, "don't text me anymore"),
        );
        both(
            "dont text me anymore",
            revocation(Confidence::Certain, "dont text me anymore"),
        );
    }

    #[test]
    fn no_more_messages() {
        both(
            "no more messages",
            revocation(Confidence::Certain, "no more messages"),
        );
    }

    /// The FCC lists CANCEL: alone it is an opt-out, even in an appointment flow.
    #[test]
    fn cancel() {
        both("Cancel", opt_out("CANCEL"));
    }

    /// CANCEL inside a sentence is a flow intent, not an opt-out.
    #[test]
    fn cancel_my_appointment_is_none() {
        both("I need to cancel my appointment", KeywordAction::None);
    }

    #[test]
    fn end() {
        both("END", opt_out("END"));
    }

    #[test]
    fn quit() {
        both("quit", opt_out("QUIT"));
    }

    #[test]
    fn opt_hyphen_out() {
        both("opt-out", opt_out("OPT OUT"));
    }

    #[test]
    fn opt_space_out() {
        both("opt out", opt_out("OPT OUT"));
    }

    #[test]
    fn optout() {
        both("OPTOUT", opt_out("OPTOUT"));
    }

    #[test]
    fn baja() {
        both("baja", opt_out("BAJA"));
    }

    #[test]
    fn parar() {
        both("parar", opt_out("PARAR"));
    }

    #[test]
    fn revoke() {
        both("revoke", opt_out("REVOKE"));
    }

    // The decisions around the keyword rules.

    #[test]
    fn unsubscribe() {
        both("Unsubscribe.", opt_out("UNSUBSCRIBE"));
    }

    #[test]
    fn courteous_stop_is_an_opt_out() {
        for text in [
            "stop please",
            "stop now",
            "please stop",
            "Please stop now, thank you",
            "STOP STOP STOP",
            "stop it already",
            "just stop",
            "stop texts",
            "stop these messages!",
            "no más por favor",
            "no más mensajes",
        ] {
            let expected = if text.starts_with("no") {
                opt_out("NO MAS")
            } else {
                opt_out("STOP")
            };
            both(text, expected);
        }
    }

    #[test]
    fn pronoun_objects_only_after_cease_verbs() {
        // "cancel it" may be the appointment; only "stop it" stands for our texts.
        both("cancel it", revocation(Confidence::Uncertain, "cancel it"));
        both("cancel texts please", opt_out("CANCEL"));
    }

    #[test]
    fn how_do_i_stop_these_is_certain() {
        both(
            "how do I stop these?",
            revocation(Confidence::Certain, "how do I stop these?"),
        );
        both(
            "How can I unsubscribe",
            revocation(Confidence::Certain, "How can I unsubscribe"),
        );
        both(
            "how do I opt out of this?",
            revocation(Confidence::Certain, "how do I opt out of this?"),
        );
    }

    #[test]
    fn how_to_question_with_another_object_is_uncertain() {
        both(
            "how do I stop the payment?",
            revocation(Confidence::Uncertain, "how do I stop the payment?"),
        );
        // Everyday verbs are the flows' business in questions.
        both("How do I cancel my appointment?", KeywordAction::None);
        both(
            "how do I cancel these texts?",
            revocation(Confidence::Certain, "how do I cancel these texts?"),
        );
    }

    #[test]
    fn keyword_aimed_at_our_messages_is_certain() {
        for text in [
            "can you stop sending these texts",
            "could you end all the notifications",
            "cancel all these alerts",
        ] {
            both(text, revocation(Confidence::Certain, text));
        }
        // "text" is a verb too.
        both(
            "Stop, I'll text you later",
            revocation(Confidence::Uncertain, "Stop, I'll text you later"),
        );
    }

    #[test]
    fn more_revocation_phrases() {
        for text in [
            "Take me off your list",
            "remove me from your list please",
            "unsubscribe me",
            "Deja de escribirme",
            "no me escribas más!",
            "remove me",
            "Please remove me.",
        ] {
            both(text, revocation(Confidence::Certain, text));
        }
        both("remove me from the waitlist", KeywordAction::None);
    }

    #[test]
    fn leading_keyword_saying_more_is_uncertain() {
        for text in [
            "Cancel my appointment",
            "End of the day works",
            "Stop by at 3?",
        ] {
            both(text, revocation(Confidence::Uncertain, text));
        }
    }

    #[test]
    fn trailing_keyword_or_list_word_is_uncertain() {
        for text in [
            "I said STOP",
            "omg please just stop it",
            "I want to unsubscribe from this",
        ] {
            both(text, revocation(Confidence::Uncertain, text));
        }
        // Everyday words at the end are not keywords.
        both("the price is too alto", KeywordAction::None);
        both("I'll stop by tomorrow", KeywordAction::None);
    }

    #[test]
    fn help_and_opt_in_must_be_the_whole_message() {
        both("help me choose a time", KeywordAction::None);
        assert_eq!(classify("start over", true), KeywordAction::None);
        assert_eq!(
            classify("START!!", true),
            KeywordAction::OptIn {
                keyword: "START".to_owned()
            }
        );
    }

    #[test]
    fn keyword_inside_a_word_does_not_count() {
        both("stopped by earlier", KeywordAction::None);
        both("the weekend works", KeywordAction::None);
        both("nostop", KeywordAction::None);
    }

    #[test]
    fn serde_names() {
        let value = serde_json::to_value(opt_out_all("STOP ALL")).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"action": "opt_out", "scope": "all_programs", "keyword": "STOP ALL"})
        );
        let value = serde_json::to_value(revocation(Confidence::Uncertain, "x")).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"action": "revocation", "confidence": "uncertain", "phrase": "x"})
        );
        assert_eq!(
            serde_json::to_value(KeywordAction::None).unwrap(),
            serde_json::json!({"action": "none"})
        );
    }

    #[test]
    fn spanish_keywords_say_their_language() {
        for text in [
            "BAJA",
            "Alto",
            "ayuda",
            "No más mensajes",
            "parar por favor",
        ] {
            assert_eq!(language(text), Some("es"), "{text}");
        }
        for text in ["STOP", "HELP", "info", "start", "stop texting me", ""] {
            assert_eq!(language(text), None, "{text}");
        }
    }
}
