//! Unit tests of what connections to one Epic instance share: the ledger of records created.

use super::*;

fn walked_now(rosters: &Rosters, key: &Key, base: &str) {
    let mut index = RosterIndex::default();
    index.set_started(Instant::now());
    rosters.walked(key, base, index, false);
}

#[test]
fn a_record_created_through_one_connection_resolves_another_to_the_same_instance() {
    let rosters = Rosters::default();
    let (a, b, c): (Key, Key, Key) = (
        ("ns".into(), "epic".into()),
        ("other-ns".into(), "epic-again".into()),
        ("ns".into(), "epic-test".into()),
    );
    let (base, other_base) = ("https://epic.example/api/FHIR/R4", "https://tst.example/R4");
    walked_now(&rosters, &a, base);
    walked_now(&rosters, &b, base);
    walked_now(&rosters, &c, other_base);
    let created = Lesson::Created {
        npi: "1234567893".into(),
        id: "new-1".into(),
    };
    rosters.learn(&a, base, &[created]);
    let q = Question {
        npi: "1234567893",
        has_id: false,
        settled: false,
        fresh: false,
        search_listed: false,
        covered_within: Duration::from_secs(660),
    };
    let prefetched = |key: &Key, base: &str| match rosters.answer(key, base, &q, None) {
        Answer::Use { known, .. } => known.prefetched,
        other => panic!("{other:?}"),
    };
    let id = |s: &str| Some(Prefetched::Id(s.into()));
    assert_eq!(
        prefetched(&a, base),
        id("new-1"),
        "the connection that created it"
    );
    assert_eq!(
        prefetched(&b, base),
        id("new-1"),
        "another one to the same instance"
    );
    assert_eq!(
        prefetched(&c, other_base),
        Some(Prefetched::NotFound),
        "a connection to another instance knows nothing of it"
    );
}
