//! SMART on FHIR Backend Services authentication: private keys, signed client assertions and a
//! cached, single-flight access token per connection.

mod assertion;
mod keys;
mod lifetime;
mod token;

pub use assertion::{ASSERTION_TYPE, AssertionClaims, client_assertion};
pub use keys::{ClientKey, KeyError, generate_key};
pub use lifetime::{MAX_TOKEN_LIFETIME, token_lifetime};
pub use token::{AccessToken, AuthError, TokenSource, discover_token_url, parse_token_response};
