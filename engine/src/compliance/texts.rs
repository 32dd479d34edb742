//! The texts the host itself sends, in the contact's language: the opt-out and opt-in
//! confirmations, the question asked when a text may be a revocation, the answer to HELP, and
//! the opt-out wording added to a program's first text.
//!
//! Each text is looked up, first match wins, in
//! `[programs.<id>.texts.<locale>]`, `[compliance.texts.<locale>]`, the built-in texts of that
//! locale, and then the same three for `en`. A locale such as `es-MX` also finds `es`. The
//! built-in English and Spanish texts follow the CTIA handbook's wording: the brand first, what
//! happened, and how to undo it or get help.
//!
//! Which locale a reply is in is decided by [`reply_locale`]: a Spanish keyword (BAJA, AYUDA)
//! is answered in Spanish whoever sent it; otherwise the contact's own locale, then the flow's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::keywords;

/// The locale every lookup falls back to.
pub const FALLBACK_LOCALE: &str = "en";

/// One locale's overrides of the host texts (`[compliance.texts.<locale>]` or
/// `[programs.<id>.texts.<locale>]`). `{brand}` is the program's brand and `{contact}` the
/// way to reach a person (`[compliance] contact`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HostTexts {
    /// Sent once after an opt-out.
    #[serde(default)]
    pub opt_out_confirmation: Option<String>,
    /// Sent after START.
    #[serde(default)]
    pub opt_in_confirmation: Option<String>,
    /// Asked once when a text may be a revocation.
    #[serde(default)]
    pub revocation_question: Option<String>,
    /// The answer to HELP.
    #[serde(default)]
    pub help: Option<String>,
    /// Added to a program's first text when it does not say how to opt out.
    #[serde(default)]
    pub opt_out_wording: Option<String>,
}

/// Which host text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostText {
    /// The opt-out confirmation.
    OptOutConfirmation,
    /// The opt-in confirmation.
    OptInConfirmation,
    /// The uncertain-revocation question.
    RevocationQuestion,
    /// The answer to HELP.
    Help,
    /// The opt-out wording of a first text.
    OptOutWording,
}

impl HostText {
    fn pick(self, texts: &HostTexts) -> Option<&str> {
        match self {
            Self::OptOutConfirmation => texts.opt_out_confirmation.as_deref(),
            Self::OptInConfirmation => texts.opt_in_confirmation.as_deref(),
            Self::RevocationQuestion => texts.revocation_question.as_deref(),
            Self::Help => texts.help.as_deref(),
            Self::OptOutWording => texts.opt_out_wording.as_deref(),
        }
    }
}

/// The built-in texts of `locale` (its language), if there are any.
fn built_in(locale: &str, with_contact: bool) -> Option<HostTexts> {
    let texts = match language(locale) {
        "en" => [
            "{brand}: You are unsubscribed and will receive no more messages. Reply START to resubscribe.",
            "{brand}: You are resubscribed. Reply HELP for help, STOP to opt out.",
            "{brand}: Do you want to stop receiving texts from us? Reply STOP to opt out.",
            if with_contact {
                "{brand}: For help, contact {contact}. Msg & data rates may apply. Reply STOP to opt out."
            } else {
                "{brand}: Msg & data rates may apply. Reply STOP to opt out, START to opt back in."
            },
            "Reply STOP to opt out.",
        ],
        "es" => [
            "{brand}: Has cancelado tu suscripción y no recibirás más mensajes. Responde START para volver a suscribirte.",
            "{brand}: Te has vuelto a suscribir. Responde AYUDA para obtener ayuda o STOP para cancelar.",
            "{brand}: ¿Quieres dejar de recibir nuestros mensajes? Responde STOP para cancelar.",
            if with_contact {
                "{brand}: Para obtener ayuda, comunícate con {contact}. Pueden aplicarse tarifas de mensajes y datos. Responde STOP para cancelar."
            } else {
                "{brand}: Pueden aplicarse tarifas de mensajes y datos. Responde STOP para cancelar o START para volver a suscribirte."
            },
            // GSM-7 only, so the wording does not turn a GSM-7 text into a UCS-2 one.
            "Responde STOP para cancelar.",
        ],
        _ => return None,
    };
    let [out, opt_in, revocation, help, wording] = texts.map(|text| Some(text.to_owned()));
    Some(HostTexts {
        opt_out_confirmation: out,
        opt_in_confirmation: opt_in,
        revocation_question: revocation,
        help,
        opt_out_wording: wording,
    })
}

/// The locales with built-in texts.
pub const BUILT_IN_LOCALES: &[&str] = &["en", "es"];

/// The language part of a locale: `es` for `es-MX`, lower case.
pub fn language(locale: &str) -> &str {
    locale.split(['-', '_']).next().unwrap_or(locale)
}

/// The locale a compliance reply is written in: the keyword's language when it has one (BAJA is
/// Spanish, STOP is every language's), else the contact's, else the flow's, else English.
pub fn reply_locale(text: &str, contact: Option<&str>, flow: Option<&str>) -> String {
    keywords::language(text)
        .or(contact)
        .or(flow)
        .unwrap_or(FALLBACK_LOCALE)
        .to_owned()
}

/// Every host text, per program and locale, with the way to reach a person.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// `[compliance] contact`: how to reach a person, for `{contact}`.
    pub contact: Option<String>,
    /// `[compliance.texts.<locale>]`.
    pub texts: BTreeMap<String, HostTexts>,
    /// `[programs.<id>.texts.<locale>]`.
    pub programs: BTreeMap<String, BTreeMap<String, HostTexts>>,
}

