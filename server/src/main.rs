//! The `ringlet` binary.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "ringlet",
    version,
    about = "A Kafka-compatible broker on thread-per-core io_uring"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker, like kafka-server-start.sh: `ringlet serve [server.properties] [--override key=value]...`
    Serve {
        /// A Kafka server.properties file; without it the embedded defaults apply.
        properties: Option<PathBuf>,
        /// Set one property, overriding the file.
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Load generator (not implemented yet: see issue 6).
    Loadgen,
    /// Tuning sweeps and capacity reports (not implemented yet: see issue 7).
    Tune,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RINGLET_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            properties,
            overrides,
        } => ringlet_server::serve::run(properties, &overrides),
        Command::Loadgen => {
            eprintln!("ringlet loadgen is not implemented yet (issue 6)");
            std::process::exit(2);
        }
        Command::Tune => {
            eprintln!("ringlet tune is not implemented yet (issue 7)");
            std::process::exit(2);
        }
    }
}
