//! The name: which entry of `name[]` the spec is compared with and written to.
//!
//! Many Epic records carry only a `usual` name, so the spec's name follows the record: the
//! official entry, else the usual one, else the first. A write replaces that entry and never
//! adds a second name; `text`, when present, is re-rendered with its prefixes and suffixes.

use serde_json::{Map, Value, json};

use crate::crd::PractitionerName;

/// Index of the name entry the spec is about: official, else usual, else the first.
pub(super) fn shown_index(live: &Value) -> Option<usize> {
    let names = live.get("name").and_then(Value::as_array)?;
    let with_use = |u: &str| {
        names
            .iter()
            .position(|n| n.get("use").and_then(Value::as_str) == Some(u))
    };
    with_use("official")
        .or_else(|| with_use("usual"))
        .or_else(|| (!names.is_empty()).then_some(0))
}

/// The name entry the spec is about (official, else usual, else the first).
pub fn shown_name(live: &Value) -> Option<&Value> {
    live.get("name")?.as_array()?.get(shown_index(live)?)
}

/// The drift path of the name: which entry it is about.
pub(super) fn path(live: &Value) -> String {
    match shown_index(live) {
        Some(i) => match live
            .pointer(&format!("/name/{i}/use"))
            .and_then(Value::as_str)
        {
            Some(u) => format!("name[use={u}]"),
            None => format!("name[{i}]"),
        },
        None => "name".to_string(),
    }
}

/// The desired projection: family and given always, prefix and suffix when declared.
pub(super) fn desired(n: &PractitionerName) -> Value {
    let mut o = Map::new();
    o.insert("family".into(), json!(n.family));
    o.insert("given".into(), json!(n.given));
    if let Some(p) = &n.prefix {
        o.insert("prefix".into(), json!(p));
    }
    if let Some(s) = &n.suffix {
        o.insert("suffix".into(), json!(s));
    }
    Value::Object(o)
}

/// The live projection of the shown entry, with the keys `spec` owns (every key without one).
pub(super) fn live(live: &Value, spec: Option<&PractitionerName>) -> Value {
    let Some(entry) = shown_index(live).and_then(|i| live.pointer(&format!("/name/{i}"))) else {
        return Value::Null;
    };
    let list = |k: &str| entry.get(k).cloned().unwrap_or_else(|| json!([]));
    let mut o = Map::new();
    o.insert(
        "family".into(),
        entry.get("family").cloned().unwrap_or(Value::Null),
    );
    o.insert("given".into(), list("given"));
    if spec.is_none_or(|n| n.prefix.is_some()) {
        o.insert("prefix".into(), list("prefix"));
    }
    if spec.is_none_or(|n| n.suffix.is_some()) {
        o.insert("suffix".into(), list("suffix"));
    }
    Value::Object(o)
}

/// Writes the spec's name into the shown entry (an official entry only when there is no name
/// at all), keeping `use`, `period`, extensions and undeclared prefix/suffix.
pub(super) fn apply(n: &PractitionerName, record: &mut Map<String, Value>) {
    let index = shown_index(&Value::Object(record.clone()));
    let names = record.entry("name").or_insert_with(|| json!([]));
    if !names.is_array() {
        *names = json!([]);
    }
    let Value::Array(names) = names else { return };
    let i = match index {
        Some(i) => i,
        None => {
            names.push(json!({"use": "official"}));
            names.len() - 1
        }
    };
    let Some(Value::Object(o)) = names.get_mut(i) else {
        return;
    };
    o.insert("family".into(), Value::String(n.family.clone()));
    set_list(o, "given", Some(&n.given));
    set_list(o, "prefix", n.prefix.as_ref());
    set_list(o, "suffix", n.suffix.as_ref());
    // `text` is how Epic displays the name; a stale one would contradict the parts.
    if o.contains_key("text") {
        o.insert("text".into(), Value::String(render_text(o)));
    }
}

/// Sets a string list (removing it when empty); `None` leaves the live value alone.
fn set_list(o: &mut Map<String, Value>, key: &str, parts: Option<&Vec<String>>) {
    match parts {
        None => {}
        Some(p) if p.is_empty() => {
            o.remove(key);
        }
        Some(p) => {
            o.insert(key.into(), json!(p));
        }
    }
}

/// "Dr. Kim Lee Jr.": prefixes, given names, family, suffixes.
fn render_text(o: &Map<String, Value>) -> String {
    let strings = |k: &str| -> Vec<String> {
        o.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut parts = strings("prefix");
    parts.extend(strings("given"));
    if let Some(f) = o.get("family").and_then(Value::as_str) {
        parts.push(f.to_string());
    }
    parts.extend(strings("suffix"));
    parts.retain(|p| !p.trim().is_empty());
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(family: &str, given: &[&str]) -> PractitionerName {
        PractitionerName {
            family: family.into(),
            given: given.iter().map(|s| s.to_string()).collect(),
            prefix: None,
            suffix: None,
        }
    }

    #[test]
    fn usual_only_name_is_the_one_compared_and_replaced() {
        let live = json!({"name": [{"use": "usual", "family": "Lee", "given": ["Kim"]}]});
        assert_eq!(shown_index(&live), Some(0));
        assert_eq!(path(&live), "name[use=usual]");
        assert_eq!(live_projection(&live), desired(&name("Lee", &["Kim"])));
        let mut o = live.as_object().cloned().unwrap();
        apply(&name("Park", &["Kim"]), &mut o);
        let names = o["name"].as_array().unwrap();
        assert_eq!(names.len(), 1, "no second name is added");
        assert_eq!(names[0]["use"], "usual");
        assert_eq!(names[0]["family"], "Park");
    }

    fn live_projection(v: &Value) -> Value {
        live(v, Some(&name("x", &[])))
    }

    #[test]
    fn official_wins_over_usual_and_first() {
        let live = json!({"name": [{"family": "A"}, {"use": "usual", "family": "B"}, {"use": "official", "family": "C"}]});
        assert_eq!(shown_index(&live), Some(2));
        let live = json!({"name": [{"family": "A"}, {"use": "nickname", "family": "B"}]});
        assert_eq!(shown_index(&live), Some(0));
        assert_eq!(path(&live), "name[0]");
    }

    #[test]
    fn text_keeps_prefix_and_suffix() {
        let live = json!({"name": [{"use": "official", "text": "Dr. Kim Text Jr.", "family": "Text", "given": ["Kim"], "prefix": ["Dr."], "suffix": ["Jr."]}]});
        let mut o = live.as_object().cloned().unwrap();
        apply(&name("Lee", &["Kim"]), &mut o);
        assert_eq!(o["name"][0]["text"], "Dr. Kim Lee Jr.");
        assert_eq!(o["name"][0]["prefix"], json!(["Dr."]));
    }

    #[test]
    fn a_record_without_names_gets_an_official_one() {
        let mut o = Map::new();
        apply(&name("Lee", &[]), &mut o);
        assert_eq!(o["name"], json!([{"use": "official", "family": "Lee"}]));
    }
}
