//! Finding a clinician's record by NPI: both NPI systems, every page, only records that really
//! carry the NPI, and Epic's OperationOutcome entries taken into account.

use std::sync::atomic::Ordering;

use serde_json::Value;

use super::client::FhirClient;
use super::error::FhirError;
use crate::crd::NPI_SYSTEMS;
use crate::reconcile::identity::{carries_npi, check_fhir_id};

/// Result of looking an NPI up. Only records that carry the NPI (under either system) count:
/// a loosely matched record returned by the server is never taken for the clinician.
#[derive(Clone, Debug)]
pub enum NpiLookup {
    NotFound,
    /// Exactly one record carries the NPI: its id, and the search's copy of it (which may be
    /// SUBSETTED or stale: read the record by id before writing).
    Found {
        id: String,
        record: Value,
    },
    /// Several records carry the NPI: their ids, never one picked.
    Ambiguous(Vec<String>),
    /// No record carries it, but Epic marked the answer incomplete (error or suppression
    /// entries): NotFound cannot be concluded. Holds Epic's explanation.
    Incomplete(String),
}

/// An NPI lookup with the warnings Epic attached to the search.
#[derive(Clone, Debug)]
pub struct NpiSearch {
    pub lookup: NpiLookup,
    pub warnings: Vec<String>,
}

impl FhirClient {
    /// Finds the Practitioner records carrying `npi` under either NPI system, following every
    /// page. One search with both tokens (FHIR's OR) is tried first; an instance that rejects it
    /// as invalid gets one search per system from then on.
    pub async fn search_npi(&self, npi: &str) -> Result<NpiSearch, FhirError> {
        let (result, _) = self.npi_results(npi).await?;
        lookup_of(npi, result)
    }

    /// As [`search_npi`](Self::search_npi), for the answer a POST would stand on: a "not
    /// found" from the one search with both tokens is checked by one search per system, since
    /// an instance may take the OR form and apply only part of it. Two more requests, only
    /// before a create; an instance caught doing so gets one search per system from then on.
    pub async fn search_npi_before_create(&self, npi: &str) -> Result<NpiSearch, FhirError> {
        let (result, or_form) = self.npi_results(npi).await?;
        let first = lookup_of(npi, result)?;
        if !or_form || !matches!(first.lookup, NpiLookup::NotFound) {
            return Ok(first);
        }
        let each = lookup_of(npi, self.each_system(npi).await?)?;
        if !matches!(each.lookup, NpiLookup::NotFound) {
            tracing::warn!(
                npi,
                "the identifier search with both NPI systems missed what one search per system found; searching each system on its own from now on"
            );
            self.no_or_search.store(true, Ordering::Relaxed);
        }
        Ok(each)
    }

    /// Every page of the NPI's search, and whether it was the one search with both tokens.
    async fn npi_results(&self, npi: &str) -> Result<(super::SearchResult, bool), FhirError> {
        if !self.no_or_search.load(Ordering::Relaxed) {
            let tokens: Vec<String> = NPI_SYSTEMS.iter().map(|s| format!("{s}|{npi}")).collect();
            match self.search_identifier(&tokens.join(",")).await {
                Ok(r) => return Ok((r, true)),
                Err(FhirError::Invalid { .. }) => {
                    tracing::info!(
                        "identifier search with two NPI systems refused; searching each system on its own"
                    );
                    self.no_or_search.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        Ok((self.each_system(npi).await?, false))
    }

    /// One search per NPI system, put together.
    async fn each_system(&self, npi: &str) -> Result<super::SearchResult, FhirError> {
        let mut result = super::SearchResult::default();
        for system in NPI_SYSTEMS {
            let r = self.search_identifier(&format!("{system}|{npi}")).await?;
            result.resources.extend(r.resources);
            result.outcomes.extend(r.outcomes);
        }
        Ok(result)
    }

    async fn search_identifier(&self, token: &str) -> Result<super::SearchResult, FhirError> {
        let mut url = self.url("Practitioner")?;
        url.query_pairs_mut().append_pair("identifier", token);
        self.search_all(url, "Practitioner").await
    }
}

/// What a search's records and outcomes say about the NPI.
fn lookup_of(npi: &str, result: super::SearchResult) -> Result<NpiSearch, FhirError> {
    let mut ids: Vec<String> = Vec::new();
    let mut first: Option<Value> = None;
    let mut loose = 0usize;
    // A returned record with the NPI's digits under a system that is not an NPI system (a
    // trailing slash, https, a bare OID): not the clinician's record for certain, but no
    // proof of absence either.
    let mut odd_system: Option<String> = None;
    for r in result.resources.iter() {
        if !carries_npi(r, npi) {
            loose += 1;
            if odd_system.is_none() {
                odd_system = value_under_other_system(r, npi);
            }
            continue;
        }
        let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
        check_fhir_id(id).map_err(FhirError::Malformed)?;
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
            first.get_or_insert_with(|| r.clone());
        }
    }
    if loose > 0 {
        tracing::debug!(
            npi,
            loose,
            "the NPI search returned records that do not carry the NPI; ignored"
        );
    }
    // Only where it would otherwise read as absent: beside a record that carries the NPI it
    // changes nothing, and saying "nothing is created" there would only confuse.
    let incomplete = result.incomplete().or_else(|| {
        odd_system.filter(|_| ids.is_empty()).map(|system| {
            format!(
                "a returned record carries {npi} under identifier system {system}, which is not an NPI system; nothing is created while it does (check the record in Epic)"
            )
        })
    });
    let mut warnings = result.warnings();
    let lookup = match (ids.len(), first, incomplete) {
        (0, _, Some(why)) => NpiLookup::Incomplete(why),
        (0, _, None) => NpiLookup::NotFound,
        (1, Some(record), why) => {
            warnings.extend(why);
            NpiLookup::Found {
                id: ids.remove(0),
                record,
            }
        }
        (_, _, why) => {
            warnings.extend(why);
            NpiLookup::Ambiguous(ids)
        }
    };
    Ok(NpiSearch { lookup, warnings })
}

/// The system under which a record carries `npi`'s digits, when that system is not an NPI
/// system. Bounded by the record's identifiers (a hostile record's are bounded upstream).
fn value_under_other_system(record: &Value, npi: &str) -> Option<String> {
    record
        .get("identifier")?
        .as_array()?
        .iter()
        .find(|i| i.get("value").and_then(Value::as_str).map(str::trim) == Some(npi))
        .map(|i| {
            let system = i.get("system").and_then(Value::as_str).unwrap_or("(none)");
            // Epic's text goes into status: a system is a URI, kept short.
            system.chars().take(100).collect()
        })
}
