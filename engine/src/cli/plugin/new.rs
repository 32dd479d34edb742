//! `smsflow plugin new NAME --world WORLD`: a plugin crate that builds, tests and runs as it is,
//! from the templates in `templates/`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;

use crate::plugin::{World, call_input_example};

/// The SDK this binary was built beside; a crate written by `plugin new` depends on it by path.
const BUILT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/sdk");

/// `smsflow plugin new`'s arguments.
#[derive(Debug, clap::Args)]
pub(in crate::cli) struct NewArgs {
    /// The plugin's name, which flows and grants use: lower case letters, digits and dashes,
    /// starting with a letter (`order-lookup`).
    name: String,
    /// The kind of plugin.
    #[arg(long, value_enum)]
    world: WorldArg,
    /// The folder to write the crate in: it becomes PARENT/NAME.
    #[arg(long, value_name = "PARENT", default_value = ".")]
    dir: PathBuf,
    /// The plugin SDK to depend on (an smsflow checkout's `plugins/sdk`); default: the one this
    /// smsflow was built from.
    #[arg(long, value_name = "PATH")]
    sdk: Option<PathBuf>,
}

/// `--world`, as clap lists and parses it.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum WorldArg {
    Classifier,
    Connector,
    ReplyGenerator,
}

impl From<WorldArg> for World {
    fn from(world: WorldArg) -> Self {
        match world {
            WorldArg::Classifier => Self::Classifier,
            WorldArg::Connector => Self::Connector,
            WorldArg::ReplyGenerator => Self::ReplyGenerator,
        }
    }
}

/// Why `plugin new` wrote nothing.
#[derive(Debug, thiserror::Error)]
enum NewError {
    /// The name cannot be a crate's and a plugin's name.
    #[error("`{name}` cannot be a plugin name: {reason}{}", try_hint(suggestion.as_deref()))]
    BadName {
        /// The name given.
        name: String,
        /// What rule it breaks.
        reason: &'static str,
        /// A valid name close to it.
        suggestion: Option<String>,
    },
    /// The crate's folder holds something already.
    #[error(
        "{} already exists and is not empty: pick another name, remove the folder, or write the \
         crate elsewhere with --dir PARENT",
        .0.display()
    )]
    FolderNotEmpty(PathBuf),
    /// The crate's path is a file.
    #[error(
        "{} is a file: pick another name or write the crate elsewhere with --dir PARENT",
        .0.display()
    )]
    NotAFolder(PathBuf),
    /// No SDK where it was looked for.
    #[error(
        "no plugin SDK at {} (no Cargo.toml there): pass --sdk PATH, the `plugins/sdk` folder of \
         an smsflow checkout",
        .0.display()
    )]
    NoSdk(PathBuf),
    /// A file could not be written.
    #[error("cannot write {}: {source} (is the folder writable?)", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// ` (try `better`)`, or nothing without a suggestion.
fn try_hint(suggestion: Option<&str>) -> String {
    suggestion
        .map(|better| format!(" (try `{better}`)"))
        .unwrap_or_default()
}

/// A checked plugin name: a valid cargo package name, manifest name and Rust library name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PluginName(String);

/// Names cargo or Rust refuse for a library: keywords (`fn` would be the library `fn`), the
/// standard crates, and cargo's own folder names in `target/`.
const RESERVED: &str = "as async await break const continue crate dyn else enum extern false fn \
    for gen if impl in let loop match mod move mut pub ref return self static struct super trait \
    true try type unsafe use where while abstract become box do final macro override priv typeof \
    unsized virtual yield union std core alloc test proc-macro build deps examples incremental \
    smsflow-plugin-sdk";

/// Whether Rust or cargo reserves `name`.
fn reserved(name: &str) -> bool {
    RESERVED.split_whitespace().any(|word| word == name)
}

impl FromStr for PluginName {
    type Err = NewError;

    fn from_str(name: &str) -> Result<Self, NewError> {
        match name_problem(name) {
            None => Ok(Self(name.to_owned())),
            Some(reason) => Err(NewError::BadName {
                name: name.to_owned(),
                reason,
                suggestion: suggest_name(name),
            }),
        }
    }
}

