//! Contacts and segments against the real binary over HTTP, on a real store: create and merge,
//! typed fields, erase; a CSV import with every kind of bad row; segment previews and their
//! errors; `on_active` on the start API; the command line while the server runs.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::fake_provider::{Setup, api_with_token, twilio_provider};
use common::{NOTICE, PROGRAMS, Server, cli};
use serde_json::{Value, json};

const CONTACTS: &str = r#"
[contacts]
default_country = "US"

[contacts.fields]
age = "number"
appointment_at = "datetime"
state = "state"
"#;

async fn serve() -> (Setup, Server) {
    let setup = Setup::with_fake(&[], &[("notice.toml", NOTICE)]).await;
    let rest = format!(
        "{}{PROGRAMS}{CONTACTS}",
        common::plugins_section("http://127.0.0.1:9")
    );
    setup.write_config(&twilio_provider(), 2, &rest);
    let server = Server::start(&setup.config(), setup.port);
    (setup, server)
}

async fn call(setup: &Setup, method: &str, path: &str, body: Value) -> (u16, Value) {
    let body = (!body.is_null()).then(|| body.to_string());
    api_with_token(setup, method, path, body).await
}

/// `POST /v1/contacts/import` with `csv` as the body.
async fn import(setup: &Setup, query: &str, csv: Vec<u8>) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(setup.url(&format!("/v1/contacts/import{query}")))
        .bearer_auth(common::fake_provider::API_TOKEN)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn contacts_are_created_merged_typed_and_erased() {
    let (setup, _server) = serve().await;
    let first = json!({
        "phone": "+12125550143",
        "fields": {"first_name": "Ana", "age": 41, "appointment_at": "2026-03-03T09:00:00-05:00", "state": "Florida"},
        "tags": ["VIP"],
        "locale": "es",
        "time_zone": "America/New_York"
    });
    let (status, created) = call(&setup, "POST", "/v1/contacts", first).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("c-"), "{created}");

    // The same person in a national form merges: fields add up, tags too.
    let again =
        json!({"phone": "(212) 555-0143", "fields": {"last_name": "Ruiz"}, "tags": ["promo"]});
    let (status, merged) = call(&setup, "POST", "/v1/contacts", again).await;
    assert_eq!(
        (status, merged["id"].as_str()),
        (200, Some(id.as_str())),
        "{merged}"
    );

    let (status, contact) = call(&setup, "GET", "/v1/contacts/+12125550143", Value::Null).await;
    assert_eq!(status, 200, "{contact}");
    assert_eq!(contact["fields"]["age"], 41.0);
    assert_eq!(contact["fields"]["appointment_at"], "2026-03-03T14:00:00Z");
    assert_eq!(contact["fields"]["state"], "FL");
    assert_eq!(contact["fields"]["last_name"], "Ruiz");
    assert_eq!(contact["tags"], json!(["promo", "vip"]));
    assert_eq!(contact["locale"], "es");

    let change = json!({"fields": {"last_name": null, "age": "42"}, "remove_tags": ["promo"]});
    let (status, changed) = call(&setup, "PATCH", "/v1/contacts/+12125550143", change).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["fields"]["age"], 42.0);
    assert!(changed["fields"].get("last_name").is_none(), "{changed}");
    assert_eq!(changed["tags"], json!(["vip"]));

    // Bad values are refused, naming the field, and change nothing.
    for (body, says) in [
        (
            json!({"fields": {"age": "old"}}),
            "fields.age: `old` is not a number",
        ),
        (
            json!({"fields": {"appointment_at": "soon"}}),
            "fields.appointment_at: `soon` is not a datetime",
        ),
        (json!({"fields": {"note": "a\u{0}b"}}), "control character"),
        (
            json!({"time_zone": "Mars/Olympus"}),
            "not an IANA time zone",
        ),
        (json!({"tags": ["no spaces"]}), "is not a tag"),
    ] {
        let (status, refused) = call(&setup, "PATCH", "/v1/contacts/+12125550143", body).await;
        assert_eq!(status, 422, "{refused}");
        assert!(
            refused["error"].as_str().unwrap().contains(says),
            "{refused}"
        );
    }
    let (_, unchanged) = call(&setup, "GET", "/v1/contacts/+12125550143", Value::Null).await;
    assert_eq!(unchanged["fields"], changed["fields"]);
    let (status, bad) = call(&setup, "POST", "/v1/contacts", json!({"phone": "555-0143"})).await;
    assert_eq!(status, 422, "{bad}");
    assert!(
        bad["error"].as_str().unwrap().contains("has 7 digits"),
        "{bad}"
    );

    // Erasure: the contact and its thread go; the number is suppressed from then on.
    let (status, started) = call(
        &setup,
        "POST",
        "/v1/flows/notice/start",
        json!({"to": "+12125550143", "fields": {"name": "Ana"}}),
    )
    .await;
    assert_eq!(status, 201, "{started}");
    let (status, _) = call(&setup, "DELETE", "/v1/contacts/+12125550143", Value::Null).await;
    assert_eq!(status, 200);
    let (status, _) = call(&setup, "GET", "/v1/contacts/+12125550143", Value::Null).await;
    assert_eq!(status, 404);
    let (_, thread) = call(&setup, "GET", "/v1/conversations/+12125550143", Value::Null).await;
    assert_eq!(thread["transcript"], json!([]), "{thread}");
    assert_eq!(thread["conversation"]["fields"], json!({}), "{thread}");
    let (_, restart) = call(
        &setup,
        "POST",
        "/v1/flows/notice/start",
        json!({"to": "+12125550143", "fields": {"name": "Ana"}, "on_active": "interrupt"}),
    )
    .await;
    assert_eq!(restart["texts"][0]["decision"], "blocked", "{restart}");
}

