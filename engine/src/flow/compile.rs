//! From a flow file's text to a checked [`Flow`]: every mistake that needs no plugin to find
//! (syntax, unknown keys, keys that do not belong to a step's type, routes to missing steps,
//! unreachable steps, loops without a wait and turns longer than the runtime runs (see
//! [`super::graph`]), templates with undefined fields, a marketing flow whose first text lacks
//! its brand or opt-out wording) is reported at its file, line and column.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use sha2::{Digest as _, Sha256};
use toml::Spanned;

use super::diagnostic::{Diagnostic, Location, SourceMap};
use super::model::{
    CaseFile, ConnectorOperation, FlowFile, LocalizedText, StepFile, StepKind, VariantFile,
};
use super::suggest;
use super::template::Template;
use super::words;
use super::{
    Action, Case, Condition, ConnectorAction, Escalation, Flow, LocalizedTemplate, Step, Topic,
    Triggers, Variant,
};

/// Fields every conversation has, whatever its flow sets.
pub const BUILTIN_FIELDS: &[&str] = &[
    "contact",
    "our_number",
    "reply",
    "intent",
    "intent_confidence",
    "locale",
    "variant",
    "brand",
    "campaign",
];

/// Fields whose names start with this are a classifier's entities (`entity_time`).
pub const ENTITY_FIELD_PREFIX: &str = "entity_";

/// Words or phrases that count as opt-out wording in a marketing flow's first text.
const OPT_OUT_WORDING: &[&str] = &["stop", "opt out", "unsubscribe", "baja"];

/// Compiles one flow file.
///
/// # Errors
///
/// Every problem found, in file order; the flow is only returned when there is none.
pub fn compile(path: &Path, source: &str) -> Result<Flow, Vec<Diagnostic>> {
    match compile_with_problems(path, source)? {
        (flow, problems) if problems.is_empty() => Ok(flow),
        (_, problems) => Err(problems),
    }
}

/// Compiles one flow file, returning the flow even when the checks that need a whole, well-typed
/// flow (unreachable steps, loops, fields, marketing wording) found problems, so that the
/// caller can check it further (against the plugins) and report everything at once.
///
/// # Errors
///
/// The problems that stop the flow from being built at all: syntax, unknown or misplaced keys,
/// routes to missing steps, invalid templates and durations.
pub fn compile_with_problems(
    path: &Path,
    source: &str,
) -> Result<(Flow, Vec<Diagnostic>), Vec<Diagnostic>> {
    let map = SourceMap::new(path, source);
    let file: FlowFile = toml::from_str(source).map_err(|error| {
        let at = error.span().map(|span| span.start).unwrap_or_default();
        vec![map.error(at..at, super::unknown::explain(source, &error))]
    })?;
    let mut compiler = Compiler {
        map: &map,
        file: &file,
        errors: Vec::new(),
    };
    let mut flow = compiler.flow(path, source);
    flow.warnings = contains_traps(&map, &file);
    let mut errors = compiler.errors;
    if !errors.is_empty() {
        errors.sort_by_key(|error| error.at);
        return Err(errors);
    }
    let mut problems = super::graph::check_graph(&map, &flow);
    problems.extend(check_fields(&map, &flow));
    problems.extend(check_marketing(&map, &file, &flow));
    problems.sort_by_key(|problem| problem.at);
    Ok((flow, problems))
}

struct Compiler<'a> {
    map: &'a SourceMap<'a>,
    file: &'a FlowFile,
    errors: Vec<Diagnostic>,
}

