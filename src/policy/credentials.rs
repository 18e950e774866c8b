//! STUB
use tokio_xmpp::parsers::jid::BareJid;
pub struct ServiceCredentials;
impl ServiceCredentials {
    pub fn none() -> Self {
        Self
    }
    pub fn load(_: Option<&std::path::Path>) -> Result<Self, String> {
        Ok(Self)
    }
    pub fn password(&self, _: &BareJid) -> Option<&str> {
        None
    }
}
