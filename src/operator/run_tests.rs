//! The practitioner watch feeding the members index and the per-object memory.

use super::*;
use crate::crd::EpicPractitioner;

fn practitioner(name: &str, uid: &str) -> CachedPractitioner {
    let spec = serde_json::from_value(
        serde_json::json!({"connectionRef": {"name": "epic"}, "npi": "1234567893"}),
    )
    .unwrap();
    let mut p = EpicPractitioner::new(name, spec);
    p.metadata.namespace = Some("ns".into());
    p.metadata.uid = Some(uid.into());
    p.into()
}

#[test]
fn the_watch_keeps_members_and_memory_and_drops_what_is_deleted() {
    let (members, memory) = (members::Members::default(), memory::Memory::default());
    let key = ("ns".to_string(), "epic".to_string());
    let (a, b) = (practitioner("a", "u1"), practitioner("b", "u2"));
    let event = |e: watcher::Event<CachedPractitioner>| follow_watch(&members, &memory, &Ok(e));
    event(watcher::Event::Apply(a.clone()));
    event(watcher::Event::Apply(b.clone()));
    assert_eq!(members.count(&key), 2);
    memory.count_failure(&ObjectRef::from_obj(&a), "u1");
    memory.count_failure(&ObjectRef::from_obj(&b), "u2");
    // A delete drops the object from both.
    event(watcher::Event::Delete(a.clone()));
    assert_eq!(members.count(&key), 1);
    assert_eq!(memory.len(), 1);
    // A relist that no longer lists `b` (deleted while the watch was down) drops it too.
    event(watcher::Event::Init);
    event(watcher::Event::InitDone);
    assert_eq!(members.count(&key), 0);
    assert_eq!(memory.len(), 0);
}
