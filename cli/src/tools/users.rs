//! `ringlet users`: SCRAM credentials through the AlterUserScramCredentials and
//! DescribeUserScramCredentials APIs (what `kafka-configs.sh --entity-type users
//! --alter --add-config 'SCRAM-SHA-512=[password=...]'` does). The password is salted and hashed
//! here; the broker never sees it.

use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use ringlet_client::scram::{self, Mechanism};
use ringlet_client::Conn;

#[derive(clap::Args, Debug)]
pub struct UsersArgs {
    #[arg(long, default_value = "localhost:9092")]
    pub bootstrap_server: String,
    /// Create or replace the user's credentials.
    #[arg(long)]
    pub add: bool,
    /// Delete the user's credentials (all mechanisms unless --mechanism is given).
    #[arg(long)]
    pub delete: bool,
    /// List users and their mechanisms (all users unless --user is given).
    #[arg(long, alias = "describe")]
    pub list: bool,
    #[arg(long)]
    pub user: Option<String>,
    /// The password (read from the first line of stdin when absent, which keeps it out of `ps`).
    #[arg(long)]
    pub password: Option<String>,
    /// SCRAM-SHA-256 and/or SCRAM-SHA-512 (default: both), repeatable.
    #[arg(long)]
    pub mechanism: Vec<String>,
    #[arg(long, default_value_t = scram::MIN_ITERATIONS)]
    pub iterations: u32,
    /// Work on the credential store in this data directory (the broker's first `log.dirs`
    /// entry) instead of over the network, to create the first (admin) user before the broker
    /// starts, as `kafka-storage.sh format --add-scram` does. Only while the broker is stopped:
    /// a running broker reads the store at start and rewrites it on every API change.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<std::path::PathBuf>,
}

fn read_password(a: &UsersArgs) -> anyhow::Result<String> {
    let password = match &a.password {
        Some(p) => p.clone(),
        None => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    if password.is_empty() {
        anyhow::bail!("empty password");
    }
    Ok(password)
}

fn required_user(a: &UsersArgs) -> anyhow::Result<String> {
    a.user
        .clone()
        .ok_or_else(|| anyhow::anyhow!("--user is required"))
}

/// One `--list` line, as kafka-configs.sh prints it.
fn print_credentials<'a>(user: &str, creds: impl Iterator<Item = (&'a str, i64)>) {
    let creds: Vec<String> = creds.map(|(m, i)| format!("{m}=iterations={i}")).collect();
    println!(
        "SCRAM credential configs for user-principal '{user}' are {}",
        creds.join(", ")
    );
}

/// `--data-dir`: the same operations on the store file.
fn offline(a: &UsersArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    let store = ringlet_server::security::Credentials::open(dir)?;
    if a.list {
        for (user, ms) in store.describe() {
            if a.user.as_ref().is_some_and(|u| *u != user) {
                continue;
            }
            print_credentials(&user, ms.iter().map(|(m, i)| (m.name(), i64::from(*i))));
        }
        return Ok(());
    }
    let user = required_user(a)?;
    if !(scram::MIN_ITERATIONS..=scram::MAX_ITERATIONS).contains(&a.iterations) {
        anyhow::bail!(
            "--iterations must be in [{}, {}]",
            scram::MIN_ITERATIONS,
            scram::MAX_ITERATIONS
        );
    }
    if a.add {
        let password = read_password(a)?;
        let upserts = mechanisms(a)?
            .into_iter()
            .map(|m| {
                (
                    user.clone(),
                    m,
                    scram::Credential::new(m, &password, a.iterations),
                )
            })
            .collect();
        store.alter(upserts, Vec::new())?;
        println!(
            "Completed updating SCRAM credentials for user {user} in {}",
            dir.display()
        );
    } else {
        let ms = if a.mechanism.is_empty() {
            Mechanism::ALL.to_vec()
        } else {
            mechanisms(a)?
        };
        let deletions: Vec<_> = ms
            .into_iter()
            .filter(|m| store.get(&user, *m).is_some())
            .map(|m| (user.clone(), m))
            .collect();
        if deletions.is_empty() {
            anyhow::bail!("user {user} has no SCRAM credentials");
        }
        store.alter(Vec::new(), deletions)?;
        println!(
            "Completed deleting SCRAM credentials for user {user} in {}",
            dir.display()
        );
    }
    Ok(())
}

