//! CreateAcls, DescribeAcls, DeleteAcls and the SCRAM credential APIs
//! (DescribeUserScramCredentials, AlterUserScramCredentials). ACL APIs answer SECURITY_DISABLED
//! while no authorizer is configured, as Kafka does.

use super::{decode, encode};
use crate::broker::Broker;
use crate::security::{code, Acl, AclFilter, Session, CLUSTER_NAME};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use ringlet_client::scram::{self, Credential, Mechanism};

const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const INVALID_REQUEST: i16 = 42;
const SECURITY_DISABLED: i16 = 54;
const KAFKA_STORAGE_ERROR: i16 = 56;
const RESOURCE_NOT_FOUND: i16 = 91;
const DUPLICATE_RESOURCE: i16 = 92;
const UNACCEPTABLE_CREDENTIAL: i16 = 93;

type Out = Result<Option<BytesMut>, String>;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn msg(v: String) -> Option<StrBytes> {
    Some(StrBytes::from_string(v))
}

fn validate(a: &Acl) -> Result<(), String> {
    if !matches!(
        a.resource_type,
        code::TOPIC | code::GROUP | code::CLUSTER | code::TRANSACTIONAL_ID
    ) {
        return Err(format!(
            "resource type {} is not one of Topic, Group, Cluster, TransactionalId",
            a.resource_type
        ));
    }
    if !matches!(a.pattern_type, code::LITERAL | code::PREFIXED) {
        return Err("pattern type must be LITERAL or PREFIXED".into());
    }
    if a.resource_name.is_empty() {
        return Err("empty resource name".into());
    }
    if a.resource_type == code::CLUSTER
        && (a.resource_name != CLUSTER_NAME || a.pattern_type != code::LITERAL)
    {
        return Err(format!(
            "the cluster resource is the literal {CLUSTER_NAME:?}"
        ));
    }
    if !(code::ALL..=code::IDEMPOTENT_WRITE).contains(&a.operation) {
        return Err(format!(
            "operation {} is not a concrete operation",
            a.operation
        ));
    }
    if !matches!(a.permission_type, code::ALLOW | code::DENY) {
        return Err("permission type must be ALLOW or DENY".into());
    }
    match a.principal.split_once(':') {
        Some((t, n)) if !t.is_empty() && !n.is_empty() => {}
        _ => {
            return Err(format!(
                "principal {:?} is not Type:name (e.g. User:alice)",
                a.principal
            ))
        }
    }
    if a.host.is_empty() {
        return Err("empty host (use * for any)".into());
    }
    Ok(())
}

pub async fn create(broker: &Broker, session: &Session, frame: &mut Bytes, version: i16) -> Out {
    let req: CreateAclsRequest = decode(frame, version, "CreateAcls")?;
    let fail = |code: i16, m: String| {
        AclCreationResult::default()
            .with_error_code(code)
            .with_error_message(msg(m))
    };
    let results: Vec<AclCreationResult> = if !broker.authorizer.enabled {
        req.creations
            .iter()
            .map(|_| {
                fail(
                    SECURITY_DISABLED,
                    "no authorizer is configured (authorizer.class.name)".into(),
                )
            })
            .collect()
    } else if broker
        .authorizer
        .denied(session, code::ALTER, code::CLUSTER, CLUSTER_NAME)
    {
        req.creations
            .iter()
            .map(|_| {
                fail(
                    CLUSTER_AUTHORIZATION_FAILED,
                    "CreateAcls needs Alter on the cluster".into(),
                )
            })
            .collect()
    } else {
        let mut results = Vec::new();
        let mut valid = Vec::new();
        for c in &req.creations {
            let a = Acl {
                resource_type: c.resource_type,
                resource_name: c.resource_name.to_string(),
                pattern_type: c.resource_pattern_type,
                principal: c.principal.to_string(),
                host: c.host.to_string(),
                operation: c.operation,
                permission_type: c.permission_type,
            };
            match validate(&a) {
                Ok(()) => {
                    valid.push(a);
                    results.push(AclCreationResult::default());
                }
                Err(e) => results.push(fail(INVALID_REQUEST, e)),
            }
        }
        if !valid.is_empty() {
            let n = valid.len();
            let stored = match &broker.cluster {
                // A cluster's ACLs live in ZooKeeper; every broker puts them in force.
                Some(c) => c.update_acls(valid, Vec::new()).await,
                None => broker.authorizer.add(valid).map_err(|e| e.to_string()),
            };
            if let Err(e) = stored {
                tracing::error!(error = %e, "cannot store ACLs");
                for r in results.iter_mut().filter(|r| r.error_code == 0) {
                    *r = fail(KAFKA_STORAGE_ERROR, format!("cannot store ACLs: {e}"));
                }
            } else {
                tracing::info!(principal = %session.principal(), acls = n, "ACLs created");
            }
        }
        results
    };
    encode(
        &CreateAclsResponse::default().with_results(results),
        version,
    )
    .map(Some)
}

