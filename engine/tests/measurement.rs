//! Measurement through the real engine on a simulated clock: a 2,000-contact campaign with two
//! variants and a 10% holdout; known deliveries, replies, clicks, opt-outs and conversions at
//! known times; the report's every count, rate, attribution and verdict checked against what
//! the test computes by hand. The verdict's formulas are checked against scipy in
//! `verdict_scipy.rs`; here its numbers are checked to be those formulas on these counts.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use smsflow::campaigns::NewCampaign;
use smsflow::contacts::import::ImportSettings;
use smsflow::engine::{Engine, EngineBuilder};
use smsflow::measure::report::ReportFilter;
use smsflow::measure::{MeasureError, NewConversion, verdict};
use smsflow::sms::{DeliveryState, InboundText, StatusUpdate};
use smsflow::store::Store;
use smsflow::testing::{self, ManualClock, RecordingProvider};

/// Tuesday 3 March 2026, 10:00 in New York.
const T0: i64 = 1_772_550_000_000;
const HOUR: i64 = 3_600_000;
const OURS: &str = "+15550001000";
const PEOPLE: usize = 2000;

const FLOW: &str = r#"
id = "promo"
program = "promotions"
kind = "marketing"
brand = "Bright Smile"
start = "pick"

[triggers]
api = true

[steps.pick]
type = "split"
variants = [
  { name = "A", weight = 50, next = "offer_a" },
  { name = "B", weight = 50, next = "offer_b" },
]

[steps.offer_a]
type = "send"
text = "Bright Smile: 10% off whitening {{link \"https://shop.example/a\"}} Reply STOP to opt out."
next = "wait"

[steps.offer_b]
type = "send"
text = "Bright Smile: a free checkup {{link \"https://shop.example/b\"}} Reply STOP to opt out."
next = "wait"

[steps.wait]
type = "wait"
timeout = "7d"
on_reply = "thanks"
on_timeout = "done"

[steps.thanks]
type = "end"
text = "Thanks! We will be in touch."
outcome = "replied"

[steps.done]
type = "end"
outcome = "no_response"
"#;

fn phone(i: usize) -> String {
    format!("+1212555{i:04}")
}

async fn engine(
    dir: &std::path::Path,
    clock: Arc<ManualClock>,
) -> (Engine, Arc<RecordingProvider>) {
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(flows.join("promo.toml"), FLOW).unwrap();
    let mut config = testing::config();
    config.flows.dir = flows;
    config.provider.from = OURS.to_owned();
    config.links.base_url = Some("https://go.bright.example".to_owned());
    let provider = Arc::new(RecordingProvider::default());
    let engine = EngineBuilder::from_config(&config)
        .store(Store::open(&dir.join("db")).unwrap())
        .clock(clock)
        .provider(Arc::clone(&provider) as _)
        .build()
        .await
        .unwrap();
    (engine, provider)
}

fn csv() -> Vec<u8> {
    let mut csv = String::from("phone,consent_source,consent_program,consent_disclosure\n");
    for i in 0..PEOPLE {
        csv.push_str(&format!(
            "{},web form,promotions,Offers by text. Reply STOP to opt out.\n",
            phone(i)
        ));
    }
    csv.into_bytes()
}

async fn text(engine: &Engine, i: usize, id: &str, body: &str) {
    let inbound = InboundText {
        provider: "twilio",
        message_id: id.to_owned(),
        from: phone(i),
        to: OURS.to_owned(),
        body: body.to_owned(),
        num_media: 0,
    };
    engine.ingest().accept(inbound).await.unwrap();
}

fn conversion(i: usize, key: &str, value: f64) -> NewConversion {
    NewConversion {
        phone: Some(phone(i)),
        value: serde_json::json!(value),
        currency: "USD".to_owned(),
        idempotency_key: key.to_owned(),
        ..NewConversion::default()
    }
}

/// What the test knows of one contact.
#[derive(Debug, Default, Clone)]
struct Known {
    variant: Option<String>,
    link: Option<String>,
    provider_id: Option<String>,
    delivered: bool,
    replied: bool,
    clicked: bool,
    opted_out: bool,
    /// Conversions attributed to the campaign: (value).
    attributed: Vec<f64>,
    /// Any conversion in the range.
    converted_any: bool,
}

