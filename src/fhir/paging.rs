//! Following search pages: Bundle `next` links are opaque and bound to a paging session, so
//! they are used verbatim, only on the configured origin, and never twice (a loop).

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use url::Url;

use super::bundle::{SearchResult, parse_search_page};
use super::client::FhirClient;
use super::error::FhirError;
use super::settings::RequestKind;
use crate::http::origin_of;

/// What a whole-roster walk lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceWalk {
    Practitioner,
    PractitionerRole,
}

impl ResourceWalk {
    pub fn resource_type(self) -> &'static str {
        match self {
            Self::Practitioner => "Practitioner",
            Self::PractitionerRole => "PractitionerRole",
        }
    }
}

impl FhirClient {
    /// Walks the whole Practitioner roster (`_count=page_size`), handing each page's resources
    /// to `on_page`. If Epic expires the paging session mid-walk, the walk restarts from the
    /// first page once, so `on_page` may see records again: callers key by id.
    /// Returns the number of pages fetched.
    pub async fn roster(
        &self,
        page_size: u32,
        mut on_page: impl FnMut(Vec<Value>),
    ) -> Result<usize, FhirError> {
        let mut restarted = false;
        loop {
            let walked = self
                .walk_all(ResourceWalk::Practitioner, page_size, |page, _| {
                    on_page(page);
                    Duration::ZERO
                })
                .await;
            match walked {
                Err(FhirError::PagingExpired { .. }) if !restarted => {
                    tracing::info!(
                        "paging session expired during the roster walk; restarting it once"
                    );
                    restarted = true;
                }
                other => return other,
            }
        }
    }

    /// One walk of every `Practitioner` or every `PractitionerRole` (`_count=page_size`, no
    /// other parameter), in one paging session. `on_page` gets each page's resources and its
    /// OperationOutcome entries (a suppression or an error there means records were hidden:
    /// absence from the walk proves nothing), and answers how long to wait before asking for
    /// the next page. No restart here: the caller
    /// decides what an expired session (`PagingExpired`) means for its pace.
    pub async fn walk_all(
        &self,
        what: ResourceWalk,
        page_size: u32,
        mut on_page: impl FnMut(Vec<Value>, &[super::OperationOutcome]) -> Duration,
    ) -> Result<usize, FhirError> {
        let resource_type = what.resource_type();
        let mut first = self.url(resource_type)?;
        first
            .query_pairs_mut()
            .append_pair("_count", &page_size.to_string());
        self.walk(
            first,
            resource_type,
            &mut |resources: Vec<Value>, outcomes: &[super::OperationOutcome]| {
                on_page(resources, outcomes)
            },
        )
        .await
    }

    /// Every page of a search, with the OperationOutcome entries found on the way.
    pub(super) async fn search_all(
        &self,
        first: Url,
        resource_type: &str,
    ) -> Result<SearchResult, FhirError> {
        let mut all = SearchResult::default();
        self.walk(
            first,
            resource_type,
            &mut |resources: Vec<Value>, outcomes: &[super::OperationOutcome]| {
                all.resources.extend(resources);
                all.outcomes.extend_from_slice(outcomes);
                Duration::ZERO
            },
        )
        .await?;
        Ok(all)
    }

    /// Follows Bundle `next` links verbatim (Epic may post-filter and return short or empty
    /// pages that still have a `next` link, so the walk goes on until there is none), refusing
    /// links to other origins and detecting loops. `on_page` answers how long to wait before
    /// the next page.
    async fn walk(
        &self,
        first: Url,
        resource_type: &str,
        on_page: &mut impl FnMut(Vec<Value>, &[super::OperationOutcome]) -> Duration,
    ) -> Result<usize, FhirError> {
        let mut seen: HashSet<String> = HashSet::new();
        let mut next = Some(first);
        let mut kind = RequestKind::Search;
        let mut pages = 0usize;
        let mut records = 0usize;
        let limits = self.settings().walk_limits;
        let started = std::time::Instant::now();
        let mut pause = Duration::ZERO;
        while let Some(url) = next.take() {
            let over = if pages >= limits.max_pages as usize {
                Some(format!("{pages} pages (maxWalkPages)"))
            } else if records >= limits.max_records as usize {
                Some(format!("{records} records (maxWalkRecords)"))
            } else if started.elapsed() >= limits.max_duration {
                Some(format!(
                    "{}s (maxWalkDuration)",
                    started.elapsed().as_secs()
                ))
            } else {
                None
            };
            if let Some(limit) = over {
                return Err(FhirError::Refused(format!(
                    "the {resource_type} walk stopped at its limit of {limit} with a next link still present; raise the limit on the EpicConnection if the roster really is that large"
                )));
            }
            if !seen.insert(url.as_str().to_string()) {
                return Err(FhirError::Malformed(
                    "paging loop: a next link repeats an earlier page".into(),
                ));
            }
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            let bundle = self.get_json(kind, url).await?.body;
            pages += 1;
            kind = RequestKind::Page;
            let page = parse_search_page(&bundle, resource_type)?;
            records = records.saturating_add(page.resources.len());
            pause = on_page(page.resources, &page.outcomes);
            if let Some(link) = page.next {
                let url = Url::parse(&link)
                    .or_else(|_| self.base().join(&link))
                    .map_err(|e| FhirError::Malformed(format!("next link is not a URL: {e}")))?;
                if origin_of(&url) != self.origin() {
                    return Err(FhirError::Refused(format!(
                        "a next link points at another origin ({}); the access token is only sent to {}",
                        origin_of(&url),
                        self.origin()
                    )));
                }
                next = Some(url);
            }
        }
        Ok(pages)
    }
}