fn mechanisms(a: &UsersArgs) -> anyhow::Result<Vec<Mechanism>> {
    if a.mechanism.is_empty() {
        return Ok(Mechanism::ALL.to_vec());
    }
    a.mechanism
        .iter()
        .map(|m| {
            Mechanism::from_name(&m.to_ascii_uppercase()).ok_or_else(|| {
                anyhow::anyhow!("--mechanism {m}: expected SCRAM-SHA-256 or SCRAM-SHA-512")
            })
        })
        .collect()
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub fn run(a: &UsersArgs) -> anyhow::Result<()> {
    if [a.add, a.delete, a.list].iter().filter(|x| **x).count() != 1 {
        anyhow::bail!("give exactly one of --add, --delete, --list");
    }
    if let Some(dir) = &a.data_dir {
        return offline(a, dir);
    }
    let mut conn = Conn::connect(&a.bootstrap_server)?;
    if a.list {
        let req = DescribeUserScramCredentialsRequest::default().with_users(
            a.user
                .as_ref()
                .map(|u| vec![UserName::default().with_name(s(u))]),
        );
        let r: DescribeUserScramCredentialsResponse =
            conn.call(ApiKey::DescribeUserScramCredentials, 0, &req)?;
        super::check(
            "DescribeUserScramCredentials",
            r.error_code,
            r.error_message.as_ref(),
        )?;
        for u in &r.results {
            let what = format!("DescribeUserScramCredentials for {}", u.user.as_str());
            super::check(&what, u.error_code, u.error_message.as_ref())?;
            print_credentials(
                u.user.as_str(),
                u.credential_infos.iter().map(|c| {
                    let name = Mechanism::from_code(c.mechanism).map_or("UNKNOWN", |m| m.name());
                    (name, c.iterations as i64)
                }),
            );
        }
        return Ok(());
    }
    let user = required_user(a)?;
    let mut req = AlterUserScramCredentialsRequest::default();
    if a.add {
        let password = read_password(a)?;
        for m in mechanisms(a)? {
            let salt = scram::random_bytes(32);
            let salted = m.salted_password(password.as_bytes(), &salt, a.iterations);
            req.upsertions.push(
                ScramCredentialUpsertion::default()
                    .with_name(s(&user))
                    .with_mechanism(m.code())
                    .with_iterations(a.iterations as i32)
                    .with_salt(salt.into())
                    .with_salted_password(salted.into()),
            );
        }
    } else {
        let ms = if a.mechanism.is_empty() {
            // Only the mechanisms the user has (deleting a missing one is an error).
            let d: DescribeUserScramCredentialsResponse = conn.call(
                ApiKey::DescribeUserScramCredentials,
                0,
                &DescribeUserScramCredentialsRequest::default()
                    .with_users(Some(vec![UserName::default().with_name(s(&user))])),
            )?;
            d.results
                .iter()
                .flat_map(|r| {
                    r.credential_infos
                        .iter()
                        .filter_map(|c| Mechanism::from_code(c.mechanism))
                })
                .collect()
        } else {
            mechanisms(a)?
        };
        if ms.is_empty() {
            anyhow::bail!("user {user} has no SCRAM credentials");
        }
        for m in ms {
            req.deletions.push(
                ScramCredentialDeletion::default()
                    .with_name(s(&user))
                    .with_mechanism(m.code()),
            );
        }
    }
    let r: AlterUserScramCredentialsResponse =
        conn.call(ApiKey::AlterUserScramCredentials, 0, &req)?;
    for u in &r.results {
        let what = format!("AlterUserScramCredentials for {}", u.user.as_str());
        super::check(&what, u.error_code, u.error_message.as_ref())?;
    }
    if a.add {
        println!("Completed updating SCRAM credentials for user {user}");
    } else {
        println!("Completed deleting SCRAM credentials for user {user}");
    }
    Ok(())
}
