//! What one walk found: the NPI -> id index of a complete walk (ids kept per NPI, so an NPI on
//! two records stays ambiguous), the roles grouped by practitioner, and the finding a walk
//! hands to the reconcile it wakes (one shared page copy however many objects it wakes). Pure.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use crate::crd::RoleSummary;
use crate::pipeline::Prefetched;

/// Roles by practitioner id, from one PractitionerRole walk.
pub type RoleMap = HashMap<Box<str>, Vec<RoleSummary>>;

/// Ids kept for one NPI: enough to name the duplicates in status.
pub const MAX_IDS_PER_NPI: usize = 16;

/// The NPIs of one complete walk. Ids are kept per NPI, so an NPI on two records stays
/// ambiguous instead of resolving to whichever page came last.
#[derive(Debug, Default)]
pub struct RosterIndex {
    npis: HashMap<Box<str>, Ids>,
    /// Roles by practitioner id, when a PractitionerRole walk completed.
    roles: Option<Arc<RoleMap>>,
    records: usize,
    /// Why the walk was incomplete (Epic hid records), when it was.
    incomplete: Option<String>,
    /// When the walk's paging session started: a record created before then is on its pages.
    started: Option<Instant>,
}

#[derive(Debug)]
enum Ids {
    One(Box<str>),
    Many(Vec<Box<str>>),
}

impl RosterIndex {
    /// Adds one record under each NPI it carries (a record seen twice, as after a restarted
    /// walk, counts once).
    pub fn add(&mut self, id: &str, npis: &[String]) {
        self.records += 1;
        for npi in npis {
            match self.npis.get_mut(npi.as_str()) {
                None => {
                    self.npis.insert(npi.as_str().into(), Ids::One(id.into()));
                }
                Some(Ids::One(first)) if &**first != id => {
                    let first = std::mem::replace(first, "".into());
                    self.npis
                        .insert(npi.as_str().into(), Ids::Many(vec![first, id.into()]));
                }
                // Beyond a few ids the NPI is ambiguous all the same: a hostile roster
                // putting one NPI on every record costs no more memory or time than that.
                Some(Ids::Many(ids))
                    if ids.len() < MAX_IDS_PER_NPI && !ids.iter().any(|i| &**i == id) =>
                {
                    ids.push(id.into())
                }
                Some(_) => {}
            }
        }
    }

    pub fn set_roles(&mut self, roles: Option<Arc<RoleMap>>) {
        self.roles = roles;
    }

    /// The roles of the walk, shared with the next index when roles are not walked again.
    pub fn roles(&self) -> Option<Arc<RoleMap>> {
        self.roles.clone()
    }

    /// The walk met suppression or error entries: Epic hid records from this client.
    pub fn set_incomplete(&mut self, why: String) {
        self.incomplete = Some(why);
    }

    pub fn set_started(&mut self, at: Instant) {
        self.started = Some(at);
    }

    /// When the walk's paging session started.
    pub fn started(&self) -> Option<Instant> {
        self.started
    }

    /// What the walk says about an NPI. An NPI the walk did not see is NotFound only when no
    /// page said records were hidden.
    pub fn lookup(&self, npi: &str) -> Prefetched {
        match self.npis.get(npi) {
            None => match &self.incomplete {
                Some(why) => Prefetched::Incomplete(why.clone()),
                None => Prefetched::NotFound,
            },
            Some(Ids::One(id)) => Prefetched::Id(id.to_string()),
            Some(Ids::Many(ids)) => {
                Prefetched::Ambiguous(ids.iter().map(|i| i.to_string()).collect())
            }
        }
    }

    /// The roles of a practitioner, when roles were walked (none listed: an empty list).
    pub fn roles_of(&self, id: &str) -> Option<Vec<RoleSummary>> {
        self.roles
            .as_ref()
            .map(|r| r.get(id).cloned().unwrap_or_default())
    }

    /// Records added (a record met twice, as in a restarted walk, counts twice).
    pub fn records(&self) -> usize {
        self.records
    }
}

/// What a walk hands to the reconcile it wakes.
#[derive(Clone, Debug)]
pub struct Handover {
    pub found: Finding,
    /// Roles from the PractitionerRole walk, when it ran.
    pub roles: Option<Vec<RoleSummary>>,
    /// What the finding is about: taken only by that object, for that NPI, on that instance.
    pub about: HandoverFor,
    /// When the walk that made it started.
    pub walk_started: Option<Instant>,
}

/// The object, NPI and instance a hand-over was made for. An object deleted and created again
/// under the same name (another uid, perhaps another NPI), or moved to another connection,
/// never receives a finding made for what it was before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandoverFor {
    pub uid: String,
    pub npi: String,
    pub base_url: String,
}

/// The walk's finding for one NPI. A page copy is kept as compact JSON text, a third of the
/// size of a parsed value, because thousands wait at once during a first walk.
#[derive(Clone, Debug)]
pub enum Finding {
    Record {
        id: String,
        /// Shared by every object the record wakes: one copy however many carry its NPIs.
        json: Arc<str>,
    },
    Ambiguous(Vec<String>),
    Absent,
    /// Not seen, but the walk was incomplete (Epic hid records): never NotFound.
    Incomplete(String),
    /// Only the roles changed: the record is read as usual.
    RolesOnly,
    /// The known record was not on the walk's pages (removed, merged or hidden since): it is
    /// read by id again, however settled the object is.
    Vanished,
}

impl Finding {
    pub fn record(id: &str, body: &Value) -> Self {
        Finding::Record {
            id: id.to_string(),
            json: Arc::from(body.to_string()),
        }
    }

    /// As the pipeline takes it; `None` for [`Finding::RolesOnly`] (or an unreadable copy,
    /// which cannot happen for text this module wrote).
    pub fn prefetched(self) -> Option<Prefetched> {
        match self {
            Finding::Record { id, json } => serde_json::from_str(&json)
                .ok()
                .map(|body| Prefetched::Record { id, body }),
            Finding::Ambiguous(ids) => Some(Prefetched::Ambiguous(ids)),
            Finding::Absent => Some(Prefetched::NotFound),
            Finding::Incomplete(why) => Some(Prefetched::Incomplete(why)),
            Finding::RolesOnly | Finding::Vanished => None,
        }
    }
}
