//! `ringlet acls`: add, list and remove ACLs with the flags of `kafka-acls.sh`
//! (`--add --allow-principal User:alice --operation Write --topic T`, `--list`, `--remove`).

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use ringlet_client::Conn;
use ringlet_server::security::{code, op_name, resource_name, CLUSTER_NAME};

#[derive(clap::Args, Debug)]
pub struct AclsArgs {
    #[arg(long, default_value = "localhost:9092")]
    pub bootstrap_server: String,
    #[arg(long)]
    pub add: bool,
    #[arg(long)]
    pub remove: bool,
    #[arg(long)]
    pub list: bool,
    /// Principal to allow (`User:alice`), repeatable.
    #[arg(long)]
    pub allow_principal: Vec<String>,
    /// Principal to deny, repeatable.
    #[arg(long)]
    pub deny_principal: Vec<String>,
    /// Hosts the allow ACLs apply to (default `*`).
    #[arg(long)]
    pub allow_host: Vec<String>,
    /// Hosts the deny ACLs apply to (default `*`).
    #[arg(long)]
    pub deny_host: Vec<String>,
    /// Read, Write, Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs,
    /// AlterConfigs, IdempotentWrite or All; repeatable.
    #[arg(long)]
    pub operation: Vec<String>,
    #[arg(long)]
    pub topic: Vec<String>,
    #[arg(long)]
    pub group: Vec<String>,
    #[arg(long)]
    pub cluster: bool,
    #[arg(long)]
    pub transactional_id: Vec<String>,
    /// literal or prefixed (add); also any or match (list, remove).
    #[arg(long, default_value = "literal")]
    pub resource_pattern_type: String,
    /// With --list: only ACLs of this principal.
    #[arg(long)]
    pub principal: Option<String>,
    /// Convenience: Write, Describe and Create on the topics.
    #[arg(long)]
    pub producer: bool,
    /// Convenience: Read and Describe on the topics, Read on the groups.
    #[arg(long)]
    pub consumer: bool,
    /// Accepted for kafka-acls.sh compatibility: this tool never prompts.
    #[arg(long)]
    pub force: bool,
}

fn operation(name: &str) -> anyhow::Result<i8> {
    let n = name.to_ascii_lowercase().replace(['_', '-'], "");
    Ok(match n.as_str() {
        "all" => code::ALL,
        "read" => code::READ,
        "write" => code::WRITE,
        "create" => code::CREATE,
        "delete" => code::DELETE,
        "alter" => code::ALTER,
        "describe" => code::DESCRIBE,
        "clusteraction" => code::CLUSTER_ACTION,
        "describeconfigs" => code::DESCRIBE_CONFIGS,
        "alterconfigs" => code::ALTER_CONFIGS,
        "idempotentwrite" => code::IDEMPOTENT_WRITE,
        _ => anyhow::bail!("--operation {name}: expected Read, Write, Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite or All"),
    })
}

fn pattern(name: &str) -> anyhow::Result<i8> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "literal" => code::LITERAL,
        "prefixed" => code::PREFIXED,
        "any" => code::ANY,
        "match" => code::MATCH,
        _ => anyhow::bail!(
            "--resource-pattern-type {name}: expected literal, prefixed, any or match"
        ),
    })
}

