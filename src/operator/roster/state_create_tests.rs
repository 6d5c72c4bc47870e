//! Unit tests of what may stand behind a create: the ledger of records created, shared by the
//! connections to one Epic instance, how old a walk's "not found" may be, and the wake-up of an
//! object whose record vanished.

use super::*;
use crate::operator::roster::index::{Finding, Handover, HandoverFor};

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

fn handover(found: Finding, walk_started: Option<Instant>) -> Handover {
    Handover {
        found,
        roles: None,
        about: HandoverFor {
            uid: "u1".into(),
            npi: "1245319599".into(),
            base_url: "https://epic.example/api/FHIR/R4".into(),
        },
        walk_started,
    }
}

#[test]
fn a_handed_over_not_found_proves_absence_only_from_a_recent_walk() {
    let rosters = Rosters::default();
    let key: Key = ("ns".into(), "epic".into());
    let base = "https://epic.example/api/FHIR/R4";
    walked_now(&rosters, &key, base);
    let q = |search_listed| Question {
        npi: "1245319599",
        has_id: false,
        settled: false,
        fresh: false,
        search_listed,
        covered_within: Duration::from_secs(20),
    };
    let old = Instant::now() - Duration::from_secs(30);
    let cases = [
        ("a recent walk's", Some(Instant::now()), false, "not found"),
        ("an old walk's, no search", Some(old), false, "held"),
        ("one without a start, no search", None, false, "held"),
        (
            "an old walk's, where a search checks it before a POST",
            Some(old),
            true,
            "not found",
        ),
    ];
    for (what, started, search_listed, want) in cases {
        let h = handover(Finding::Absent, started);
        let got = match rosters.answer(&key, base, &q(search_listed), Some(h)) {
            Answer::Use { known, .. } => match known.prefetched {
                Some(Prefetched::NotFound) => "not found",
                Some(Prefetched::Incomplete(why)) if why.contains("nothing is created") => "held",
                _ => "other",
            },
            _ => "other",
        };
        assert_eq!(got, want, "{what}");
    }
}

#[test]
fn a_settled_object_whose_record_vanished_from_the_walk_is_read_again() {
    let rosters = Rosters::default();
    let key: Key = ("ns".into(), "epic".into());
    let base = "https://epic.example/api/FHIR/R4";
    walked_now(&rosters, &key, base);
    let settled = Question {
        npi: "1245319599",
        has_id: true,
        settled: true,
        fresh: false,
        search_listed: true,
        covered_within: Duration::from_secs(660),
    };
    assert!(matches!(
        rosters.answer(&key, base, &settled, None),
        Answer::Covered
    ));
    let woken = Some(handover(Finding::Vanished, Some(Instant::now())));
    assert!(matches!(
        rosters.answer(&key, base, &settled, woken),
        Answer::Use {
            known: Known {
                prefetched: None,
                ..
            },
            ..
        }
    ));
}

/// A walk indexed at `started` that found `npi` on each of `ids`.
fn walked_at(rosters: &Rosters, key: &Key, base: &str, started: Instant, npi: &str, ids: &[&str]) {
    let mut index = RosterIndex::default();
    index.set_started(started);
    for id in ids {
        index.add(id, &[npi.to_string()]);
    }
    rosters.walked(key, base, index, false);
}

/// A walk: when it started, and the records it found the NPI on.
type Walk<'a> = (Instant, &'a [&'a str]);

#[test]
fn another_connections_newer_walk_knows_a_record_this_connections_older_walk_missed() {
    let (a, b): (Key, Key) = (
        ("ns".into(), "epic".into()),
        ("ns".into(), "epic-again".into()),
    );
    let base = "https://epic.example/api/FHIR/R4";
    let npi = "1234567893";
    let q = Question {
        npi,
        has_id: false,
        settled: false,
        fresh: false,
        search_listed: false,
        covered_within: Duration::from_secs(660),
    };
    let id = |s: &str| Prefetched::Id(s.into());
    let early = Instant::now() - Duration::from_secs(120);
    let later = Instant::now() - Duration::from_secs(60);
    // (the walk of a: when it started and what it found; of b: the same; what b's pass knows)
    let cases: &[(Option<Walk>, Walk, Prefetched)] = &[
        // a created the record after b's walk started, and a's next walk indexed it (the
        // ledger let it go): b reads it by id instead of taking its own "not found".
        (Some((later, &["new-1"])), (early, &[]), id("new-1")),
        // a's newer walk found the NPI on two records: b holds as ambiguous.
        (
            Some((later, &["new-1", "new-2"])),
            (early, &[]),
            Prefetched::Ambiguous(vec!["new-1".into(), "new-2".into()]),
        ),
        // b's own walk is the newer one: its "not found" stands (the record went since).
        (
            Some((early, &["new-1"])),
            (later, &[]),
            Prefetched::NotFound,
        ),
        // a's newer walk did not find it either.
        (Some((later, &[])), (early, &[]), Prefetched::NotFound),
        // a never walked.
        (None, (early, &[]), Prefetched::NotFound),
    ];
    for (walk_a, (b_started, b_found), expected) in cases {
        let rosters = Rosters::default();
        walked_at(&rosters, &b, base, *b_started, npi, b_found);
        if let Some((started, found)) = walk_a {
            walked_at(&rosters, &a, base, *started, npi, found);
        }
        let known = match rosters.answer(&b, base, &q, None) {
            Answer::Use { known, .. } => known.prefetched,
            other => panic!("{other:?}"),
        };
        assert_eq!(known.as_ref(), Some(expected), "a walked {walk_a:?}");
    }
}
