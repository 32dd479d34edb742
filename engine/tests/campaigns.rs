//! Campaigns on a simulated clock, in an engine built like the server's over a store on disk:
//! a 10,000-contact import with mixed consent broadcast to a segment, checked against the
//! test's own record of who should get what, when and how fast; and a campaign that stops
//! half way (the engine dropped) and resumes on the same store.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use smsflow::campaigns::{NewCampaign, Period, Repeat, StartMode, TargetState};
use smsflow::clock::Clock as _;
use smsflow::contacts::import::ImportSettings;
use smsflow::engine::{Engine, EngineBuilder};
use smsflow::outbound::{Cleared, Provider, Receipt, SendError};
use smsflow::store::Store;
use smsflow::testing::{self, ManualClock};

/// Tuesday 3 March 2026, 08:30 in New York and 05:30 in Los Angeles.
const START_MS: i64 = 1_772_544_600_000;
/// 08:00 in Los Angeles that day.
const LA_OPENS_MS: i64 = 1_772_553_600_000;
/// The campaign's pace.
const RATE: usize = 50;

/// A provider that records when each text went, on the simulated clock.
#[derive(Debug)]
struct Timed {
    clock: Arc<ManualClock>,
    sent: Mutex<Vec<(String, i64)>>,
}

impl Provider for Timed {
    fn name(&self) -> &'static str {
        "timed"
    }

    fn send<'a>(&'a self, message: &'a Cleared) -> BoxFuture<'a, Result<Receipt, SendError>> {
        Box::pin(async move {
            let mut sent = self.sent.lock().unwrap();
            sent.push((message.to.clone(), self.clock.now_ms()));
            Ok(Receipt {
                provider_id: format!("timed-{}", sent.len()),
            })
        })
    }
}

/// One generated contact, as the test knows it.
struct Person {
    phone: String,
    consent: bool,
    shopper: bool,
    named: bool,
    in_la: bool,
}

fn people(count: usize) -> Vec<Person> {
    (0..count)
        .map(|i| {
            let in_la = i % 2 == 1;
            let area = if in_la { 213 } else { 212 };
            Person {
                phone: format!("+1{area}555{:04}", i / 2),
                consent: i % 3 != 0,
                shopper: i % 5 != 0,
                named: i % 50 != 7,
                in_la,
            }
        })
        .collect()
}

fn csv(people: &[Person]) -> Vec<u8> {
    let mut csv =
        String::from("phone,first_name,tags,consent_source,consent_program,consent_disclosure\n");
    for (i, person) in people.iter().enumerate() {
        let name = if person.named {
            format!("C{i}")
        } else {
            String::new()
        };
        let tags = if person.shopper { "shopper" } else { "" };
        let consent = if person.consent {
            "checkout form,promotions,Offers by text. Msg&data rates may apply. Reply STOP to opt out."
        } else {
            ",,"
        };
        csv.push_str(&format!("{},{name},{tags},{consent}\n", person.phone));
    }
    csv.into_bytes()
}

async fn engine(store: Store, clock: Arc<ManualClock>, provider: Arc<Timed>) -> Engine {
    let mut config = testing::config();
    config.contacts.fields.insert(
        "appointment_at".to_owned(),
        smsflow::contacts::FieldType::Datetime,
    );
    config.flows.dir = testing::repository().join("flows");
    config.provider.messages_per_second = 1000.0;
    EngineBuilder::from_config(&config)
        .store(store)
        .clock(clock)
        .provider(provider)
        .build()
        .await
        .unwrap()
}

