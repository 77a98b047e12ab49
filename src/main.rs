//! The `kairos` command: parses the command line, loads the configuration and runs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kairos::config::{Layers, Role, Settings, Sources};
use kairos::startup::Application;
use kairos::telemetry;

/// mimalloc instead of the system allocator: each job allocates and frees many small buffers
/// (records, reports, actor state) across threads, where glibc's malloc spent a fifth of the
/// process's time during a burst. Built without transparent huge pages (the crate's `no_thp`):
/// with them, the kernel zeroed a fresh 2 MiB page each time mimalloc touched memory it had
/// given back, a quarter of the process's samples while jobs fall due (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "kairos", version = kairos::VERSION, about = "A distributed job scheduler")]
struct Cli {
    /// A configuration file layered over the defaults (which are compiled in; no file is
    /// needed to run).
    #[arg(long, global = true, env = "KAIROS_CONFIG")]
    config: Option<PathBuf>,
    /// The roles of this process, comma-separated: api, scanner, executor, writer (default:
    /// the `roles` key of the configuration, all four unless changed).
    #[arg(long, global = true, env = "KAIROS_ROLES")]
    roles: Option<String>,
    /// A folder whose default.toml (if any) is layered over the compiled defaults, and where
    /// <KAIROS_ENV>.toml is looked for (default: ./config).
    #[arg(long, global = true, env = "KAIROS_CONFIG_DIR")]
    config_dir: Option<PathBuf>,
    #[command(flatten)]
    connection: kairos::client::Connection,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the scheduler and its HTTP API until SIGINT or SIGTERM (the default).
    Serve,
    /// Apply the store's migrations (PostgreSQL, or the standalone SQLite file) and exit.
    Migrate,
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        action: TokenCommand,
    },
    /// Print or check the effective configuration.
    Config {
        #[command(subcommand)]
        action: ConfigCommand,
    },
    #[command(flatten)]
    Client(kairos::client::ClientCommand),
    /// Print a shell completion script: `kairos completions bash > /etc/bash_completion.d/kairos`.
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration as TOML, each value followed by where it came from
    /// (default, a file, a variable), secrets redacted; exit 2 if it would not start.
    Show,
    /// Check the configuration as start-up does, without starting: exit 0 when valid, 2 with
    /// the start-up message otherwise.
    Check,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a fresh random token once, and the line that gives it to Kairos (`auth.tokens`
    /// holds only its SHA-256).
    New {
        /// Who or what uses it; recorded with what it does, and logged when it is refused.
        #[arg(long)]
        name: String,
        /// reader (reads), writer (also creates, cancels, re-runs, schedules) or admin (also
        /// /api/v1/admin).
        #[arg(long, value_parser = ["reader", "writer", "admin"])]
        role: String,
    },
}

/// Prints a new token and its configuration line.
fn new_token(name: &str, role: &str) -> ExitCode {
    use rand::RngCore;
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token: String = std::iter::once("kairos_".to_owned())
        .chain(bytes.iter().map(|byte| format!("{byte:02x}")))
        .collect();
    let sha256: String = kairos::config::hash_token(&token)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    println!("token (shown once; give it to {name}): {token}");
    println!("add to the `auth.tokens` list of the configuration:");
    println!("{{ name = {name:?}, role = \"{role}\", sha256 = \"{sha256}\" }}");
    ExitCode::SUCCESS
}

/// `kairos config show|check`.
fn config_command(action: &ConfigCommand, sources: &Sources) -> ExitCode {
    let layers = match Layers::read(sources) {
        Ok(layers) => layers,
        Err(error) => {
            eprintln!("kairos: {error}");
            return ExitCode::from(2);
        }
    };
    if let ConfigCommand::Show = action {
        match layers.show() {
            Ok(text) => print!("{text}"),
            Err(error) => {
                eprintln!("kairos: {error}");
                return ExitCode::from(2);
            }
        }
    }
    match layers.settings() {
        Ok(settings) => {
            if let ConfigCommand::Check = action {
                println!(
                    "the configuration is valid ({} mode)",
                    settings.backend().as_str()
                );
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("kairos: {error}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let sources = Sources {
        directory: cli.config_dir.clone(),
        file: cli.config.clone(),
        environment: None,
    };
    // The commands that neither serve nor touch the store.
    let migrate = match cli.command {
        Some(Command::Token {
            action: TokenCommand::New { name, role },
        }) => return new_token(&name, &role),
        Some(Command::Config { action }) => return config_command(&action, &sources),
        Some(Command::Client(command)) => return kairos::client::run(&cli.connection, command),
        Some(Command::Completions { shell }) => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "kairos", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Some(Command::Migrate) => true,
        Some(Command::Serve) | None => false,
    };
    let settings = match Settings::load(&sources) {
        Ok(mut settings) => {
            if let Some(roles) = &cli.roles {
                match Role::parse_list(roles) {
                    Ok(roles) if !roles.is_empty() => {
                        settings.roles = roles;
                        if let Err(error) = settings.validate() {
                            eprintln!("kairos: {error}");
                            return ExitCode::from(2);
                        }
                    }
                    Ok(_) => {
                        eprintln!("kairos: --roles must name at least one role");
                        return ExitCode::from(2);
                    }
                    Err(problem) => {
                        eprintln!("kairos: --roles: {problem}");
                        return ExitCode::from(2);
                    }
                }
            }
            settings
        }
        Err(error) => {
            eprintln!("kairos: {error}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings.log);

    let result = actix_web::rt::System::new().block_on(async move {
        match migrate {
            true => migrate_store(settings).await,
            false => serve(settings).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("kairos: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let host = settings.http.host.clone();
    let roles = settings.roles.clone();
    let mode = settings.backend().as_str();
    let plain = settings.auth.plain_tokens();
    if plain > 0 {
        tracing::warn!(
            tokens = plain,
            "auth.tokens holds tokens in plain text, accepted as admin tokens for this release; \
             replace each with the hashed entry `kairos token new --name <who> --role <role>` prints"
        );
    }
    if settings.auth.tokens.is_empty() {
        tracing::warn!(
            host = %host,
            "no API tokens configured: anyone who reaches the API may run commands"
        );
    }
    let scheme = match settings.http.tls_cert {
        Some(_) => "https",
        None => "http",
    };
    let application = Application::build(settings).await?;
    tracing::info!(
        mode,
        version = kairos::VERSION,
        data = %application.store_location(),
        url = %format!("{scheme}://{host}:{}", application.port()),
        probes = %format!("{scheme}://{host}:{}", application.probe_port()),
        roles = ?roles,
        "kairos is serving"
    );
    application.run_until(stop_signal()).await?;
    tracing::info!("kairos stopped");
    Ok(())
}

/// Resolves at the first SIGINT or SIGTERM. Kairos then stops taking work and drains (see
/// `Application::run_until`); a second signal changes nothing, and SIGKILL ends it at once.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("cannot listen for SIGINT and SIGTERM; stop Kairos with SIGKILL");
        return std::future::pending().await;
    };
    let name = tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    };
    tracing::info!(signal = name, "stopping");
}

async fn migrate_store(settings: Settings) -> anyhow::Result<()> {
    let instance = format!("kairos-migrate-{}", std::process::id());
    let store = kairos::startup::open_store(&settings, &instance).await?;
    tracing::info!(store = %store.location(), "migrations applied");
    Ok(())
}
