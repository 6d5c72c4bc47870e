use super::*;

fn key(ns: &str, name: &str) -> Key {
    (ns.to_string(), name.to_string())
}

/// (namespace, name, base URL) of a connection declared.
type Declared<'a> = (&'a str, &'a str, &'a str);
/// The connections declared, and the (namespace, name) of those expected.
type Case<'a> = (&'a [Declared<'a>], &'a [(&'a str, &'a str)]);

/// (the other connections declared, the ones expected on the instance of `tenant-a/epic`)
#[test]
fn the_other_connections_to_an_instance_are_found_however_their_url_is_spelled() {
    let own = key("tenant-a", "epic");
    let base = "https://epic.example.org/api/FHIR/R4";
    let cases: &[Case] = &[
        // The same URL through another connection, in the same and in another namespace.
        (
            &[("tenant-a", "epic-again", base), ("tenant-b", "epic", base)],
            &[("tenant-a", "epic-again"), ("tenant-b", "epic")],
        ),
        // A trailing slash, the host's case and the default port name the same instance.
        (
            &[
                ("t", "slash", "https://epic.example.org/api/FHIR/R4/"),
                ("t", "case", "HTTPS://EPIC.example.org/api/FHIR/R4"),
                ("t", "port", "https://epic.example.org:443/api/FHIR/R4"),
            ],
            &[("t", "slash"), ("t", "case"), ("t", "port")],
        ),
        // Another path, host, port or scheme is another instance; the object's own connection
        // and a URL that is none are never counted.
        (
            &[
                ("t", "path", "https://epic.example.org/api/FHIR/R4-test"),
                ("t", "host", "https://epic2.example.org/api/FHIR/R4"),
                ("t", "port", "https://epic.example.org:8443/api/FHIR/R4"),
                ("t", "scheme", "http://epic.example.org/api/FHIR/R4"),
                ("tenant-a", "epic", base),
                ("t", "none", "not a url"),
            ],
            &[],
        ),
        // A connection both declared so and ready with that URL is named once.
        (
            &[("t", "twice", base), ("t", "twice", base)],
            &[("t", "twice")],
        ),
    ];
    for (declared, expected) in cases {
        let declared = declared.iter().map(|(ns, n, url)| (key(ns, n), *url));
        let expected: Vec<Key> = expected.iter().map(|(ns, n)| key(ns, n)).collect();
        assert_eq!(others_on_instance(&own, base, declared), expected);
    }
}

#[test]
fn a_base_url_that_is_no_url_names_no_instance() {
    let declared = [(key("t", "other"), "not a url")];
    assert!(others_on_instance(&key("t", "own"), "not a url", declared.into_iter()).is_empty());
}
