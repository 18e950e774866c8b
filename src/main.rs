//! The `xmpp-rest-gateway` binary: parse the flags, open the listener, serve until SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use xmpp_rest_gateway::app::App;
use xmpp_rest_gateway::config::{AdminListen, Cli, CliError, Command, Config};
use xmpp_rest_gateway::http::tls::ServerCert;
use xmpp_rest_gateway::http::{self, Gateway};
use xmpp_rest_gateway::policy::{Policy, ServiceCredentials};
use xmpp_rest_gateway::upstream::session::own::OwnStreams;
use xmpp_rest_gateway::upstream::{Access, Connector, SessionPool};

fn main() -> ExitCode {
    let mut cli = match Cli::parse_args(std::env::args_os()) {
        Ok(cli) => cli,
        Err(CliError::Clap(e)) => e.exit(),
        Err(CliError::Env(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.take() {
        Some(Command::Token { command }) => return xmpp_rest_gateway::policy::cli::run(command),
        Some(Command::Healthcheck { url }) => return xmpp_rest_gateway::healthcheck::run(url),
        None => {}
    }
    let cfg = match cli.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Held to the end: at exit it gives the log's queue a bounded time to reach stderr.
    let _flush = match xmpp_rest_gateway::logging::init(cfg.log_format) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // `--threads 1` (the default) runs everything on this thread; otherwise a worker per thread
    // asked for (0: one per core).
    let mut builder = match cfg.threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    if cfg.threads > 1 {
        builder.worker_threads(cfg.threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cfg))
}

async fn run(mut cfg: Config) -> ExitCode {
    // SIGHUP must never end the gateway, whatever its settings: `systemctl reload` sends it.
    // Registered first, before anything else can take time; tokio keeps a handler for the
    // process's lifetime once one is registered.
    let hangup_log = announce_hangups(cfg.access_file.is_some(), cfg.tls.is_some());
    // SIGTERM and SIGINT start the drain (`shutdown`) from here on.
    let signals = xmpp_rest_gateway::shutdown::OsSignals::new();
    let cert = match cfg.tls.as_ref().map(|(c, k)| server_tls(c, k)).transpose() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let (tls, cert_reloader) = match cert {
        Some((acceptor, cert)) => (Some(acceptor), reload_on_sighup(cert)),
        None => (None, None),
    };
    let policy = match &cfg.access_file {
        Some(path) => Policy::load(path, cfg.require_api_key),
        None => Ok(Policy::open()),
    };
    let policy = match policy {
        Ok(p) => Arc::new(p),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let service = match ServiceCredentials::load(cfg.credentials_file.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let connector = match Connector::new(cfg.upstream.clone()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // A resolver only for a list that names a domain: one of addresses needs no DNS.
    let connector = if connector.upstreams().has_domains() {
        match xmpp_rest_gateway::upstream::srv::Resolver::new(cfg.dns_server) {
            Ok(r) => connector.with_resolver(r),
            Err(e) => {
                eprintln!("error: the DNS resolver for --upstream's domains: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        connector
    };
    let listener = match tokio::net::TcpListener::bind(cfg.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", cfg.listen);
            return ExitCode::FAILURE;
        }
    };
    let admin = match bind_admin(cfg.admin_listen).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        listen = %cfg.listen,
        https = tls.is_some(),
        upstream = %cfg
            .upstream
            .entries
            .iter()
            .map(|e| e.label())
            .collect::<Vec<_>>()
            .join(","),
        "xmpp-rest-gateway listening"
    );
    // Upstream streams: a warm one per account, and logins under way (two per account while a
    // login replaces a stream).
    let upstream = cfg.pool.max_sessions + cfg.pool.max_logins;
    let admin_conns = admin
        .as_ref()
        .map_or(0, |_| http::observe::ADMIN_CONNECTIONS);
    cfg.max_connections =
        http::listener::fit_to_fd_limit(cfg.max_connections, upstream + admin_conns);
    // With a replica key, the streams' resources carry a mark every replica recognises.
    let own = OwnStreams::new(cfg.replica.as_ref().map(|r| r.key.clone()));
    let pool = SessionPool::new(connector, cfg.pool).with_own_streams(own);
    let access = Access::new(pool, cfg.throttle);
    let watcher = cfg
        .access_file
        .is_some()
        .then(|| tokio::spawn(policy.clone().watch()));
    let app = Arc::new(App::new(cfg.clone(), access).with_policy(policy, service));
    let sweeper = tokio::spawn(app.clone().sweep_every(std::time::Duration::from_secs(1)));
    let gw = Arc::new(Gateway::new(cfg, app));
    // The admin listener serves until the API has drained (health and metrics stay available
    // meanwhile), then drains in turn.
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin = admin.map(|l| {
        let stopped = async {
            let _ = admin_stopped.await;
        };
        tokio::spawn(http::observe::serve_admin(gw.clone(), l, stopped))
    });
    http::serve(gw, listener, tls, signals).await;
    drop(stop_admin);
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    sweeper.abort();
    for task in [watcher, cert_reloader, hangup_log].into_iter().flatten() {
        task.abort();
    }
    ExitCode::SUCCESS
}

/// The admin listener: none when off, or when the default address is taken (a second
/// gateway on the host: a warning); an address given that cannot be bound is an error.
async fn bind_admin(admin: AdminListen) -> Result<Option<tokio::net::TcpListener>, String> {
    let (addr, given) = match admin {
        AdminListen::Off => return Ok(None),
        AdminListen::Default(a) => (a, false),
        AdminListen::Given(a) => (a, true),
    };
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => {
            tracing::info!(admin_listen = %addr, "admin listener (metrics, health) listening");
            Ok(Some(l))
        }
        Err(e) if given => Err(format!("cannot listen on --admin-listen {addr}: {e}")),
        Err(e) => {
            tracing::warn!(
                admin_listen = %addr,
                error = %e,
                "no admin listener (metrics): the default address is not available; give \
                 --admin-listen ADDR or off"
            );
            Ok(None)
        }
    }
}

/// The HTTPS acceptor from a PEM certificate chain and key, and the pair it serves.
fn server_tls(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<(tokio_rustls::TlsAcceptor, Arc<ServerCert>), String> {
    let cert = Arc::new(ServerCert::load(cert, key)?);
    Ok((cert.acceptor()?, cert))
}

/// Takes SIGHUP away from its default (ending the process) before anything else. The access
/// file and the HTTPS pair listen for it themselves and say what they reload; with neither,
/// this task says that there was nothing to reload.
fn announce_hangups(access_file: bool, https: bool) -> Option<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::hangup()) {
        Ok(mut hangups) => Some(tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                if !access_file && !https {
                    tracing::info!("SIGHUP: nothing to reload (no access file, no HTTPS)");
                }
            }
        })),
        Err(e) => {
            tracing::warn!("cannot listen for SIGHUP ({e}): a SIGHUP would end the gateway");
            None
        }
    }
}

/// The task that re-reads the pair on SIGHUP (beside the access file's reload, which listens
/// for the same signal). Registered here, before serving, so an early SIGHUP cannot kill us.
fn reload_on_sighup(cert: Arc<ServerCert>) -> Option<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::hangup()) {
        Ok(hangups) => Some(tokio::spawn(cert.reload_on(hangups))),
        Err(e) => {
            tracing::warn!("cannot listen for SIGHUP ({e}): the HTTPS certificate is not reloaded");
            None
        }
    }
}
