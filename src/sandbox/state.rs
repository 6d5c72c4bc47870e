//! The sandbox's data: records, tokens, paging sessions, counters and settings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde_json::{Value, json};
use sha2::Sha256;

use super::clients::{ClientEntry, RegisteredClient};
use super::lock;
use super::seed::{SeedError, rewrite_references, seed_resources};
use super::stats::Stats;
use super::{SandboxConfig, Settings};
use crate::crd::{NPI_SYSTEM, npi_from_prefix};

/// A token the sandbox issued.
pub(crate) struct IssuedToken {
    pub scopes: Vec<String>,
    pub expires: Instant,
}

#[derive(Default)]
pub(crate) struct AuthState {
    pub tokens: HashMap<String, IssuedToken>,
    /// jti -> exp (seconds since epoch); kept until exp so a replay is caught.
    pub seen_jti: HashMap<String, i64>,
}

pub(crate) struct Session {
    pub ids: Vec<String>,
    pub resource: &'static str,
    pub created: Instant,
    /// OperationOutcome entries put on the first page (suppressions, warnings).
    pub outcomes: Vec<Value>,
    /// Entries are SUBSETTED copies.
    pub subsetted: bool,
}

/// Stored resources, by type, in insertion order.
#[derive(Default)]
pub(crate) struct Store {
    pub order: Vec<String>,
    pub items: HashMap<String, Value>,
}

impl Store {
    /// Stores a new version of a resource: `meta.versionId` counts up from the stored one
    /// (every write and every out-of-band edit is a new version, as on a FHIR server).
    /// Returns the stored resource (with its new version).
    pub fn insert(&mut self, id: String, mut v: Value) -> Value {
        let previous = self
            .items
            .get(&id)
            .and_then(|p| p.pointer("/meta/versionId"))
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        if let Some(o) = v.as_object_mut() {
            let meta = o.entry("meta").or_insert_with(|| json!({}));
            if !meta.is_object() {
                *meta = json!({});
            }
            meta["versionId"] = json!((previous + 1).to_string());
            meta["lastUpdated"] = json!(crate::util::now_rfc3339());
        }
        if self.items.insert(id.clone(), v.clone()).is_none() {
            self.order.push(id);
        }
        v
    }

    /// An out-of-band edit with a JSON merge patch (RFC 7386), as a person editing in Epic
    /// makes one: a new version of the record. None when there is no such record.
    pub fn edit(&mut self, id: &str, patch: &Value) -> Option<Value> {
        let mut record = self.items.get(id)?.clone();
        json_patch::merge(&mut record, patch);
        record["id"] = json!(id);
        Some(self.insert(id.to_string(), record))
    }

