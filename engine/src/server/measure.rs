//! Measurement over HTTP: tracked links (`/l/{code}`, public: phones open them),
//! conversions and the report (`/v1/conversions`, `/v1/report`, operator token: the numbers
//! describe the operator's business) and `/metrics` (open unless `[server]
//! metrics_need_token`, as Prometheus endpoints usually are).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::agent_auth::Caller;
use super::error::{ApiError, json_body};
use super::router::AppState;
use crate::measure::render;
use crate::measure::report::ReportFilter;
use crate::measure::{MeasureError, NewConversion};
use crate::store::agents::Role;

impl From<MeasureError> for ApiError {
    fn from(error: MeasureError) -> Self {
        match error {
            MeasureError::Invalid(_) | MeasureError::Unknown(_) => {
                Self::Unprocessable(error.to_string())
            }
            MeasureError::Store(error) => error.into(),
        }
    }
}

/// `GET /l/{code}`: 302 to the link's target, the click recorded; 404 for a code no text
/// carried. The target is only ever one a flow wrote, so this is no open redirect.
pub(super) async fn click(
    State(state): State<Arc<AppState>>,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    match state.measurement.click(&code).await? {
        Some(target) => Ok((StatusCode::FOUND, [(header::LOCATION, target)]).into_response()),
        None => Err(ApiError::NotFound(
            "no such link: it may be mistyped, or from another system".to_owned(),
        )),
    }
}

/// `POST /v1/conversions`: 201 `{"id", "attributed_to"}`, or 200 with the first answer for
/// a key seen before.
pub(super) async fn convert(
    State(state): State<Arc<AppState>>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let new: NewConversion = json_body(&body, "a conversion")?;
    let (conversion, created) = state.measurement.convert(new).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({
            "id": conversion.id,
            "attributed_to": conversion.attributed_to,
            "value": conversion.value,
            "currency": conversion.currency,
            "occurred_at": crate::compliance::gate::rfc3339(conversion.occurred_at_ms),
        })),
    ))
}

/// `GET /v1/report`'s query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReportQuery {
    flow: Option<String>,
    campaign: Option<String>,
    /// RFC 3339, or a span back from now (`7d`).
    since: Option<String>,
    until: Option<String>,
    #[serde(default)]
    sequential: bool,
}

/// The report `query` asks for, as JSON.
fn report_value(state: &AppState, query: ReportQuery) -> Result<Value, ApiError> {
    let now = state.clock.now_ms();
    let parse = |text: Option<&str>| {
        crate::measure::report::parse_since(text, now).map_err(ApiError::Unprocessable)
    };
    let filter = ReportFilter {
        since_ms: parse(query.since.as_deref())?,
        until_ms: match query.until.as_deref() {
            Some(until) => parse(Some(until))?,
            None => now + 1,
        },
        weights: state
            .runtime
            .registry()
            .split_weights(query.flow.as_deref()),
        flow: query.flow,
        campaign: query.campaign,
        sequential: query.sequential,
    };
    let report = state.measurement.report(&filter)?;
    Ok(serde_json::to_value(report).unwrap_or_default())
}

/// `GET /v1/report?flow=&campaign=&since=&until=&sequential=`: the report as JSON.
pub(super) async fn report(
    State(state): State<Arc<AppState>>,
    Query(query): Query<ReportQuery>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(report_value(&state, query)?))
}

/// `GET /v1/report.svg?...`: the report's chart.
pub(super) async fn report_svg(
    State(state): State<Arc<AppState>>,
    Query(query): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    let (flow, campaign) = (query.flow.clone(), query.campaign.clone());
    let report = report_value(&state, query)?;
    let named = [("flow", flow.as_deref()), ("campaign", campaign.as_deref())];
    let svg = crate::measure::chart::svg(&render::chart_input(&report, &named))
        .map_err(|error| ApiError::Unprocessable(error.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

/// `GET /v1/report.csv?...`: the report as CSV, a download.
pub(super) async fn report_csv(
    State(state): State<Arc<AppState>>,
    Query(query): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    let csv = render::csv(&report_value(&state, query)?);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"smsflow-report.csv\"",
            ),
        ],
        csv,
    )
        .into_response())
}

/// Supervisors see reports from the inbox's sign-in; agents do not.
fn supervisor(caller: &Caller) -> Result<(), ApiError> {
    match caller.0.role {
        Role::Supervisor => Ok(()),
        Role::Agent => Err(ApiError::Forbidden(
            "reports are for supervisors and the operator".to_owned(),
        )),
    }
}

/// `GET /v1/agent/report`: [`report`] for a signed-in supervisor.
pub(super) async fn agent_report(
    state: State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    query: Query<ReportQuery>,
) -> Result<Json<Value>, ApiError> {
    supervisor(&caller)?;
    report(state, query).await
}

/// `GET /v1/agent/report.svg`: [`report_svg`] for a signed-in supervisor.
pub(super) async fn agent_report_svg(
    state: State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    query: Query<ReportQuery>,
) -> Result<Response, ApiError> {
    supervisor(&caller)?;
    report_svg(state, query).await
}

/// `GET /v1/agent/report.csv`: [`report_csv`] for a signed-in supervisor.
pub(super) async fn agent_report_csv(
    state: State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    query: Query<ReportQuery>,
) -> Result<Response, ApiError> {
    supervisor(&caller)?;
    report_csv(state, query).await
}

/// `GET /metrics`: the Prometheus (OpenMetrics) text; behind the operator token when
/// `[server] metrics_need_token` says so.
pub(super) async fn metrics(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    if state.metrics_need_token && !super::auth::has_operator_token(&state, &headers) {
        return Err(ApiError::Unauthorized);
    }
    let text = state
        .metrics
        .render()
        .map_err(|error| ApiError::store("the metrics", &error))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