#[tokio::test(flavor = "multi_thread")]
#[allow(clippy::too_many_lines)] // one scenario, told in order
async fn a_scripted_campaign_reports_what_happened_and_a_verdict_it_can_defend() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let (engine, provider) = engine(dir.path(), Arc::clone(&clock)).await;
    let summary = engine
        .contacts()
        .import(csv().as_slice(), &ImportSettings::default(), |_| {})
        .unwrap();
    assert_eq!(summary.created, PEOPLE as u64, "{summary:?}");
    let new = NewCampaign {
        key: Some("spring".to_owned()),
        flow: "promo".to_owned(),
        segment: Some("has_consent(promotions)".to_owned()),
        holdout_percent: 10.0,
        messages_per_second: Some(5000.0),
        ..NewCampaign::default()
    };
    let (campaign, _) = engine.campaigns().create(new).await.unwrap();
    for _ in 0..20 {
        engine.campaigns().pass().await.unwrap();
        testing::deliver_all(engine.outbox()).await.unwrap();
        clock.advance(1000);
    }
    let progress = engine.campaigns().progress(&campaign.id).unwrap();
    assert_eq!(progress["state"], "done", "{progress:#}");

    // Who got what: the variant from the text's outbox row, the link from its body.
    let mut known: Vec<Known> = vec![Known::default(); PEOPLE];
    let index: BTreeMap<String, usize> = (0..PEOPLE).map(|i| (phone(i), i)).collect();
    for (n, sent) in provider.sent().iter().enumerate() {
        let i = index[&sent.to];
        let message = engine.outbox().message(&sent.id).unwrap().unwrap();
        let code = sent
            .body
            .split("/l/")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        assert!(
            sent.body.contains("https://go.bright.example/l/"),
            "{}",
            sent.body
        );
        known[i].variant = message.variant.clone();
        known[i].link = Some(code.to_owned());
        known[i].provider_id = Some(format!("rec-{}", n + 1));
    }
    let treated: Vec<usize> = (0..PEOPLE)
        .filter(|&i| known[i].variant.is_some())
        .collect();
    let held: BTreeSet<usize> = (0..PEOPLE)
        .filter(|&i| known[i].variant.is_none())
        .collect();
    assert_eq!(treated.len() + held.len(), PEOPLE);
    assert!(
        (150..250).contains(&held.len()),
        "a 10% holdout: {}",
        held.len()
    );

    // A minute on: every 25th text undelivered, the rest delivered.
    clock.advance(60_000);
    for &i in &treated {
        let status = if i % 25 == 0 {
            DeliveryState::Undelivered
        } else {
            DeliveryState::Delivered
        };
        let update = StatusUpdate {
            message_id: known[i].provider_id.clone().unwrap(),
            status,
            error_code: (status == DeliveryState::Undelivered).then(|| "30003".to_owned()),
        };
        engine.ingest().status("recording", &update).await.unwrap();
        known[i].delivered = status == DeliveryState::Delivered;
    }
    // A late `read` after `delivered` is no second delivery.
    let first = treated[1];
    let read = StatusUpdate {
        message_id: known[first].provider_id.clone().unwrap(),
        status: DeliveryState::Read,
        error_code: None,
    };
    engine.ingest().status("recording", &read).await.unwrap();

    // An hour on: replies from every 7th, STOP from every 97th.
    clock.set(T0 + HOUR);
    for &i in &treated {
        if i % 97 == 0 {
            text(&engine, i, &format!("SMstop{i}"), "STOP").await;
            known[i].opted_out = true;
        } else if i % 7 == 0 {
            text(&engine, i, &format!("SMyes{i}"), "yes please").await;
            known[i].replied = true;
        }
    }
    engine.process_inbox().await.unwrap();
    testing::deliver_all(engine.outbox()).await.unwrap();

    // Two hours on: A's every 5th and B's every 3rd open their link (only delivered texts).
    clock.set(T0 + 2 * HOUR);
    for &i in &treated {
        let clicks = match known[i].variant.as_deref() {
            Some("A") => i % 5 == 0,
            _ => i % 3 == 0,
        };
        if clicks && known[i].delivered {
            let target = engine
                .measurement()
                .click(known[i].link.as_deref().unwrap())
                .await
                .unwrap();
            let expected = if known[i].variant.as_deref() == Some("A") {
                "https://shop.example/a"
            } else {
                "https://shop.example/b"
            };
            assert_eq!(target.as_deref(), Some(expected));
            known[i].clicked = true;
        }
    }
    assert_eq!(
        engine.measurement().click("AAAAAAAAAA").await.unwrap(),
        None
    );
    assert_eq!(engine.measurement().click("../etc").await.unwrap(), None);

    // Three hours on: every other clicker buys (by click); the holdout's every 9th buys too
    // (attributed to nothing: nothing was sent to them).
    clock.set(T0 + 3 * HOUR);
    for (i, person) in known.iter_mut().enumerate() {
        let (value, by) = if person.clicked && i % 2 == 0 {
            (20.0, Some("click"))
        } else if held.contains(&i) && i % 9 == 0 {
            (15.0, None)
        } else {
            continue;
        };
        let (answer, created) = engine
            .measurement()
            .convert(conversion(i, &format!("order-{i}"), value))
            .await
            .unwrap();
        assert!(created);
        let attributed = answer.attributed_to.as_ref();
        assert_eq!(attributed.map(|a| a.by.as_str()), by, "contact {i}");
        if let Some(attributed) = attributed {
            assert_eq!(attributed.campaign.as_deref(), Some(campaign.id.as_str()));
            assert_eq!(attributed.variant, person.variant);
            assert_eq!(attributed.flow.as_deref(), Some("promo"));
            assert_eq!(attributed.window, "5days");
            person.attributed.push(value);
        }
        person.converted_any = true;
    }

    // Twelve hours on: delivered non-clickers, every 11th, buy: within a day of delivery.
    clock.set(T0 + 12 * HOUR);
    for &i in &treated {
        if known[i].delivered && !known[i].clicked && i % 11 == 0 {
            let (answer, _) = engine
                .measurement()
                .convert(conversion(i, &format!("late-{i}"), 10.0))
                .await
                .unwrap();
            let attributed = answer.attributed_to.expect("a delivery within 24 h");
            assert_eq!(
                (attributed.by.as_str(), attributed.window.as_str()),
                ("delivery", "1day")
            );
            known[i].attributed.push(10.0);
            known[i].converted_any = true;
        }
    }

    // Six days on: every 13th treated buys, outside both windows: attributed to nothing.
    clock.set(T0 + 6 * 24 * HOUR);
    for &i in &treated {
        if i % 13 == 0 {
            let (answer, _) = engine
                .measurement()
                .convert(conversion(i, &format!("week-{i}"), 5.0))
                .await
                .unwrap();
            assert!(answer.attributed_to.is_none(), "contact {i}: {answer:?}");
            known[i].converted_any = true;
        }
    }

    // Bad input changes nothing.
    let measurement = engine.measurement();
    let refused = |result: Result<_, MeasureError>| result.unwrap_err().to_string();
    let mut stranger = conversion(0, "x1", 1.0);
    stranger.phone = Some("+12125559999".to_owned());
    assert!(refused(measurement.convert(stranger).await).contains("no contact"));
    assert!(refused(measurement.convert(conversion(0, "x2", -5.0)).await).contains("value"));
    assert!(refused(measurement.convert(conversion(0, "x3", 5e12)).await).contains("value"));
    let mut euros = conversion(0, "x4", 1.0);
    euros.currency = "EUX".to_owned();
    assert!(refused(measurement.convert(euros).await).contains("ISO 4217"));
    let mut early = conversion(treated[3], "before", 1.0);
    early.occurred_at = Some("2026-03-03T14:00:00Z".to_owned());
    let (before, _) = measurement.convert(early).await.unwrap();
    assert!(before.attributed_to.is_none(), "dated before the text");
    known[treated[3]].converted_any = true;
    // The same key again: the first answer, and no second conversion.
    let buyer = (0..PEOPLE)
        .find(|&i| known[i].attributed.len() == 1 && known[i].clicked)
        .unwrap();
    let (again, created) = measurement
        .convert(conversion(buyer, &format!("order-{buyer}"), 999.0))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again.value, 20.0);

    // The report, against the test's own counts.
    let filter = ReportFilter {
        flow: Some("promo".to_owned()),
        campaign: Some("spring".to_owned()),
        since_ms: T0 - 24 * HOUR,
        until_ms: T0 + 7 * 24 * HOUR,
        weights: engine.runtime().registry().split_weights(Some("promo")),
        sequential: false,
    };
    let report = measurement.report(&filter).unwrap();
    let count = |f: &dyn Fn(&Known) -> bool| known.iter().filter(|k| f(k)).count() as u64;
    let funnel = &report.funnel;
    // Sent: the flow's offers and its answers to replies (not the host's STOP confirmations:
    // they are no text of the flow), as the provider's own list has them.
    let campaign_texts = provider
        .sent()
        .iter()
        .filter(|sent| {
            let message = engine.outbox().message(&sent.id).unwrap().unwrap();
            message.campaign.as_deref() == Some(campaign.id.as_str())
                && message.flow.as_deref() == Some("promo")
        })
        .count() as u64;
    assert!(campaign_texts > treated.len() as u64);
    assert_eq!(funnel.sent, campaign_texts);
    assert_eq!(funnel.delivered, count(&|k| k.delivered));
    assert_eq!(funnel.reached, count(&|k| k.delivered));
    assert_eq!(
        funnel.failed,
        count(&|k| k.variant.is_some() && !k.delivered)
    );
    assert_eq!(funnel.replied, count(&|k| k.replied));
    assert_eq!(funnel.clicked, count(&|k| k.clicked));
    assert_eq!(funnel.opted_out, count(&|k| k.opted_out));
    assert_eq!(funnel.converted, count(&|k| !k.attributed.is_empty()));
    let revenue: f64 = known.iter().flat_map(|k| k.attributed.iter()).sum();
    assert!(
        (funnel.revenue["USD"] - revenue).abs() < 1e-9,
        "{:?}",
        funnel.revenue
    );
    let rate = |n: u64, d: u64| Some(n as f64 / d as f64);
    assert_eq!(
        report.rates["delivery_rate"],
        rate(funnel.delivered, funnel.sent)
    );
    assert_eq!(
        report.rates["reply_rate"],
        rate(funnel.replied, funnel.reached)
    );
    assert_eq!(
        report.rates["click_rate"],
        rate(funnel.clicked, funnel.reached)
    );
    assert_eq!(
        report.rates["conversion_rate"],
        rate(funnel.converted, funnel.reached)
    );
    assert_eq!(
        report.rates["opt_out_rate"],
        rate(funnel.opted_out, funnel.reached)
    );
    assert_eq!(report.windows["click"], "5days");
    // Our answer to a reply: the same turn, so no time at all.
    assert_eq!(report.timing["time_to_our_reply"].median_s, Some(0.0));
    // Their first replies came an hour after our texts.
    let theirs = &report.timing["time_to_their_reply"];
    assert_eq!(theirs.count, funnel.replied);
    let median = theirs.median_s.unwrap();
    assert!((3580.0..=3600.0).contains(&median), "{median}");

    // Per variant, and the verdict on these counts.
    let mut expected = Vec::new();
    for name in ["A", "B"] {
        let of = |f: &dyn Fn(&Known) -> bool| {
            known
                .iter()
                .filter(|k| k.variant.as_deref() == Some(name) && f(k))
                .count() as u64
        };
        let row = report.variants.iter().find(|row| row.name == name).unwrap();
        assert_eq!(row.delivered, of(&|k| k.delivered), "{name}");
        assert_eq!(row.replied, of(&|k| k.replied), "{name}");
        assert_eq!(row.clicked, of(&|k| k.clicked), "{name}");
        assert_eq!(row.converted, of(&|k| !k.attributed.is_empty()), "{name}");
        expected.push((row.converted, row.delivered));
    }
    let verdict = &report.verdict;
    let b = &verdict.variants[1];
    let hand = verdict::two_proportion(expected[0], expected[1], 0.95);
    let comparison = b.comparison.as_ref().unwrap();
    assert!((comparison.p_value - hand.p_value).abs() < 1e-12);
    assert!((comparison.low - hand.low).abs() < 1e-12);
    let wilson = verdict::wilson(expected[1].0, expected[1].1, 0.95);
    assert!((b.interval.low - wilson.low).abs() < 1e-12);
    assert!(!verdict.srm.mismatch, "{:?}", verdict.srm);
    // B converts about 1 in 6 reached against A's 1 in 10: with ~850 each, B wins.
    assert_eq!(verdict.winner.as_deref(), Some("B"), "{}", verdict.reason);

    // The holdout: its size and conversions, against the treated contacts'.
    let holdout = report.holdout.as_ref().unwrap();
    assert_eq!(holdout.held_out, held.len() as u64);
    assert_eq!(
        holdout.held_out_converted,
        held.iter().filter(|&&i| i % 9 == 0).count() as u64
    );
    assert_eq!(holdout.treated, treated.len() as u64);
    assert_eq!(
        holdout.treated_converted,
        treated.iter().filter(|&&i| known[i].converted_any).count() as u64
    );
    let lift = verdict::two_proportion(
        (holdout.held_out_converted, holdout.held_out),
        (holdout.treated_converted, holdout.treated),
        0.95,
    );
    assert!((holdout.lift.estimate - lift.estimate).abs() < 1e-12);

    // An empty range is a report of zeros, not an error.
    let empty = measurement
        .report(&ReportFilter {
            since_ms: T0 - 48 * HOUR,
            until_ms: T0 - 24 * HOUR,
            ..filter.clone()
        })
        .unwrap();
    assert_eq!(empty.funnel.sent, 0);
    assert_eq!(empty.rates["reply_rate"], None);
    assert_eq!(empty.verdict.status, verdict::Status::NotEnoughData);
    assert!(empty.verdict.winner.is_none());

    // Past their retention the raw events are rolled up per day and deleted; the report over
    // the same range counts the same.
    let before = measurement.report(&filter).unwrap();
    let later = T0 + 10 * 24 * HOUR + 400 * 24 * HOUR;
    let done = measurement.compact(later).await.unwrap();
    assert!(done.days >= 2 && done.events > 4000, "{done:?}");
    let after = measurement.report(&filter).unwrap();
    assert!(after.rolled_up_before.is_some());
    let (b, a) = (&before.funnel, &after.funnel);
    assert_eq!(
        (
            a.sent,
            a.delivered,
            a.failed,
            a.conversions,
            a.replied,
            a.clicked,
            a.opted_out
        ),
        (
            b.sent,
            b.delivered,
            b.failed,
            b.conversions,
            b.replied,
            b.clicked,
            b.opted_out
        )
    );
    assert!((a.revenue["USD"] - b.revenue["USD"]).abs() < 1e-9);
    // A contact reached on one day and converting the next counts once per day, so only the
    // one-day counts must match exactly.
    assert_eq!(a.reached, b.reached);
    let delivered = |report: &smsflow::measure::report::Report| -> Vec<u64> {
        report.variants.iter().map(|row| row.delivered).collect()
    };
    assert_eq!(delivered(&after), delivered(&before));
    assert_eq!(
        measurement.compact(later).await.unwrap(),
        Default::default(),
        "once"
    );

    // The command line reads the same store once the engine is gone, and draws it.
    drop(engine);
    let config = dir.path().join("smsflow.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = {:?}\n\n[flows]\ndir = {:?}\n\n[provider]\nfrom = \"{OURS}\"\n",
            dir.path().join("db"),
            dir.path().join("flows"),
        ),
    )
    .unwrap();
    let svg = dir.path().join("report.svg");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .args([
            "report",
            "--config",
            config.to_str().unwrap(),
            "--format",
            "json",
        ])
        .args(["--campaign", "spring", "--flow", "promo"])
        .args([
            "--since",
            "2026-03-02T15:00:00Z",
            "--until",
            "2026-03-10T15:00:00Z",
        ])
        .arg("--svg")
        .arg(&svg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["funnel"]["sent"], report.funnel.sent);
    assert_eq!(json["verdict"]["winner"], "B", "{json:#}");
    assert_eq!(
        json["variants"].as_array().unwrap().len(),
        3,
        "A, B and the holdout"
    );
    let drawn = std::fs::read_to_string(&svg).unwrap();
    let document = roxmltree::Document::parse(&drawn).unwrap();
    assert_eq!(document.root_element().tag_name().name(), "svg");
    assert!(
        drawn.contains("holdout") && drawn.contains("converted"),
        "{drawn}"
    );
    if std::env::var_os("SMSFLOW_BLESS").is_some() {
        let docs = testing::repository().join("docs").join("report.svg");
        std::fs::write(docs, &drawn).unwrap();
    }
}