fn filter(
    resource_type: i8,
    name: &Option<StrBytes>,
    pattern_type: i8,
    principal: &Option<StrBytes>,
    host: &Option<StrBytes>,
    operation: i8,
    permission_type: i8,
) -> Result<AclFilter, String> {
    // Kafka's codes: resource types 1 (ANY) to 7 (USER), pattern types ANY, MATCH, LITERAL,
    // PREFIXED, operations 1 (ANY) to 14, permissions ANY, DENY, ALLOW. UNKNOWN (0) and anything
    // else is refused, not silently matched against nothing.
    if !(code::ANY..=7).contains(&resource_type) {
        return Err(format!(
            "resource type filter {resource_type} is not a known resource type"
        ));
    }
    if !(code::ANY..=code::PREFIXED).contains(&pattern_type) {
        return Err(format!(
            "pattern type filter {pattern_type} is not ANY, MATCH, LITERAL or PREFIXED"
        ));
    }
    if !(code::ANY..=14).contains(&operation) {
        return Err(format!(
            "operation filter {operation} is not a known operation"
        ));
    }
    if !matches!(permission_type, code::ANY | code::DENY | code::ALLOW) {
        return Err(format!(
            "permission type filter {permission_type} is not ANY, DENY or ALLOW"
        ));
    }
    Ok(AclFilter {
        resource_type,
        resource_name: name.as_ref().map(|n| n.to_string()),
        pattern_type,
        principal: principal.as_ref().map(|n| n.to_string()),
        host: host.as_ref().map(|n| n.to_string()),
        operation,
        permission_type,
    })
}

pub fn describe(broker: &Broker, session: &Session, frame: &mut Bytes, version: i16) -> Out {
    let r: DescribeAclsRequest = decode(frame, version, "DescribeAcls")?;
    let f = filter(
        r.resource_type_filter,
        &r.resource_name_filter,
        r.pattern_type_filter,
        &r.principal_filter,
        &r.host_filter,
        r.operation,
        r.permission_type,
    );
    let mut resp = DescribeAclsResponse::default();
    if !broker.authorizer.enabled {
        resp.error_code = SECURITY_DISABLED;
        resp.error_message = msg("no authorizer is configured (authorizer.class.name)".into());
    } else if broker
        .authorizer
        .denied(session, code::DESCRIBE, code::CLUSTER, CLUSTER_NAME)
    {
        resp.error_code = CLUSTER_AUTHORIZATION_FAILED;
        resp.error_message = msg("DescribeAcls needs Describe on the cluster".into());
    } else if let Err(e) = &f {
        resp.error_code = INVALID_REQUEST;
        resp.error_message = msg(e.clone());
    } else if let Ok(f) = &f {
        let mut by_resource: std::collections::BTreeMap<(i8, String, i8), Vec<AclDescription>> =
            Default::default();
        for a in broker.authorizer.list(f) {
            by_resource
                .entry((a.resource_type, a.resource_name.clone(), a.pattern_type))
                .or_default()
                .push(
                    AclDescription::default()
                        .with_principal(s(&a.principal))
                        .with_host(s(&a.host))
                        .with_operation(a.operation)
                        .with_permission_type(a.permission_type),
                );
        }
        resp.resources = by_resource
            .into_iter()
            .map(|((t, n, p), acls)| {
                DescribeAclsResource::default()
                    .with_resource_type(t)
                    .with_resource_name(s(&n))
                    .with_pattern_type(p)
                    .with_acls(acls)
            })
            .collect();
    }
    encode(&resp, version).map(Some)
}

