//! `docs/smsflow.reference.toml` cannot go stale: it parses with the real config types, and
//! every key those types accept is in it.
//!
//! The types' keys come from the types themselves: every config struct denies unknown fields,
//! so a probe key added to a section makes serde answer "unknown field `…`, expected one of
//! `a`, `b`, …", the full list of that section's keys. A probe goes into every section the
//! reference has; a section it lacks is caught one level up, where it is a key of its parent.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use smsflow::config::Config;

const PROBE: &str = "reference_probe_key";

fn reference_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/smsflow.reference.toml")
}

/// The reference's sections (`""` is the top level, `queues` an array of tables), each with
/// the line its header is on and the keys written in it, set or in a `# key = ...` comment. A
/// header `[a.b.c]` also writes key `a` at the top, `b` in `a` and `c` in `a.b`.
fn documented(text: &str) -> BTreeMap<String, (usize, BTreeSet<String>)> {
    let mut sections: BTreeMap<String, (usize, BTreeSet<String>)> = BTreeMap::new();
    sections.insert(String::new(), (0, BTreeSet::new()));
    let mut current = String::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            current = line.trim_matches(|c| c == '[' || c == ']').to_owned();
            let parts: Vec<&str> = current.split('.').collect();
            for depth in 0..parts.len() {
                let parent = parts[..depth].join(".");
                sections
                    .entry(parent)
                    .or_default()
                    .1
                    .insert(parts[depth].to_owned());
            }
            sections.entry(current.clone()).or_default().0 = index + 1;
            continue;
        }
        let written = line.strip_prefix('#').map_or(line, str::trim_start);
        let Some((key, _)) = written.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            sections.get_mut(&current).unwrap().1.insert(key.to_owned());
        }
    }
    sections
}

/// The keys the section whose header is on line `header_line` (0: the top) accepts, as serde
/// lists them for a probe key added there; `None` for a free-form map (plugin settings, canned
/// replies), which takes any key.
fn accepted(text: &str, header_line: usize) -> Option<BTreeSet<String>> {
    let mut lines: Vec<&str> = text.lines().collect();
    let probe = format!("{PROBE} = 0");
    lines.insert(header_line, &probe);
    let error = match toml::from_str::<Config>(&lines.join("\n")) {
        Ok(_) => return None,
        Err(error) => error.to_string(),
    };
    if !error.contains(&format!("unknown field `{PROBE}`")) {
        return None;
    }
    let expected = error.split_once("expected").map_or("", |(_, list)| list);
    Some(
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect(),
    )
}

#[test]
fn the_reference_config_parses_with_the_real_config_types() {
    let config = Config::from_file(&reference_path());
    assert!(config.is_ok(), "{:#}", config.unwrap_err());
}

#[test]
fn every_key_the_config_types_accept_is_in_the_reference() {
    let text = std::fs::read_to_string(reference_path()).unwrap();
    let sections = documented(&text);
    let mut missing = Vec::new();
    let mut probed = 0;
    for (section, (header_line, keys)) in &sections {
        // A section with no header of its own (`[programs]` above `[programs.<id>]`) is a
        // map whose keys are names; probing "its" line 0 would probe the top level.
        if *header_line == 0 && !section.is_empty() {
            continue;
        }
        // The top level's probe goes before the first header, where top-level keys live.
        let Some(accepted) = accepted(&text, *header_line) else {
            continue;
        };
        probed += 1;
        for key in accepted.difference(keys) {
            let place = if section.is_empty() {
                "the top level"
            } else {
                section
            };
            missing.push(format!("`{key}` in [{place}]"));
        }
    }
    // Guards the probe itself: were serde's wording to change, nothing would be compared.
    assert!(
        probed >= 10,
        "only {probed} sections answered the probe: {sections:?}"
    );
    assert!(
        missing.is_empty(),
        "docs/smsflow.reference.toml lacks settings the config types accept: {}",
        missing.join(", ")
    );
}

#[test]
fn the_probe_finds_a_key_the_reference_leaves_out() {
    let text = std::fs::read_to_string(reference_path()).unwrap();
    let without = text.replace("workers = 8", "");
    let sections = documented(&without);
    let (line, keys) = &sections["inbox"];
    let accepted = accepted(&without, *line).unwrap();
    assert!(accepted.contains("workers"), "{accepted:?}");
    assert!(!keys.contains("workers"), "{keys:?}");
}