fn broadcast(key: &str) -> NewCampaign {
    NewCampaign {
        key: Some(key.to_owned()),
        flow: "re-engagement".to_owned(),
        segment: Some(r#"tag = "shopper""#.to_owned()),
        start_mode: StartMode::Skip,
        holdout_percent: 10.0,
        messages_per_second: Some(RATE as f64),
        ..NewCampaign::default()
    }
}

/// Runs the campaign worker and the outbox on the simulated clock until the campaign is done
/// (or `until_ms`): 100 ms steps while texts move, a minute when nothing does.
async fn run(engine: &Engine, clock: &ManualClock, provider: &Timed, id: &str, until_ms: i64) {
    while clock.now_ms() < until_ms {
        let before = provider.sent.lock().unwrap().len();
        engine.campaigns().pass().await.unwrap();
        testing::deliver_all(engine.outbox()).await.unwrap();
        let progress = engine.campaigns().progress(id).unwrap();
        if progress["state"] == "done" {
            return;
        }
        let moved = provider.sent.lock().unwrap().len() > before;
        clock.advance(if moved { 100 } else { 60_000 });
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paced_broadcast_respects_consent_quiet_hours_the_pace_and_the_holdout() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(START_MS));
    let provider = Arc::new(Timed {
        clock: Arc::clone(&clock),
        sent: Mutex::new(Vec::new()),
    });
    let store = Store::open(&dir.path().join("db")).unwrap();
    let engine = engine(store, Arc::clone(&clock), Arc::clone(&provider)).await;
    let people = people(10_000);
    let settings = ImportSettings {
        batch: "test.csv".to_owned(),
        ..ImportSettings::default()
    };
    let summary = engine
        .contacts()
        .import(csv(&people).as_slice(), &settings, |_| {})
        .unwrap();
    assert_eq!(
        (summary.created, summary.refused_total),
        (10_000, 0),
        "{summary:?}"
    );

    let (campaign, created) = engine
        .campaigns()
        .create(broadcast("spring"))
        .await
        .unwrap();
    assert!(created);
    let (again, created) = engine
        .campaigns()
        .create(broadcast("spring"))
        .await
        .unwrap();
    assert_eq!((again.id.as_str(), created), (campaign.id.as_str(), false));
    run(
        &engine,
        &clock,
        &provider,
        &campaign.id,
        START_MS + 6 * 3_600_000,
    )
    .await;
    let progress = engine.campaigns().progress(&campaign.id).unwrap();
    assert_eq!(progress["state"], "done", "{progress:#}");

    // Who the campaign held out, as it recorded them: about a tenth of the segment.
    let targets = engine.campaigns().targets(&campaign.id).unwrap();
    let holdout: BTreeSet<&str> = targets
        .iter()
        .filter(|target| target.state == TargetState::Holdout)
        .map(|target| target.phone.as_str())
        .collect();
    let segment: Vec<&Person> = people.iter().filter(|person| person.shopper).collect();
    assert_eq!(progress["targeted"], segment.len());
    let share = holdout.len() as f64 / segment.len() as f64;
    assert!((0.08..0.12).contains(&share), "holdout share {share}");

    // The test's own count of who should be excluded and started.
    let out: Vec<&&Person> = segment
        .iter()
        .filter(|p| !holdout.contains(p.phone.as_str()))
        .collect();
    let no_consent = out.iter().filter(|p| !p.consent).count();
    let unnamed = out.iter().filter(|p| p.consent && !p.named).count();
    let started: BTreeSet<&str> = out
        .iter()
        .filter(|p| p.consent && p.named)
        .map(|p| p.phone.as_str())
        .collect();
    assert_eq!(
        progress["excluded"]["no_consent"], no_consent,
        "{progress:#}"
    );
    assert_eq!(
        progress["excluded"]["missing_field"], unnamed,
        "{progress:#}"
    );
    assert_eq!(progress["started"], started.len(), "{progress:#}");
    assert_eq!(progress["sent"], started.len(), "{progress:#}");

    let sent = provider.sent.lock().unwrap().clone();
    let recipients: BTreeSet<&str> = sent.iter().map(|(to, _)| to.as_str()).collect();
    assert_eq!(
        recipients, started,
        "exactly the started contacts got a text, once each"
    );
    assert_eq!(sent.len(), started.len());
    let by_phone: BTreeMap<&str, &Person> = people.iter().map(|p| (p.phone.as_str(), p)).collect();
    for (to, at) in &sent {
        let person = by_phone[to.as_str()];
        assert!(person.consent, "{to} never consented");
        assert!(!holdout.contains(to.as_str()), "{to} is in the holdout");
        if person.in_la {
            assert!(
                *at >= LA_OPENS_MS,
                "{to} in Los Angeles got it before 08:00 there"
            );
        } else {
            assert!(*at < LA_OPENS_MS, "{to} in New York waited for California");
        }
    }
    let mut per_second: BTreeMap<i64, usize> = BTreeMap::new();
    for (_, at) in &sent {
        *per_second.entry(at.div_euclid(1000)).or_default() += 1;
    }
    let busiest = per_second.values().max().copied().unwrap_or(0);
    assert!(
        busiest <= RATE,
        "{busiest} texts in one second; the pace is {RATE}"
    );
    assert_eq!(busiest, RATE, "the pace was used in full");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_campaign_stopped_half_way_resumes_and_starts_nobody_twice() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(START_MS + 4 * 3_600_000));
    let provider = Arc::new(Timed {
        clock: Arc::clone(&clock),
        sent: Mutex::new(Vec::new()),
    });
    let people = people(600);
    let id = {
        let store = Store::open(&dir.path().join("db")).unwrap();
        let engine = engine(store, Arc::clone(&clock), Arc::clone(&provider)).await;
        let settings = ImportSettings::default();
        engine
            .contacts()
            .import(csv(&people).as_slice(), &settings, |_| {})
            .unwrap();
        let mut new = broadcast("resume");
        new.holdout_percent = 0.0;
        let (campaign, _) = engine.campaigns().create(new).await.unwrap();
        // Three seconds of starts, then the engine goes away mid-campaign.
        for _ in 0..3 {
            engine.campaigns().pass().await.unwrap();
            testing::deliver_all(engine.outbox()).await.unwrap();
            clock.advance(1000);
        }
        let progress = engine.campaigns().progress(&campaign.id).unwrap();
        assert_eq!(progress["state"], "running", "{progress:#}");
        assert_eq!(progress["started"], 3 * RATE, "{progress:#}");
        drop(engine);
        campaign.id
    };
    let store = Store::open(&dir.path().join("db")).unwrap();
    let engine = engine(store, Arc::clone(&clock), Arc::clone(&provider)).await;
    run(&engine, &clock, &provider, &id, clock.now_ms() + 3_600_000).await;
    let progress = engine.campaigns().progress(&id).unwrap();
    assert_eq!(progress["state"], "done", "{progress:#}");
    let expected = people
        .iter()
        .filter(|p| p.shopper && p.consent && p.named)
        .count();
    let sent = provider.sent.lock().unwrap().clone();
    let recipients: BTreeSet<&str> = sent.iter().map(|(to, _)| to.as_str()).collect();
    assert_eq!(recipients.len(), expected, "nobody skipped");
    assert_eq!(sent.len(), expected, "nobody texted twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reminder_the_day_before_at_nine_local_follows_the_clock_change_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    // Friday 6 March 2026, 07:00 in New York; the clocks spring forward on Sunday the 8th.
    let start = smsflow::simulation::parse_instant("2026-03-06T12:00:00Z").unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let provider = Arc::new(Timed {
        clock: Arc::clone(&clock),
        sent: Mutex::new(Vec::new()),
    });
    let store = Store::open(&dir.path().join("db")).unwrap();
    let engine = engine(store, Arc::clone(&clock), Arc::clone(&provider)).await;
    let csv = "phone,first_name,date,time,appointment_at,tags\n\
        +12125550201,Ana,March 8,11:00 AM,2026-03-08T11:00:00-04:00,visit\n\
        +12125550202,Ben,March 9,10:00 AM,2026-03-09T10:00:00-04:00,visit\n\
        +12125550203,Cy,March 10,10:00 AM,2026-03-10T10:00:00-04:00,visit\n\
        +12125550204,Dee,March 5,10:00 AM,2026-03-05T10:00:00-05:00,visit\n\
        +12125550205,Ed,March 9,10:00 AM,next tuesday,visit\n";
    let summary = engine
        .contacts()
        .import(csv.as_bytes(), &ImportSettings::default(), |_| {})
        .unwrap();
    assert_eq!(summary.created, 4, "{summary:?}");
    assert_eq!(summary.refused[0].line, 6, "{summary:?}");
    assert!(
        summary.refused[0].error.contains("not a datetime"),
        "{summary:?}"
    );

    let mut reminder = broadcast("visits");
    reminder.flow = "appointment-confirmation".to_owned();
    reminder.segment = Some(r#"tag = "visit""#.to_owned());
    reminder.holdout_percent = 0.0;
    reminder.event = Some(smsflow::campaigns::event::EventSpec {
        field: "appointment_at".to_owned(),
        offset: "-1d".to_owned(),
        deliver_at: Some("09:00".to_owned()),
    });
    let (campaign, _) = engine.campaigns().create(reminder).await.unwrap();

    // Cy's visit moves from the 10th to the 11th before its reminder is due.
    let mut moved = false;
    let until = smsflow::simulation::parse_instant("2026-03-10T18:00:00Z").unwrap();
    while clock.now_ms() < until {
        engine.campaigns().pass().await.unwrap();
        testing::deliver_all(engine.outbox()).await.unwrap();
        if !moved
            && clock.now_ms() >= smsflow::simulation::parse_instant("2026-03-08T20:00:00Z").unwrap()
        {
            let change = smsflow::contacts::ContactPatch {
                fields: BTreeMap::from([(
                    "appointment_at".to_owned(),
                    serde_json::json!("2026-03-11T10:00:00-04:00"),
                )]),
                ..smsflow::contacts::ContactPatch::default()
            };
            engine.contacts().patch("+12125550203", &change).unwrap();
            moved = true;
        }
        clock.advance(5 * 60_000);
    }
    let sent: BTreeMap<String, Vec<String>> =
        provider
            .sent
            .lock()
            .unwrap()
            .iter()
            .fold(BTreeMap::new(), |mut sent, (to, at)| {
                sent.entry(to.clone())
                    .or_default()
                    .push(smsflow::compliance::gate::rfc3339(*at));
                sent
            });
    // 09:00 on the Saturday is 14:00Z (EST); 09:00 on the Sunday and later is 13:00Z (EDT).
    assert_eq!(sent["+12125550201"], ["2026-03-07T14:00:00Z"], "{sent:?}");
    assert_eq!(sent["+12125550202"], ["2026-03-08T13:00:00Z"], "{sent:?}");
    assert_eq!(
        sent["+12125550203"],
        ["2026-03-10T13:00:00Z"],
        "moved to the 11th: {sent:?}"
    );
    assert!(
        !sent.contains_key("+12125550204"),
        "a past visit gets no reminder: {sent:?}"
    );
    let progress = engine.campaigns().progress(&campaign.id).unwrap();
    assert_eq!(progress["excluded"]["past_due"], 1, "{progress:#}");
    assert_eq!(
        progress["state"], "running",
        "a campaign of events keeps running"
    );
}

/// Steps the worker and the outbox from now to `until_ms` in steps of `step_ms`.
async fn run_for(engine: &Engine, clock: &ManualClock, until_ms: i64, step_ms: i64) {
    while clock.now_ms() < until_ms {
        engine.campaigns().pass().await.unwrap();
        testing::deliver_all(engine.outbox()).await.unwrap();
        clock.advance(step_ms);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listed_broadcast_repeats_daily_and_keeps_its_daily_cap() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(START_MS));
    let provider = Arc::new(Timed {
        clock: Arc::clone(&clock),
        sent: Mutex::new(Vec::new()),
    });
    let store = Store::open(&dir.path().join("db")).unwrap();
    let engine = engine(store, Arc::clone(&clock), Arc::clone(&provider)).await;
    // 40 people in New York, all consenting and named; the campaign lists 20 of them, two
    // written in national form, and one number nobody imported.
    let people: Vec<Person> = people(80).into_iter().filter(|p| !p.in_la).collect();
    let people: Vec<Person> = people
        .into_iter()
        .map(|p| Person {
            consent: true,
            named: true,
            ..p
        })
        .collect();
    engine
        .contacts()
        .import(csv(&people).as_slice(), &ImportSettings::default(), |_| {})
        .unwrap();
    let mut listed: Vec<String> = people[..20].iter().map(|p| p.phone.clone()).collect();
    listed[0] = listed[0].trim_start_matches("+1").to_owned();
    listed[1] = format!("(212) 555-{}", &listed[1][8..]);
    let stranger = "+12125559999";
    listed.push(stranger.to_owned());

    let daily = |contacts: Vec<String>| NewCampaign {
        contacts: Some(contacts),
        segment: None,
        holdout_percent: 0.0,
        start_mode: StartMode::Interrupt,
        // 10:00 in New York, each day.
        start_at: Some("2026-03-03T15:00:00Z".to_owned()),
        repeat: Some(Repeat {
            every: Period::Daily,
            time_zone: "America/New_York".to_owned(),
        }),
        daily_cap: Some(8),
        ..broadcast("daily")
    };
    // A list with bad numbers is refused whole, each bad one named, and nothing is written.
    let mut bad = listed.clone();
    bad.push("not a number".to_owned());
    bad.push("+1212".to_owned());
    let refused = engine.campaigns().create(daily(bad)).await.unwrap_err();
    let message = refused.to_string();
    assert!(message.contains("contacts[21]"), "{message}");
    assert!(message.contains("contacts[22]"), "{message}");
    assert!(engine.campaigns().list().unwrap().is_empty());
    assert!(engine.contacts().get(stranger).unwrap().is_none());

    let (campaign, _) = engine.campaigns().create(daily(listed)).await.unwrap();
    assert!(
        engine.contacts().get(stranger).unwrap().is_some(),
        "a listed number becomes a contact"
    );
    // Three days and a bit, in five-minute steps.
    run_for(&engine, &clock, START_MS + 75 * 3_600_000, 5 * 60_000).await;

    let sent = provider.sent.lock().unwrap().clone();
    let on_list: BTreeSet<&str> = people[..20].iter().map(|p| p.phone.as_str()).collect();
    let mut per_day: BTreeMap<i64, usize> = BTreeMap::new();
    let mut per_person: BTreeMap<&str, usize> = BTreeMap::new();
    for (to, at) in &sent {
        assert!(on_list.contains(to.as_str()), "{to} is not on the list");
        // New York days (EST, UTC-5, until the 8th).
        *per_day
            .entry((at - 5 * 3_600_000).div_euclid(86_400_000))
            .or_default() += 1;
        *per_person.entry(to.as_str()).or_default() += 1;
    }
    assert!(
        per_day.values().all(|&n| n <= 8),
        "at most 8 starts a local day: {per_day:?}"
    );
    assert_eq!(
        per_day.values().copied().collect::<Vec<_>>(),
        [8, 8, 8, 8],
        "{per_day:?}"
    );
    // Round 1 (20 people) took the first day and a half of the cap; round 2 began the next
    // 10:00 after round 1 ended, with the rest of that day's cap.
    assert!(per_person.values().all(|&n| n <= 2), "{per_person:?}");
    assert_eq!(
        per_person.len(),
        20,
        "everyone listed got round 1: {per_person:?}"
    );
    let progress = engine.campaigns().progress(&campaign.id).unwrap();
    assert_eq!(progress["audience"], "list");
    assert_eq!(progress["round"], 1, "{progress:#}");
    assert_eq!(
        progress["excluded"]["no_consent"], 1,
        "the stranger: {progress:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spread_broadcast_paces_itself_over_the_span() {
    let dir = tempfile::tempdir().unwrap();
    // 10:00 in New York.
    let clock = Arc::new(ManualClock::new(START_MS + 90 * 60_000));
    let provider = Arc::new(Timed {
        clock: Arc::clone(&clock),
        sent: Mutex::new(Vec::new()),
    });
    let store = Store::open(&dir.path().join("db")).unwrap();
    let engine = engine(store, Arc::clone(&clock), Arc::clone(&provider)).await;
    let people: Vec<Person> = people(240)
        .into_iter()
        .filter(|p| !p.in_la)
        .map(|p| Person {
            consent: true,
            named: true,
            shopper: true,
            ..p
        })
        .collect();
    engine
        .contacts()
        .import(csv(&people).as_slice(), &ImportSettings::default(), |_| {})
        .unwrap();
    let new = NewCampaign {
        holdout_percent: 0.0,
        spread_over: Some("1h".to_owned()),
        ..broadcast("spread")
    };
    let (campaign, _) = engine.campaigns().create(new).await.unwrap();
    let began = clock.now_ms();
    run_for(&engine, &clock, began + 2 * 3_600_000, 5_000).await;
    let sent = provider.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 120);
    let first = sent.iter().map(|(_, at)| *at).min().unwrap();
    let last = sent.iter().map(|(_, at)| *at).max().unwrap();
    // 120 starts over an hour: one every 30 s, so the last goes near the hour's end, not in
    // the first seconds at the campaign's rate of 50 a second.
    assert!(
        last - first >= 55 * 60_000,
        "spread over {} s",
        (last - first) / 1000
    );
    assert!(
        last - began <= 3_600_000,
        "done within the hour: {} s",
        (last - began) / 1000
    );
    let progress = engine.campaigns().progress(&campaign.id).unwrap();
    assert_eq!(progress["state"], "done", "{progress:#}");
    assert!((progress["messages_per_second"].as_f64().unwrap() - 120.0 / 3600.0).abs() < 1e-9);
}