pub async fn delete(broker: &Broker, session: &Session, frame: &mut Bytes, version: i16) -> Out {
    let r: DeleteAclsRequest = decode(frame, version, "DeleteAcls")?;
    let fail = |code: i16, m: &str| {
        DeleteAclsFilterResult::default()
            .with_error_code(code)
            .with_error_message(msg(m.into()))
    };
    let results = if !broker.authorizer.enabled {
        r.filters
            .iter()
            .map(|_| {
                fail(
                    SECURITY_DISABLED,
                    "no authorizer is configured (authorizer.class.name)",
                )
            })
            .collect()
    } else if broker
        .authorizer
        .denied(session, code::ALTER, code::CLUSTER, CLUSTER_NAME)
    {
        r.filters
            .iter()
            .map(|_| {
                fail(
                    CLUSTER_AUTHORIZATION_FAILED,
                    "DeleteAcls needs Alter on the cluster",
                )
            })
            .collect()
    } else {
        let parsed: Vec<Result<AclFilter, String>> = r
            .filters
            .iter()
            .map(|f| {
                filter(
                    f.resource_type_filter,
                    &f.resource_name_filter,
                    f.pattern_type_filter,
                    &f.principal_filter,
                    &f.host_filter,
                    f.operation,
                    f.permission_type,
                )
            })
            .collect();
        let filters: Vec<AclFilter> = parsed.iter().filter_map(|f| f.clone().ok()).collect();
        let removed = match &broker.cluster {
            Some(c) => {
                let matched = broker.authorizer.matching(&filters);
                let all: Vec<Acl> = matched.iter().flatten().cloned().collect();
                c.update_acls(Vec::new(), all).await.map(|()| matched)
            }
            None => broker
                .authorizer
                .remove(&filters)
                .map_err(|e| e.to_string()),
        };
        match removed {
            Ok(removed) => {
                let n: usize = removed.iter().map(Vec::len).sum();
                tracing::info!(principal = %session.principal(), acls = n, "ACLs deleted");
                // One removal list per valid filter, in order; invalid filters answer INVALID_REQUEST.
                let mut removed = removed.into_iter();
                parsed
                    .iter()
                    .map(|f| {
                        if let Err(e) = f {
                            return fail(INVALID_REQUEST, e);
                        }
                        let acls = removed.next().expect("one result per valid filter");
                        DeleteAclsFilterResult::default().with_matching_acls(
                            acls.into_iter()
                                .map(|a| {
                                    DeleteAclsMatchingAcl::default()
                                        .with_resource_type(a.resource_type)
                                        .with_resource_name(s(&a.resource_name))
                                        .with_pattern_type(a.pattern_type)
                                        .with_principal(s(&a.principal))
                                        .with_host(s(&a.host))
                                        .with_operation(a.operation)
                                        .with_permission_type(a.permission_type)
                                })
                                .collect(),
                        )
                    })
                    .collect()
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot store ACLs");
                r.filters
                    .iter()
                    .map(|_| fail(KAFKA_STORAGE_ERROR, "cannot store ACLs"))
                    .collect()
            }
        }
    };
    encode(
        &DeleteAclsResponse::default().with_filter_results(results),
        version,
    )
    .map(Some)
}

