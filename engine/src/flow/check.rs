//! Checks that need more than one file: a folder of flows against each other (unique ids,
//! keywords and catch-all), against the loaded plugins (the plugin exists, is of the right
//! kind, and knows the intents routed on) and against the operator's limits (no text the
//! compliance gate would refuse as too long). `smsflow check` and the server both load flows
//! here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::compile::compile_with_problems;
use super::diagnostic::{Diagnostic, Location};
use super::{Action, Flow};
use crate::compliance::gate::with_first_text_wording;
use crate::compliance::texts::Catalog;
use crate::compliance::{ComplianceConfig, ProgramConfig};
use crate::config::Config;
use crate::plugin::{PluginHost, World};
use crate::sms::segments::{Encoding, segments};

/// The operator's limits flows are checked against: what the compliance gate would refuse to
/// send, `check` refuses to load.
#[derive(Debug, Clone)]
pub struct CheckLimits {
    /// The most segments one text may take (`[compliance] max_segments`).
    pub max_segments: u32,
    /// Where `max_segments` comes from, for the error message.
    pub max_segments_from: String,
    /// Each program's configured brand (`[programs.<id>] brand`), which the gate puts in a
    /// program's first text before the flow's own `brand`.
    pub brands: BTreeMap<String, String>,
    /// `[compliance] brand`, the brand of last resort.
    pub default_brand: Option<String>,
    /// The host's texts: the opt-out wording the gate adds, per program and locale.
    pub texts: Catalog,
}

impl Default for CheckLimits {
    /// The gate's defaults, for a check with no operator config.
    fn default() -> Self {
        Self::new(
            &ComplianceConfig::default(),
            &BTreeMap::new(),
            "the default `[compliance] max_segments`: pass --config to check against yours",
        )
    }
}

impl CheckLimits {
    /// The limits of a compliance policy and its programs; `from` says where they were read.
    pub fn new(
        compliance: &ComplianceConfig,
        programs: &BTreeMap<String, ProgramConfig>,
        from: impl Into<String>,
    ) -> Self {
        let brands = programs
            .iter()
            .filter_map(|(id, program)| Some((id.clone(), program.brand.clone()?)))
            .collect();
        Self {
            max_segments: compliance.max_segments,
            max_segments_from: from.into(),
            brands,
            default_brand: compliance.brand.clone(),
            texts: crate::compliance::catalog(compliance, programs),
        }
    }

    /// The limits of the operator's config, read from `path`.
    pub fn from_config(config: &Config, path: &Path) -> Self {
        let from = format!("`[compliance] max_segments` in {}", path.display());
        Self::new(&config.compliance, &config.programs, from)
    }

    /// The brand the gate puts in `flow`'s first text: its program's, else the flow's, else
    /// the operator's default.
    fn brand<'a>(&'a self, flow: &'a Flow) -> Option<&'a str> {
        self.brands
            .get(&flow.program)
            .or(flow.brand.as_ref())
            .or(self.default_brand.as_ref())
            .map(String::as_str)
    }

    /// `body` as the gate sends it when it is `flow`'s first text in `locale`, and what the
    /// gate added.
    fn as_first_text(&self, flow: &Flow, locale: &str, body: &str) -> (String, Vec<&'static str>) {
        let wording = self.texts.opt_out_wording(Some(&flow.program), locale);
        with_first_text_wording(body, self.brand(flow), &wording)
    }
}

/// The flows of a folder (or one file), with every problem found in them.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Flows that compiled.
    pub flows: Vec<Flow>,
    /// Problems, in file order.
    pub errors: Vec<Diagnostic>,
}