/// The rule `name` breaks, if any.
fn name_problem(name: &str) -> Option<&'static str> {
    let allowed = |byte: u8| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-';
    if name.is_empty() || name.len() > 64 {
        Some("it must be 1 to 64 characters")
    } else if !name.bytes().all(allowed) {
        Some("use only lower case letters, digits and dashes")
    } else if !name.starts_with(|first: char| first.is_ascii_lowercase()) {
        Some("it must start with a letter")
    } else if name.ends_with('-') || name.contains("--") {
        Some("dashes go between words, one at a time")
    } else if reserved(name) {
        Some("Rust or cargo reserves it")
    } else {
        None
    }
}

/// A valid name close to `name`: lower case, `_` and spaces as dashes, other characters dropped,
/// leading digits dropped, `-plugin` after a reserved word.
fn suggest_name(name: &str) -> Option<String> {
    let mapped: String = name
        .chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' => Some(c),
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            '-' | '_' | ' ' | '.' => Some('-'),
            _ => None,
        })
        .collect();
    let words: Vec<&str> = mapped
        .trim_start_matches(|c: char| c.is_ascii_digit() || c == '-')
        .split('-')
        .filter(|word| !word.is_empty())
        .collect();
    let mut suggestion = words.join("-");
    suggestion.truncate(64);
    let suggestion = suggestion.trim_end_matches('-').to_owned();
    let suggestion = if reserved(&suggestion) {
        format!("{suggestion}-plugin")
    } else {
        suggestion
    };
    (suggestion != name && name_problem(&suggestion).is_none()).then_some(suggestion)
}

impl PluginName {
    /// The name.
    fn as_str(&self) -> &str {
        &self.0
    }

    /// The plugin's struct: `order-lookup` is `OrderLookup`.
    fn type_name(&self) -> String {
        self.0
            .split('-')
            .map(|word| {
                let mut chars = word.chars();
                chars.next().map_or_else(String::new, |first| {
                    first.to_ascii_uppercase().to_string() + chars.as_str()
                })
            })
            .collect()
    }
}

/// One file of the new crate: where it goes in the crate and its text.
#[derive(Debug)]
struct CrateFile {
    /// The path inside the crate.
    path: PathBuf,
    /// The rendered text.
    text: String,
}

/// The source of a world's `src/lib.rs` and its manifest's description.
fn world_template(world: World) -> (&'static str, &'static str) {
    match world {
        World::Classifier => (
            include_str!("templates/classifier.rs.template"),
            "Tells greetings and goodbyes apart.",
        ),
        World::Connector => (
            include_str!("templates/connector.rs.template"),
            "Looks orders up in a table.",
        ),
        World::ReplyGenerator => (
            include_str!("templates/reply-generator.rs.template"),
            "Answers the opening-hours question.",
        ),
    }
}

/// Replaces each `{{key}}` in `template` with its value.
fn render(template: &str, values: &[(&str, &str)]) -> String {
    values
        .iter()
        .fold(template.to_owned(), |text, (key, value)| {
            text.replace(&format!("{{{{{key}}}}}"), value)
        })
}

/// The files of a `world` plugin called `name` that depends on the SDK at `sdk`.
fn crate_files(name: &PluginName, world: World, sdk: &Path) -> Vec<CrateFile> {
    let (lib, description) = world_template(world);
    // A TOML string, quoted and escaped, whatever characters the path has.
    let sdk = toml::Value::String(sdk.display().to_string()).to_string();
    let type_name = name.type_name();
    let http = if world == World::Connector {
        ", \"http\""
    } else {
        ""
    };
    let manifest = format!("{}.plugin.toml", name.as_str());
    let values = [
        ("name", name.as_str()),
        ("type", type_name.as_str()),
        ("world", world.name()),
        ("sdk", sdk.as_str()),
        ("description", description),
        ("http", http),
    ];
    [
        ("Cargo.toml", include_str!("templates/Cargo.toml.template")),
        (
            manifest.as_str(),
            include_str!("templates/plugin.toml.template"),
        ),
        ("src/lib.rs", lib),
        (".gitignore", include_str!("templates/gitignore.template")),
    ]
    .into_iter()
    .map(|(path, template)| CrateFile {
        path: PathBuf::from(path),
        text: render(template, &values),
    })
    .collect()
}