pub fn describe_scram(broker: &Broker, session: &Session, frame: &mut Bytes, version: i16) -> Out {
    let r: DescribeUserScramCredentialsRequest =
        decode(frame, version, "DescribeUserScramCredentials")?;
    let mut resp = DescribeUserScramCredentialsResponse::default();
    if broker
        .authorizer
        .denied(session, code::DESCRIBE, code::CLUSTER, CLUSTER_NAME)
    {
        resp.error_code = CLUSTER_AUTHORIZATION_FAILED;
        resp.error_message =
            msg("DescribeUserScramCredentials needs Describe on the cluster".into());
        return encode(&resp, version).map(Some);
    }
    let all = broker.credentials.describe();
    let info = |ms: &Vec<(Mechanism, u32)>| -> Vec<CredentialInfo> {
        ms.iter()
            .map(|(m, i)| {
                CredentialInfo::default()
                    .with_mechanism(m.code())
                    .with_iterations(*i as i32)
            })
            .collect()
    };
    resp.results = match &r.users {
        None => all
            .iter()
            .map(|(u, ms)| {
                DescribeUserScramCredentialsResult::default()
                    .with_user(s(u))
                    .with_credential_infos(info(ms))
            })
            .collect(),
        Some(users) => {
            let mut seen = std::collections::HashSet::new();
            users
                .iter()
                .map(|u| {
                    let name = u.name.to_string();
                    let res = DescribeUserScramCredentialsResult::default().with_user(s(&name));
                    if !seen.insert(name.clone()) {
                        res.with_error_code(DUPLICATE_RESOURCE)
                            .with_error_message(msg(format!("user {name} asked for twice")))
                    } else {
                        match all.get(&name) {
                            Some(ms) => res.with_credential_infos(info(ms)),
                            None => {
                                res.with_error_code(RESOURCE_NOT_FOUND)
                                    .with_error_message(msg(format!(
                                        "no SCRAM credential for user {name}"
                                    )))
                            }
                        }
                    }
                })
                .collect()
        }
    };
    encode(&resp, version).map(Some)
}