/// The flow files at `path`: the file itself, or every `*.toml` in the folder except the
/// scenario files (`*.test.toml`).
///
/// # Errors
///
/// When `path` cannot be read.
pub fn flow_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|file| {
            let name = file
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or("");
            name.ends_with(".toml") && !name.ends_with(".test.toml")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Loads and checks every flow at `path`. With `plugins`, plugin steps are checked against them;
/// every text is checked against `limits`.
pub fn load(path: &Path, plugins: Option<&PluginHost>, limits: &CheckLimits) -> Loaded {
    let mut loaded = Loaded::default();
    let files = match flow_files(path) {
        Ok(files) => files,
        Err(error) => {
            loaded.errors.push(Diagnostic {
                path: path.to_owned(),
                at: Location { line: 1, column: 1 },
                message: format!("cannot read: {error}"),
            });
            return loaded;
        }
    };
    for file in files {
        let source = match std::fs::read_to_string(&file) {
            Ok(source) => source,
            Err(error) => {
                loaded.errors.push(Diagnostic {
                    path: file.clone(),
                    at: Location { line: 1, column: 1 },
                    message: format!("cannot read: {error}"),
                });
                continue;
            }
        };
        match compile_with_problems(&file, &source) {
            Ok((flow, mut problems)) => {
                if let Some(plugins) = plugins {
                    problems.extend(check_plugins(&flow, plugins));
                }
                problems.extend(check_segments(&flow, limits));
                if problems.is_empty() {
                    loaded.flows.push(flow);
                } else {
                    problems.sort_by_key(|problem| problem.at);
                    loaded.errors.extend(problems);
                }
            }
            Err(errors) => loaded.errors.extend(errors),
        }
    }
    loaded.errors.extend(check_set(&loaded.flows));
    loaded
}

/// Plugin steps whose plugin is missing or of the wrong kind, and routes on intents the
/// classifier never returns.
pub fn check_plugins(flow: &Flow, plugins: &PluginHost) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    let mut error = |at: Location, message: String| {
        errors.push(Diagnostic {
            path: flow.path.clone(),
            at,
            message,
        });
    };
    for step in flow.steps.values() {
        let Some(name) = step.action.plugin() else {
            continue;
        };
        let wanted = match step.action {
            Action::Classify { .. } => World::Classifier,
            Action::Connector { .. } => World::Connector,
            _ => World::ReplyGenerator,
        };
        let Some(plugin) = plugins.get(name) else {
            let loaded: Vec<&str> = plugins.plugins().map(|plugin| plugin.name()).collect();
            error(
                step.at,
                match super::suggest::closest(name, loaded.iter().copied()) {
                    Some(meant) => format!(
                        "step `{}` calls plugin `{name}`, which is not loaded: did you mean `{meant}`?",
                        step.name
                    ),
                    None => format!(
                        "step `{}` calls plugin `{name}`, which is not loaded (loaded: {})",
                        step.name,
                        if loaded.is_empty() {
                            "none".to_owned()
                        } else {
                            loaded.join(", ")
                        }
                    ),
                },
            );
            continue;
        };
        if plugin.manifest.world != wanted {
            error(
                step.at,
                format!(
                    "step `{}` needs a {wanted} plugin, but `{name}` is a {}",
                    step.name, plugin.manifest.world
                ),
            );
            continue;
        }
        if let Action::Classify { routes, .. } = &step.action {
            for intent in routes.keys() {
                if !plugin.intents.contains(intent) {
                    error(
                        step.at,
                        format!(
                            "step `{}` routes on intent `{intent}`, which `{name}` never returns (it returns: {})",
                            step.name,
                            plugin.intents.join(", ")
                        ),
                    );
                }
            }
        }
    }
    errors
}

/// Texts the compliance gate would refuse as too long whatever their fields hold: the fixed
/// text alone (fields render to at least nothing; `{{brand}}` to the flow's brand), with the
/// brand and opt-out wording the gate adds when it can be a program's first text, takes more
/// than `limits.max_segments`, counted as the gate counts.
pub fn check_segments(flow: &Flow, limits: &CheckLimits) -> Vec<Diagnostic> {
    let first: BTreeSet<&str> = flow
        .first_texts()
        .into_iter()
        .map(|step| step.name.as_str())
        .collect();
    let known: BTreeMap<String, String> = [("brand", &flow.brand), ("campaign", &flow.campaign)]
        .into_iter()
        .filter_map(|(name, value)| Some((name.to_owned(), value.clone()?)))
        .collect();
    let max = usize::try_from(limits.max_segments).unwrap_or(usize::MAX);
    let mut errors = Vec::new();
    for step in flow.steps.values() {
        let Some(text) = step.action.text() else {
            continue;
        };
        for (locale, template) in &text.variants {
            let mut body = template.render_known(&known);
            let mut added = Vec::new();
            if first.contains(step.name.as_str()) {
                (body, added) = limits.as_first_text(flow, locale, &body);
            }
            let count = segments(&body).segments;
            if count <= max {
                continue;
            }
            let with = first_text_note(&added, limits.brand(flow));
            errors.push(Diagnostic {
                path: flow.path.clone(),
                at: text.at,
                message: format!(
                    "step `{}` ({locale}): this text takes at least {count} segments{with}, more \
                     than the limit of {} ({}): the compliance gate would refuse to send it; \
                     shorten it, split it over several `send` steps or raise the limit",
                    step.name, limits.max_segments, limits.max_segments_from
                ),
            });
        }
    }
    errors
}

/// What the gate adds to a first text, for an error message: `added` as
/// [`with_first_text_wording`] says it.
fn first_text_note(added: &[&str], brand: Option<&str>) -> String {
    if added.is_empty() {
        return String::new();
    }
    let brand = brand
        .filter(|_| added.contains(&"the brand"))
        .map(|brand| format!(" (the brand is \"{brand}\")"))
        .unwrap_or_default();
    format!(
        " once the gate adds {} to it as a program's first text{brand}",
        added.join(" and ")
    )
}

