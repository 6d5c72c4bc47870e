//! SMART on FHIR Backend Services authentication: private keys, signed client assertions and a
//! cached, single-flight access token per connection.

mod assertion;
mod keys;
mod token;

pub use assertion::{ASSERTION_TYPE, AssertionClaims, client_assertion};
pub use keys::{ClientKey, KeyError, generate_key};
pub use token::{
    AccessToken, AuthError, MAX_TOKEN_LIFETIME, TokenSource, discover_token_url, token_lifetime,
};
