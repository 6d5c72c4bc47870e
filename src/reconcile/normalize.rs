//! How contact values are compared: two spellings of one phone number or one e-mail address
//! are the same value, so formatting alone is never drift (and a write that Epic normalises
//! back can never loop).

use crate::crd::ContactSystem;

/// The region assumed when the EpicConnection names none.
pub const DEFAULT_PHONE_REGION: &str = "US";

/// Normalises contact values for comparison; built once per connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Normalizer {
    phone_region: phonenumber::country::Id,
}

impl Default for Normalizer {
    fn default() -> Self {
        Self {
            phone_region: phonenumber::country::Id::US,
        }
    }
}

impl Normalizer {
    /// A normaliser for phone numbers of `region` (ISO 3166 alpha-2, for example US or GB).
    pub fn for_region(region: Option<&str>) -> Result<Self, String> {
        let region = region.unwrap_or(DEFAULT_PHONE_REGION);
        region
            .parse::<phonenumber::country::Id>()
            .map(|phone_region| Self { phone_region })
            .map_err(|_| {
                format!(
                    "defaultPhoneRegion {region:?} is not an ISO 3166 alpha-2 region code such as US or GB"
                )
            })
    }

    /// The normaliser of an EpicConnection (`defaultPhoneRegion`, US when absent).
    pub fn for_connection(spec: &crate::crd::EpicConnectionSpec) -> Result<Self, String> {
        Self::for_region(spec.default_phone_region.as_deref())
    }

    /// The comparable form of a contact value of `system`.
    pub fn contact_value(&self, system: Option<ContactSystem>, value: &str) -> String {
        let value = value.trim();
        match system {
            Some(
                ContactSystem::Phone
                | ContactSystem::Fax
                | ContactSystem::Sms
                | ContactSystem::Pager,
            ) => self.phone(value),
            Some(ContactSystem::Email) => email(value),
            _ => value.to_string(),
        }
    }

    /// E.164 (`+16085550100`) when the text parses as a phone number of the region (or carries
    /// its own country code); otherwise its digits, so `608.555.0100` and `608-555-0100` still
    /// compare equal.
    fn phone(&self, value: &str) -> String {
        match phonenumber::parse(Some(self.phone_region), value) {
            Ok(n) => n.format().mode(phonenumber::Mode::E164).to_string(),
            Err(_) => value
                .chars()
                .filter(|c| c.is_ascii_digit() || *c == '+')
                .collect(),
        }
    }
}

/// The domain of an address is case-insensitive (RFC 5321); the local part is kept as written.
fn email(value: &str) -> String {
    let value = value.strip_prefix("mailto:").unwrap_or(value);
    match value.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_ascii_lowercase()),
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_spellings_compare_equal() {
        let n = Normalizer::default();
        let p = Some(ContactSystem::Phone);
        let want = n.contact_value(p, "608-555-0100");
        assert_eq!(want, "+16085550100");
        for v in [
            "(608) 555-0100",
            "+1 608 555 0100",
            " 608.555.0100 ",
            "16085550100",
        ] {
            assert_eq!(n.contact_value(p, v), want, "{v}");
        }
        assert_ne!(n.contact_value(p, "608-555-0101"), want);
    }

    #[test]
    fn region_decides_numbers_without_country_code() {
        let gb = Normalizer::for_region(Some("GB")).unwrap();
        assert_eq!(
            gb.contact_value(Some(ContactSystem::Phone), "020 7946 0018"),
            "+442079460018"
        );
        assert!(Normalizer::for_region(Some("Mars")).is_err());
    }

    #[test]
    fn email_domain_is_case_insensitive_local_part_is_not() {
        let n = Normalizer::default();
        let e = Some(ContactSystem::Email);
        assert_eq!(
            n.contact_value(e, "Kim.Lee@Example.ORG"),
            n.contact_value(e, "Kim.Lee@example.org")
        );
        assert_ne!(
            n.contact_value(e, "kim.lee@example.org"),
            n.contact_value(e, "Kim.Lee@example.org")
        );
    }
}
