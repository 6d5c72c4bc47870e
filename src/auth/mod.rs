//! SMART on FHIR Backend Services authentication: private keys, signed client assertions and a
//! cached, single-flight access token per connection.

mod assertion;
mod endpoint;
mod error;
mod key_entries;
mod keyring;
mod keys;
mod lifetime;
mod token;

pub use assertion::{ASSERTION_TYPE, AssertionClaims, client_assertion, client_assertion_with_jku};
pub use endpoint::{AccessToken, discover_token_url, parse_token_response};
pub use error::AuthError;
pub use key_entries::{LEGACY_KEY_ENTRY, entry_of_kid, kid_of_entry, load_ring};
pub use keyring::{KeyRing, RingKey, SignerChoice};
pub use keys::{ClientKey, KeyError, generate_key, public_jwk_set};
pub use lifetime::{MAX_TOKEN_LIFETIME, token_lifetime};
pub use token::{KeyUse, TokenSource};