/// The SDK to depend on, as an absolute path: `--sdk`, or the one this binary was built beside.
fn sdk_path(given: Option<&Path>) -> Result<PathBuf, NewError> {
    let sdk = given.unwrap_or(Path::new(BUILT_SDK));
    if !sdk.join("Cargo.toml").is_file() {
        return Err(NewError::NoSdk(sdk.to_owned()));
    }
    // Absolute, so the crate builds wherever it is moved on this machine.
    std::fs::canonicalize(sdk).map_err(|_| NewError::NoSdk(sdk.to_owned()))
}

/// Refuses a folder that is a file or holds anything.
fn check_free(folder: &Path) -> Result<(), NewError> {
    if folder.is_file() {
        return Err(NewError::NotAFolder(folder.to_owned()));
    }
    let occupied = std::fs::read_dir(folder).is_ok_and(|mut entries| entries.next().is_some());
    if occupied {
        return Err(NewError::FolderNotEmpty(folder.to_owned()));
    }
    Ok(())
}

/// Writes `files` under `folder`, making the folders they need.
fn write_crate(folder: &Path, files: &[CrateFile]) -> Result<(), NewError> {
    for file in files {
        let path = folder.join(&file.path);
        let write_error = |source| NewError::Write {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(write_error)?;
        }
        std::fs::write(&path, &file.text).map_err(write_error)?;
    }
    Ok(())
}

/// Runs `smsflow plugin new`.
pub(super) fn run(args: &NewArgs) -> anyhow::Result<ExitCode> {
    let name: PluginName = args.name.parse()?;
    let world = World::from(args.world);
    let sdk = sdk_path(args.sdk.as_deref())?;
    // `greeter`, not `./greeter`, in what is printed when the crate goes in the current folder.
    let folder = if args.dir == Path::new(".") {
        PathBuf::from(name.as_str())
    } else {
        args.dir.join(name.as_str())
    };
    check_free(&folder)?;
    let files = crate_files(&name, world, &sdk);
    write_crate(&folder, &files)?;
    print_next_steps(&folder, &name, world);
    Ok(ExitCode::SUCCESS)
}

