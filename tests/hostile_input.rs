//! Hostile input against the real binary, each case a finding of the reliability probe: every
//! value has a type, a length and a character class, checked the same on every path; a refused
//! request answers JSON and changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::fake_provider::{
    API_TOKEN, OURS, Setup, api_with_token, conversation, post_inbound, twilio_provider,
};
use common::{NOTICE, PROGRAMS, Server};
use serde_json::{Value, json};

async fn serve() -> (Setup, Server) {
    let setup = Setup::with_fake(&[], &[("notice.toml", NOTICE)]).await;
    let rest = format!(
        "{}{PROGRAMS}",
        common::plugins_section("http://127.0.0.1:9")
    );
    setup.write_config(&twilio_provider(), 2, &rest);
    let server = Server::start(&setup.config(), setup.port);
    (setup, server)
}

/// `POST path` with `body`; the status and the JSON answer (which must be JSON).
async fn post(setup: &Setup, path: &str, body: &Value) -> (u16, Value) {
    api_with_token(setup, "POST", path, Some(body.to_string())).await
}

/// The error's text, asserting the answer is a JSON error.
fn error_of(answer: &Value) -> &str {
    answer["error"]
        .as_str()
        .unwrap_or_else(|| panic!("not a JSON error: {answer:#}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn api_fields_with_control_characters_or_past_their_length_are_refused() {
    let (setup, _server) = serve().await;
    let start = "/v1/flows/notice/start";
    let cases = [
        (
            json!({"to": "+12125550100", "fields": {"name": "Ana\u{0}"}}),
            "U+0000",
        ),
        (
            json!({"to": "+12125550100", "fields": {"name": "Ana"}, "locale": "x".repeat(60 * 1024)}),
            "locale",
        ),
        (
            json!({"to": "+12125550100", "fields": {"name": "Ana"}, "locale": "not a locale"}),
            "not a locale",
        ),
        (
            json!({"to": "+12125550100", "fields": (0..2_000).map(|n| (format!("f{n}"), json!("x"))).chain([("name".to_owned(), json!("Ana"))]).collect::<serde_json::Map<_, _>>()}),
            "at most 100",
        ),
        (
            json!({"to": OURS, "fields": {"name": "Ana"}}),
            "our own sending number",
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = post(&setup, start, &body).await;
        assert_eq!(status, 422, "{answer:#}");
        assert!(error_of(&answer).contains(expected), "{answer:#}");
    }
    let (status, _) = conversation(&setup, "+12125550100").await;
    assert_eq!(status, 404, "a refused start wrote no conversation");
    assert!(setup.fake.sent().is_empty());

    let (status, answer) = post(
        &setup,
        "/v1/contacts",
        &json!({"phone": "+12125550101", "locale": "x".repeat(60 * 1024)}),
    )
    .await;
    assert_eq!(status, 422, "{answer:#}");
    let (status, answer) = post(
        &setup,
        "/v1/conversations/+12125550100/reply",
        &json!({"agent": "a".repeat(60 * 1024), "text": "hello"}),
    )
    .await;
    assert_eq!(status, 422, "{answer:#}");
    let (status, answer) = post(
        &setup,
        "/v1/conversations/+12125550100/reply",
        &json!({"agent": "ana", "text": "a\u{0}b"}),
    )
    .await;
    assert_eq!(status, 422, "{answer:#}");
    assert!(setup.fake.sent().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn consent_evidence_must_be_a_web_page_an_ip_and_plain_text() {
    let (setup, _server) = serve().await;
    let evidence = |url: &str, ip: &str| {
        json!({
            "phone": "+12125550100", "program": "care", "class": "transactional",
            "source": "web form", "disclosure": "Reminders from Acme Clinic. Reply STOP to end.",
            "url": url, "ip": ip, "user_agent": "Mozilla/5.0",
        })
    };
    let export = "/v1/consent/+12125550100";
    let (_, before) = api_with_token(&setup, "GET", export, None).await;
    for (url, ip, expected) in [
        (
            "https://acme.example/join",
            "not-an-ip",
            "not an IP address",
        ),
        ("javascript:alert(1)", "203.0.113.7", "not a web page"),
        ("/join", "203.0.113.7", "not a URL"),
    ] {
        let (status, answer) = post(&setup, "/v1/consent", &evidence(url, ip)).await;
        assert_eq!(status, 422, "{answer:#}");
        assert!(error_of(&answer).contains(expected), "{answer:#}");
    }
    let (status, refused) = api_with_token(&setup, "GET", export, None).await;
    assert_eq!(status, 200, "{refused:#}");
    assert_eq!(refused, before, "nothing was recorded");
    let (status, answer) = post(
        &setup,
        "/v1/consent",
        &evidence("https://acme.example/join", "2001:db8::7"),
    )
    .await;
    assert_eq!(status, 201, "{answer:#}");
    let (_, after) = api_with_token(&setup, "GET", export, None).await;
    assert_ne!(after, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_text_from_our_own_number_is_refused_and_stores_nothing() {
    let (setup, _server) = serve().await;
    let (status, body) = post_inbound(&setup, "SMself1", OURS, "HELP").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("our own number"), "{body}");
    let (status, _) = conversation(&setup, OURS).await;
    assert_ne!(status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(setup.fake.sent().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn fields_do_not_pile_up_across_runs_and_the_transcript_pages() {
    let (setup, _server) = serve().await;
    let contact = "+12125550100";
    for run in 0..4 {
        let fields: serde_json::Map<String, Value> = (0..90)
            .map(|n| (format!("r{run}_{n}"), json!("x")))
            .chain([("name".to_owned(), json!("Ana"))])
            .collect();
        let body = json!({"to": contact, "fields": fields, "on_active": "interrupt"});
        let (status, answer) = post(&setup, "/v1/flows/notice/start", &body).await;
        assert_eq!(status, 201, "{answer:#}");
    }
    let (_, state) = conversation(&setup, contact).await;
    let fields = state["conversation"]["fields"].as_object().unwrap();
    assert!(
        fields.len() < 100 && fields.contains_key("r3_0") && !fields.contains_key("r0_0"),
        "only the last run's fields: {} of them",
        fields.len()
    );

    // The whole transcript, walked a page of 3 at a time from the newest.
    let whole = state["transcript"].as_array().unwrap().clone();
    assert!(whole.len() > 6, "{whole:#?}");
    assert!(state["page"]["next_before"].is_null(), "{state:#}");
    let mut walked: Vec<Value> = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let query = before.map_or(String::new(), |seq| format!("&before={seq}"));
        let path = format!("/v1/conversations/{contact}?limit=3{query}");
        let (status, page) = api_with_token(&setup, "GET", &path, None).await;
        assert_eq!(status, 200, "{page:#}");
        let entries = page["transcript"].as_array().unwrap();
        assert!(entries.len() <= 3);
        walked.splice(0..0, entries.iter().cloned());
        match page["page"]["next_before"].as_u64() {
            Some(seq) => before = Some(seq),
            None => break,
        }
    }
    assert_eq!(walked, whole);

    for bad in ["limit=0", "limit=5000"] {
        let path = format!("/v1/conversations/{contact}?{bad}");
        let (status, answer) = api_with_token(&setup, "GET", &path, None).await;
        assert_eq!(status, 422, "{answer:#}");
    }
    let path = format!("/v1/conversations/{contact}?limit=many");
    let (status, answer) = api_with_token(&setup, "GET", &path, None).await;
    assert_eq!(status, 400, "{answer:#}");
    error_of(&answer);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chunked_body_past_the_limit_is_a_json_413() {
    let (setup, _server) = serve().await;
    // Just past the 64 KiB limit: the server answers once it has read too much, and a body
    // that went on much longer would meet a closed connection before its answer was read.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..64)
        .map(|_| Ok(vec![b' '; 1024]))
        .chain([Ok(vec![b' '; 16])])
        .collect();
    let response = reqwest::Client::new()
        .post(setup.url("/v1/flows/notice/start"))
        .bearer_auth(API_TOKEN)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let answer: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    error_of(&answer);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_agent_secrets_are_limited_per_address_before_any_check() {
    let (setup, _server) = serve().await;
    let body = json!({"name": "ana", "queues": ["billing"]});
    let (status, added) = post(&setup, "/v1/agents", &body).await;
    assert_eq!(status, 201, "{added}");
    let secret = added["secret"].as_str().unwrap().to_owned();
    let client = reqwest::Client::new();
    let sign_in = |secret: String| {
        let client = client.clone();
        let url = setup.url("/v1/agent/session");
        async move {
            let response = client
                .post(url)
                .header("content-type", "application/json")
                .body(json!({ "secret": secret }).to_string())
                .send()
                .await
                .unwrap();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|value| value.to_str().unwrap().parse::<u64>().unwrap());
            (response.status().as_u16(), retry_after)
        }
    };
    // Wrong secrets by sign-in and as a bearer token both count.
    for n in 0..9 {
        assert_eq!(
            sign_in(format!("guess-{n}")).await,
            (401, None),
            "guess {n}"
        );
    }
    let bearer = client
        .get(setup.url("/v1/agent/me"))
        .bearer_auth("guess-9")
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 401);
    let (status, retry_after) = sign_in("guess-10".to_owned()).await;
    assert_eq!(status, 429);
    let retry_after = retry_after.expect("a Retry-After header");
    assert!((890..=900).contains(&retry_after), "{retry_after}");
    // Even the right secret waits: the address is not checked at all until the window ends.
    assert_eq!(sign_in(secret).await.0, 429);
}
