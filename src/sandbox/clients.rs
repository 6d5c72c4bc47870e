//! The Backend Services clients the sandbox accepts: their registration (static keys, a JWK Set
//! URL, or both) and the cache of keys fetched for each.

use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde_json::{Value, json};

use super::jwk_set::check_loopback_url;
use super::jwks::JwksCache;
use super::seed::SeedError;

/// A Backend Services client the sandbox accepts: its keys are a static JWK Set, fetched from
/// a JWK Set URL (as Epic does since it stopped taking uploaded keys), or both.
#[derive(Clone, Debug)]
pub struct RegisteredClient {
    pub client_id: String,
    /// Static keys, registered up front.
    pub keys: Vec<Jwk>,
    pub approved_scopes: Vec<String>,
    /// Private so that only a checked (loopback) URL can be set: the sandbox fetches it.
    jwks_url: Option<String>,
}

impl RegisteredClient {
    /// A client with a static JWK Set (every key needs a kid).
    pub fn new(
        client_id: &str,
        jwks: &Value,
        approved_scopes: Vec<String>,
    ) -> Result<Self, SeedError> {
        let set: JwkSet = serde_json::from_value(jwks.clone()).map_err(|e| SeedError::Jwks {
            client: client_id.into(),
            detail: e.to_string(),
        })?;
        if set.keys.iter().any(|k| k.common.key_id.is_none()) {
            return Err(SeedError::Jwks {
                client: client_id.into(),
                detail: "every key needs a kid".into(),
            });
        }
        Ok(Self {
            client_id: client_id.into(),
            keys: set.keys,
            approved_scopes,
            jwks_url: None,
        })
    }

    /// A client whose keys the sandbox fetches from `url` when it needs them (cached as
    /// `Settings::jwks_cache_max_secs` and `jwks_refetch_cooldown_secs` say). The URL must be
    /// http(s) to a loopback host: the sandbox never fetches anything else.
    pub fn with_jwks_url(
        client_id: &str,
        url: &str,
        approved_scopes: Vec<String>,
    ) -> Result<Self, SeedError> {
        let mut client = Self {
            client_id: client_id.into(),
            keys: Vec::new(),
            approved_scopes,
            jwks_url: None,
        };
        client.set_jwks_url(url)?;
        Ok(client)
    }

    /// Adds (or replaces) the JWK Set URL; static keys stay usable beside it.
    pub fn set_jwks_url(&mut self, url: &str) -> Result<(), SeedError> {
        check_loopback_url(url).map_err(|detail| SeedError::JwksUrl {
            client: self.client_id.clone(),
            url: url.into(),
            detail,
        })?;
        self.jwks_url = Some(url.into());
        Ok(())
    }

    /// The registered JWK Set URL, if any (an assertion's `jku` must equal it exactly).
    pub fn jwks_url(&self) -> Option<&str> {
        self.jwks_url.as_deref()
    }
}

/// A registered client with the cache of its fetched keys. Registering the client again
/// replaces the entry, cache included, as a new registration in Epic starts from nothing.
pub(crate) struct ClientEntry {
    pub registration: RegisteredClient,
    pub jwks: Option<JwksCache>,
}

impl ClientEntry {
    pub(super) fn new(registration: RegisteredClient) -> Self {
        let jwks = registration.jwks_url().map(JwksCache::new);
        Self { registration, jwks }
    }

    /// What `GET /_sandbox/clients` shows: ids, URL, kids and fetch counts, no key material.
    pub fn snapshot(&self) -> Value {
        let r = &self.registration;
        let mut v = json!({
            "clientId": r.client_id,
            "jwksUrl": r.jwks_url(),
            "staticKids": r.keys.iter().filter_map(|k| k.common.key_id.clone()).collect::<Vec<_>>(),
            "scopes": r.approved_scopes,
            "cachedKids": [],
            "fetches": 0,
        });
        if let (Some(cache), Some(o)) = (&self.jwks, v.as_object_mut())
            && let Value::Object(c) = cache.snapshot()
        {
            o.extend(c);
        }
        v
    }
}
