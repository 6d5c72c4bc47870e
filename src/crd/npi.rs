//! National Provider Identifier checks.

/// The FHIR identifier system of the US NPI.
pub const NPI_SYSTEM: &str = "http://hl7.org/fhir/sid/us-npi";
/// The OID form of the NPI system that many Epic instances and feeds carry instead.
pub const NPI_OID_SYSTEM: &str = "urn:oid:2.16.840.1.113883.4.6";
/// Both systems an NPI is found under; the first is the one written on create.
pub const NPI_SYSTEMS: [&str; 2] = [NPI_SYSTEM, NPI_OID_SYSTEM];

/// Why an NPI is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NpiError {
    #[error("NPI must be exactly 10 digits, got {0} characters")]
    Length(usize),
    #[error("NPI must contain only digits 0-9")]
    NotDigits,
    #[error(
        "NPI {npi} fails the Luhn check digit (expected last digit {expected}); check for a typo"
    )]
    CheckDigit { npi: String, expected: u32 },
}

/// Validates an NPI: 10 digits whose last digit is the Luhn check digit computed over the
/// prefix `80840` followed by the first nine digits (the card-issuer prefix of health IDs).
pub fn validate_npi(npi: &str) -> Result<(), NpiError> {
    if npi.len() != 10 {
        return Err(NpiError::Length(npi.chars().count()));
    }
    let digits: Vec<u32> = npi
        .chars()
        .map(|c| c.to_digit(10))
        .collect::<Option<_>>()
        .ok_or(NpiError::NotDigits)?;
    let expected = luhn_check_digit(
        [8, 0, 8, 4, 0]
            .iter()
            .copied()
            .chain(digits[..9].iter().copied()),
    );
    if digits[9] == expected {
        Ok(())
    } else {
        Err(NpiError::CheckDigit {
            npi: npi.to_string(),
            expected,
        })
    }
}

/// The Luhn check digit to append to `payload`.
pub(crate) fn luhn_check_digit(payload: impl DoubleEndedIterator<Item = u32>) -> u32 {
    // Doubling starts from the rightmost payload digit because the check digit will sit after it.
    let sum: u32 = payload
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 0 {
                let d2 = d * 2;
                if d2 > 9 { d2 - 9 } else { d2 }
            } else {
                d
            }
        })
        .sum();
    (10 - sum % 10) % 10
}

/// Completes a nine-digit prefix into a valid NPI (used to generate synthetic rosters).
pub fn npi_from_prefix(prefix9: u32) -> String {
    let base = format!("{:09}", prefix9 % 1_000_000_000);
    let digits = base.chars().filter_map(|c| c.to_digit(10));
    let check = luhn_check_digit([8, 0, 8, 4, 0].into_iter().chain(digits));
    format!("{base}{check}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_examples() {
        assert_eq!(validate_npi("1234567893"), Ok(()));
        assert_eq!(
            validate_npi("1234567890"),
            Err(NpiError::CheckDigit {
                npi: "1234567890".into(),
                expected: 3
            })
        );
        assert_eq!(validate_npi("123"), Err(NpiError::Length(3)));
        assert_eq!(validate_npi("12345678a3"), Err(NpiError::NotDigits));
    }

    #[test]
    fn generated_npis_are_valid() {
        for p in [0, 1, 123_456_789, 999_999_999, 42] {
            let npi = npi_from_prefix(p);
            assert_eq!(validate_npi(&npi), Ok(()), "{npi}");
        }
        assert_eq!(npi_from_prefix(123_456_789), "1234567893");
    }
}
