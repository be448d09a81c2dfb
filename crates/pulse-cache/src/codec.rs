//! How typed values become the bytes a remote store keeps.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::BoxError;

/// Turns values into bytes and back.
///
/// [`Postcard`] (compact binary) is the default; [`Json`] is readable from
/// `redis-cli` and from services in other languages. Implement it for
/// another format; keep `name` short, it appears in error messages.
///
/// # Examples
///
/// ```
/// use pulse_cache::codec::{Codec, Json, Postcard};
///
/// let user = ("ada".to_owned(), 36u8);
/// let bytes = Postcard.encode(&user).unwrap();
/// assert_eq!(bytes.len(), 5);
/// let back: (String, u8) = Postcard.decode(&bytes).unwrap();
/// assert_eq!(back, user);
/// assert_eq!(Json.encode(&user).unwrap(), br#"["ada",36]"#);
/// ```
pub trait Codec: Send + Sync + 'static {
    /// The format's name, for error messages.
    fn name(&self) -> &'static str;

    /// Encodes a value.
    fn encode<V: Serialize + ?Sized>(&self, value: &V) -> Result<Vec<u8>, BoxError>;

    /// Decodes a value.
    fn decode<V: DeserializeOwned>(&self, bytes: &[u8]) -> Result<V, BoxError>;
}

/// Compact binary encoding through `postcard` (varints, no field names).
/// The default: small values and fast to decode. The layout follows the
/// Rust type, so every reader must use the same type definition.
#[derive(Clone, Copy, Debug, Default)]
pub struct Postcard;

impl Codec for Postcard {
    fn name(&self) -> &'static str {
        "postcard"
    }

    fn encode<V: Serialize + ?Sized>(&self, value: &V) -> Result<Vec<u8>, BoxError> {
        Ok(postcard::to_stdvec(value)?)
    }

    fn decode<V: DeserializeOwned>(&self, bytes: &[u8]) -> Result<V, BoxError> {
        Ok(postcard::from_bytes(bytes)?)
    }
}

/// JSON through `serde_json`: larger and slower than [`Postcard`], but
/// readable by people and by other languages.
#[derive(Clone, Copy, Debug, Default)]
pub struct Json;

impl Codec for Json {
    fn name(&self) -> &'static str {
        "json"
    }

    fn encode<V: Serialize + ?Sized>(&self, value: &V) -> Result<Vec<u8>, BoxError> {
        Ok(serde_json::to_vec(value)?)
    }

    fn decode<V: DeserializeOwned>(&self, bytes: &[u8]) -> Result<V, BoxError> {
        Ok(serde_json::from_slice(bytes)?)
    }
}
