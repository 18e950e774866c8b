//! A minimal XMPP client that logs in as a full JID, sends available presence and holds the
//! session until the server ends it (e.g. with end-user-session) or Ctrl-C. The demo uses it
//! to stand for `test@domain.com/resource`.
//!
//! `cargo run --example hold_session -- JID [--upstream HOST:PORT] [--upstream-ca PEM]
//! [--upstream-tls starttls|direct|none] [--reconnect]`; the password comes from the
//! environment variable `HOLD_PASSWORD`, so it does not show in `ps`.

use std::time::Duration;

use clap::Parser;
use tokio_xmpp::parsers::jid::FullJid;
use tokio_xmpp::parsers::presence::{Presence, Type};
use xmpp_rest_gateway::config::{Cli, UpstreamTls};
use xmpp_rest_gateway::upstream::{AdminSession, Connector};

#[derive(Parser)]
struct Args {
    /// The full JID to hold, e.g. test@domain.com/resource.
    jid: FullJid,
    #[arg(long, default_value = "127.0.0.1:5222")]
    upstream: String,
    #[arg(long)]
    upstream_ca: Option<std::path::PathBuf>,
    #[arg(long, value_enum, default_value_t = UpstreamTls::Starttls)]
    upstream_tls: UpstreamTls,
    /// Log in again (after a second) whenever the server ends the session.
    #[arg(long)]
    reconnect: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let password = std::env::var("HOLD_PASSWORD").map_err(|_| "set HOLD_PASSWORD")?;
    // Reuse the gateway's own flag checks for the upstream settings.
    let mut cli = vec![
        "hold".to_string(),
        "--upstream".into(),
        args.upstream.clone(),
    ];
    cli.extend([
        "--upstream-tls".into(),
        format!("{:?}", args.upstream_tls).to_lowercase(),
    ]);
    if let Some(ca) = &args.upstream_ca {
        cli.extend(["--upstream-ca".into(), ca.display().to_string()]);
    }
    let cfg = Cli::try_parse_from(cli)?.into_config()?;
    let connector = Connector::new(cfg.upstream)?;
    loop {
        let bare = args.jid.to_bare();
        let logged_in = connector
            .login(&bare, &password, args.jid.resource().as_str())
            .await?;
        let session = AdminSession::start(logged_in, 16);
        session.send_presence(Presence::new(Type::None)).await?;
        println!("online as {}", session.jid());
        tokio::select! {
            _ = session.closed() => println!("the server ended the session of {}", session.jid()),
            _ = tokio::signal::ctrl_c() => {
                session.close().await;
                return Ok(());
            }
        }
        if !args.reconnect {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
