//! The `logship` binary: parses the command line, sets up logging and runs one role.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser as _;
use cli::{AlertCommand, Cli, CollectCommand, Command, CtlCommand, LogFormat};
use logship::etcd::ctl::CtlRequest;
use logship::shutdown::Shutdown;
use tracing_subscriber::EnvFilter;

mod cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, cli.log_level.as_deref());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => {
            // Whatever is still running in the background (an HTTP connection) gets a moment.
            runtime.shutdown_timeout(Duration::from_secs(2));
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!("{error:#}");
            // Exit at once: a failed role may have left threads stuck in a broken disk or
            // store, and unwinding (dropping the runtime, the WAL) would wait for them.
            std::process::exit(1)
        }
    }
}

fn init_logging(format: LogFormat, level: Option<&str>) {
    let filter = match level {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    // Colors only for a person at a terminal: never escape codes in a journal or a log file.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// A reload trigger following SIGHUP (a long-running role's; without it SIGHUP would kill it).
fn hangups() -> anyhow::Result<logship::reload::Reload> {
    let reload = logship::reload::Reload::new();
    reload.on_sighup().context("cannot listen for SIGHUP")?;
    Ok(reload)
}

async fn run(command: Command) -> anyhow::Result<()> {
    let shutdown = Shutdown::new();
    shutdown
        .trigger_on_signals()
        .context("cannot install signal handlers")?;
    match command {
        Command::Agent {
            config,
            metrics_addr,
        } => {
            let mut config = logship::config::AgentConfig::load(&config)?;
            config.metrics_addr = metrics_addr.or(config.metrics_addr);
            logship::agent::run(config, shutdown, hangups()?).await
        }
        Command::Transfer {
            config,
            metrics_addr,
        } => {
            let mut config = logship::config::TransferConfig::load(&config)?;
            config.metrics_addr = metrics_addr.or(config.metrics_addr);
            logship::transfer::run(config, shutdown, hangups()?).await
        }
        Command::Alert {
            config,
            metrics_addr,
        } => {
            let mut config = logship::config::AlertConfig::load(&config)?;
            config.metrics_addr = metrics_addr.or(config.metrics_addr);
            logship::alert::run(config, shutdown, hangups()?).await
        }
        Command::Console {
            command: Some(cli::ConsoleCommand::HashPassword),
            ..
        } => {
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .context("cannot read the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']);
            anyhow::ensure!(!password.is_empty(), "the password is empty");
            println!("{}", logship::console::auth::hash_password(password)?);
            Ok(())
        }
        Command::Console { config, .. } => {
            let config = config.context("--config is required")?;
            let config = logship::config::ConsoleConfig::load(&config)?;
            logship::console::run(config, shutdown, hangups()?).await
        }
        Command::Status { config, all } => {
            let config = logship::config::AgentConfig::load(&config)?;
            let mut out = std::io::stdout().lock();
            logship::agent::status::run_command(
                config.metrics_addr,
                config.metrics_tls.as_ref(),
                &config.data_dir,
                all,
                &mut out,
            )
            .await
        }
        Command::Ctl {
            etcd,
            prefix,
            etcd_ca,
            etcd_cert,
            etcd_key,
            etcd_user,
            etcd_password_file,
            command,
        } => {
            let tls = logship::config::credentials::TlsFiles {
                ca_file: etcd_ca,
                cert_file: etcd_cert,
                key_file: etcd_key,
            };
            let user =
                logship::config::credentials::UserSecret::with_file(etcd_user, etcd_password_file);
            let access = logship::config::etcd_access::EtcdAccess::new(etcd, &tls, &user, "etcd")
                .map_err(|e| anyhow::anyhow!("--etcd-*: {e}"))?;
            let request = match command {
                CtlCommand::Collect {
                    command: CollectCommand::Get { host },
                } => CtlRequest::CollectGet { host },
                CtlCommand::Collect {
                    command: CollectCommand::Set { host, file },
                } => CtlRequest::CollectSet { host, file },
                CtlCommand::Agents => CtlRequest::Agents,
                CtlCommand::Alert { command } => match command {
                    AlertCommand::List => CtlRequest::AlertList,
                    AlertCommand::Get { name } => CtlRequest::AlertGet { name },
                    AlertCommand::Set { name, file, es } => CtlRequest::AlertSet { name, file, es },
                    AlertCommand::Delete { name } => CtlRequest::AlertDelete { name },
                },
            };
            let mut out = std::io::stdout().lock();
            logship::etcd::ctl::run(&access, &prefix, &request, &mut out).await
        }
    }
}