impl Compiler<'_> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.errors.push(self.map.error(span, message));
    }

    fn flow(&mut self, path: &Path, source: &str) -> Flow {
        let file = self.file;
        if !valid_id(file.id.get_ref()) {
            self.error(
                file.id.span(),
                format!(
                    "flow id `{}` must be lower-case letters, digits, `-` and `_`",
                    file.id.get_ref()
                ),
            );
        }
        if file.program.get_ref().trim().is_empty() {
            self.error(file.program.span(), "`program` must name a consent program");
        }
        if let Some(campaign) = &file.campaign
            && !valid_id(campaign.get_ref())
        {
            self.error(
                campaign.span(),
                format!(
                    "campaign `{}` must be lower-case letters, digits, `-` and `_`",
                    campaign.get_ref()
                ),
            );
        }
        let start = self.target(&file.start, "start");
        let triggers = self.triggers();
        let escalation = file.escalation.as_ref().map(|rules| self.escalation(rules));
        let on_error = file
            .on_error
            .as_ref()
            .map(|target| self.target(target, "on_error"));
        let steps = file
            .steps
            .iter()
            .filter_map(|(name, step)| {
                let action = self.step(name, step)?;
                Some((
                    name.clone(),
                    Step {
                        name: name.clone(),
                        at: self.map.locate(step.span().start),
                        action,
                    },
                ))
            })
            .collect();
        let version = hex::encode(&Sha256::digest(source.as_bytes())[..8]);
        Flow {
            id: file.id.get_ref().clone(),
            program: file.program.get_ref().clone(),
            program_at: self.map.locate(file.program.span().start),
            kind: *file.kind.get_ref(),
            description: file.description.clone(),
            brand: file.brand.as_ref().map(|brand| brand.get_ref().clone()),
            locale: file.locale.clone(),
            campaign: file.campaign.as_ref().map(|c| c.get_ref().clone()),
            version,
            path: path.to_owned(),
            source: source.to_owned(),
            start,
            triggers,
            escalation,
            on_error,
            steps,
            warnings: Vec::new(),
        }
    }

    fn triggers(&mut self) -> Triggers {
        let triggers = &self.file.triggers;
        let mut keywords = Vec::new();
        for keyword in &triggers.keywords {
            let normalised = words::keyword(keyword.get_ref());
            if normalised.is_empty() || normalised.contains(' ') {
                self.error(
                    keyword.span(),
                    format!(
                        "keyword `{}` must be one word (texts are matched on their first word)",
                        keyword.get_ref()
                    ),
                );
            } else {
                keywords.push(normalised);
            }
        }
        let mut fields = Vec::new();
        for field in &triggers.fields {
            if Template::parse(&format!("{{{{{}}}}}", field.get_ref())).is_err() {
                self.error(
                    field.span(),
                    format!(
                        "`{}` is not a field name: use lower-case letters, digits and `_`",
                        field.get_ref()
                    ),
                );
            } else {
                fields.push(field.get_ref().clone());
            }
        }
        Triggers {
            keywords,
            catch_all: triggers.catch_all,
            api: triggers.api,
            fields,
        }
    }

    fn escalation(&mut self, rules: &Spanned<super::model::EscalationFile>) -> Escalation {
        let file = rules.get_ref();
        let mut topics = Vec::new();
        for topic in &file.topics {
            match topic.get_ref().as_str() {
                "money" => topics.push(Topic::Money),
                "access" => topics.push(Topic::Access),
                "legal" => topics.push(Topic::Legal),
                other => self.error(
                    topic.span(),
                    format!("unknown escalation topic `{other}`: use money, access or legal"),
                ),
            }
        }
        let resolve_within_ms = file
            .resolve_within
            .as_ref()
            .and_then(|duration| self.duration(duration));
        if file.queue.trim().is_empty() {
            self.error(rules.span(), "`escalation.queue` must name a queue");
        }
        Escalation {
            queue: file.queue.clone(),
            cue_words: file
                .cue_words
                .iter()
                .map(|word| words::words(word))
                .filter(|phrase| !phrase.is_empty())
                .collect(),
            topics,
            repeated_question: file.repeated_question,
            resolve_within_ms,
        }
    }

    fn duration(&mut self, text: &Spanned<String>) -> Option<i64> {
        match humantime::parse_duration(text.get_ref()) {
            Ok(duration) if !duration.is_zero() => {
                Some(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
            }
            Ok(_) => {
                self.error(text.span(), "a duration must be longer than zero");
                None
            }
            Err(error) => {
                self.error(
                    text.span(),
                    format!(
                        "`{}` is not a duration ({error}): write it like \"30m\", \"24h\" or \"2days\"",
                        text.get_ref()
                    ),
                );
                None
            }
        }
    }

    /// A route to another step: reports a step that does not exist.
    fn target(&mut self, target: &Spanned<String>, key: &str) -> String {
        let name = target.get_ref();
        if !self.file.steps.contains_key(name) {
            let steps = self.file.steps.keys().map(String::as_str);
            let message = match suggest::closest(name, steps) {
                Some(meant) => {
                    format!(
                        "`{key}` goes to step `{name}`, which does not exist: did you mean `{meant}`?"
                    )
                }
                None => format!(
                    "`{key}` goes to step `{name}`, which does not exist (steps: {})",
                    step_list(self.file.steps.keys())
                ),
            };
            self.error(target.span(), message);
        }
        name.clone()
    }

    fn optional_target(&mut self, target: Option<&Spanned<String>>, key: &str) -> Option<String> {
        target.map(|target| self.target(target, key))
    }

    fn required<'s, T>(
        &mut self,
        value: Option<&'s T>,
        step: &Spanned<StepFile>,
        key: &str,
    ) -> Option<&'s T> {
        if value.is_none() {
            let kind = step.get_ref().kind.get_ref();
            self.error(
                step.get_ref().kind.span(),
                format!(
                    "a `{}` step needs `{key}`",
                    serde_name(kind).unwrap_or_default()
                ),
            );
        }
        value
    }

    fn template(&mut self, text: &Spanned<String>) -> Option<Template> {
        match Template::parse(text.get_ref()) {
            Ok(template) => Some(template),
            Err(error) => {
                // The template's own position, moved to where its string starts in the file.
                let string_at = self.map.locate(text.span().start);
                let inner = error.position();
                let at = if inner.line == 1 {
                    Location {
                        line: string_at.line,
                        column: string_at.column + inner.column,
                    }
                } else {
                    Location {
                        line: string_at.line + inner.line - 1,
                        column: inner.column,
                    }
                };
                // The message without the template-relative position: the diagnostic has the file's.
                let message = error.to_string().replace(&format!(" at {inner}"), "");
                self.errors.push(self.map.error_at(at, message));
                None
            }
        }
    }

    fn localized(&mut self, text: &Spanned<LocalizedText>) -> Option<LocalizedTemplate> {
        let span = text.span();
        let variants: BTreeMap<String, String> = match text.get_ref() {
            LocalizedText::Single(single) => {
                let single = Spanned::new(span.clone(), single.clone());
                let template = self.template(&single)?;
                return Some(LocalizedTemplate {
                    variants: BTreeMap::from([(self.file.locale.clone(), template)]),
                    default_locale: self.file.locale.clone(),
                    at: self.map.locate(span.start),
                });
            }
            LocalizedText::PerLocale(variants) => variants.clone(),
        };
        if !variants.contains_key(&self.file.locale) {
            self.error(
                span.clone(),
                format!(
                    "this text has no variant for the flow's locale `{}`",
                    self.file.locale
                ),
            );
        }
        let mut parsed = BTreeMap::new();
        for (locale, source) in variants {
            let spanned = Spanned::new(span.clone(), source);
            if let Some(template) = self.template(&spanned) {
                parsed.insert(locale, template);
            }
        }
        Some(LocalizedTemplate {
            variants: parsed,
            default_locale: self.file.locale.clone(),
            at: self.map.locate(span.start),
        })
    }

    fn templates(
        &mut self,
        fields: &BTreeMap<String, Spanned<String>>,
    ) -> BTreeMap<String, Template> {
        fields
            .iter()
            .filter_map(|(name, source)| {
                if Template::parse(&format!("{{{{{name}}}}}")).is_err() {
                    self.error(
                        source.span(),
                        format!(
                            "`{name}` is not a field name: use lower-case letters, digits and `_`"
                        ),
                    );
                    return None;
                }
                Some((name.clone(), self.template(source)?))
            })
            .collect()
    }

    fn step(&mut self, name: &str, step: &Spanned<StepFile>) -> Option<Action> {
        let file = step.get_ref();
        let kind = *file.kind.get_ref();
        let allowed = kind.allowed_keys();
        for (key, span) in file.present_keys() {
            if !allowed.contains(&key) {
                self.error(
                    span.unwrap_or_else(|| step.span()),
                    format!(
                        "step `{name}`: `{key}` does not belong in a `{}` step (it takes {})",
                        serde_name(&kind).unwrap_or_default(),
                        allowed.join(", ")
                    ),
                );
            }
        }
        let errors_before = self.errors.len();
        let on_error = self.optional_target(file.on_error.as_ref(), "on_error");
        let next = self.optional_target(file.next.as_ref(), "next");
        let action = match kind {
            StepKind::Send => {
                let text = self.required(file.text.as_ref(), step, "text")?;
                let text = self.localized(text)?;
                Action::Send {
                    text,
                    next,
                    on_error,
                }
            }
            StepKind::Wait => {
                let timeout = self.required(file.timeout.as_ref(), step, "timeout")?;
                let timeout_ms = self.duration(timeout)?;
                let on_reply = self.required(file.on_reply.as_ref(), step, "on_reply")?;
                let on_timeout = self.required(file.on_timeout.as_ref(), step, "on_timeout")?;
                Action::Wait {
                    timeout_ms,
                    on_reply: self.target(on_reply, "on_reply"),
                    on_timeout: self.target(on_timeout, "on_timeout"),
                }
            }
            StepKind::Classify => {
                let plugin = self.required(file.plugin.as_ref(), step, "plugin")?;
                let routes = self.required(file.routes.as_ref(), step, "routes")?;
                let default = self.required(file.default.as_ref(), step, "default")?;
                let routes = routes
                    .iter()
                    .map(|(intent, target)| (intent.clone(), self.target(target, intent)))
                    .collect();
                let min_confidence = self.confidence(file.min_confidence, step)?;
                Action::Classify {
                    plugin: plugin.get_ref().clone(),
                    routes,
                    default: self.target(default, "default"),
                    min_confidence,
                    on_error,
                }
            }
            StepKind::Branch => {
                let cases = self.required(file.cases.as_ref(), step, "cases")?;
                let default = self.required(file.default.as_ref(), step, "default")?;
                let cases = cases.iter().filter_map(|case| self.case(case)).collect();
                Action::Branch {
                    cases,
                    default: self.target(default, "default"),
                }
            }
            StepKind::Connector => {
                let plugin = self.required(file.plugin.as_ref(), step, "plugin")?;
                let operation = self.required(file.operation.as_ref(), step, "operation")?;
                let entity = self.required(file.entity.as_ref(), step, "entity")?;
                let call = match operation {
                    ConnectorOperation::Lookup => {
                        let key = self.required(file.key.as_ref(), step, "key")?;
                        ConnectorAction::Lookup {
                            key: self.template(key)?,
                        }
                    }
                    ConnectorOperation::Write => {
                        let fields = self.required(file.fields.as_ref(), step, "fields")?;
                        ConnectorAction::Write {
                            fields: self.templates(fields),
                        }
                    }
                };
                Action::Connector {
                    plugin: plugin.get_ref().clone(),
                    entity: entity.get_ref().clone(),
                    call,
                    outputs: file.outputs.clone().unwrap_or_default(),
                    next: self.required(next.as_ref(), step, "next")?.clone(),
                    on_error,
                }
            }
            StepKind::Reply => {
                let plugin = self.required(file.plugin.as_ref(), step, "plugin")?;
                let min_confidence = self.confidence(file.min_confidence, step)?;
                Action::Reply {
                    plugin: plugin.get_ref().clone(),
                    min_confidence,
                    next: self.required(next.as_ref(), step, "next")?.clone(),
                    on_low_confidence: self
                        .optional_target(file.on_low_confidence.as_ref(), "on_low_confidence"),
                    on_error,
                }
            }
            StepKind::Handoff => {
                let queue = self.required(file.queue.as_ref(), step, "queue")?;
                let text = match &file.text {
                    Some(text) => Some(self.localized(text)?),
                    None => None,
                };
                Action::Handoff {
                    queue: queue.get_ref().clone(),
                    reason: file
                        .reason
                        .clone()
                        .unwrap_or_else(|| format!("step {name}")),
                    text,
                }
            }
            StepKind::Set => {
                let fields = self.required(file.fields.as_ref(), step, "fields")?;
                Action::Set {
                    fields: self.templates(fields),
                    next: self.required(next.as_ref(), step, "next")?.clone(),
                }
            }
            StepKind::Split => {
                let variants = self.required(file.variants.as_ref(), step, "variants")?;
                let variants: Vec<Variant> = variants
                    .iter()
                    .map(|variant| self.variant(variant.get_ref()))
                    .collect();
                if variants.iter().map(|variant| variant.weight).sum::<u32>() == 0 {
                    self.error(step.span(), format!("step `{name}`: the weights add to 0"));
                }
                Action::Split { variants }
            }
            StepKind::End => {
                let text = match &file.text {
                    Some(text) => Some(self.localized(text)?),
                    None => None,
                };
                Action::End {
                    text,
                    outcome: file.outcome.clone(),
                    conversion: file.conversion.unwrap_or(false),
                }
            }
        };
        (self.errors.len() == errors_before).then_some(action)
    }

    fn confidence(&mut self, value: Option<f32>, step: &Spanned<StepFile>) -> Option<f32> {
        let value = value.unwrap_or(0.0);
        if (0.0..=1.0).contains(&value) {
            Some(value)
        } else {
            self.error(step.span(), "`min_confidence` must be between 0 and 1");
            None
        }
    }

    fn variant(&mut self, variant: &VariantFile) -> Variant {
        Variant {
            name: variant.name.clone(),
            weight: variant.weight,
            next: self.target(&variant.next, "next"),
        }
    }

    fn case(&mut self, case: &Spanned<CaseFile>) -> Option<Case> {
        let file = case.get_ref();
        let lower = |values: &[String]| -> Vec<String> {
            values.iter().map(|value| words::keyword(value)).collect()
        };
        let mut conditions = Vec::new();
        if let Some(value) = &file.equals {
            conditions.push(Condition::OneOf(lower(std::slice::from_ref(value))));
        }
        if let Some(values) = &file.one_of {
            conditions.push(Condition::OneOf(lower(values)));
        }
        if let Some(values) = &file.contains {
            conditions.push(Condition::Contains(
                values.iter().map(|value| words::words(value)).collect(),
            ));
        }
        if let Some(minimum) = file.at_least {
            conditions.push(Condition::AtLeast(minimum));
        }
        if let Some(present) = file.present {
            conditions.push(Condition::Present(present));
        }
        let next = self.target(&file.next, "next");
        if conditions.len() != 1 {
            self.error(
                case.span(),
                "a case needs exactly one of `equals`, `one_of`, `contains`, `at_least`, `present`",
            );
            return None;
        }
        let condition = conditions.pop()?;
        let except = file
            .not_contains
            .iter()
            .flatten()
            .map(|value| words::words(value))
            .filter(|phrase| !phrase.is_empty())
            .collect();
        Some(Case {
            field: file.field.clone(),
            condition,
            except,
            next,
        })
    }
}