/// The import's test file: a BOM, CRLF line ends, a quoted comma, one number in six
/// national forms, consent columns, a row with too many cells, one with invalid UTF-8, one
/// with a bad number.
fn messy_csv() -> Vec<u8> {
    let mut csv = b"\xef\xbb\xbfphone,first_name,state,tags,consent_source,consent_program,consent_disclosure\r\n".to_vec();
    let rows = [
        "(212) 555-0143,\"Ruiz, Ana\",FL,vip;promo,checkout form,offers,Offers by text. Reply STOP to opt out.",
        "212-555-0143,Ana,FL,,,,",
        "212.555.0143,Ana,FL,,,,",
        "2125550143,Ana,FL,,,,",
        "1 212 555 0143,Ana,FL,,,,",
        "+1 212 555 0143,Ana,FL,,,,",
        "+13105550199,Ben,CA,vip,,,",
        "+13105550198,Cy,CA,,,,,extra",
        "555-0100,Dee,NY,,,,",
    ];
    for row in rows {
        csv.extend_from_slice(row.as_bytes());
        csv.extend_from_slice(b"\r\n");
    }
    csv.extend_from_slice(b"+14155550100,Ed\xff,CA,,,,\r\n");
    csv.extend_from_slice(b"+14155550101,Flo,CA,vip,,,\r\n");
    csv
}

