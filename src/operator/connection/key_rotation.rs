//! Managed key rotation: the operator generates a connection's keys into its Secret, publishes
//! each new key `publishAhead` before it signs, and removes the previous key `retireAfter`
//! after the switch, but never while the key Epic last accepted would go with it.
//!
//! `plan` decides (pure); `ensure_managed_keys` reads and writes the Secret.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, ResourceExt};

use crate::auth::{entry_of_kid, generate_key, kid_of_entry};
use crate::crd::{
    Algorithm, EpicConnection, KeyLayout, MANAGED_KEYS_LABEL, ROTATE_KEYS_ANNOTATION, Reason,
    RotationPeriods,
};
use crate::operator::connection::key_secret::{
    KEYS_FOR_ANNOTATION, PUBLISHED_ANNOTATION, ROTATED_FOR_ANNOTATION, is_managed, published_times,
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
    let kube_err = |source| RotationError::Kube {
        name: name.clone(),
        source,
    };
    let existing = api.get_opt(&name).await.map_err(kube_err)?;
    if let Some(s) = &existing
        && !is_managed(s)
    {
        return Err(RotationError::Unlabelled(name));
    }
    let connection = conn.name_any();
    if let Some(owner) = existing
        .as_ref()
        .and_then(|s| s.annotations().get(KEYS_FOR_ANNOTATION))
        .filter(|o| **o != connection)
    {
        return Err(RotationError::Shared {
            secret: name,
            owner: owner.clone(),
        });
    }
    let now = Utc::now();
    let requested = conn.annotations().get(ROTATE_KEYS_ANNOTATION).cloned();
    let acted_on = existing
        .as_ref()
        .and_then(|s| s.annotations().get(ROTATED_FOR_ANNOTATION).cloned());
    let rotate_now = requested.is_some() && requested != acted_on;
    let status_keys = conn.status.as_ref().and_then(|s| s.keys.as_ref());
    let last_accepted = status_keys.and_then(|k| k.last_accepted_key_id.as_deref());
    // Keys in the Secret; a key someone added by hand counts as published now.
    let mut published = existing.as_ref().map(published_times).unwrap_or_default();
    let present: Vec<String> = existing
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .map(|d| {
            d.keys()
                .filter_map(|k| kid_of_entry(k).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    published.retain(|kid, _| present.contains(kid));
    for kid in &present {
        published.entry(kid.clone()).or_insert(now);
    }
    let plan = plan(&published, &periods, now, rotate_now, last_accepted);
    let mut secret = existing.clone().unwrap_or_else(|| Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            labels: Some([(MANAGED_KEYS_LABEL.to_string(), "true".to_string())].into()),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        ..Secret::default()
    });
    let data = secret.data.get_or_insert_with(BTreeMap::new);
    let mut generated = None;
    if plan.generate {
        let kid = new_kid(now);
        let pem = generate(conn.spec.algorithm, kid.clone()).await?;
        data.insert(entry_of_kid(&kid), ByteString(pem.into_bytes()));
        published.insert(kid.clone(), now);
        generated = Some(kid);
    }
    for kid in &plan.retire {
        data.remove(&entry_of_kid(kid));
        published.remove(kid);
    }
    let times: BTreeMap<&String, String> = published
        .iter()
        .map(|(k, t)| (k, t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
        .collect();
    let times = serde_json::to_string(&times).unwrap_or_default();
    let annotations = secret.annotations_mut();
    let mut changed = annotations.get(PUBLISHED_ANNOTATION) != Some(&times)
        || annotations.get(KEYS_FOR_ANNOTATION) != Some(&connection);
    annotations.insert(PUBLISHED_ANNOTATION.into(), times);
    // The Secret belongs to this connection from now on (a labelled Secret without owner is
    // adopted).
    annotations.insert(KEYS_FOR_ANNOTATION.into(), connection);
    if let Some(value) = &requested
        && rotate_now
        && (generated.is_some() || (!plan.generate && !plan.rotation_held))
    {
        // A request while a new key still waits to sign is that rotation: acted on. One
        // held until Epic accepts the newest key stays pending.
        annotations.insert(ROTATED_FOR_ANNOTATION.into(), value.clone());
        changed = true;
    }
    changed |= generated.is_some() || !plan.retire.is_empty();
    let written = if existing.is_none() {
        Some(
            api.create(&PostParams::default(), &secret)
                .await
                .map_err(kube_err)?,
        )
    } else if changed {
        // replace carries the resourceVersion read above: a concurrent change fails this
        // write instead of being lost, and the next pass plans again.
        Some(
            api.replace(&name, &PostParams::default(), &secret)
                .await
                .map_err(kube_err)?,
        )
    } else {
        None
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn periods() -> RotationPeriods {
        RotationPeriods {
            rotate_every: Duration::from_secs(100),
            publish_ahead: Duration::from_secs(10),
            retire_after: Duration::from_secs(20),
        }
    }

    fn at(t: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(t, 0).unwrap()
    }

    fn keys(list: &[(&str, i64)]) -> BTreeMap<String, DateTime<Utc>> {
        list.iter().map(|(k, t)| (k.to_string(), at(*t))).collect()
    }

    #[test]
    fn no_key_generates_one() {
        assert!(plan(&BTreeMap::new(), &periods(), at(0), false, None).generate);
    }

    #[test]
    fn a_key_is_generated_every_rotate_every_and_only_once_the_newest_signs() {
        let one = keys(&[("a", 0)]);
        assert!(!plan(&one, &periods(), at(99), false, Some("a")).generate);
        assert!(plan(&one, &periods(), at(100), false, Some("a")).generate);
        assert_eq!(
            plan(&one, &periods(), at(5), false, Some("a")).next_rotation,
            Some(at(100))
        );
        // Rotate now, but a new key is still waiting to sign: nothing more is generated.
        let two = keys(&[("a", 0), ("b", 100)]);
        assert!(!plan(&two, &periods(), at(105), true, Some("a")).generate);
        assert!(plan(&two, &periods(), at(110), true, Some("b")).generate);
    }

    #[test]
    fn no_new_key_follows_one_epic_has_not_accepted() {
        let two = keys(&[("a", 0), ("b", 100)]);
        // b signs from 110 but Epic still takes only a: neither schedule nor request adds c.
        for rotate_now in [false, true] {
            let p = plan(&two, &periods(), at(500), rotate_now, Some("a"));
            assert!(!p.generate && p.rotation_held, "{p:?}");
        }
        // Nothing known accepted at all (not registered yet): no pile of keys either.
        let p = plan(&keys(&[("a", 0)]), &periods(), at(500), false, None);
        assert!(!p.generate && p.rotation_held);
    }

    #[test]
    fn the_previous_key_retires_after_the_switch_only_once_epic_accepted_a_newer_one() {
        let two = keys(&[("a", 0), ("b", 100)]);
        // b signs from 110; a retires at 130.
        let p = plan(&two, &periods(), at(129), false, Some("b"));
        assert!(p.retire.is_empty());
        assert_eq!(p.retires_at.get("a"), Some(&at(130)));
        let p = plan(&two, &periods(), at(130), false, Some("b"));
        assert_eq!(p.retire, vec!["a".to_string()]);
        // Epic has only ever accepted a: a stays, and the plan says why.
        let p = plan(&two, &periods(), at(130), false, Some("a"));
        assert!(p.retire.is_empty());
        assert_eq!(p.retirement_held.as_deref(), Some("a"));
        let p = plan(&two, &periods(), at(130), false, None);
        assert!(p.retire.is_empty());
    }

    #[test]
    fn next_event_is_the_nearest_switch_retirement_or_rotation() {
        let two = keys(&[("a", 0), ("b", 100)]);
        let p = plan(&two, &periods(), at(101), false, Some("a"));
        assert_eq!(next_event(&p, &two, &periods(), at(101)), Some(at(110)));
        let p = plan(&two, &periods(), at(111), false, Some("b"));
        assert_eq!(next_event(&p, &two, &periods(), at(111)), Some(at(130)));
    }

    #[test]
    fn kids_are_valid_entry_names() {
        let kid = new_kid(at(1_700_000_000));
        assert_eq!(kid_of_entry(&entry_of_kid(&kid)), Some(kid.as_str()));
    }
}
