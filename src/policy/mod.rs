//! STUB for integration only (replaced by branch `policy`).
pub mod cli;
pub mod credentials;
pub use credentials::ServiceCredentials;
use std::net::IpAddr;
use tokio_xmpp::parsers::jid::BareJid;
pub struct Policy;
#[derive(Debug, Clone, Default)]
pub struct Grant {
    pub token: Option<String>,
    pub bearer_account: Option<BareJid>,
}
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    InvalidToken(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("the token's request rate is exceeded")]
    RateLimited(std::time::Duration),
}
impl Policy {
    pub fn open() -> Policy {
        Policy
    }
    pub fn load(_: &std::path::Path, _: bool) -> Result<Policy, String> {
        Err("stub".into())
    }
    pub fn reload(&self) -> bool {
        false
    }
    pub async fn watch(self: std::sync::Arc<Self>) {}
    pub fn admit(
        &self,
        _b: Option<&str>,
        _k: Option<&str>,
        _basic: Option<&BareJid>,
        _c: IpAddr,
    ) -> Result<Grant, Refusal> {
        Ok(Grant::default())
    }
    pub fn may_run(&self, _g: &Grant, _a: &BareJid, _n: &str, _d: &[&str]) -> Result<(), Refusal> {
        Ok(())
    }
    pub fn shows(&self, _g: &Grant, _a: &BareJid, _n: &str) -> bool {
        true
    }
}