#[tokio::test(flavor = "multi_thread")]
async fn a_messy_csv_imports_row_by_row_and_segments_select_from_it() {
    let (setup, _server) = serve().await;
    let (status, summary) = import(&setup, "", messy_csv()).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["created"], 3, "{summary}");
    assert_eq!(summary["updated"], 5, "{summary}");
    assert_eq!(summary["consents"], 1, "{summary}");
    let refused: Vec<u64> = summary["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["line"].as_u64().unwrap())
        .collect();
    assert_eq!(refused, [9, 10, 11], "{summary}");
    let (_, ana) = call(&setup, "GET", "/v1/contacts/+12125550143", Value::Null).await;
    assert_eq!(ana["fields"]["first_name"], "Ana", "{ana}");
    assert_eq!(ana["consent"]["offers"]["marketing"], "opted_in", "{ana}");

    // The header decides for the whole file.
    let (status, refused) = import(&setup, "", b"phnoe,name\r\n+12125550100,A\r\n".to_vec()).await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("phone"),
        "{refused}"
    );

    let preview = |query: &str| {
        let body = json!({ "query": query });
        call(&setup, "POST", "/v1/segments/preview", body)
    };
    let (status, vip) = preview(r#"tag = "vip" and fields.state = "CA""#).await;
    assert_eq!(status, 200, "{vip}");
    assert_eq!(vip["count"], 2, "{vip}");
    let phones: Vec<&str> = vip["sample"]
        .as_array()
        .unwrap()
        .iter()
        .map(|contact| contact["phone"].as_str().unwrap())
        .collect();
    assert_eq!(phones, ["+13105550199", "+14155550101"]);
    let (_, consented) = preview("has_consent(offers) or not exists(fields.state)").await;
    assert_eq!(consented["count"], 1, "{consented}");

    let (status, typo) = preview(r#"tag = "vip" and fields.stat = "CA""#).await;
    assert_eq!(status, 422, "{typo}");
    assert_eq!(typo["column"], 24, "{typo}");
    assert!(
        typo["error"]
            .as_str()
            .unwrap()
            .contains("did you mean fields.state?"),
        "{typo}"
    );
    let (status, mismatch) = preview(r#"fields.age > "x""#).await;
    assert_eq!(
        (status, mismatch["column"].as_u64()),
        (422, Some(14)),
        "{mismatch}"
    );

    // The command line goes through the running server and prints the same.
    let file = setup.dir.path().join("more.csv");
    std::fs::write(
        &file,
        "phone,first_name\n+16175550100,Gus\n+16175550101,Hal\n",
    )
    .unwrap();
    let output = cli(
        &setup.config(),
        &["contacts", "import", file.to_str().unwrap(), "--json"],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["created"], 2, "{stdout}");
    let output = cli(
        &setup.config(),
        &["segments", "test", r#"fields.first_name = "gus""#],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("1 contacts match"), "{stdout}");
    let output = cli(&setup.config(), &["contacts", "export", "--format", "csv"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.lines().count(), 1 + 5, "{stdout}");
    assert!(
        stdout.contains("\"Ruiz, Ana\"") || stdout.contains(",Ana,"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_start_for_a_contact_in_a_run_fails_skips_or_interrupts_as_asked() {
    let (setup, _server) = serve().await;
    let start = |on_active: &str| {
        let body = json!({"to": "+12125550143", "fields": {"name": "Ana"}, "on_active": on_active});
        call(&setup, "POST", "/v1/flows/notice/start", body)
    };
    assert_eq!(start("fail").await.0, 201);
    assert_eq!(start("fail").await.0, 409);
    let (status, skipped) = start("skip").await;
    assert_eq!(
        (status, &skipped["skipped"]),
        (200, &json!(true)),
        "{skipped}"
    );
    let (status, interrupted) = start("interrupt").await;
    assert_eq!(status, 201, "{interrupted}");
    let (_, thread) = call(&setup, "GET", "/v1/conversations/+12125550143", Value::Null).await;
    let ends: Vec<&Value> = thread["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["type"] == "ended")
        .collect();
    assert_eq!(ends.len(), 1, "{thread}");
    assert_eq!(ends[0]["outcome"], "interrupted");
    assert_eq!(thread["conversation"]["run"], 2, "{thread}");
    let (status, bad) = start("sometimes").await;
    assert_eq!(status, 400, "{bad}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_contacts_own_time_zone_holds_texts_until_its_morning_too() {
    let setup = Setup::with_fake(&[], &[("notice.toml", NOTICE)]).await;
    let rest = format!(
        "{}{PROGRAMS}{CONTACTS}",
        common::plugins_section("http://127.0.0.1:9")
    );
    setup.write_config(&twilio_provider(), 2, &rest);
    // 08:30 in New York, 05:30 in Los Angeles.
    let _server = Server::start_with_env(
        &setup.config(),
        setup.port,
        &[("SMSFLOW_CLOCK", "2026-03-03T13:30:00Z")],
    );
    let moved = json!({"phone": "+12125550150", "time_zone": "America/Los_Angeles"});
    assert_eq!(call(&setup, "POST", "/v1/contacts", moved).await.0, 201);
    let start = |to: &str| {
        let body = json!({"to": to, "fields": {"name": "Ana"}});
        call(&setup, "POST", "/v1/flows/notice/start", body)
    };
    let (_, here) = start("+12125550151").await;
    assert_eq!(here["texts"][0]["decision"], "sent", "{here}");
    // Same area code, but the contact lives in California: the stricter zone wins.
    let (_, there) = start("+12125550150").await;
    assert_eq!(there["texts"][0]["decision"], "deferred", "{there}");
    assert_eq!(
        there["texts"][0]["until"], "2026-03-03T16:00:00Z",
        "{there}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_campaign_is_created_once_per_key_runs_and_can_be_paused_and_cancelled() {
    let (setup, _server) = serve().await;
    for i in 0..5 {
        let contact = json!({"phone": format!("+1212555016{i}"), "fields": {"name": format!("P{i}")}, "tags": ["patients"]});
        assert_eq!(call(&setup, "POST", "/v1/contacts", contact).await.0, 201);
    }
    let nameless = json!({"phone": "+12125550170", "tags": ["patients"]});
    assert_eq!(call(&setup, "POST", "/v1/contacts", nameless).await.0, 201);
    let body = json!({"key": "visits-1", "flow": "notice", "segment": "tag = \"patients\"", "messages_per_second": 100});
    let (status, created) = call(&setup, "POST", "/v1/campaigns", body.clone()).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, again) = call(&setup, "POST", "/v1/campaigns", body).await;
    assert_eq!(
        (status, again["id"].as_str(), &again["created"]),
        (201, Some(id.as_str()), &json!(false)),
        "{again}"
    );

    let path = format!("/v1/campaigns/{id}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    // Done means every contact started; "sent" counts the texts the provider took.
    while call(&setup, "GET", &path, Value::Null).await.1["sent"] != 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "the campaign did not finish"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (_, progress) = call(&setup, "GET", &path, Value::Null).await;
    assert_eq!(progress["state"], "done", "{progress:#}");
    assert_eq!(progress["targeted"], 6, "{progress:#}");
    assert_eq!(progress["started"], 5, "{progress:#}");
    assert_eq!(progress["excluded"]["missing_field"], 1, "{progress:#}");
    assert_eq!(progress["sent"], 5, "{progress:#}");
    assert_eq!(setup.fake.sent().len(), 5);

    // A finished campaign cannot be paused; a scheduled one can, then cancelled.
    let (status, _) = call(&setup, "POST", &format!("{path}/pause"), Value::Null).await;
    assert_eq!(status, 409);
    let later = json!({"flow": "notice", "segment": "tag = \"patients\"", "start_at": "2027-01-01T00:00:00Z"});
    let (_, later) = call(&setup, "POST", "/v1/campaigns", later).await;
    let later = format!("/v1/campaigns/{}", later["id"].as_str().unwrap());
    let (_, paused) = call(&setup, "POST", &format!("{later}/pause"), Value::Null).await;
    assert_eq!(paused["state"], "paused", "{paused}");
    let (_, cancelled) = call(&setup, "POST", &format!("{later}/cancel"), Value::Null).await;
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");

    for (body, says) in [
        (
            json!({"flow": "notise", "segment": "tag = \"x\""}),
            "did you mean `notice`",
        ),
        (json!({"flow": "notice", "segment": "tag = "}), "column"),
        (
            json!({"flow": "notice", "segment": "tag = \"x\"", "holdout_percent": 150}),
            "0 to 100",
        ),
    ] {
        let (status, refused) = call(&setup, "POST", "/v1/campaigns", body).await;
        assert_eq!(status, 422, "{refused}");
        assert!(refused.to_string().contains(says), "{refused}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_csv_is_a_campaigns_audience_from_the_command_line() {
    let (setup, _server) = serve().await;
    let outsider =
        json!({"phone": "+12125550180", "fields": {"name": "Out"}, "tags": ["patients"]});
    assert_eq!(call(&setup, "POST", "/v1/contacts", outsider).await.0, 201);
    let file = setup.dir.path().join("audience.csv");
    std::fs::write(
        &file,
        "phone,name\n(212) 555-0181,Ann\n+12125550182,Bo\nnot a phone,Cy\n212.555.0183,Di\n",
    )
    .unwrap();
    let config = setup.config();
    let args = [
        "campaigns",
        "create",
        "--flow",
        "notice",
        "--csv",
        file.to_str().unwrap(),
        "--key",
        "csv-1",
        "--messages-per-second",
        "100",
    ];
    let output = cli(&config, &args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("line 4:"), "the bad row is named: {stderr}");
    let id = stdout.trim().to_owned();
    assert!(id.starts_with("cmp-"), "{stdout}");

    let progress = wait_for_state(&setup, &format!("/v1/campaigns/{id}"), "done").await;
    assert_eq!(progress["audience"], "list", "{progress:#}");
    assert_eq!(progress["targeted"], 3, "{progress:#}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while setup.fake.sent().len() < 3 {
        assert!(std::time::Instant::now() < deadline, "{progress:#}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let recipients: std::collections::BTreeSet<String> =
        setup.fake.sent().into_iter().map(|text| text.to).collect();
    let expected: std::collections::BTreeSet<String> =
        ["+12125550181", "+12125550182", "+12125550183"]
            .map(str::to_owned)
            .into();
    assert_eq!(recipients, expected, "the file's rows, not the outsider");
}

/// Polls campaign `path` until its state is `state`.
async fn wait_for_state(setup: &Setup, path: &str, state: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, progress) = call(setup, "GET", path, Value::Null).await;
        if progress["state"] == state {
            return progress;
        }
        assert!(std::time::Instant::now() < deadline, "{progress:#}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broadcast_killed_mid_way_resumes_and_texts_each_contact_once() {
    let (setup, server) = serve().await;
    let count = 300;
    let mut csv = String::from("phone,name,tags\n");
    for i in 0..count {
        csv.push_str(&format!("+1212555{:04},P{i},patients\n", 1000 + i));
    }
    let (status, summary) = import(&setup, "", csv.into_bytes()).await;
    assert_eq!(
        (status, summary["created"].as_u64()),
        (200, Some(count)),
        "{summary}"
    );
    let body = json!({"key": "kill-1", "flow": "notice", "segment": "tag = \"patients\"", "messages_per_second": 40});
    let (_, created) = call(&setup, "POST", "/v1/campaigns", body).await;
    let path = format!("/v1/campaigns/{}", created["id"].as_str().unwrap());

    // Kill -9 once some texts are out and most are not.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while setup.fake.sent().len() < 60 {
        assert!(
            std::time::Instant::now() < deadline,
            "the campaign did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    server.kill();
    let before = setup.fake.sent().len();
    assert!(
        before < 200,
        "the campaign ended before the kill ({before} sent)"
    );

    let _server = Server::start(&setup.config(), setup.port);
    let progress = wait_for_state(&setup, &path, "done").await;
    assert_eq!(progress["started"], count, "{progress:#}");
    // Done means every contact started; the last texts may still be on their way.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while (setup.fake.sent().len() as u64) < count {
        assert!(
            std::time::Instant::now() < deadline,
            "{} sent",
            setup.fake.sent().len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let sent = setup.fake.sent();
    let recipients: std::collections::BTreeSet<&str> =
        sent.iter().map(|text| text.to.as_str()).collect();
    assert_eq!(recipients.len() as u64, count, "nobody skipped");
    assert_eq!(sent.len() as u64, count, "nobody texted twice");
}