fn pattern_name(p: i8) -> &'static str {
    match p {
        code::LITERAL => "LITERAL",
        code::PREFIXED => "PREFIXED",
        _ => "UNKNOWN",
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// The resources named on the command line, with the operations for each.
fn resources(a: &AclsArgs) -> anyhow::Result<Vec<(i8, String, Vec<i8>)>> {
    let ops: Vec<i8> = a
        .operation
        .iter()
        .map(|o| operation(o))
        .collect::<anyhow::Result<_>>()?;
    let mut out = Vec::new();
    for t in &a.topic {
        let mut o = ops.clone();
        if a.producer {
            o.extend([code::WRITE, code::DESCRIBE, code::CREATE]);
        }
        if a.consumer {
            o.extend([code::READ, code::DESCRIBE]);
        }
        out.push((code::TOPIC, t.clone(), o));
    }
    for g in &a.group {
        let mut o = ops.clone();
        if a.consumer {
            o.push(code::READ);
        }
        out.push((code::GROUP, g.clone(), o));
    }
    if a.cluster {
        out.push((code::CLUSTER, CLUSTER_NAME.to_string(), ops.clone()));
    }
    for t in &a.transactional_id {
        out.push((code::TRANSACTIONAL_ID, t.clone(), ops.clone()));
    }
    for r in &mut out {
        r.2.sort_unstable();
        r.2.dedup();
    }
    Ok(out)
}

/// (principal, host, permission) entries from the allow/deny flags.
fn entries(a: &AclsArgs) -> Vec<(String, String, i8)> {
    let hosts = |h: &Vec<String>| {
        if h.is_empty() {
            vec!["*".to_string()]
        } else {
            h.clone()
        }
    };
    let mut out = Vec::new();
    for p in &a.allow_principal {
        for h in hosts(&a.allow_host) {
            out.push((p.clone(), h, code::ALLOW));
        }
    }
    for p in &a.deny_principal {
        for h in hosts(&a.deny_host) {
            out.push((p.clone(), h, code::DENY));
        }
    }
    out
}

pub fn run(a: &AclsArgs) -> anyhow::Result<()> {
    if [a.add, a.remove, a.list].iter().filter(|x| **x).count() != 1 {
        anyhow::bail!("give exactly one of --add, --remove, --list");
    }
    let pattern_type = pattern(&a.resource_pattern_type)?;
    let mut conn = Conn::connect(&a.bootstrap_server)?;
    if a.add {
        if !matches!(pattern_type, code::LITERAL | code::PREFIXED) {
            anyhow::bail!("--add needs --resource-pattern-type literal or prefixed");
        }
        let res = resources(a)?;
        let ents = entries(a);
        if res.is_empty() || ents.is_empty() || res.iter().any(|r| r.2.is_empty()) {
            anyhow::bail!("--add needs a resource (--topic, --group, --cluster, --transactional-id), a principal (--allow-principal/--deny-principal) and --operation (or --producer/--consumer)");
        }
        let mut creations = Vec::new();
        for (rt, name, ops) in &res {
            for op in ops {
                for (p, h, perm) in &ents {
                    creations.push(
                        AclCreation::default()
                            .with_resource_type(*rt)
                            .with_resource_name(s(name))
                            .with_resource_pattern_type(pattern_type)
                            .with_principal(s(p))
                            .with_host(s(h))
                            .with_operation(*op)
                            .with_permission_type(*perm),
                    );
                }
            }
        }
        let r: CreateAclsResponse = conn.call(
            ApiKey::CreateAcls,
            1,
            &CreateAclsRequest::default().with_creations(creations),
        )?;
        for x in &r.results {
            super::check("CreateAcls", x.error_code, x.error_message.as_ref())?;
        }
        println!("Added {} ACLs", r.results.len());
        return list(&mut conn, a, pattern_type);
    }
    if a.remove {
        let res = resources(a)?;
        if res.is_empty() {
            anyhow::bail!(
                "--remove needs a resource (--topic, --group, --cluster, --transactional-id)"
            );
        }
        let ents = entries(a);
        let mut filters = Vec::new();
        for (rt, name, ops) in &res {
            let ops = if ops.is_empty() {
                vec![code::ANY]
            } else {
                ops.clone()
            };
            let ents: Vec<(Option<String>, Option<String>, i8)> = if ents.is_empty() {
                vec![(None, None, code::ANY)]
            } else {
                ents.iter()
                    .map(|(p, h, perm)| (Some(p.clone()), Some(h.clone()), *perm))
                    .collect()
            };
            for op in &ops {
                for (p, h, perm) in &ents {
                    filters.push(
                        DeleteAclsFilter::default()
                            .with_resource_type_filter(*rt)
                            .with_resource_name_filter(Some(s(name)))
                            .with_pattern_type_filter(pattern_type)
                            .with_principal_filter(p.as_deref().map(s))
                            .with_host_filter(h.as_deref().map(s))
                            .with_operation(*op)
                            .with_permission_type(*perm),
                    );
                }
            }
        }
        let r: DeleteAclsResponse = conn.call(
            ApiKey::DeleteAcls,
            1,
            &DeleteAclsRequest::default().with_filters(filters),
        )?;
        let mut n = 0;
        for f in &r.filter_results {
            super::check("DeleteAcls", f.error_code, f.error_message.as_ref())?;
            n += f.matching_acls.len();
        }
        println!("Removed {n} ACLs");
        return Ok(());
    }
    list(&mut conn, a, pattern_type)
}

fn list(conn: &mut Conn, a: &AclsArgs, pattern_type: i8) -> anyhow::Result<()> {
    let res = resources(a)?;
    let targets: Vec<(i8, Option<String>)> = if res.is_empty() {
        vec![(code::ANY, None)]
    } else {
        res.into_iter().map(|(t, n, _)| (t, Some(n))).collect()
    };
    // Listing everything uses the ANY filter whatever the pattern-type flag says.
    for (rt, name) in targets {
        let pt = if name.is_none() {
            code::ANY
        } else {
            pattern_type
        };
        let req = DescribeAclsRequest::default()
            .with_resource_type_filter(rt)
            .with_resource_name_filter(name.as_deref().map(s))
            .with_pattern_type_filter(pt)
            .with_principal_filter(a.principal.as_deref().map(s))
            .with_host_filter(None)
            .with_operation(code::ANY)
            .with_permission_type(code::ANY);
        let r: DescribeAclsResponse = conn.call(ApiKey::DescribeAcls, 1, &req)?;
        super::check("DescribeAcls", r.error_code, r.error_message.as_ref())?;
        for res in &r.resources {
            println!(
                "Current ACLs for resource `ResourcePattern(resourceType={}, name={}, patternType={})`:",
                resource_name(res.resource_type).to_ascii_uppercase(),
                res.resource_name.as_str(),
                pattern_name(res.pattern_type)
            );
            for acl in &res.acls {
                println!(
                    " \t(principal={}, host={}, operation={}, permissionType={})",
                    acl.principal.as_str(),
                    acl.host.as_str(),
                    op_name(acl.operation).to_ascii_uppercase(),
                    if acl.permission_type == code::ALLOW {
                        "ALLOW"
                    } else {
                        "DENY"
                    }
                );
            }
            println!();
        }
    }
    Ok(())
}
