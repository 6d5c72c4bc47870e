//! Unit tests of the per-connection walk state and the NPI index.

use super::*;
use crate::operator::roster::index::{Finding, RosterIndex};

fn npis(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn an_npi_missing_from_an_incomplete_walk_is_never_not_found() {
    let mut index = RosterIndex::default();
    index.add("a-1", &npis(&["1234567893"]));
    index.set_incomplete("Some results are not shown to this client".into());
    assert_eq!(index.lookup("1234567893"), Prefetched::Id("a-1".into()));
    assert_eq!(
        index.lookup("1003000126"),
        Prefetched::Incomplete("Some results are not shown to this client".into())
    );
    assert_eq!(
        Finding::Incomplete("why".into()).prefetched(),
        Some(Prefetched::Incomplete("why".into()))
    );
}

#[test]
fn an_npi_on_two_records_stays_ambiguous_and_a_repeat_counts_once() {
    let mut index = RosterIndex::default();
    index.add("a-1", &npis(&["1234567893"]));
    index.add("b.2", &npis(&["1234567893", "1245319599"]));
    index.add("a-1", &npis(&["1234567893"]));
    assert_eq!(
        index.lookup("1234567893"),
        Prefetched::Ambiguous(vec!["a-1".into(), "b.2".into()])
    );
    assert_eq!(index.lookup("1245319599"), Prefetched::Id("b.2".into()));
    assert_eq!(index.lookup("1003000126"), Prefetched::NotFound);
    assert_eq!(index.roles_of("b.2"), None, "no role walk yet");
}

#[test]
fn resolution_waits_for_the_first_walk_and_searches_only_for_what_it_lacks() {
    let rosters = Rosters::default();
    let key: Key = ("ns".into(), "epic".into());
    let base = "https://epic.example/api/FHIR/R4";
    assert!(matches!(
        rosters.resolve(&key, base, "1234567893", true),
        IndexAnswer::AwaitWalk
    ));
    let mut index = RosterIndex::default();
    index.add("a-1", &npis(&["1234567893"]));
    index.set_roles(Some(Arc::new(HashMap::new())));
    rosters.walked(&key, base, index, true);
    match rosters.resolve(&key, base, "1234567893", false) {
        IndexAnswer::Prefetched(Prefetched::Id(id), Some(roles), _) => {
            assert_eq!(id, "a-1");
            assert!(roles.is_empty());
        }
        _ => panic!("the index resolves a walked NPI"),
    }
    assert!(matches!(
        rosters.resolve(&key, base, "1245319599", true),
        IndexAnswer::Search
    ));
    assert!(matches!(
        rosters.resolve(&key, base, "1245319599", false),
        IndexAnswer::Prefetched(Prefetched::NotFound, None, _)
    ));
    rosters.refuse_search(&key, base);
    assert!(matches!(
        rosters.resolve(&key, base, "1245319599", true),
        IndexAnswer::Prefetched(Prefetched::NotFound, None, _)
    ));
    // Another instance behind the same connection starts from nothing.
    assert!(matches!(
        rosters.resolve(&key, "https://other.example/R4", "1234567893", true),
        IndexAnswer::AwaitWalk
    ));
}

#[test]
fn a_4113_shortens_the_paging_ttl_and_a_stated_one_caps_it() {
    let rosters = Rosters::default();
    let key: Key = ("ns".into(), "epic".into());
    let base = "https://epic.example/api/FHIR/R4";
    assert_eq!(rosters.paging_ttl(&key, base, None), DEFAULT_PAGING_TTL);
    rosters.paging_expired_after(&key, base, Duration::from_secs(90));
    rosters.paging_expired_after(&key, base, Duration::from_secs(120));
    assert_eq!(
        rosters.paging_ttl(&key, base, None),
        Duration::from_secs(90)
    );
    assert_eq!(
        rosters.paging_ttl(&key, base, Some(Duration::from_secs(60))),
        Duration::from_secs(60)
    );
}

#[test]
fn a_created_record_resolves_at_once_until_a_later_walk_indexes_it() {
    let rosters = Rosters::default();
    let key = ("ns".to_string(), "epic".to_string());
    let base = "https://tst.example.org";
    let mut before = RosterIndex::default();
    before.set_started(Instant::now());
    rosters.walked(&key, base, before, false);
    rosters.record_created(&key, base, "1234567893", "new-1");
    // Even where the last walk says absent and search is impossible.
    assert!(matches!(
        rosters.resolve(&key, base, "1234567893", false),
        IndexAnswer::Prefetched(Prefetched::Id(id), _, _) if id == "new-1"
    ));
    assert_eq!(
        rosters.created_id(&key, base, "1234567893").as_deref(),
        Some("new-1")
    );
    // A walk that started before the create keeps the ledger entry; a later one drops it.
    let mut old = RosterIndex::default();
    old.set_started(Instant::now() - Duration::from_secs(60));
    rosters.walked(&key, base, old, false);
    assert!(rosters.created_id(&key, base, "1234567893").is_some());
    let mut later = RosterIndex::default();
    later.add("new-1", &npis(&["1234567893"]));
    later.set_started(Instant::now());
    rosters.walked(&key, base, later, false);
    assert!(rosters.created_id(&key, base, "1234567893").is_none());
    // Another instance behind the connection does not see it.
    assert!(
        rosters
            .created_id(&key, "https://prd.example.org", "1234567893")
            .is_none()
    );
}