impl Catalog {
    /// `which` for `program` in `locale`, with `{brand}` and `{contact}` filled in.
    pub fn render(
        &self,
        which: HostText,
        program: Option<&str>,
        locale: &str,
        brand: Option<&str>,
    ) -> String {
        let template = self.template(which, program, locale);
        let text = template.replace("{contact}", self.contact.as_deref().unwrap_or_default());
        match brand {
            Some(brand) => text.replace("{brand}", brand),
            // No brand anywhere (`check --config` reports it): better no name than a wrong one.
            None => text
                .replace("{brand}: ", "")
                .replace("{brand} ", "")
                .replace("{brand}", ""),
        }
    }

    /// The opt-out wording for `program`'s first texts in `locale`.
    pub fn opt_out_wording(&self, program: Option<&str>, locale: &str) -> String {
        self.render(HostText::OptOutWording, program, locale, None)
    }

    /// The template of `which`, before its placeholders are filled.
    fn template(&self, which: HostText, program: Option<&str>, locale: &str) -> String {
        let program_texts = program.and_then(|program| self.programs.get(program));
        let with_contact = self.contact.is_some();
        for locale in [locale, language(locale), FALLBACK_LOCALE] {
            let configured = program_texts
                .and_then(|texts| texts.get(locale))
                .into_iter()
                .chain(self.texts.get(locale))
                .find_map(|texts| which.pick(texts));
            if let Some(text) = configured {
                return text.to_owned();
            }
            if let Some(text) = built_in(locale, with_contact)
                .as_ref()
                .and_then(|texts| which.pick(texts))
            {
                return text.to_owned();
            }
        }
        // English is built in, so the loop always returns; this keeps the type total.
        String::new()
    }

    /// The locales with texts for `program`: the built-in ones and every configured one.
    pub fn locales(&self, program: Option<&str>) -> Vec<String> {
        let mut locales: Vec<String> = BUILT_IN_LOCALES.iter().map(|l| (*l).to_owned()).collect();
        let program_texts = program.and_then(|program| self.programs.get(program));
        locales.extend(self.texts.keys().cloned());
        locales.extend(
            program_texts
                .into_iter()
                .flat_map(|texts| texts.keys().cloned()),
        );
        locales.sort();
        locales.dedup();
        locales
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog {
            contact: Some("(212) 555-0100".to_owned()),
            ..Catalog::default()
        }
    }

    #[test]
    fn spanish_contacts_get_the_built_in_spanish_texts() {
        let text = catalog().render(HostText::OptOutConfirmation, None, "es-MX", Some("Acme"));
        assert!(text.starts_with("Acme: Has cancelado"), "{text}");
        let help = catalog().render(HostText::Help, None, "es", Some("Acme"));
        assert!(help.contains("(212) 555-0100"), "{help}");
        assert!(help.contains("Responde STOP"), "{help}");
    }

    #[test]
    fn an_unknown_locale_falls_back_to_english() {
        let text = catalog().render(HostText::OptInConfirmation, None, "fr", Some("Acme"));
        assert_eq!(
            text,
            "Acme: You are resubscribed. Reply HELP for help, STOP to opt out."
        );
    }

    #[test]
    fn a_programs_text_beats_the_operators_which_beats_the_built_in() {
        let mut catalog = catalog();
        catalog.texts.insert(
            "es".to_owned(),
            HostTexts {
                help: Some("{brand}: ayuda general".to_owned()),
                opt_out_wording: Some("Envía BAJA para salir.".to_owned()),
                ..HostTexts::default()
            },
        );
        catalog.programs.insert(
            "clinic".to_owned(),
            BTreeMap::from([(
                "es".to_owned(),
                HostTexts {
                    help: Some("{brand}: ayuda de la clínica".to_owned()),
                    ..HostTexts::default()
                },
            )]),
        );
        let help = |program| catalog.render(HostText::Help, program, "es", Some("Sonrisa"));
        assert_eq!(help(Some("clinic")), "Sonrisa: ayuda de la clínica");
        assert_eq!(help(Some("other")), "Sonrisa: ayuda general");
        assert_eq!(
            catalog.opt_out_wording(Some("clinic"), "es"),
            "Envía BAJA para salir."
        );
        assert_eq!(
            catalog.opt_out_wording(Some("clinic"), "en"),
            "Reply STOP to opt out."
        );
    }

    #[test]
    fn no_brand_leaves_no_placeholder_and_no_number() {
        let text = Catalog::default().render(HostText::Help, None, "en", None);
        assert_eq!(
            text,
            "Msg & data rates may apply. Reply STOP to opt out, START to opt back in."
        );
    }

    #[test]
    fn the_keywords_language_beats_the_contacts() {
        assert_eq!(reply_locale("BAJA", Some("en"), None), "es");
        assert_eq!(reply_locale("ayuda", None, Some("en")), "es");
        assert_eq!(reply_locale("STOP", Some("es-MX"), Some("en")), "es-MX");
        assert_eq!(reply_locale("HELP", None, Some("es")), "es");
        assert_eq!(reply_locale("HELP", None, None), "en");
    }

    #[test]
    fn locales_list_the_built_in_and_configured_ones() {
        let mut catalog = catalog();
        catalog
            .texts
            .insert("pt-BR".to_owned(), HostTexts::default());
        assert_eq!(catalog.locales(None), ["en", "es", "pt-BR"]);
    }
}
