//! A flow file's unknown keys and values, explained: serde says "unknown field `timout`,
//! expected one of" and then every key any step may have; the author needs the three keys a
//! `wait` takes and the one they meant.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::model::StepKind;
use super::suggest;

/// Just the steps of a flow file, each with where it starts and its keys, read again only when
/// the typed parse failed.
#[derive(Deserialize)]
struct StepTables {
    #[serde(default)]
    steps: BTreeMap<String, Spanned<toml::Table>>,
}

/// The message for a flow file that did not parse: serde's own, with "did you mean" and the
/// keys the table takes when the problem is an unknown key or value.
pub fn explain(source: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end();
    let Some(unknown) = Unknown::parse(message) else {
        return message.to_owned();
    };
    let step = error.span().and_then(|span| step_at(source, span.start));
    match (unknown.what, step) {
        ("field", Some((name, Some(kind)))) => {
            let takes: Vec<&str> = std::iter::once("type")
                .chain(kind.allowed_keys().iter().copied())
                .collect();
            let meant = suggest::did_you_mean(unknown.word, takes.iter().copied());
            format!(
                "step `{name}`: unknown key `{}`{meant} (a `{}` step takes {})",
                unknown.word,
                kind_name(kind),
                takes.join(", ")
            )
        }
        ("field", _) => format!(
            "unknown key `{}`{} (this table takes {})",
            unknown.word,
            suggest::did_you_mean(unknown.word, unknown.expected.iter().copied()),
            unknown.expected.join(", ")
        ),
        (what, _) => format!(
            "unknown {what} `{}`{} (use one of: {})",
            unknown.word,
            suggest::did_you_mean(unknown.word, unknown.expected.iter().copied()),
            unknown.expected.join(", ")
        ),
    }
}

/// serde's "unknown field `x`, expected one of `a`, `b`" (or "unknown variant ..."), taken apart.
struct Unknown<'m> {
    /// `field` or `variant`.
    what: &'m str,
    word: &'m str,
    expected: Vec<&'m str>,
}

impl<'m> Unknown<'m> {
    fn parse(message: &'m str) -> Option<Self> {
        let rest = message.strip_prefix("unknown ")?;
        let (what, rest) = rest.split_once(" `")?;
        if what != "field" && what != "variant" {
            return None;
        }
        let (word, rest) = rest.split_once('`')?;
        let expected = rest
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|name| !name.is_empty())
            .collect();
        Some(Self {
            what,
            word,
            expected,
        })
    }
}

/// The step whose table holds byte `at`, with its type when that parses: the last step that
/// starts before `at` (steps are tables laid out one after another).
fn step_at(source: &str, at: usize) -> Option<(String, Option<StepKind>)> {
    let tables: StepTables = toml::from_str(source).ok()?;
    let (name, table) = tables
        .steps
        .into_iter()
        .filter(|(_, table)| table.span().start <= at)
        .max_by_key(|(_, table)| table.span().start)?;
    let kind = table
        .into_inner()
        .get("type")
        .cloned()
        .and_then(|kind| kind.try_into::<StepKind>().ok());
    Some((name, kind))
}

fn kind_name(kind: StepKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explained(source: &str) -> String {
        let Err(error) = toml::from_str::<super::super::model::FlowFile>(source) else {
            panic!("the flow parsed");
        };
        explain(source, &error)
    }

    const HEAD: &str = "id = \"x\"\nprogram = \"p\"\nkind = \"transactional\"\nstart = \"a\"\n";

    #[test]
    fn a_step_key_is_answered_with_that_step_types_keys() {
        let source = format!(
            "{HEAD}[steps.a]\ntype = \"send\"\ntext = \"hi\"\nnext = \"b\"\n\
             [steps.b]\ntype = \"wait\"\ntimout = \"1h\"\non_reply = \"a\"\non_timeout = \"a\"\n"
        );
        assert_eq!(
            explained(&source),
            "step `b`: unknown key `timout`: did you mean `timeout`? \
             (a `wait` step takes type, timeout, on_reply, on_timeout)"
        );
    }

    #[test]
    fn top_level_keys_and_step_types_get_suggestions() {
        let source = "id = \"x\"\nprogam = \"p\"\n";
        assert!(
            explained(source).starts_with("unknown key `progam`: did you mean `program`?"),
            "{}",
            explained(source)
        );
        let source = format!("{HEAD}[steps.a]\ntype = \"sned\"\n");
        assert!(
            explained(&source).starts_with("unknown variant `sned`: did you mean `send`?"),
            "{}",
            explained(&source)
        );
    }
}