fn print_next_steps(folder: &Path, name: &PluginName, world: World) {
    let folder = folder.display();
    let name = name.as_str();
    let example = call_input_example(world);
    println!("wrote a {world} plugin in {folder}/ (Cargo.toml, {name}.plugin.toml, src/lib.rs)");
    println!("next:");
    println!("  (cd {folder} && cargo test)       # its unit test, natively");
    println!("  smsflow plugin build {folder}");
    println!("  smsflow plugin call {folder}/target/plugins/{name}.wasm --input '{example}'");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn name(text: &str) -> PluginName {
        text.parse().unwrap()
    }

    fn refusal(text: &str) -> String {
        text.parse::<PluginName>().unwrap_err().to_string()
    }

    #[test]
    fn names_of_lower_case_words_joined_by_dashes_are_accepted() {
        for good in ["greeter", "order-lookup", "crm2", "a", &"x".repeat(64)] {
            assert_eq!(name(good).as_str(), good);
        }
    }

    #[test]
    fn a_bad_name_is_refused_with_the_rule_and_a_name_that_would_do() {
        assert_eq!(
            refusal("My_Plugin"),
            "`My_Plugin` cannot be a plugin name: use only lower case letters, digits and dashes \
             (try `my-plugin`)"
        );
        assert_eq!(
            refusal("2fa-codes"),
            "`2fa-codes` cannot be a plugin name: it must start with a letter (try `fa-codes`)"
        );
        assert!(refusal("fn").contains("reserves it (try `fn-plugin`)"));
        assert!(refusal("test").contains("reserves"));
        assert!(refusal("greeter-").contains("dashes go between words"));
        assert!(refusal("a--b").contains("(try `a-b`)"));
        assert!(refusal("").contains("1 to 64"));
        assert!(refusal(&"y".repeat(65)).contains("1 to 64"));
        assert!(refusal("café").contains("(try `caf`)"));
        // Nothing close to it: no suggestion rather than a bad one.
        assert!(!refusal("!!!").contains("try"));
    }

    #[test]
    fn the_type_is_the_name_in_camel_case() {
        assert_eq!(name("greeter").type_name(), "Greeter");
        assert_eq!(name("order-lookup-2").type_name(), "OrderLookup2");
    }

    #[test]
    fn every_world_renders_every_placeholder() {
        for world in [World::Classifier, World::Connector, World::ReplyGenerator] {
            for file in crate_files(&name("order-lookup"), world, Path::new("/sdk")) {
                assert!(
                    !file.text.contains("{{") && !file.text.contains("}}"),
                    "{world} {}: {}",
                    file.path.display(),
                    file.text
                );
            }
        }
    }

    #[test]
    fn the_cargo_toml_is_a_cdylib_on_the_sdk_with_the_worlds_feature() {
        let files = crate_files(
            &name("order-lookup"),
            World::Connector,
            Path::new("/home/dev/smsflow \"x\"/plugins/sdk"),
        );
        let cargo: toml::Table = toml::from_str(&files[0].text).unwrap();
        assert_eq!(cargo["package"]["name"].as_str(), Some("order-lookup"));
        assert!(
            cargo["lib"]["crate-type"]
                .as_array()
                .unwrap()
                .contains(&"cdylib".into())
        );
        let sdk = &cargo["dependencies"]["smsflow-plugin-sdk"];
        assert_eq!(
            sdk["path"].as_str(),
            Some("/home/dev/smsflow \"x\"/plugins/sdk")
        );
        assert_eq!(sdk["features"].as_array().unwrap(), &["connector".into()]);
        assert!(cargo.contains_key("workspace"));
    }

    #[test]
    fn the_manifest_is_one_the_engine_loads() {
        let dir = tempfile::tempdir().unwrap();
        for world in [World::Classifier, World::Connector, World::ReplyGenerator] {
            let files = crate_files(&name("greeter"), world, Path::new("/sdk"));
            let manifest = files
                .iter()
                .find(|file| file.path == Path::new("greeter.plugin.toml"))
                .unwrap();
            let path = dir.path().join("greeter.plugin.toml");
            std::fs::write(&path, &manifest.text).unwrap();
            let manifest = crate::plugin::Manifest::from_file(&path).unwrap();
            assert_eq!((manifest.name.as_str(), manifest.world), ("greeter", world));
            assert!(manifest.capabilities.is_empty());
        }
    }

    #[test]
    fn the_lib_registers_the_worlds_trait_for_the_named_type() {
        let files = crate_files(
            &name("order-lookup"),
            World::ReplyGenerator,
            Path::new("/sdk"),
        );
        let lib = &files[2].text;
        assert!(lib.contains("smsflow_plugin_sdk::register_reply_generator!(OrderLookup);"));
        assert!(lib.contains("impl ReplyGenerator for OrderLookup"));
        assert!(lib.contains("#[cfg(test)]") && lib.contains("smsflow_plugin_sdk::testing"));
    }

    #[test]
    fn an_existing_folder_with_files_is_refused_and_an_empty_one_taken() {
        let dir = tempfile::tempdir().unwrap();
        check_free(&dir.path().join("absent")).unwrap();
        check_free(dir.path()).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "keep me").unwrap();
        let message = check_free(dir.path()).unwrap_err().to_string();
        assert!(
            message.contains("already exists and is not empty") && message.contains("--dir"),
            "{message}"
        );
        let file = dir.path().join("notes.txt");
        assert!(
            check_free(&file)
                .unwrap_err()
                .to_string()
                .contains("is a file")
        );
    }

    #[test]
    fn a_missing_sdk_says_to_pass_one() {
        let message = sdk_path(Some(Path::new("/nowhere/sdk")))
            .unwrap_err()
            .to_string();
        assert!(message.contains("/nowhere/sdk") && message.contains("--sdk PATH"));
        let built = sdk_path(None).unwrap();
        assert!(built.is_absolute() && built.join("wit/v0.1.0/plugin.wit").is_file());
    }
}
