//! Service-account passwords for token accounts: TOML, `"helpdesk@example.org" = "password"`.
//!
//! Read once at start (a change needs a restart). No password reaches `Debug`, an error
//! message or a log: errors name the file, the line and the account, never a value.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tokio_xmpp::parsers::jid::BareJid;

/// The file name looked for in `$CREDENTIALS_DIRECTORY` (systemd's `LoadCredential=`).
pub const SYSTEMD_CREDENTIAL: &str = "xrg-credentials";

/// Service-account passwords for token accounts.
#[derive(Clone, Default)]
pub struct ServiceCredentials {
    passwords: HashMap<BareJid, String>,
}

impl std::fmt::Debug for ServiceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut accounts: Vec<String> = self.passwords.keys().map(|j| j.to_string()).collect();
        accounts.sort();
        f.debug_struct("ServiceCredentials")
            .field("accounts", &accounts)
            .finish_non_exhaustive()
    }
}

impl ServiceCredentials {
    pub fn none() -> Self {
        ServiceCredentials::default()
    }

    /// `--credentials-file`, else `$CREDENTIALS_DIRECTORY/xrg-credentials` when that variable is
    /// set and the file exists, else none. Outside `$CREDENTIALS_DIRECTORY`, a file readable by
    /// group or others is refused with a clear message (mode & 0o077 != 0).
    pub fn load(explicit: Option<&Path>) -> Result<Self, String> {
        let systemd_dir = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        Self::load_with(explicit, systemd_dir.as_deref())
    }

    /// [`ServiceCredentials::load`] with `$CREDENTIALS_DIRECTORY` given (tests).
    pub fn load_with(explicit: Option<&Path>, systemd_dir: Option<&Path>) -> Result<Self, String> {
        let path = match (explicit, systemd_dir) {
            (Some(p), _) => p.to_owned(),
            (None, Some(dir)) if dir.join(SYSTEMD_CREDENTIAL).is_file() => {
                dir.join(SYSTEMD_CREDENTIAL)
            }
            (None, _) => return Ok(Self::none()),
        };
        let shown = path.display();
        let meta = std::fs::metadata(&path)
            .map_err(|e| format!("cannot read the credentials file {shown}: {e}"))?;
        let managed = systemd_dir.is_some_and(|d| path.starts_with(d));
        if !managed && meta.mode() & 0o077 != 0 {
            return Err(format!(
                "the credentials file {shown} is readable by group or others (mode {:o}); \
                 chmod 600 it (or use systemd's LoadCredential=)",
                meta.mode() & 0o777
            ));
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read the credentials file {shown}: {e}"))?;
        Self::parse(&text).map_err(|e| format!("credentials file {shown}: {e}"))
    }

    /// The file's text: a table of bare JIDs to password strings.
    pub fn parse(text: &str) -> Result<Self, String> {
        // Parsed as generic values first: serde's type errors would quote a value.
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| {
                let before = text.get(..s.start).unwrap_or(text);
                before.matches('\n').count() + 1
            });
            // toml's message names the problem, not the text; the Display form would quote
            // the line, password and all.
            match line {
                Some(l) => format!("line {l}: not valid TOML"),
                None => "not valid TOML".to_owned(),
            }
        })?;
        let mut passwords = HashMap::new();
        for (key, value) in table {
            let jid = BareJid::new(&crate::adhoc::address::strip_final_dot(&key))
                .map_err(|e| format!("{key:?} is not a bare JID ({e})"))?;
            let password = match value {
                toml::Value::String(s) if !s.is_empty() => s,
                _ => return Err(format!("the password of {jid} is not a non-empty string")),
            };
            if passwords.insert(jid.clone(), password).is_some() {
                return Err(format!("{jid} is listed twice"));
            }
        }
        Ok(ServiceCredentials { passwords })
    }

    pub fn password(&self, account: &BareJid) -> Option<&str> {
        self.passwords.get(account).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.passwords.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn jid(s: &str) -> BareJid {
        BareJid::new(s).expect("test JID")
    }

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        p
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("xrg-cred-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    #[test]
    fn the_units_fallback_credential_is_no_credentials() {
        // deploy/systemd's `SetCredential=`, used when the credentials file is missing.
        let unit = include_str!("../../deploy/systemd/xmpp-rest-gateway.service");
        let value = unit
            .lines()
            .find_map(|l| l.strip_prefix("SetCredential=xrg-credentials:"))
            .expect("the unit sets a fallback credential");
        assert!(!value.is_empty(), "systemd 252 refuses an empty value");
        assert!(ServiceCredentials::parse(value).unwrap().is_empty());
    }

    #[test]
    fn parses_accounts_and_passwords() {
        let c =
            ServiceCredentials::parse("\"helpdesk@example.org\" = \"pw one\"\n\"b@c\" = \"x\"\n")
                .expect("parses");
        assert_eq!(c.password(&jid("helpdesk@example.org")), Some("pw one"));
        assert_eq!(c.password(&jid("b@c")), Some("x"));
        assert_eq!(c.password(&jid("other@example.org")), None);
    }

    #[test]
    fn debug_and_errors_never_show_a_password() {
        let c = ServiceCredentials::parse("\"a@b\" = \"unit-test-pw\"\n").expect("parses");
        let dbg = format!("{c:?}");
        assert!(dbg.contains("a@b"), "{dbg}");
        assert!(!dbg.contains("unit-test-pw"), "{dbg}");
        for bad in [
            "\"a@b\" = \"unit-test-pw\n",
            "\"a@b\" = \"unit-test-pw\" junk\n",
            "\"a@b/res\" = \"unit-test-pw\"\n",
            "\"a@b\" = [\"unit-test-pw\"]\n",
        ] {
            let e = ServiceCredentials::parse(bad).expect_err(bad);
            assert!(!e.contains("unit-test-pw"), "{bad:?} -> {e}");
        }
    }

    #[test]
    fn a_file_readable_by_others_is_refused_outside_the_systemd_directory() {
        let d = temp_dir("mode");
        let open = write(&d, "open", "\"a@b\" = \"pw\"\n", 0o644);
        let e = ServiceCredentials::load_with(Some(&open), None).expect_err("0644 refused");
        assert!(e.contains("readable by group or others"), "{e}");
        let closed = write(&d, "closed", "\"a@b\" = \"pw\"\n", 0o600);
        let c = ServiceCredentials::load_with(Some(&closed), None).expect("0600 accepted");
        assert_eq!(c.password(&jid("a@b")), Some("pw"));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_systemd_credential_is_found_and_its_mode_is_systemds_business() {
        let d = temp_dir("systemd");
        write(&d, SYSTEMD_CREDENTIAL, "\"a@b\" = \"pw\"\n", 0o644);
        let c = ServiceCredentials::load_with(None, Some(&d)).expect("found");
        assert_eq!(c.password(&jid("a@b")), Some("pw"));
        let empty = temp_dir("systemd-empty");
        let none = ServiceCredentials::load_with(None, Some(&empty)).expect("none");
        assert!(none.is_empty());
        assert!(ServiceCredentials::load_with(None, None)
            .expect("none")
            .is_empty());
        let missing = d.join("missing");
        assert!(ServiceCredentials::load_with(Some(&missing), None).is_err());
        let _ = std::fs::remove_dir_all(&d);
        let _ = std::fs::remove_dir_all(&empty);
    }
}
