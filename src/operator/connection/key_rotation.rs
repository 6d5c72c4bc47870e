//! Managed key rotation: the operator generates a connection's keys into its Secret, publishes
//! each new key `publishAhead` before it signs, and removes the previous key `retireAfter`
//! after the switch, but never while the key Epic last accepted would go with it.
//!
//! `plan` decides (pure); `ensure_managed_keys` reads and writes the Secret, whose contents
//! `managed_secret` edits.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::{Api, ResourceExt};

use crate::auth::{entry_of_kid, generate_key};
use crate::crd::{
    Algorithm, EpicConnection, KeyLayout, MANAGED_KEYS_LABEL, Reason, RotationPeriods,
};
use crate::operator::connection::key_secret::{KEYS_FOR_ANNOTATION, is_managed};
use crate::operator::connection::managed_secret::{
    RotationRequest, annotate, new_managed_secret, published_in,
};

/// What managed rotation does now, and when it next has something to do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RotationPlan {
    /// Generate and publish a new key now.
    pub generate: bool,
    /// Keys to remove from the Secret (and so from the JWK Set).
    pub retire: Vec<String>,
    /// When each key that is no longer newest leaves the JWK Set.
    pub retires_at: BTreeMap<String, DateTime<Utc>>,
    /// When the next key is generated (on schedule).
    pub next_rotation: Option<DateTime<Utc>>,
    /// A key is due to retire but stays: Epic has not accepted the key after it yet.
    pub retirement_held: Option<String>,
    /// A rotation is due but waits: Epic has not accepted the newest key yet.
    pub rotation_held: bool,
}

/// Decides rotation for keys published at `published` (kid -> time). `rotate_now`: the
/// rotate-keys annotation carries a value not acted on yet. `last_accepted`: the key of the
/// last assertion Epic accepted, if known.
pub fn plan(
    published: &BTreeMap<String, DateTime<Utc>>,
    periods: &RotationPeriods,
    now: DateTime<Utc>,
    rotate_now: bool,
    last_accepted: Option<&str>,
) -> RotationPlan {
    let add = crate::util::later;
    let mut keys: Vec<(&str, DateTime<Utc>)> =
        published.iter().map(|(k, t)| (k.as_str(), *t)).collect();
    keys.sort_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)));
    let Some(&(_, newest_since)) = keys.last() else {
        return RotationPlan {
            generate: true,
            ..RotationPlan::default()
        };
    };
    // When key i signs: the first key at once, later ones publishAhead after publication.
    let signs_from = |i: usize| {
        if i == 0 {
            keys[0].1
        } else {
            add(keys[i].1, periods.publish_ahead)
        }
    };
    let newest = keys.len() - 1;
    // At most one key waits to sign: the next one is generated only once the newest signs,
    // and only once Epic has accepted it. A key Epic never took (a registration not done yet,
    // a cache that lags) is not followed by another: keys never pile up, and the key Epic
    // accepted stays the way back.
    let newest_signs = signs_from(newest);
    let accepted_index = last_accepted.and_then(|kid| keys.iter().position(|(k, _)| *k == kid));
    let newest_accepted = accepted_index == Some(newest);
    let next_rotation = add(newest_since, periods.rotate_every).max(newest_signs);
    let due = now >= next_rotation || (rotate_now && now >= newest_signs);
    let mut plan = RotationPlan {
        generate: due && newest_accepted,
        rotation_held: due && !newest_accepted,
        next_rotation: Some(next_rotation),
        ..RotationPlan::default()
    };
    for (i, (kid, _)) in keys.iter().enumerate().take(newest) {
        let retires = add(signs_from(i + 1), periods.retire_after);
        plan.retires_at.insert(kid.to_string(), retires);
        if now < retires {
            continue;
        }
        // Removing a key Epic may still need would lock the connection out: a key goes only
        // once Epic has accepted a newer one.
        if accepted_index.is_some_and(|a| a > i) {
            plan.retire.push(kid.to_string());
        } else {
            plan.retirement_held = Some(kid.to_string());
        }
    }
    plan
}

