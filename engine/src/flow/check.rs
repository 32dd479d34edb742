//! Checks that need more than one file: a folder of flows against each other (unique ids,
//! keywords and catch-all) and against the loaded plugins (the plugin exists, is of the right
//! kind, and knows the intents routed on). `smsflow check` and the server both load flows here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::compile::compile_with_problems;
use super::diagnostic::{Diagnostic, Location};
use super::{Action, Flow};
use crate::plugin::{PluginHost, World};
use crate::sms::segments::{Encoding, segments};

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

/// Loads and checks every flow at `path`. With `plugins`, plugin steps are checked against them.
pub fn load(path: &Path, plugins: Option<&PluginHost>) -> Loaded {
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
                format!(
                    "step `{}` calls plugin `{name}`, which is not loaded (loaded: {})",
                    step.name,
                    if loaded.is_empty() {
                        "none".to_owned()
                    } else {
                        loaded.join(", ")
                    }
                ),
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

/// One line of the validator's template report: what a template costs to send.
pub fn segment_report(flow: &Flow) -> Vec<String> {
    let mut lines = Vec::new();
    let mut steps: Vec<_> = flow.steps.values().collect();
    steps.sort_by_key(|step| step.at);
    for step in steps {
        let texts = match &step.action {
            Action::Send { text, .. } => Some(text),
            Action::Handoff { text, .. } | Action::End { text, .. } => text.as_ref(),
            _ => None,
        };
        let Some(texts) = texts else { continue };
        for (locale, template) in &texts.variants {
            let literal = template.render_literal();
            let info = segments(&literal);
            let fields: Vec<&str> = template.fields().collect();
            lines.push(format!(
                "{}:{}:{}: step `{}` ({locale}): {} segment{}, {}, {} {} of fixed text{}",
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