pub async fn alter_scram(
    broker: &Broker,
    session: &Session,
    frame: &mut Bytes,
    version: i16,
) -> Out {
    let r: AlterUserScramCredentialsRequest = decode(frame, version, "AlterUserScramCredentials")?;
    let users: std::collections::BTreeSet<String> = r
        .deletions
        .iter()
        .map(|d| d.name.to_string())
        .chain(r.upsertions.iter().map(|u| u.name.to_string()))
        .collect();
    let result = |u: &str, code: i16, m: Option<String>| {
        AlterUserScramCredentialsResult::default()
            .with_user(s(u))
            .with_error_code(code)
            .with_error_message(m.map(StrBytes::from_string))
    };
    if broker
        .authorizer
        .denied(session, code::ALTER, code::CLUSTER, CLUSTER_NAME)
    {
        let results = users
            .iter()
            .map(|u| {
                result(
                    u,
                    CLUSTER_AUTHORIZATION_FAILED,
                    Some("AlterUserScramCredentials needs Alter on the cluster".into()),
                )
            })
            .collect();
        return encode(
            &AlterUserScramCredentialsResponse::default().with_results(results),
            version,
        )
        .map(Some);
    }
    let mut errors: std::collections::BTreeMap<String, (i16, String)> = Default::default();
    let mut seen = std::collections::HashSet::new();
    let mut deletions = Vec::new();
    let mut upserts = Vec::new();
    for d in &r.deletions {
        let name = d.name.to_string();
        match Mechanism::from_code(d.mechanism) {
            None => {
                errors.entry(name).or_insert((
                    UNSUPPORTED_SASL_MECHANISM,
                    format!("unknown SCRAM mechanism {}", d.mechanism),
                ));
            }
            Some(m) if !seen.insert((name.clone(), m)) => {
                errors.entry(name).or_insert((
                    DUPLICATE_RESOURCE,
                    "a user and mechanism appear twice".into(),
                ));
            }
            Some(m) if broker.credentials.get(&name, m).is_none() => {
                errors.entry(name.clone()).or_insert((
                    RESOURCE_NOT_FOUND,
                    format!("no {} credential for user {name}", m.name()),
                ));
            }
            Some(m) => deletions.push((name, m)),
        }
    }
    for u in &r.upsertions {
        let name = u.name.to_string();
        let m = Mechanism::from_code(u.mechanism);
        let problem = match m {
            None => Some((
                UNSUPPORTED_SASL_MECHANISM,
                format!("unknown SCRAM mechanism {}", u.mechanism),
            )),
            Some(_) if name.is_empty() => Some((UNACCEPTABLE_CREDENTIAL, "empty user name".into())),
            Some(_)
                if !(scram::MIN_ITERATIONS as i32..=scram::MAX_ITERATIONS as i32)
                    .contains(&u.iterations) =>
            {
                Some((
                    UNACCEPTABLE_CREDENTIAL,
                    format!(
                        "iterations {} outside [{}, {}]",
                        u.iterations,
                        scram::MIN_ITERATIONS,
                        scram::MAX_ITERATIONS
                    ),
                ))
            }
            Some(m) if u.salt.is_empty() || u.salted_password.len() != m.output_len() => Some((
                UNACCEPTABLE_CREDENTIAL,
                "empty salt or a salted password of the wrong length".into(),
            )),
            Some(m) if !seen.insert((name.clone(), m)) => Some((
                DUPLICATE_RESOURCE,
                "a user and mechanism appear twice".into(),
            )),
            Some(_) => None,
        };
        match (problem, m) {
            (Some(p), _) => {
                errors.entry(name).or_insert(p);
            }
            (None, Some(m)) => upserts.push((
                name,
                m,
                Credential::from_salted(
                    m,
                    u.salt.to_vec(),
                    u.iterations as u32,
                    &u.salted_password,
                ),
            )),
            (None, None) => unreachable!("a valid upsertion has a mechanism"),
        }
    }
    // A user with any error is left unchanged (as Kafka does).
    deletions.retain(|(u, _)| !errors.contains_key(u));
    upserts.retain(|(u, _, _)| !errors.contains_key(u));
    if !deletions.is_empty() || !upserts.is_empty() {
        if let Err(e) = store_scram(broker, &upserts, &deletions).await {
            tracing::error!(error = %e, "cannot store SCRAM credentials");
            for u in &users {
                errors.entry(u.clone()).or_insert((
                    KAFKA_STORAGE_ERROR,
                    format!("cannot store credentials: {e}"),
                ));
            }
        } else {
            tracing::info!(principal = %session.principal(), upserted = upserts.len(), deleted = deletions.len(), "SCRAM credentials changed");
        }
    }
    let results = users
        .iter()
        .map(|u| match errors.get(u) {
            Some((c, m)) => result(u, *c, Some(m.clone())),
            None => result(u, 0, None),
        })
        .collect();
    encode(
        &AlterUserScramCredentialsResponse::default().with_results(results),
        version,
    )
    .map(Some)
}

/// Stores SCRAM credential changes: in the broker's file, or in a cluster in each user's
/// `/config/users/<user>` znode (Kafka's ZooKeeper form), in force on every broker once its view
/// shows them.
async fn store_scram(
    broker: &Broker,
    upserts: &[(String, Mechanism, Credential)],
    deletions: &[(String, Mechanism)],
) -> Result<(), String> {
    use crate::cluster::coordination::security::scram_string;
    let Some(c) = &broker.cluster else {
        return broker
            .credentials
            .alter(upserts.to_vec(), deletions.to_vec())
            .map_err(|e| e.to_string());
    };
    use std::collections::BTreeMap;
    let mut by_user: BTreeMap<&str, BTreeMap<String, Option<String>>> = BTreeMap::new();
    for (u, m) in deletions {
        by_user.entry(u).or_default().insert(m.name().into(), None);
    }
    for (u, m, cred) in upserts {
        by_user
            .entry(u)
            .or_default()
            .insert(m.name().into(), Some(scram_string(cred)));
    }
    for (user, changes) in by_user {
        c.update_scram(user, changes).await?;
    }
    Ok(())
}
