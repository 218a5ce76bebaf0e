//! The `ringlet` binary: `serve` runs the broker (`ringlet-server`); the operator tools
//! (`tools/`), the load generator and the tuning tool are clients and need none of the broker.

mod tools;

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
    /// Client security for the tools (`topics`, `acls`, `users`, `produce`, ...): a properties
    /// file with Kafka's client keys (`security.protocol`, `sasl.mechanism`, `sasl.jaas.config`
    /// or `sasl.username`/`sasl.password`, `ssl.truststore.location` or `ssl.ca.location`, ...).
    #[arg(long, global = true, value_name = "FILE")]
    command_config: Option<PathBuf>,
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
    /// Load generator: measures any Kafka-compatible broker (throughput, CO-corrected latency, verification).
    Loadgen(Box<ringlet_loadgen::Args>),
    /// A sink that acknowledges produce requests and discards them: the load generator's ceiling.
    LoadgenSink {
        /// Port on 127.0.0.1.
        #[arg(long, default_value_t = 19099)]
        port: u16,
        /// Partitions reported for any topic.
        #[arg(long, default_value_t = 2)]
        partitions: i32,
        /// Stall once, this many ms after start, for --stall-ms (to see coordinated omission).
        #[arg(long)]
        stall_after_ms: Option<u64>,
        #[arg(long, default_value_t = 1000)]
        stall_ms: u64,
    },
    /// Create, list, describe, alter and delete topics (like kafka-topics.sh).
    Topics(tools::topics::TopicsArgs),
    /// Console producer: one record per line of stdin or --file (like kafka-console-producer.sh).
    Produce(tools::produce::ProduceArgs),
    /// Console consumer (like kafka-console-consumer.sh).
    Consume(tools::consume::ConsumeArgs),
    /// List, describe (lag), reset offsets of and delete consumer groups (like kafka-consumer-groups.sh).
    Groups(tools::groups::GroupsArgs),
    /// Move partitions' log start up, deleting the records below (like kafka-delete-records.sh).
    DeleteRecords(tools::records::DeleteRecordsArgs),
    /// Add, list and remove ACLs (like kafka-acls.sh).
    Acls(tools::acls::AclsArgs),
    /// Manage SCRAM users (like kafka-configs.sh --entity-type users).
    Users(tools::users::UsersArgs),
    /// Parameter sweeps with reports, a scalability model, and capacity plans (`ringlet tune plan`).
    Tune(Box<ringlet_tuning::TuneArgs>),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RINGLET_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // A log line that cannot be written (say, stderr on a full disk) is dropped; the default
        // reports it with eprintln!, which panics when stderr itself is what failed.
        .log_internal_errors(false)
        .init();
    let cli = Cli::parse();
    if let Some(path) = &cli.command_config {
        let props = ringlet_server::config::read_properties(path)?;
        let security = ringlet_client::security::Security::from_properties(&props)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        ringlet_client::security::set_default(security);
    }
    match cli.command {
        Command::Serve {
            properties,
            overrides,
        } => ringlet_server::serve::run(properties, &overrides),
        Command::Topics(args) => {
            if let Err(e) = tools::topics::run(&args) {
                eprintln!("Error: {e}");
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Produce(args) => match tools::produce::run(&args) {
            Ok((_, 0)) => Ok(()),
            Ok((sent, failed)) => {
                eprintln!("{failed} records failed, {sent} sent");
                std::process::exit(1);
            }
            Err(e) => {
                eprintln!("Error: {e}");
                std::process::exit(1);
            }
        },
        Command::Consume(args) => {
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                signal_hook::flag::register(sig, stop.clone())?;
            }
            match tools::consume::run(&args, stop) {
                Ok(n) => {
                    eprintln!("Processed a total of {n} messages");
                    Ok(())
                }
                Err(e) => {
                    eprintln!("Error: {e}");
                    std::process::exit(1);
                }
            }
        }
        Command::Acls(args) => {
            if let Err(e) = tools::acls::run(&args) {
                eprintln!("Error: {e}");
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Users(args) => {
            if let Err(e) = tools::users::run(&args) {
                eprintln!("Error: {e}");
                std::process::exit(1);
            }
            Ok(())
        }
        Command::DeleteRecords(args) => {
            if let Err(e) = tools::records::run(&args) {
                eprintln!("Error: {e}");
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Groups(args) => {
            if let Err(e) = tools::groups::run(&args) {
                eprintln!("Error: {e}");
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Loadgen(args) => {
            let code = ringlet_loadgen::main(&args)?;
            std::process::exit(code);
        }
        Command::LoadgenSink {
            port,
            partitions,
            stall_after_ms,
            stall_ms,
        } => {
            let sink = ringlet_loadgen::sink::start(
                port,
                ringlet_loadgen::sink::SinkConfig {
                    partitions,
                    stall: stall_after_ms.map(|a| {
                        (
                            std::time::Duration::from_millis(a),
                            std::time::Duration::from_millis(stall_ms),
                        )
                    }),
                },
            )?;
            eprintln!("loadgen sink listening on 127.0.0.1:{}", sink.port);
            loop {
                std::thread::park();
            }
        }

        Command::Tune(args) => {
            let keys: Vec<&str> = ringlet_server::config::KEYS.iter().map(|k| k.0).collect();
            let code = ringlet_tuning::main(&args, &keys)?;
            std::process::exit(code);
        }
    }
}