/// The earliest time after `now` at which `plan` or a key switch needs a reconcile.
pub fn next_event(
    plan: &RotationPlan,
    published: &BTreeMap<String, DateTime<Utc>>,
    periods: &RotationPeriods,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let switches = published
        .values()
        .map(|t| crate::util::later(*t, periods.publish_ahead));
    plan.next_rotation
        .into_iter()
        .chain(plan.retires_at.values().copied())
        .chain(switches)
        .filter(|t| *t > now)
        .min()
}

/// What a pass of managed rotation did.
#[derive(Default)]
pub struct RotationOutcome {
    /// The Secret as written, when this pass wrote it.
    pub written: Option<Secret>,
    pub generated: Option<String>,
    pub retired: Vec<String>,
    pub plan: RotationPlan,
    pub published: BTreeMap<String, DateTime<Utc>>,
    pub periods: Option<RotationPeriods>,
}

impl std::fmt::Debug for RotationOutcome {
    // The written Secret holds private keys: never in Debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotationOutcome")
            .field(
                "written",
                &self.written.as_ref().map(|s| s.resource_version()),
            )
            .field("generated", &self.generated)
            .field("retired", &self.retired)
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

/// Why managed rotation could not run.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(
        "Secret {0} is not labelled {MANAGED_KEYS_LABEL}=\"true\": the operator writes keys only into Secrets it manages. Point privateKeySecretRef at a new name (the operator creates it), or label this one if it is meant for managed keys"
    )]
    Unlabelled(String),
    #[error(
        "Secret {secret} holds the managed keys of EpicConnection {owner}: two connections cannot share keys (each retires keys by what Epic accepted from it). Give this connection a Secret of its own"
    )]
    Shared { secret: String, owner: String },
    #[error("cannot generate a key: {0}")]
    Generate(String),
    #[error("{0}")]
    Spec(String),
    #[error("Kubernetes API error on Secret {name}: {source}")]
    Kube {
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl RotationError {
    pub fn reason(&self) -> Reason {
        match self {
            RotationError::Unlabelled(_)
            | RotationError::Shared { .. }
            | RotationError::Generate(_) => Reason::InvalidKey,
            RotationError::Spec(_) => Reason::InvalidConnection,
            RotationError::Kube { .. } => Reason::KubernetesError,
        }
    }
}

/// A fresh key id: the time it was made and a random suffix (unique, sortable, no meaning to
/// Epic beyond naming the key).
fn new_kid(now: DateTime<Utc>) -> String {
    format!(
        "{}-{:06x}",
        now.format("%Y%m%dt%H%M%Sz"),
        rand::random::<u32>() & 0xff_ffff
    )
}

async fn generate(alg: Algorithm, kid: String) -> Result<String, RotationError> {
    // RSA key generation takes a fraction of a second of CPU: off the async workers.
    tokio::task::spawn_blocking(move || generate_key(alg, &kid).map(|(_, pem)| pem))
        .await
        .map_err(|e| RotationError::Generate(e.to_string()))?
        .map_err(|e| RotationError::Generate(e.to_string()))
}

/// Runs managed rotation for `conn` (no-op unless `keyRotation.managed`): creates the Secret
/// when absent, generates and retires keys as `plan` says, in one conditional write.
pub async fn ensure_managed_keys(
    kube: &kube::Client,
    conn: &EpicConnection,
) -> Result<Option<RotationOutcome>, RotationError> {
    let layout = conn.spec.key_layout().map_err(RotationError::Spec)?;
    let KeyLayout::Several {
        periods,
        managed: true,
        ..
    } = layout
    else {
        return Ok(None);
    };
    let ns = conn.namespace().unwrap_or_default();
    let name = conn.spec.private_key_secret_ref.name.clone();
    let api: Api<Secret> = Api::namespaced(kube.clone(), &ns);
    let existing = read_managed_secret(&api, &name, &conn.name_any()).await?;
    let now = Utc::now();
    let request = RotationRequest::of(conn, existing.as_ref());
    let status_keys = conn.status.as_ref().and_then(|s| s.keys.as_ref());
    let last_accepted = status_keys.and_then(|k| k.last_accepted_key_id.as_deref());
    let mut published = published_in(existing.as_ref(), now);
    let plan = plan(&published, &periods, now, request.now, last_accepted);
    let mut secret = existing
        .clone()
        .unwrap_or_else(|| new_managed_secret(&name, &ns));
    let generated = apply(&mut secret, &plan, &mut published, conn.spec.algorithm, now).await?;
    // A request while a new key still waits to sign is that rotation: acted on. One held
    // until Epic accepts the newest key stays pending.
    let acted_on = request.value.as_deref().filter(|_| {
        request.now && (generated.is_some() || (!plan.generate && !plan.rotation_held))
    });
    let changed = annotate(&mut secret, &published, conn.name_any(), acted_on);
    let changed = changed || generated.is_some() || !plan.retire.is_empty();
    let written = write(&api, &name, existing.is_none(), changed, &secret).await?;
    // Recompute from what was written: the new key changes the next rotation time.
    let final_plan = self::plan(&published, &periods, now, false, last_accepted);
    Ok(Some(RotationOutcome {
        written,
        generated,
        retired: plan.retire.clone(),
        plan: RotationPlan {
            generate: false,
            retire: Vec::new(),
            ..final_plan
        },
        published,
        periods: Some(periods),
    }))
}

fn kube_error(name: &str) -> impl Fn(kube::Error) -> RotationError + '_ {
    move |source| RotationError::Kube {
        name: name.to_string(),
        source,
    }
}

