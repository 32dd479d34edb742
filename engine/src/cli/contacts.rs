//! `smsflow contacts import|export` and `smsflow segments test`, with the server stopped (on
//! the store) or running (through its operator API, `[server] api_token`).

use std::io::{IsTerminal as _, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::{Value, json};

use super::records::Api;
use crate::clock::SystemClock;
use crate::compliance::ledger::{ConsentClass, Ledger};
use crate::config::Config;
use crate::contacts::Contacts;
use crate::contacts::import::{ImportSettings, ImportSummary};
use crate::store::Store;

/// `smsflow contacts ...`.
#[derive(Debug, Subcommand)]
pub(super) enum ContactsCommand {
    /// Import contacts from a CSV file: a `phone` column, other columns become fields, `tags`
    /// split on `;`, optional `locale`, `time_zone` and `consent_*` columns. Rows merge into
    /// the contacts with their numbers; a bad row is refused with its line. Prints the summary
    /// as its last line.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// Record every row as opted in, collected by this source (e.g. "checkout form").
        #[arg(long)]
        consent_source: Option<String>,
        /// The disclosure the contacts agreed to (for rows without `consent_disclosure`).
        #[arg(long)]
        disclosure: Option<String>,
        /// The program the consent is for (for rows without `consent_program`).
        #[arg(long)]
        program: Option<String>,
        /// `marketing` (the default) or `transactional` consent.
        #[arg(long)]
        class: Option<String>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print every contact (or a segment's) as CSV or as JSON lines.
    Export {
        /// `csv` or `json`.
        #[arg(long, default_value = "csv")]
        format: String,
        /// Only the contacts this segment query selects.
        #[arg(long)]
        query: Option<String>,
    },
}

/// `smsflow segments ...`.
#[derive(Debug, Subcommand)]
pub(super) enum SegmentsCommand {
    /// How many contacts a query selects, and a few of them; a bad query is answered with its
    /// column and exit code 1.
    Test {
        /// The query, e.g. 'tag = "vip" and last_inbound < 30d'.
        query: String,
    },
}

/// Where contacts are read and written.
enum Target {
    /// The store itself: the server is stopped.
    Store(Box<Contacts>),
    /// The running server.
    Server(Api),
}

fn target(config_path: &Path) -> anyhow::Result<Target> {
    let config = Config::from_file(config_path)?;
    match Store::open(&config.store.path) {
        Ok(store) => Ok(Target::Store(Box::new(Contacts::new(
            &store,
            Ledger::new(store.tables().consent),
            Arc::new(SystemClock),
            config.contacts.clone(),
        )?))),
        Err(offline) => Ok(Target::Server(Api::new(&config).with_context(|| {
            format!("cannot open the store ({offline}), nor ask the running server")
        })?)),
    }
}

/// Runs `smsflow contacts ...`.
///
/// # Errors
///
/// When neither the store nor the server can be reached, or the file cannot be read.
pub(super) async fn run(command: ContactsCommand, config: &Path) -> anyhow::Result<ExitCode> {
    match command {
        ContactsCommand::Import {
            file,
            consent_source,
            disclosure,
            program,
            class,
            json,
        } => {
            let settings = ImportSettings {
                batch: file.display().to_string(),
                consent_source,
                disclosure,
                program,
                class: Some(consent_class(class.as_deref())?),
            };
            let summary = import(&file, settings, target(config)?).await?;
            print_summary(&summary, json)?;
            Ok(if summary.refused_total == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        ContactsCommand::Export { format, query } => {
            export(&format, query.as_deref(), target(config)?).await
        }
    }
}

fn consent_class(class: Option<&str>) -> anyhow::Result<ConsentClass> {
    match class {
        None | Some("marketing") => Ok(ConsentClass::Marketing),
        Some("transactional") => Ok(ConsentClass::Transactional),
        Some(other) => anyhow::bail!("--class `{other}`: write marketing or transactional"),
    }
}

async fn import(
    file: &Path,
    settings: ImportSettings,
    target: Target,
) -> anyhow::Result<ImportSummary> {
    let opened =
        std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let size = opened.metadata().map_or(0, |metadata| metadata.len());
    match target {
        Target::Store(contacts) => {
            let bar = progress_bar(size);
            let reader = bar.wrap_read(opened);
            let summary = tokio::task::spawn_blocking(move || {
                let summary = contacts.import(reader, &settings, |_| {});
                contacts.flush_sync().map(|()| summary)
            })
            .await??;
            bar.finish_and_clear();
            Ok(summary?)
        }
        Target::Server(api) => {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("batch", &settings.batch);
            for (key, value) in [
                ("consent_source", &settings.consent_source),
                ("disclosure", &settings.disclosure),
                ("program", &settings.program),
            ] {
                if let Some(value) = value {
                    query.append_pair(key, value);
                }
            }
            if settings.class == Some(ConsentClass::Transactional) {
                query.append_pair("class", "transactional");
            }
            let path = format!("/v1/contacts/import?{}", query.finish());
            let answer = api.post(&path, "text/csv", file_body(opened)).await?;
            Ok(serde_json::from_str(&answer).context("the server's import summary")?)
        }
    }
}

/// Imports `file` through the running server, as `smsflow contacts import` does.
pub(super) async fn import_through(api: &Api, file: &Path) -> anyhow::Result<ImportSummary> {
    let settings = ImportSettings {
        batch: file.display().to_string(),
        consent_source: None,
        disclosure: None,
        program: None,
        class: None,
    };
    import(file, settings, Target::Server(api.clone())).await
}

/// A progress bar on stderr when it is a terminal; hidden otherwise (scripts, logs).
fn progress_bar(size: u64) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(size);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "importing {bar:40} {bytes}/{total_bytes} ({eta} left)",
    ) {
        bar.set_style(style);
    }
    bar
}

/// `file` as a request body, read as it is sent (never whole in memory).
fn file_body(mut file: std::fs::File) -> reqwest::Body {
    let (sender, receiver) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    std::thread::spawn(move || {
        loop {
            let mut chunk = vec![0; 64 * 1024];
            let read = match file.read(&mut chunk) {
                Ok(0) => return,
                Ok(read) => read,
                Err(error) => {
                    let _ = sender.blocking_send(Err(error));
                    return;
                }
            };
            chunk.truncate(read);
            if sender.blocking_send(Ok(chunk)).is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    reqwest::Body::wrap_stream(stream)
}

/// The refused rows, a line each, then the summary as the last line.
fn print_summary(summary: &ImportSummary, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(summary)?);
        return Ok(());
    }
    for refused in &summary.refused {
        println!("line {}: {}", refused.line, refused.error);
    }
    if summary.refused_total > summary.refused.len() as u64 {
        println!(
            "... and {} more refused rows",
            summary.refused_total - summary.refused.len() as u64
        );
    }
    println!(
        "created {}, updated {}, consents recorded {}, refused {}{}",
        summary.created,
        summary.updated,
        summary.consents,
        summary.refused_total,
        if summary.truncated {
            " (the import stopped early: see the last refused line)"
        } else {
            ""
        }
    );
    Ok(())
}

/// The columns of a CSV export: the contact's own, then every field.
fn export_columns(fields: impl Iterator<Item = String>) -> Vec<String> {
    ["id", "phone", "tags", "locale", "time_zone", "created_at"]
        .into_iter()
        .map(str::to_owned)
        .chain(fields)
        .collect()
}

/// A contact as the API shows it, as a CSV row under `columns`.
fn export_row(view: &Value, columns: &[String]) -> Vec<String> {
    let text = |value: &Value| match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(";"),
        other => other.to_string(),
    };
    columns
        .iter()
        .map(|column| match view.get(column) {
            Some(value) if column != "fields" => text(value),
            _ => text(&view["fields"][column]),
        })
        .collect()
}

async fn export(format: &str, query: Option<&str>, target: Target) -> anyhow::Result<ExitCode> {
    let views = match target {
        Target::Store(contacts) => {
            let query = query.map(|text| contacts.query(text)).transpose()?;
            let (page, _) = contacts.list(query.as_ref(), None, usize::MAX)?;
            page.iter()
                .map(|contact| contacts.view(contact))
                .collect::<Result<Vec<_>, _>>()?
        }
        Target::Server(api) => server_contacts(&api, query).await?,
    };
    match format {
        "json" => {
            for view in &views {
                println!("{}", serde_json::to_string(view)?);
            }
        }
        "csv" => {
            let mut fields: Vec<String> = views
                .iter()
                .filter_map(|view| view["fields"].as_object())
                .flat_map(|fields| fields.keys().cloned())
                .collect();
            fields.sort();
            fields.dedup();
            let columns = export_columns(fields.into_iter());
            crate::contacts::csv::write_csv(
                std::io::stdout().lock(),
                &columns,
                views.iter().map(|view| export_row(view, &columns)),
            )?;
        }
        other => anyhow::bail!("--format `{other}`: write csv or json"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Every contact the running server lists for `query`, page by page.
async fn server_contacts(api: &Api, query: Option<&str>) -> anyhow::Result<Vec<Value>> {
    let mut views = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut params = url::form_urlencoded::Serializer::new(String::new());
        params.append_pair("limit", "500");
        if let Some(query) = query {
            params.append_pair("query", query);
        }
        if let Some(after) = &after {
            params.append_pair("after", after);
        }
        let page: Value = serde_json::from_str(
            &api.get(&format!("/v1/contacts?{}", params.finish()))
                .await?,
        )?;
        if let Some(contacts) = page["contacts"].as_array() {
            views.extend(contacts.iter().cloned());
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return Ok(views),
        }
    }
}

/// Runs `smsflow segments ...`: exits 1 on a bad query.
///
/// # Errors
///
/// When neither the store nor the server can be reached.
pub(super) async fn segments(command: SegmentsCommand, config: &Path) -> anyhow::Result<ExitCode> {
    let SegmentsCommand::Test { query } = command;
    let answer = match target(config)? {
        Target::Store(contacts) => match contacts.preview(&query) {
            Ok(preview) => json!({ "count": preview.count, "sample": preview.sample }),
            Err(crate::contacts::select::SegmentError::Query(error)) => {
                println!(
                    "{query}\n{}^\nerror: {error}",
                    " ".repeat(error.column.saturating_sub(1))
                );
                return Ok(ExitCode::FAILURE);
            }
            Err(error) => return Err(error.into()),
        },
        Target::Server(api) => {
            let body = serde_json::to_vec(&json!({ "query": query }))?;
            match api
                .post("/v1/segments/preview", "application/json", body)
                .await
            {
                Ok(answer) => serde_json::from_str(&answer)?,
                Err(error) => {
                    println!("error: {error:#}");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
    };
    println!("{} contacts match", answer["count"]);
    for contact in answer["sample"].as_array().into_iter().flatten() {
        println!(
            "  {} {}",
            contact["phone"].as_str().unwrap_or(""),
            contact["fields"]
        );
    }
    Ok(ExitCode::SUCCESS)
}
