//! Unit tests of the per-connection walk state and the NPI index.

use super::*;
use crate::operator::roster::index::{Finding, RosterIndex};

fn npis(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The question of an unresolved practitioner that no walk woke.
fn unresolved(npi: &str, search_listed: bool) -> Question<'_> {
    Question {
        npi,
        has_id: false,
        settled: false,
        fresh: false,
        search_listed,
        covered_within: Duration::from_secs(660),
    }
}

/// How an unresolved practitioner of this connection is resolved.
fn resolve(rosters: &Rosters, key: &Key, base: &str, npi: &str, search_listed: bool) -> Answer {
    rosters.answer(key, base, &unresolved(npi, search_listed), None)
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
        resolve(&rosters, &key, base, "1234567893", true),
        Answer::AwaitWalk
    ));
    let mut index = RosterIndex::default();
    index.add("a-1", &npis(&["1234567893"]));
    index.set_roles(Some(Arc::new(HashMap::new())));
    index.set_started(Instant::now());
    rosters.walked(&key, base, index, true);
    match resolve(&rosters, &key, base, "1234567893", false) {
        Answer::Use {
            known:
                Known {
                    prefetched: Some(Prefetched::Id(id)),
                    roles: Some(roles),
                    ..
                },
            ..
        } => {
            assert_eq!(id, "a-1");
            assert!(roles.is_empty());
        }
        _ => panic!("the index resolves a walked NPI"),
    }
    assert!(matches!(
        resolve(&rosters, &key, base, "1245319599", true),
        Answer::Search(_)
    ));
    assert!(matches!(
        resolve(&rosters, &key, base, "1245319599", false),
        Answer::Use {
            known: Known {
                prefetched: Some(Prefetched::NotFound),
                roles: None,
                ..
            },
            ..
        }
    ));
    rosters.learn(&key, base, &[Lesson::SearchRefused]);
    assert!(matches!(
        resolve(&rosters, &key, base, "1245319599", true),
        Answer::Use {
            known: Known {
                prefetched: Some(Prefetched::NotFound),
                roles: None,
                ..
            },
            ..
        }
    ));
    // Another instance behind the same connection starts from nothing.
    assert!(matches!(
        resolve(
            &rosters,
            &key,
            "https://other.example/R4",
            "1234567893",
            true
        ),
        Answer::AwaitWalk
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
    rosters.learn(
        &key,
        base,
        &[Lesson::Created {
            npi: "1234567893".into(),
            id: "new-1".into(),
        }],
    );
    // Even where the last walk says absent and search is impossible.
    assert!(matches!(
        resolve(&rosters, &key, base, "1234567893", false),
        Answer::Use {
            known: Known { prefetched: Some(Prefetched::Id(id)), .. },
            ..
        } if id == "new-1"
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

#[test]
fn each_question_gets_its_answer() {
    use crate::operator::roster::index::{Handover, HandoverFor};
    let key: Key = ("ns".into(), "epic".into());
    let base = "https://epic.example/api/FHIR/R4";
    let handover = |found: Finding| Handover {
        found,
        roles: None,
        about: HandoverFor {
            uid: "u1".into(),
            npi: "1234567893".into(),
            base_url: base.into(),
        },
        walk_started: None,
    };
    let walked = Rosters::default();
    let mut index = RosterIndex::default();
    index.add("a-1", &npis(&["1234567893"]));
    index.add("d-1", &npis(&["1245319599"]));
    index.add("d-2", &npis(&["1245319599"]));
    walked.walked(&key, base, index, false);
    let resolved = |npi| Question {
        has_id: true,
        settled: true,
        ..unresolved(npi, true)
    };
    let body = serde_json::json!({"resourceType": "Practitioner", "id": "a-1"});
    type Case<'a> = (
        &'a str,
        &'a Rosters,
        Question<'a>,
        Option<Handover>,
        &'a str,
    );
    let fresh = Rosters::default();
    let cases: Vec<Case> = vec![
        (
            "a woken practitioner takes the page copy",
            &walked,
            resolved("1234567893"),
            Some(handover(Finding::record("a-1", &body))),
            "record a-1",
        ),
        (
            "a settled one no walk woke is covered",
            &walked,
            resolved("1234567893"),
            None,
            "covered",
        ),
        (
            "a settled one waits for the first walk",
            &fresh,
            resolved("1234567893"),
            None,
            "await walk",
        ),
        (
            "a known record whose NPI is on two records holds",
            &walked,
            resolved("1245319599"),
            None,
            "ambiguous",
        ),
        (
            "an unsettled one is read by id, the indexed record next should it be gone",
            &walked,
            Question {
                settled: false,
                ..resolved("1234567893")
            },
            None,
            "id a-1",
        ),
        (
            "check now reads afresh, even when woken",
            &walked,
            Question {
                fresh: true,
                ..resolved("1234567893")
            },
            Some(handover(Finding::Absent)),
            "read",
        ),
        (
            "an unresolved NPI in the index resolves from it",
            &walked,
            unresolved("1234567893", true),
            None,
            "id a-1",
        ),
        (
            "an unresolved NPI the walk did not see is searched",
            &walked,
            unresolved("1982736450", true),
            None,
            "search",
        ),
        (
            "an unresolved one before the first walk waits",
            &fresh,
            unresolved("1234567893", true),
            None,
            "await walk",
        ),
    ];
    for (what, rosters, q, h, want) in cases {
        let got = match rosters.answer(&key, base, &q, h) {
            Answer::Use {
                known,
                search: true,
            } => match known.prefetched {
                Some(Prefetched::Record { id, .. }) => format!("record {id}"),
                Some(Prefetched::Id(id)) => format!("id {id}"),
                Some(Prefetched::Ambiguous(_)) => "ambiguous".into(),
                None => "read".into(),
                Some(other) => format!("{other:?}"),
            },
            Answer::Use { search: false, .. } => "no search".into(),
            Answer::Search(_) => "search".into(),
            Answer::AwaitWalk => "await walk".into(),
            Answer::Covered => "covered".into(),
            Answer::Failed(e) => format!("failed: {e}"),
        };
        assert_eq!(got, want, "{what}");
    }
    // Asking changes nothing: another instance's question leaves the entry as it was.
    let _ = walked.answer(
        &key,
        "https://other.example/R4",
        &resolved("1234567893"),
        None,
    );
    assert!(
        walked.index(&key, base).is_some(),
        "a read never resets the entry"
    );
}

#[test]
fn without_a_search_only_a_recent_walk_proves_an_npi_absent() {
    let key: Key = ("ns".into(), "epic".into());
    let base = "https://epic.example/api/FHIR/R4";
    // A walk is due within 20 s here; `None`: an index without a start time.
    let walked = |started_ago: Option<u64>| {
        let rosters = Rosters::default();
        let mut index = RosterIndex::default();
        index.add("a-1", &npis(&["1234567893"]));
        if let Some(secs) = started_ago {
            index.set_started(Instant::now() - Duration::from_secs(secs));
        }
        rosters.walked(&key, base, index, false);
        rosters
    };
    let (new, walked_npi) = ("1245319599", "1234567893");
    let cases = [
        (
            "a recent walk's not found",
            Some(0),
            new,
            false,
            "not found",
        ),
        ("an old walk's not found", Some(30), new, false, "held"),
        (
            "an old one's, where a search can check",
            Some(30),
            new,
            true,
            "search",
        ),
        (
            "an old walk's record still resolves",
            Some(30),
            walked_npi,
            false,
            "id a-1",
        ),
        ("a walk without a start time", None, new, false, "held"),
    ];
    for (what, started_ago, npi, search_listed, want) in cases {
        let q = Question {
            covered_within: Duration::from_secs(20),
            ..unresolved(npi, search_listed)
        };
        let got = match walked(started_ago).answer(&key, base, &q, None) {
            Answer::Use { known, .. } => match known.prefetched {
                Some(Prefetched::NotFound) => "not found".to_string(),
                Some(Prefetched::Id(id)) => format!("id {id}"),
                Some(Prefetched::Incomplete(why)) => {
                    assert!(why.contains("more than 20s ago"), "{what}: {why}");
                    assert!(why.contains("nothing is created"), "{what}: {why}");
                    "held".into()
                }
                other => format!("{other:?}"),
            },
            Answer::Search(_) => "search".into(),
            other => format!("{other:?}"),
        };
        assert_eq!(got, want, "{what}");
    }
}
