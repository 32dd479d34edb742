//! `split`: an A/B split, sticky per contact.

use sha2::{Digest as _, Sha256};

use super::super::turn::Turn;
use crate::flow::conversation::Event;
use crate::flow::{Flow, Step, Variant};

/// Picks the contact's variant, keeps it as the `variant` field and goes to its step.
pub(super) fn run(
    turn: &mut Turn<'_>,
    flow: &Flow,
    step: &Step,
    variants: &[Variant],
) -> Option<String> {
    let chosen = choose(&turn.conversation.contact, &flow.id, &step.name, variants)?;
    turn.conversation
        .fields
        .insert("variant".to_owned(), chosen.name.clone());
    turn.record(Event::Variant {
        step: step.name.clone(),
        variant: chosen.name.clone(),
    });
    Some(chosen.next.clone())
}

/// The variant a contact gets: a hash of (contact, flow, step), so the same contact always
/// gets the same variant of a split, and contacts spread by weight.
fn choose<'v>(
    contact: &str,
    flow: &str,
    step: &str,
    variants: &'v [Variant],
) -> Option<&'v Variant> {
    let total: u64 = variants
        .iter()
        .map(|variant| u64::from(variant.weight))
        .sum();
    if total == 0 {
        return variants.first();
    }
    let digest = Sha256::digest(format!("{contact}\0{flow}\0{step}").as_bytes());
    let mut bucket = u64::from_be_bytes(digest[..8].try_into().ok()?) % total;
    for variant in variants {
        let weight = u64::from(variant.weight);
        if bucket < weight {
            return Some(variant);
        }
        bucket -= weight;
    }
    variants.last()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::super::turn::testing::{Counter, Stub, flow, turn};
    use super::super::execute;
    use super::*;

    fn variant(name: &str, weight: u32) -> Variant {
        Variant {
            name: name.to_owned(),
            weight,
            next: name.to_owned(),
        }
    }

    #[test]
    fn splits_are_sticky_and_follow_weights() {
        let variants = [variant("a", 1), variant("b", 3)];
        let mut counts = BTreeMap::new();
        for n in 0..4000 {
            let contact = format!("+1555{n:07}");
            let first = choose(&contact, "offer", "split", &variants).unwrap();
            let again = choose(&contact, "offer", "split", &variants).unwrap();
            assert_eq!(first.name, again.name);
            *counts.entry(first.name.clone()).or_insert(0) += 1;
        }
        let b_share = f64::from(counts["b"]) / 4000.0;
        assert!((0.72..0.78).contains(&b_share), "b got {b_share}");
    }

    #[tokio::test]
    async fn the_variant_is_kept_and_recorded() {
        let (plugins, ids) = (Stub::default(), Counter::default());
        let flow = flow(
            r#"
            id = "offer"
            program = "care"
            kind = "transactional"
            start = "split"
            [triggers]
            api = true
            [steps.split]
            type = "split"
            variants = [{ name = "a", weight = 1, next = "a" }, { name = "b", weight = 1, next = "b" }]
            [steps.a]
            type = "end"
            [steps.b]
            type = "end"
            "#,
        );
        let mut turn = turn(&plugins, &ids, &[]);
        let next = execute(&mut turn, &flow, &flow.steps["split"])
            .await
            .unwrap();
        assert_eq!(turn.conversation.fields["variant"], next);
        assert!(
            matches!(&turn.effects.entries[0].event, Event::Variant { variant, .. } if *variant == next)
        );
    }
}
