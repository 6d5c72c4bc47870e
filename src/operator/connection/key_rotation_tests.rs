use super::*;
use crate::auth::kid_of_entry;
use std::time::Duration;

fn periods() -> RotationPeriods {
    RotationPeriods {
        rotate_every: Duration::from_secs(100),
        publish_ahead: Duration::from_secs(10),
        retire_after: Duration::from_secs(20),
    }
}

fn at(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap()
}

fn keys(list: &[(&str, i64)]) -> BTreeMap<String, DateTime<Utc>> {
    list.iter().map(|(k, t)| (k.to_string(), at(*t))).collect()
}

#[test]
fn no_key_generates_one() {
    assert!(plan(&BTreeMap::new(), &periods(), at(0), false, None).generate);
}

#[test]
fn a_key_is_generated_every_rotate_every_and_only_once_the_newest_signs() {
    let one = keys(&[("a", 0)]);
    assert!(!plan(&one, &periods(), at(99), false, Some("a")).generate);
    assert!(plan(&one, &periods(), at(100), false, Some("a")).generate);
    assert_eq!(
        plan(&one, &periods(), at(5), false, Some("a")).next_rotation,
        Some(at(100))
    );
    // Rotate now, but a new key is still waiting to sign: nothing more is generated.
    let two = keys(&[("a", 0), ("b", 100)]);
    assert!(!plan(&two, &periods(), at(105), true, Some("a")).generate);
    assert!(plan(&two, &periods(), at(110), true, Some("b")).generate);
}

#[test]
fn no_new_key_follows_one_epic_has_not_accepted() {
    let two = keys(&[("a", 0), ("b", 100)]);
    // b signs from 110 but Epic still takes only a: neither schedule nor request adds c.
    for rotate_now in [false, true] {
        let p = plan(&two, &periods(), at(500), rotate_now, Some("a"));
        assert!(!p.generate && p.rotation_held, "{p:?}");
    }
    // Nothing known accepted at all (not registered yet): no pile of keys either.
    let p = plan(&keys(&[("a", 0)]), &periods(), at(500), false, None);
    assert!(!p.generate && p.rotation_held);
}

#[test]
fn the_previous_key_retires_after_the_switch_only_once_epic_accepted_a_newer_one() {
    let two = keys(&[("a", 0), ("b", 100)]);
    // b signs from 110; a retires at 130.
    let p = plan(&two, &periods(), at(129), false, Some("b"));
    assert!(p.retire.is_empty());
    assert_eq!(p.retires_at.get("a"), Some(&at(130)));
    let p = plan(&two, &periods(), at(130), false, Some("b"));
    assert_eq!(p.retire, vec!["a".to_string()]);
    // Epic has only ever accepted a: a stays, and the plan says why.
    let p = plan(&two, &periods(), at(130), false, Some("a"));
    assert!(p.retire.is_empty());
    assert_eq!(p.retirement_held.as_deref(), Some("a"));
    let p = plan(&two, &periods(), at(130), false, None);
    assert!(p.retire.is_empty());
}

#[test]
fn next_event_is_the_nearest_switch_retirement_or_rotation() {
    let two = keys(&[("a", 0), ("b", 100)]);
    let p = plan(&two, &periods(), at(101), false, Some("a"));
    assert_eq!(next_event(&p, &two, &periods(), at(101)), Some(at(110)));
    let p = plan(&two, &periods(), at(111), false, Some("b"));
    assert_eq!(next_event(&p, &two, &periods(), at(111)), Some(at(130)));
}

#[test]
fn kids_are_valid_entry_names() {
    let kid = new_kid(at(1_700_000_000));
    assert_eq!(kid_of_entry(&entry_of_kid(&kid)), Some(kid.as_str()));
}
