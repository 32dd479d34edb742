//! Message templates: the parser flows and canned replies are checked with, and the renderer.
//!
//! Input: a template's source text.

use std::collections::BTreeMap;

use smsflow::sms::segments::segments;
use smsflow::template::{LINK_PLACEHOLDER, RenderError, Template};

/// Checks one input; panics when an invariant breaks.
pub fn run(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    match Template::parse(source) {
        Ok(template) => check_template(source, &template),
        Err(error) => {
            let at = error.position();
            assert!(source.is_char_boundary(at.offset), "{error:?}");
            let before = &source[..at.offset];
            assert_eq!(at.line, before.matches('\n').count() + 1, "{error:?}");
            assert!(at.column >= 1, "{error:?}");
        }
    }
}

/// A template renders with every field filled, refuses to render with one missing, and its
/// text is counted in at least one segment.
fn check_template(source: &str, template: &Template) {
    assert_eq!(template.source(), source);
    assert_eq!(template.to_string(), source);
    let fields: Vec<String> = template.fields().map(str::to_owned).collect();
    let filled: BTreeMap<String, String> = fields
        .iter()
        .map(|name| (name.clone(), "x".to_owned()))
        .collect();
    let mut links = 0;
    let rendered = template.render_with(&filled, &mut |_| {
        links += 1;
        LINK_PLACEHOLDER.to_owned()
    });
    let Ok(rendered) = rendered else {
        panic!("a template with every field filled did not render: {rendered:?}");
    };
    assert_eq!(links, template.links().count());
    assert_eq!(template.render_known(&filled), rendered);
    assert!(template.render_literal().len() <= rendered.len());
    if let Some(first) = fields.first() {
        let mut missing = filled.clone();
        missing.insert(first.clone(), " \t".to_owned());
        assert_eq!(
            template.render(&missing),
            Err(RenderError::MissingFields {
                fields: vec![first.clone()]
            })
        );
    }
    assert!(segments(&rendered).segments >= 1);
}
