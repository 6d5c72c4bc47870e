//! Table tests of the plan: which action each input leads to, and when a create may stand.

use super::*;

#[test]
fn a_create_stands_only_on_positive_evidence_of_absence() {
    let cases = [
        (Action::Create, Absence::Searched, Action::Create),
        (Action::Create, Absence::Walked, Action::Create),
        (
            Action::Create,
            Absence::Unconfirmed,
            Action::Hold(HoldReason::CreateUnconfirmed),
        ),
        (
            Action::Create,
            Absence::RecordGone,
            Action::Hold(HoldReason::RecordGone),
        ),
        // Only creates need it: updates are built from a by-id read.
        (Action::Update, Absence::Unconfirmed, Action::Update),
        (Action::Update, Absence::RecordGone, Action::Update),
        (Action::Nothing, Absence::Unconfirmed, Action::Nothing),
        (
            Action::Hold(HoldReason::WriteDisabled),
            Absence::Unconfirmed,
            Action::Hold(HoldReason::WriteDisabled),
        ),
    ];
    for (action, absence, want) in cases {
        assert_eq!(
            guard_create(action, absence),
            want,
            "{action:?} on {absence:?}"
        );
    }
}

fn base() -> PlanInput {
    PlanInput {
        management: ManagementPolicy::Update,
        deletion: DeletionPolicy::Orphan,
        deleting: false,
        paused: false,
        writes: WriteCapability::Unknown,
        resolution: Resolution::Found,
        drifted: true,
        live_active: Some(true),
    }
}

#[test]
fn in_sync_does_nothing() {
    assert_eq!(
        plan(PlanInput {
            drifted: false,
            ..base()
        }),
        Action::Nothing
    );
}

#[test]
fn drift_is_updated_when_writes_allowed_or_unknown() {
    assert_eq!(plan(base()), Action::Update);
    assert_eq!(
        plan(PlanInput {
            writes: WriteCapability::Enabled,
            ..base()
        }),
        Action::Update
    );
}

#[test]
fn drift_is_held_when_write_disabled() {
    let p = plan(PlanInput {
        writes: WriteCapability::Disabled,
        ..base()
    });
    assert_eq!(p, Action::Hold(HoldReason::WriteDisabled));
}

#[test]
fn observe_never_writes() {
    for resolution in [Resolution::Found, Resolution::NotFound] {
        for deleting in [false, true] {
            let p = plan(PlanInput {
                management: ManagementPolicy::Observe,
                deletion: DeletionPolicy::Deactivate,
                resolution,
                deleting,
                ..base()
            });
            assert!(!p.writes(), "{resolution:?} deleting={deleting}: {p:?}");
        }
    }
    let p = plan(PlanInput {
        management: ManagementPolicy::Observe,
        ..base()
    });
    assert_eq!(p, Action::Hold(HoldReason::ObserveOnly));
}

#[test]
fn not_found_is_created_only_under_create_or_update() {
    let nf = PlanInput {
        resolution: Resolution::NotFound,
        live_active: None,
        ..base()
    };
    assert_eq!(plan(nf), Action::Hold(HoldReason::NotFound));
    let coup = PlanInput {
        management: ManagementPolicy::CreateOrUpdate,
        ..nf
    };
    assert_eq!(plan(coup), Action::Create);
    assert_eq!(
        plan(PlanInput {
            writes: WriteCapability::Disabled,
            ..coup
        }),
        Action::Hold(HoldReason::WriteDisabled)
    );
    assert_eq!(
        plan(PlanInput {
            paused: true,
            ..coup
        }),
        Action::Hold(HoldReason::Paused)
    );
}

#[test]
fn ambiguous_never_writes() {
    for management in [ManagementPolicy::Update, ManagementPolicy::CreateOrUpdate] {
        for deleting in [false, true] {
            let p = plan(PlanInput {
                management,
                deleting,
                deletion: DeletionPolicy::Deactivate,
                resolution: Resolution::Ambiguous(2),
                ..base()
            });
            assert_eq!(p, Action::Hold(HoldReason::AmbiguousNpi));
        }
    }
}

#[test]
fn incomplete_search_never_writes() {
    for management in [ManagementPolicy::Update, ManagementPolicy::CreateOrUpdate] {
        for deleting in [false, true] {
            let p = plan(PlanInput {
                management,
                deleting,
                deletion: DeletionPolicy::Deactivate,
                resolution: Resolution::Incomplete,
                writes: WriteCapability::Enabled,
                live_active: None,
                ..base()
            });
            assert_eq!(p, Action::Hold(HoldReason::SearchIncomplete));
        }
    }
}

#[test]
fn paused_holds_writes() {
    assert_eq!(
        plan(PlanInput {
            paused: true,
            ..base()
        }),
        Action::Hold(HoldReason::Paused)
    );
}

#[test]
fn deletion_branches() {
    let del = PlanInput {
        deleting: true,
        deletion: DeletionPolicy::Deactivate,
        ..base()
    };
    assert_eq!(plan(del), Action::Deactivate);
    assert_eq!(
        plan(PlanInput {
            drifted: false,
            ..del
        }),
        Action::Deactivate
    );
    assert_eq!(
        plan(PlanInput {
            live_active: Some(false),
            ..del
        }),
        Action::Nothing
    );
    assert_eq!(
        plan(PlanInput {
            deletion: DeletionPolicy::Orphan,
            ..del
        }),
        Action::Nothing
    );
    assert_eq!(
        plan(PlanInput {
            resolution: Resolution::NotFound,
            ..del
        }),
        Action::Nothing
    );
    assert_eq!(
        plan(PlanInput {
            writes: WriteCapability::Disabled,
            ..del
        }),
        Action::Hold(HoldReason::WriteDisabled)
    );
    assert_eq!(
        plan(PlanInput {
            paused: true,
            ..del
        }),
        Action::Hold(HoldReason::Paused)
    );
}

#[test]
fn evidence_counts_only_once_a_lost_post_had_time_to_land() {
    use std::time::{Duration, Instant};
    let settle = Duration::from_secs(30);
    let lost = Instant::now();
    let after = |secs| lost.checked_add(Duration::from_secs(secs));
    let cases = [
        ("no attempt: any evidence", None, after(0), true),
        ("no attempt, no evidence yet", None, None, true),
        ("an attempt and no evidence", Some(lost), None, false),
        (
            "evidence from before the attempt",
            Some(lost),
            Some(lost),
            false,
        ),
        (
            "evidence within the settle time",
            Some(lost),
            after(29),
            false,
        ),
        (
            "evidence at exactly the settle time",
            Some(lost),
            after(30),
            false,
        ),
        (
            "evidence after the settle time",
            Some(lost),
            after(31),
            true,
        ),
    ];
    for (what, attempt, from, counts) in cases {
        assert_eq!(
            evidence_after_attempt(attempt, from, settle),
            counts,
            "{what}"
        );
    }
}