/// The key Secret, when it exists and is this connection's to manage: labelled, and not
/// holding another connection's keys.
async fn read_managed_secret(
    api: &Api<Secret>,
    name: &str,
    connection: &str,
) -> Result<Option<Secret>, RotationError> {
    let existing = api.get_opt(name).await.map_err(kube_error(name))?;
    if let Some(s) = &existing
        && !is_managed(s)
    {
        return Err(RotationError::Unlabelled(name.to_string()));
    }
    if let Some(owner) = existing
        .as_ref()
        .and_then(|s| s.annotations().get(KEYS_FOR_ANNOTATION))
        .filter(|o| *o != connection)
    {
        return Err(RotationError::Shared {
            secret: name.to_string(),
            owner: owner.clone(),
        });
    }
    Ok(existing)
}

/// Generates and retires keys in `secret` as `plan` says; the generated key's id.
async fn apply(
    secret: &mut Secret,
    plan: &RotationPlan,
    published: &mut BTreeMap<String, DateTime<Utc>>,
    alg: Algorithm,
    now: DateTime<Utc>,
) -> Result<Option<String>, RotationError> {
    let data = secret.data.get_or_insert_with(BTreeMap::new);
    let mut generated = None;
    if plan.generate {
        let kid = new_kid(now);
        let pem = generate(alg, kid.clone()).await?;
        data.insert(entry_of_kid(&kid), ByteString(pem.into_bytes()));
        published.insert(kid.clone(), now);
        generated = Some(kid);
    }
    for kid in &plan.retire {
        data.remove(&entry_of_kid(kid));
        published.remove(kid);
    }
    Ok(generated)
}

/// Creates the Secret, or replaces it when something changed; the Secret as written.
async fn write(
    api: &Api<Secret>,
    name: &str,
    create: bool,
    changed: bool,
    secret: &Secret,
) -> Result<Option<Secret>, RotationError> {
    let written = if create {
        api.create(&PostParams::default(), secret).await
    } else if changed {
        // replace carries the resourceVersion read above: a concurrent change fails this
        // write instead of being lost, and the next pass plans again.
        api.replace(name, &PostParams::default(), secret).await
    } else {
        return Ok(None);
    };
    written.map(Some).map_err(kube_error(name))
}

#[cfg(test)]
#[path = "key_rotation_tests.rs"]
mod tests;
