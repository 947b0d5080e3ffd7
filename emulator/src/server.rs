//! Startup and the accept loop: state directory, TLS, seeding, persistence, the
//! emulator.env handshake file and clean shutdown on SIGTERM/SIGINT.

use std::io::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rand::RngCore as _;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;

use crate::api::{self, AppState};
use crate::auth::{AccessPolicies, TokenIssuer};
use crate::cli::Opts;
use crate::faults::{Faults, Stats};
use crate::files::{ensure_private_dir, with_path, write_atomic, EnvFile};
use crate::log::Logger;
use crate::tls;
use crate::vault::{SetParams, Vault};

const ENV_FILE: &str = "emulator.env";
const CLIENT_SECRET_FILE: &str = "client-secret";
const VAULT_FILE: &str = "vault.json";
/// Coalesces bursts of writes (a 1000-secret load) into a few vault.json rewrites.
const PERSIST_DEBOUNCE: Duration = Duration::from_millis(200);
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub enum StartError {
    /// Refused configuration: exit code 2.
    Usage(String),
    Io(io::Error),
}

impl From<io::Error> for StartError {
    fn from(e: io::Error) -> Self {
        StartError::Io(e)
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

fn load_vault(path: &Path, persist: bool) -> io::Result<Vault> {
    if !persist || !path.exists() {
        return Ok(Vault::default());
    }
    let text = std::fs::read(path).map_err(with_path(path))?;
    serde_json::from_slice(&text).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not a kv-emulator vault file: {e}", path.display()),
        )
    })
}

fn save_vault(state: &AppState, path: &Path) -> io::Result<()> {
    let json = serde_json::to_vec(&*state.vault()).map_err(io::Error::other)?;
    write_atomic(path, &json, 0o600).map_err(with_path(path))
}

fn seed(vault: &mut Vault, opts: &Opts) -> Result<(), StartError> {
    let names = opts
        .seeds
        .iter()
        .cloned()
        .chain((0..opts.seed_count).map(|i| format!("bench-{i:04}")));
    let now = crate::now();
    for name in names {
        // With --persist a restart must not add a new version to every seeded secret.
        if vault.contains(&name) {
            continue;
        }
        let params = SetParams {
            value: Some(random_hex(32)),
            ..Default::default()
        };
        vault
            .set(&name, params, now)
            .map_err(|e| StartError::Usage(format!("cannot seed secret {name:?}: {e:?}")))?;
    }
    Ok(())
}

fn advertised_host(bind: IpAddr) -> String {
    match bind {
        ip if ip.is_unspecified() => Ipv4Addr::LOCALHOST.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

async fn shutdown_signal() -> io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

pub async fn run(opts: Opts) -> Result<(), StartError> {
    if !opts.bind.is_loopback() && !opts.allow_remote {
        return Err(StartError::Usage(format!(
            "refusing to listen on non-loopback address {}: pass --allow-remote to expose the emulator",
            opts.bind
        )));
    }
    let state_dir: PathBuf =
        ensure_private_dir(&opts.state_dir).map_err(with_path(&opts.state_dir))?;
    let env_path = state_dir.join(ENV_FILE);
    // A stale file would point waiting tests at a previous run's port.
    match std::fs::remove_file(&env_path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(with_path(&env_path)(e).into()),
        _ => {}
    }
    let acceptor = tls::acceptor(&state_dir)?;
    let vault_path = state_dir.join(VAULT_FILE);
    let mut vault = load_vault(&vault_path, opts.persist)?;
    seed(&mut vault, &opts)?;

    let listener = TcpListener::bind(SocketAddr::new(opts.bind, opts.port))
        .await
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot listen on {}:{}: {e}", opts.bind, opts.port),
            )
        })?;
    let port = listener.local_addr()?.port();
    let base = format!("https://{}:{port}", advertised_host(opts.bind));

    let dirty = opts.persist.then(|| Arc::new(Notify::new()));
    let state = Arc::new(AppState {
        vault: Mutex::new(vault),
        dirty: dirty.clone(),
        issuer: TokenIssuer::new(&opts.tenant_id),
        policies: AccessPolicies::new(&opts.permissions),
        faults: Faults::from_opts(&opts),
        stats: Stats::default(),
        tenant: opts.tenant_id.clone(),
        identity_header: random_hex(16),
        client_secret: random_hex(24),
        default_base: base.clone(),
        log: Logger::stderr(),
    });
    if opts.persist {
        save_vault(&state, &vault_path)?;
    }

    let secret_path = state_dir.join(CLIENT_SECRET_FILE);
    write_atomic(&secret_path, state.client_secret.as_bytes(), 0o600)
        .map_err(with_path(&secret_path))?;
    let env = EnvFile {
        base_url: &base,
        ca_file: &state_dir.join(tls::CA_FILE),
        tenant: &state.tenant,
        identity_header: &state.identity_header,
    }
    .render();
    // Written last: its appearance tells waiting tests that everything else is ready.
    write_atomic(&env_path, env.as_bytes(), 0o600).map_err(with_path(&env_path))?;
    {
        let mut out = io::stdout().lock();
        writeln!(out, "kv-emulator listening on {base}")?;
        out.flush()?;
    }

    if let Some(dirty) = dirty {
        let state = state.clone();
        let path = vault_path.clone();
        tokio::spawn(async move {
            loop {
                dirty.notified().await;
                tokio::time::sleep(PERSIST_DEBOUNCE).await;
                if let Err(e) = save_vault(&state, &path) {
                    eprintln!("kv-emulator: warning: cannot persist the vault: {e}");
                }
            }
        });
    }

    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            res = &mut shutdown => {
                res?;
                break;
            }
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Typically EMFILE under load; back off instead of spinning.
                        eprintln!("kv-emulator: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let state = state.clone();
                tokio::spawn(async move {
                    let _ = tcp.set_nodelay(true);
                    let Ok(Ok(tls)) = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await else {
                        return;
                    };
                    let service = service_fn(move |req| api::handle(state.clone(), req, peer));
                    // Errors here are client disconnects or injected drops; nothing to report.
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        }
    }

    if opts.persist {
        save_vault(&state, &vault_path)?;
    }
    let _ = std::fs::remove_file(&env_path);
    Ok(())
}