    /// The version a resource is at (its weak ETag is `W/"<version>"`).
    pub fn version(&self, id: &str) -> Option<String> {
        self.items
            .get(id)
            .and_then(|p| p.pointer("/meta/versionId"))
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// Takes a resource out (merged into another record, as Epic merges duplicates).
    pub fn remove(&mut self, id: &str) -> Option<Value> {
        self.order.retain(|i| i != id);
        self.items.remove(id)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.order
            .iter()
            .filter_map(|id| self.items.get(id).map(|v| (id, v)))
    }
}

#[derive(Default)]
pub(crate) struct Data {
    pub practitioners: Store,
    pub roles: Store,
    pub patients: Store,
    pub sessions: HashMap<String, Session>,
    /// Opaque page token -> (session id, offset).
    pub page_tokens: HashMap<String, (String, usize)>,
    pub counter: u64,
    /// Ids of practitioners merged into another record: they answer 410 with Epic code 4107.
    pub merged: std::collections::HashSet<String>,
}

pub(crate) struct SandboxState {
    pub origin: String,
    secret: [u8; 32],
    pub token_ttl: Duration,
    pub paging_ttl: Duration,
    pub default_page_size: usize,
    pub max_page_size: usize,
    /// Registration order; a client registered again replaces its entry in place. Entries are
    /// shared out (Arc) so a token request can await a JWK Set fetch without holding the lock.
    clients: RwLock<Vec<Arc<ClientEntry>>>,
    settings: RwLock<Settings>,
    pub data: Mutex<Data>,
    pub auth: Mutex<AuthState>,
    pub stats: Stats,
    /// The server-wide rate limit, with the rate it was built for.
    pub rate_limiter: Mutex<Option<(u32, governor::DefaultDirectRateLimiter)>>,
    pub load: super::load::LoadState,
}

impl SandboxState {
    pub fn new(origin: &str, config: &SandboxConfig, clients: Vec<RegisteredClient>) -> Self {
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        // The first registration of an id wins, as the lookup by id always did.
        let mut entries: Vec<Arc<ClientEntry>> = Vec::new();
        for c in clients {
            if !entries
                .iter()
                .any(|e| e.registration.client_id == c.client_id)
            {
                entries.push(Arc::new(ClientEntry::new(c)));
            }
        }
        Self {
            origin: origin.to_string(),
            secret,
            token_ttl: config.token_ttl,
            paging_ttl: config.paging_ttl,
            default_page_size: config.default_page_size.max(1),
            max_page_size: config.max_page_size.max(1),
            clients: RwLock::new(entries),
            settings: RwLock::new(config.settings.clone()),
            data: Mutex::new(Data::default()),
            auth: Mutex::new(AuthState::default()),
            stats: Stats::default(),
            rate_limiter: Mutex::new(None),
            load: {
                let load = super::load::LoadState::default();
                load.reset_for(&config.settings.load);
                load
            },
        }
    }

    pub fn settings(&self) -> Settings {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_settings(&self, s: Settings) {
        self.load.reset_for(&s.load);
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = s;
    }

    /// The client registered under `client_id`.
    pub fn client(&self, client_id: &str) -> Option<Arc<ClientEntry>> {
        self.clients
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|e| e.registration.client_id == client_id)
            .cloned()
    }

    /// Registers a client, replacing one with the same id (and its key cache). Requests already
    /// verifying against the old registration finish with it.
    pub fn register_client(&self, client: RegisteredClient) {
        let entry = Arc::new(ClientEntry::new(client));
        let mut clients = self.clients.write().unwrap_or_else(|p| p.into_inner());
        match clients
            .iter_mut()
            .find(|e| e.registration.client_id == entry.registration.client_id)
        {
            Some(slot) => *slot = entry,
            None => clients.push(entry),
        }
    }

    /// Every registered client, as `GET /_sandbox/clients` lists them.
    pub fn clients_snapshot(&self) -> Value {
        let clients: Vec<Arc<ClientEntry>> = self
            .clients
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        json!(clients.iter().map(|c| c.snapshot()).collect::<Vec<_>>())
    }

    pub fn fhir_base(&self) -> String {
        format!("{}{}", self.origin, super::FHIR_PATH)
    }

    pub fn token_url(&self) -> String {
        format!("{}{}", self.origin, super::TOKEN_PATH)
    }

