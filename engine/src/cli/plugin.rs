//! The plugin developer's commands: `plugin new` writes a crate, `plugin build` makes it a
//! component, `plugin inspect` and `plugin call` load one in the real sandbox.

mod build;
mod new;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Subcommand;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::plugin::{Grant, Manifest, PluginHost, PluginsConfig, call_input_help};
use crate::store::Store;

/// `smsflow plugin ...`.
#[derive(Debug, Subcommand)]
pub(super) enum PluginCommand {
    /// Write a new plugin crate (Cargo.toml, manifest, a working implementation with a test).
    New(new::NewArgs),
    /// Build a plugin crate to a component: `<name>.wasm` and `<name>.plugin.toml` in
    /// DIR/target/plugins (or --out).
    Build(build::BuildArgs),
    /// Show a plugin's manifest, world, imports, exports and size.
    Inspect {
        /// The component (`<name>.wasm`, with `<name>.plugin.toml` or `plugin.toml` beside it).
        file: PathBuf,
    },
    /// Run one call in the real sandbox and print its result as JSON.
    ///
    /// Without --config the plugin gets what its manifest asks for, HTTP only to the
    /// --allow-http origins, and the --set settings.
    Call {
        /// The component.
        file: PathBuf,
        /// The call as JSON: `{"text": "..."}` for a classifier or reply generator,
        /// `{"operation": "lookup", "entity": "order", "key": "A100"}` for a connector.
        #[arg(long)]
        input: String,
        /// Take the plugin's grant and limits from this smsflow.toml.
        #[arg(long, conflicts_with_all = ["settings", "allow_http"])]
        config: Option<PathBuf>,
        /// A plugin setting, `KEY=VALUE` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        settings: Vec<String>,
        /// An origin the plugin may call over HTTP (repeatable).
        #[arg(long = "allow-http", value_name = "ORIGIN")]
        allow_http: Vec<String>,
    },
}

/// Runs a `smsflow plugin` command.
pub(super) async fn run(command: PluginCommand) -> anyhow::Result<ExitCode> {
    match command {
        PluginCommand::New(args) => new::run(&args),
        PluginCommand::Build(args) => build::run(&args),
        PluginCommand::Inspect { file } => inspect(&file).await,
        PluginCommand::Call {
            file,
            input,
            config,
            settings,
            allow_http,
        } => call(&file, &input, config.as_deref(), &settings, allow_http).await,
    }
}

/// A one-off host for a single component, with the grant the command line describes.
async fn standalone_host(
    file: &Path,
    config: Option<&Path>,
    settings: &[String],
    allow_http: Vec<String>,
) -> anyhow::Result<(PluginHost, String)> {
    let manifest = Manifest::from_file(&Manifest::path_for(file))?;
    let plugins_config = match config {
        Some(path) => Config::from_file(path)?.plugins,
        None => PluginsConfig::default(),
    };
    let grant = match config {
        Some(_) => plugins_config
            .grants
            .get(&manifest.name)
            .cloned()
            .unwrap_or_default(),
        None => command_line_grant(&manifest, settings, allow_http)?,
    };
    let store = Store::temporary()?;
    let mut host = PluginHost::new(
        &plugins_config,
        store.tables().plugin_kv,
        Arc::new(SystemClock),
    )?;
    let name = manifest.name.clone();
    host.load(file, manifest, &grant).await?;
    Ok((host, name))
}

/// What the manifest asks for, HTTP to `allow_http`, and the `--set` settings.
fn command_line_grant(
    manifest: &Manifest,
    settings: &[String],
    allow_http: Vec<String>,
) -> anyhow::Result<Grant> {
    let mut grant = Grant {
        capabilities: manifest.capabilities.clone(),
        http: allow_http,
        ..Grant::default()
    };
    for setting in settings {
        let (key, value) = setting
            .split_once('=')
            .with_context(|| format!("--set `{setting}` is not KEY=VALUE"))?;
        grant
            .config
            .insert(key.to_owned(), toml::Value::String(value.to_owned()));
    }
    Ok(grant)
}

async fn inspect(file: &Path) -> anyhow::Result<ExitCode> {
    let (host, name) = standalone_host(file, None, &[], Vec::new()).await?;
    let plugin = host
        .get(&name)
        .with_context(|| format!("plugin `{name}` did not load"))?;
    let report = serde_json::json!({
        "name": plugin.manifest.name,
        "version": plugin.manifest.version,
        "world": plugin.manifest.world,
        "description": plugin.manifest.description,
        "capabilities": plugin.manifest.capabilities,
        "file": plugin.path,
        "size_bytes": plugin.size,
        "imports": plugin.imports,
        "exports": plugin.exports,
        "intents": plugin.intents,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}

async fn call(
    file: &Path,
    input: &str,
    config: Option<&Path>,
    settings: &[String],
    allow_http: Vec<String>,
) -> anyhow::Result<ExitCode> {
    // Loaded first: what a good --input looks like depends on the plugin's world.
    let (host, name) = standalone_host(file, config, settings, allow_http).await?;
    let world = host
        .get(&name)
        .with_context(|| format!("plugin `{name}` did not load"))?
        .manifest
        .world;
    let input: serde_json::Value = serde_json::from_str(input).map_err(|error| {
        anyhow::anyhow!(
            "--input is not JSON ({error}); {}; in a shell, put the JSON in single quotes",
            call_input_help(world)
        )
    })?;
    match host.call_json(&name, input).await {
        Ok(result) => {
            println!("{}", serde_json::to_string_pretty(&result)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("error: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}