/// Problems between flows: two flows with one id, one keyword starting two flows, more than
/// one catch-all.
pub fn check_set(flows: &[Flow]) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    let mut ids: BTreeMap<&str, &Flow> = BTreeMap::new();
    let mut keywords: BTreeMap<&str, &Flow> = BTreeMap::new();
    let mut catch_all: Option<&Flow> = None;
    let first_line = Location { line: 1, column: 1 };
    for flow in flows {
        if let Some(other) = ids.insert(&flow.id, flow) {
            errors.push(Diagnostic {
                path: flow.path.clone(),
                at: first_line,
                message: format!(
                    "flow id `{}` is also used by {}",
                    flow.id,
                    other.path.display()
                ),
            });
        }
        for keyword in &flow.triggers.keywords {
            if let Some(other) = keywords.insert(keyword, flow) {
                errors.push(Diagnostic {
                    path: flow.path.clone(),
                    at: first_line,
                    message: format!(
                        "keyword `{keyword}` also starts flow `{}` ({})",
                        other.id,
                        other.path.display()
                    ),
                });
            }
        }
        if flow.triggers.catch_all {
            if let Some(other) = catch_all {
                errors.push(Diagnostic {
                    path: flow.path.clone(),
                    at: first_line,
                    message: format!(
                        "only one flow may be the catch-all; `{}` ({}) is already",
                        other.id,
                        other.path.display()
                    ),
                });
            }
            catch_all = Some(flow);
        }
    }
    errors
}

/// One line per text of the validator's template report: what a text costs to send, counted
/// as the gate sends it (a program's first text with the brand and the opt-out wording of its
/// locale added).
pub fn segment_report(flow: &Flow, limits: &CheckLimits) -> Vec<String> {
    let first: BTreeSet<&str> = flow
        .first_texts()
        .into_iter()
        .map(|step| step.name.as_str())
        .collect();
    let mut lines = Vec::new();
    let mut steps: Vec<_> = flow.steps.values().collect();
    steps.sort_by_key(|step| step.at);
    for step in steps {
        let Some(texts) = step.action.text() else {
            continue;
        };
        for (locale, template) in &texts.variants {
            let literal = template.render_literal();
            let written = segments(&literal);
            let (sent, added) = if first.contains(step.name.as_str()) {
                limits.as_first_text(flow, locale, &literal)
            } else {
                (literal, Vec::new())
            };
            let info = segments(&sent);
            let fields: Vec<&str> = template.fields().collect();
            let as_sent = if added.is_empty() {
                String::new()
            } else {
                format!(
                    " as sent ({} as written; the gate adds {} to a program's first text)",
                    written.segments,
                    added.join(" and ")
                )
            };
            lines.push(format!(
                "{}:{}:{}: step `{}` ({locale}): {} segment{}{as_sent}, {}, {} {} of fixed text{}",
                flow.path.display(),
                step.at.line,
                step.at.column,
                step.name,
                info.segments,
                if info.segments == 1 { "" } else { "s" },
                match info.encoding {
                    Encoding::Gsm7 => "GSM-7",
                    Encoding::Ucs2 => "UCS-2",
                },
                info.units,
                match info.encoding {
                    Encoding::Gsm7 => "septets",
                    Encoding::Ucs2 => "UTF-16 units",
                },
                if fields.is_empty() {
                    String::new()
                } else {
                    format!(" + {{{{{}}}}}", fields.join("}}, {{"))
                }
            ));
        }
    }
    lines
}

/// The flows' programs against the operator's `[programs]`: errors for a program whose texts
/// would name no brand (none in its section, its flows or `[compliance] brand`), and warnings
/// for a program with no section (a typo, or a program whose HELP, exemptions and frequency
/// were never set). `config_path` is where the config was read, for the messages.
pub fn check_programs(
    flows: &[Flow],
    config: &Config,
    config_path: &Path,
) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    let known: Vec<&str> = config.programs.keys().map(String::as_str).collect();
    let at = |flow: &Flow, message: String| Diagnostic {
        path: flow.path.clone(),
        at: flow.program_at,
        message,
    };
    for flow in flows {
        let program = &flow.program;
        let section = config.programs.get(program);
        if section.is_none() {
            let fix = super::suggest::closest(program, known.iter().copied())
                .map(|meant| format!("did you mean `{meant}`?"))
                .unwrap_or_else(|| {
                    format!("add `[programs.{program}]` (brand, help, frequency) to it")
                });
            warnings.push(at(
                flow,
                format!(
                    "flow `{}` sends under program `{program}`, which {} does not declare: {fix}",
                    flow.id,
                    config_path.display()
                ),
            ));
        }
        let brand = section
            .and_then(|section| section.brand.as_ref())
            .or(flow.brand.as_ref())
            .or(config.compliance.brand.as_ref());
        if brand.is_none() {
            errors.push(at(
                flow,
                format!(
                    "program `{program}` has no brand, so its HELP answer and first texts would \
                     name no one: set `brand` in `[programs.{program}]`, in the flow, or \
                     `[compliance] brand` in {}",
                    config_path.display()
                ),
            ));
        }
    }
    (errors, warnings)
}