    /// An opaque id derived from this instance's secret: the same seed gives different ids in
    /// two sandboxes, as Epic ids differ between instances.
    pub fn opaque(&self, label: &str) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.secret) {
            Ok(m) => m,
            Err(_) => return format!("e{label}"),
        };
        mac.update(label.as_bytes());
        let bytes = mac.finalize().into_bytes();
        // Real Epic ids carry '-' and '.'; base64url's '_' is not a FHIR id character.
        format!(
            "e{}",
            URL_SAFE_NO_PAD.encode(&bytes[..17]).replace('_', ".")
        )
    }

    pub fn random_token(&self) -> String {
        let mut b = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut b);
        URL_SAFE_NO_PAD.encode(b)
    }

    fn next_id(&self, data: &mut Data, kind: &str) -> String {
        data.counter += 1;
        self.opaque(&format!("{kind}:{}", data.counter))
    }

    pub fn new_practitioner_id(&self, data: &mut Data) -> String {
        self.next_id(data, "Practitioner")
    }

    /// Loads a Bundle (collection or transaction) or an array of resources. Ids in the file are
    /// local names: they are replaced by opaque ids, and references to them are rewritten.
    pub fn load_seed(&self, text: &str) -> Result<(), SeedError> {
        let resources = seed_resources(text)?;
        let mut data = lock(&self.data);
        let mut ids: HashMap<String, String> = HashMap::new();
        let mut typed = Vec::new();
        for (index, r) in resources.into_iter().enumerate() {
            let rt = r
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if !matches!(rt.as_str(), "Practitioner" | "PractitionerRole" | "Patient") {
                return Err(SeedError::ResourceType { index, found: rt });
            }
            let new_id = self.next_id(&mut data, &rt);
            if let Some(local) = r.get("id").and_then(Value::as_str) {
                ids.insert(format!("{rt}/{local}"), format!("{rt}/{new_id}"));
            }
            typed.push((rt, new_id, r));
        }
        for (rt, id, mut r) in typed {
            rewrite_references(&mut r, &ids);
            r["id"] = json!(id);
            let store = match rt.as_str() {
                "Practitioner" => &mut data.practitioners,
                "PractitionerRole" => &mut data.roles,
                _ => &mut data.patients,
            };
            store.insert(id, r);
        }
        Ok(())
    }

    /// Adds `n` synthetic practitioners with valid, unique NPIs; every third gets a role. With
    /// `realistic`, records take the shapes real Epic data has (see `realism`).
    pub fn generate(&self, n: usize, realistic: bool) {
        let mut data = lock(&self.data);
        for i in 0..n {
            let id = self.next_id(&mut data, "Practitioner");
            let npi = npi_from_prefix(200_000_000 + i as u32);
            let mut p = json!({
                "resourceType": "Practitioner",
                "id": id,
                "identifier": [
                    {"use": "usual", "system": NPI_SYSTEM, "value": npi},
                    {"use": "usual", "system": "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.0", "value": format!("E{i:06}")}
                ],
                "active": true,
                "name": [{"use": "official", "family": format!("Synthetic{i}"), "given": ["Clinician"]}],
                "telecom": [{"system": "email", "value": format!("clinician{i}@example.org"), "use": "work"}],
                "gender": if i % 2 == 0 { "female" } else { "male" }
            });
            if realistic {
                super::realism::realistic_practitioner(&mut p, i);
            }
            if i % 3 == 0 {
                let role_id = self.next_id(&mut data, "PractitionerRole");
                data.roles.insert(
                    role_id.clone(),
                    json!({
                        "resourceType": "PractitionerRole",
                        "id": role_id,
                        "practitioner": {"reference": format!("Practitioner/{id}")},
                        "organization": {"display": "Synthetic Health"},
                        "location": [{"display": format!("Clinic {}", i % 17)}],
                        "specialty": [{"text": "Internal Medicine"}],
                        "code": [{"text": "Physician"}]
                    }),
                );
            }
            data.practitioners.insert(id, p);
        }
    }

    /// Drops paging sessions older than the paging TTL.
    pub fn expire_sessions(&self, data: &mut Data) {
        let ttl = self.paging_ttl;
        data.sessions.retain(|_, s| s.created.elapsed() < ttl);
        let live: std::collections::HashSet<String> = data.sessions.keys().cloned().collect();
        data.page_tokens.retain(|_, (sid, _)| live.contains(sid));
    }

    /// Server-wide rate limit (governor's GCRA, burst = one second's worth): true when this
    /// request is over the limit. The limit can change at run time through the settings; the
    /// limiter is rebuilt when it does.
    pub fn over_rate_limit(&self, rps: u32) -> bool {
        let Some(rate) = std::num::NonZeroU32::new(rps) else {
            return false;
        };
        let mut limiter = lock(&self.rate_limiter);
        if limiter.as_ref().is_none_or(|(r, _)| *r != rps) {
            *limiter = Some((
                rps,
                governor::RateLimiter::direct(governor::Quota::per_second(rate)),
            ));
        }
        limiter.as_ref().is_some_and(|(_, l)| l.check().is_err())
    }
}
