//! The JSON codec of the REST document (Tigase's `{"command": {…}}` shape): [`decode`] reads a
//! request body, [`encode`] writes responses, command lists and errors.

mod decode;
mod encode;
#[cfg(test)]
pub(super) mod tests;
mod typed;

pub use decode::{decode_request, decode_resource};
pub use encode::{encode_error, encode_items, encode_resource, encode_response};
