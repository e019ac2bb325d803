//! Command-line interface: one binary, `logship`, with a subcommand per role.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Ships every log line from files to Kafka to Elasticsearch: none lost, none doubled.
#[derive(Debug, Parser)]
#[command(name = "logship", version, about, propagate_version = true)]
pub struct Cli {
    /// Log output format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter (tracing `EnvFilter` syntax); `RUST_LOG` is used when this is not given.
    #[arg(long, global = true)]
    pub log_level: Option<String>,

    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// How logship's own logs are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// The roles of the `logship` binary.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Tail the configured files and ship every line to Kafka (durably: WAL + checkpoints).
    Agent {
        /// Agent configuration (TOML); see docs/config.md.
        #[arg(long, short)]
        config: PathBuf,
        /// Serve `/metrics`, `/health` and `/status` here (overrides `metrics_addr`).
        #[arg(long)]
        metrics_addr: Option<SocketAddr>,
    },
    /// Consume Kafka in a consumer group and index every record into Elasticsearch exactly once.
    Transfer {
        /// Transfer configuration (TOML); see docs/config.md.
        #[arg(long, short)]
        config: PathBuf,
        /// Serve `/metrics` and `/health` here (overrides `metrics_addr`).
        #[arg(long)]
        metrics_addr: Option<SocketAddr>,
    },
    /// Evaluate the alert rules stored in etcd over complete windows and notify each episode
    /// once (Alertmanager, webhooks).
    Alert {
        /// Alert configuration (TOML); see docs/alerts.md.
        #[arg(long, short)]
        config: PathBuf,
        /// Serve `/metrics` and `/health` here (overrides `metrics_addr`).
        #[arg(long)]
        metrics_addr: Option<SocketAddr>,
    },
    /// Serve the console: search logs in a browser, see every hit in its file's context.
    #[command(args_conflicts_with_subcommands = true)]
    Console {
        /// Console configuration (TOML); see docs/console.md.
        #[arg(long, short, required = true)]
        config: Option<PathBuf>,
        /// A helper instead of serving.
        #[command(subcommand)]
        command: Option<ConsoleCommand>,
    },
    /// Show an agent's files (offset, size, bytes behind, last read) and WAL depth; asks the
    /// running agent at its `metrics_addr`, or reads the stopped agent's database.
    Status {
        /// The agent's configuration (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Also list files that were rotated away and fully drained.
        #[arg(long)]
        all: bool,
    },
    /// Read and write the central configuration in etcd.
    Ctl {
        /// etcd endpoints, comma-separated (`http://127.0.0.1:2379`).
        #[arg(long, value_delimiter = ',', required = true)]
        etcd: Vec<String>,
        /// Key prefix (the agents' `etcd.prefix`).
        #[arg(long, default_value = "/logship")]
        prefix: String,
        /// PEM of the CA that signs the etcd servers' certificates (`https://` endpoints).
        #[arg(long)]
        etcd_ca: Option<PathBuf>,
        /// PEM of a client certificate (with `--etcd-key`).
        #[arg(long)]
        etcd_cert: Option<PathBuf>,
        /// PEM of the client certificate's key.
        #[arg(long)]
        etcd_key: Option<PathBuf>,
        /// etcd user; the password from `--etcd-password-file` or `$LOGSHIP_ETCD_PASSWORD`.
        #[arg(long)]
        etcd_user: Option<String>,
        /// File holding the etcd user's password.
        #[arg(long)]
        etcd_password_file: Option<PathBuf>,
        /// What to do.
        #[command(subcommand)]
        command: CtlCommand,
    },
}

/// `logship console` helpers.
#[derive(Debug, Subcommand)]
pub enum ConsoleCommand {
    /// Reads a password from standard input (one line) and prints its argon2 hash, for a
    /// `[[users]]` entry's `password_hash`.
    HashPassword,
}

/// `logship ctl` commands.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// A host's collect entries.
    Collect {
        /// What to do with them.
        #[command(subcommand)]
        command: CollectCommand,
    },
    /// Live agents (from the registry), with their version and last heartbeat.
    Agents,
    /// Alert rules (docs/alerts.md), evaluated by `logship alert`.
    Alert {
        /// What to do with them.
        #[command(subcommand)]
        command: AlertCommand,
    },
}

/// `logship ctl alert` commands.
#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Lists the rules: name, kind, and whether each reads.
    List,
    /// Prints one rule as JSON.
    Get {
        /// The rule's name.
        name: String,
    },
    /// Checks a JSON file as a rule and stores it under that name (replacing one).
    Set {
        /// The rule's name (letters, digits, `.`, `_`, `-`).
        name: String,
        /// The rule's JSON.
        #[arg(long)]
        file: PathBuf,
        /// Also ask this Elasticsearch whether it accepts the query and whether the `group_by`
        /// fields can group (as the console and the evaluator do).
        #[arg(long)]
        es: Option<String>,
    },
    /// Deletes a rule.
    Delete {
        /// The rule's name.
        name: String,
    },
}

/// `logship ctl collect` commands.
#[derive(Debug, Subcommand)]
pub enum CollectCommand {
    /// Prints the host's entries as JSON.
    Get {
        /// The agent's `host`.
        #[arg(long)]
        host: String,
    },
    /// Validates a JSON file of entries and makes it the host's entries.
    Set {
        /// The agent's `host`.
        #[arg(long)]
        host: String,
        /// JSON array of `{"path": ..., "topic": ...}` objects.
        #[arg(long)]
        file: PathBuf,
    },
}