/// The step names for an error message, the first few of a big flow only: listing all 50,000
/// in each of its broken routes made the message, and the time to build it, grow with the
/// square of the flow.
fn step_list<'n>(names: impl ExactSizeIterator<Item = &'n String>) -> String {
    const SHOWN: usize = 20;
    let count = names.len();
    let list: Vec<&str> = names.take(SHOWN).map(String::as_str).collect();
    if count > SHOWN {
        format!("{}, and {} more", list.join(", "), count - SHOWN)
    } else {
        list.join(", ")
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn serde_name<T: serde::Serialize>(value: &T) -> Option<String> {
    serde_json::to_value(value)
        .ok()?
        .as_str()
        .map(str::to_owned)
}

/// Templates that use a field nothing defines.
fn check_fields(map: &SourceMap<'_>, flow: &Flow) -> Vec<Diagnostic> {
    let defined = flow.defined_fields();
    let mut errors = Vec::new();
    for step in flow.steps.values() {
        for template in step.action.templates() {
            for field in template.fields() {
                if !defined.contains(field) && !field.starts_with(ENTITY_FIELD_PREFIX) {
                    let known = defined.iter().copied();
                    let message = match suggest::closest(field, known) {
                        Some(meant) => format!(
                            "step `{}` uses field `{field}`, which nothing defines: did you mean `{meant}`?",
                            step.name
                        ),
                        None => format!(
                            "step `{}` uses field `{field}`, which nothing defines: add it to \
                             `triggers.fields`, set it in a `set` step or list it in a connector's `outputs`",
                            step.name
                        ),
                    };
                    errors.push(map.error_at(step.at, message));
                }
            }
        }
    }
    errors
}

/// The classic trap of matching free text: `contains = ["paid"]` on the contact's reply. The
/// runtime skips a phrase right after a negation ("I haven't paid"), but a one-word phrase still
/// matches "paid? not yet" or "paid what?": a warning at each case on the reply that lists
/// only lone words and has no `not_contains`.
fn contains_traps(map: &SourceMap<'_>, file: &FlowFile) -> Vec<Diagnostic> {
    let mut warnings = Vec::new();
    for (name, step) in &file.steps {
        for case in step.get_ref().cases.iter().flatten() {
            let case_file = case.get_ref();
            if case_file.field.is_some() || case_file.not_contains.is_some() {
                continue;
            }
            let Some(phrases) = &case_file.contains else {
                continue;
            };
            // A list of lone words (`["paid"]`, `["yes", "yeah"]`) is the trap; a list with
            // phrases in it (`["not sure", "confused"]`) was written with care.
            let all_single = phrases.iter().all(|phrase| words::words(phrase).len() == 1);
            if let Some(word) = phrases.first().filter(|_| all_single) {
                warnings.push(map.error(
                    case.span(),
                    format!(
                        "step `{name}`: `contains = [\"{word}\"]` matches the word anywhere in the reply: \
                         a negation right before it is skipped (\"I haven't {word}\"), but \"{word}? not yet\" \
                         still matches; add `not_contains = [...]` for the answers that mean no, or route \
                         with a `classify` step"
                    ),
                ));
            }
        }
    }
    warnings
}

/// A marketing flow's first text must name the brand and say how to opt out.
fn check_marketing(map: &SourceMap<'_>, file: &FlowFile, flow: &Flow) -> Vec<Diagnostic> {
    if flow.kind != super::FlowKind::Marketing {
        return Vec::new();
    }
    let Some(brand) = &flow.brand else {
        return vec![map.error(
            file.kind.span(),
            "a marketing flow needs `brand`: its first text must name who is writing",
        )];
    };
    let brand_words = words::words(brand);
    let opt_out: Vec<Vec<String>> = OPT_OUT_WORDING.iter().map(|w| words::words(w)).collect();
    let mut errors = Vec::new();
    for step in flow.first_sends() {
        let Action::Send { text, .. } = &step.action else {
            continue;
        };
        for (locale, template) in &text.variants {
            let text_words = words::words(template.source());
            if !words::contains_phrase(&text_words, &brand_words) {
                errors.push(map.error_at(
                    step.at,
                    format!(
                        "step `{}` ({locale}) is the first text of a marketing flow and does not name the brand `{brand}`",
                        step.name
                    ),
                ));
            }
            if !opt_out
                .iter()
                .any(|phrase| words::contains_phrase(&text_words, phrase))
            {
                errors.push(map.error_at(
                    step.at,
                    format!(
                        "step `{}` ({locale}) is the first text of a marketing flow and does not say how to opt out (\"Reply STOP to opt out\")",
                        step.name
                    ),
                ));
            }
        }
    }
    errors
}
