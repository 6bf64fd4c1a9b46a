//! The master: keeps the desired state of the cloud and answers everyone over HTTP.
//!
//! Users request instances and supply software; nodes register, declare their partitions,
//! follow their desired state on a long-polled change stream and report back; partitions
//! publish connection parameters and request children as themselves. Every endpoint
//! checks its caller ([`auth::Principal`]).

pub mod auth;
mod data_dir;
mod server;
mod tls;

pub use tls::{SERVER_LIFETIME, TlsOptions, Transport};

pub use server::Limits;
mod actions;
mod apps;
mod billing;
mod conpaas;
mod console;
mod error;
mod joining;
mod metrics;
mod projects;
mod routes;
mod sizes;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use grove_store::{Changed, Db, Elsewhere, Location, Policy, Store, StoreConfig};
use ring::rand::SystemRandom;
use tokio::sync::watch;

pub use error::ApiError;

/// Where the master keeps its state and listens.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Where the store is; SQLite in the data directory when not given.
    pub store: Option<Location>,
    /// How new instances are placed.
    pub placement: Policy,
    pub limits: Limits,
    /// HTTPS with the master's CA, or plain HTTP on loopback.
    pub transport: Transport,
}

impl MasterConfig {
    /// A master on SQLite in `data_dir`, placing the default way, serving plain HTTP (the
    /// embedded default of `grove up`; `grove master` serves HTTPS).
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> MasterConfig {
        MasterConfig {
            listen,
            data_dir,
            store: None,
            placement: Policy::Simple,
            limits: Limits::default(),
            transport: Transport::Http,
        }
    }
}

/// Failures to start the master.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error("the data directory, at {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid key file")]
    BadKey { path: PathBuf },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the system random source failed")]
    Random,
    #[error("{what}: {source}")]
    Ca {
        what: String,
        source: grove_pki::PkiError,
    },
    #[error(
        "the store's CA (fingerprint {stored}) is not the one given (fingerprint {given}): \
         masters sharing a store share its CA"
    )]
    OtherCa { stored: String, given: String },
    #[error(
        "plain HTTP is served on loopback only, and {0} is not: serve HTTPS, or listen on 127.0.0.1 behind a TLS proxy"
    )]
    PlainNotLoopback(SocketAddr),
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] grove_store::StoreError),
}

/// Wakes the nodes waiting on a computer's desired state, and the console's pages.
#[derive(Debug)]
pub(crate) struct ChangeStream {
    senders: Mutex<HashMap<i64, watch::Sender<u64>>>,
    /// Bumped by every change this master makes or hears of: the console's live pages
    /// follow it (`console/live.rs`), whatever changed.
    pulse: watch::Sender<u64>,
}

impl Default for ChangeStream {
    fn default() -> ChangeStream {
        ChangeStream {
            senders: Mutex::default(),
            pulse: watch::channel(0).0,
        }
    }
}

impl ChangeStream {
    /// Something changed that a page may show (a report, a publication, an application).
    pub(crate) fn pulse(&self) {
        self.pulse.send_modify(|n| *n += 1);
    }

    pub(crate) fn follow(&self) -> watch::Receiver<u64> {
        self.pulse.subscribe()
    }

    pub(crate) fn subscribe(&self, computer: i64) -> watch::Receiver<u64> {
        let mut senders = lock(&self.senders);
        senders
            .entry(computer)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Marks the desired state of these computers as changed: wakes their waiting nodes
    /// and invalidates their cached documents.
    pub(crate) fn notify(&self, changed: &Changed) {
        for computer in changed.computers.iter().chain(&changed.documents) {
            self.touch(*computer);
        }
        self.pulse();
    }

    /// Some changes may have been missed: every computer's document is stale.
    pub(crate) fn touch_all(&self) {
        self.pulse();
        for sender in lock(&self.senders).values() {
            sender.send_modify(|generation| *generation += 1);
        }
    }

    pub(crate) fn touch(&self, computer: i64) {
        let mut senders = lock(&self.senders);
        let sender = senders
            .entry(computer)
            .or_insert_with(|| watch::channel(0).0);
        sender.send_modify(|generation| *generation += 1);
    }

    /// How many times this computer's desired state changed since the master started.
    pub(crate) fn generation(&self, computer: i64) -> u64 {
        *self.subscribe(computer).borrow()
    }
}

/// What the hot paths read again and again: the desired state documents of computers (by
/// change generation) and the rows behind tokens and references (which never change).
#[derive(Debug, Default)]
pub(crate) struct Caches {
    desired: Mutex<HashMap<i64, CachedDesired>>,
    principals: Mutex<HashMap<i64, grove_store::PrincipalRow>>,
    computers: Mutex<HashMap<i64, grove_store::ComputerRow>>,
    references: Mutex<HashMap<String, i64>>,
}

#[derive(Debug, Clone)]
pub(crate) struct CachedDesired {
    pub(crate) generation: u64,
    pub(crate) revision: i64,
    pub(crate) body: axum::body::Bytes,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The master's shared state.
#[derive(Debug)]
pub struct Master<S> {
    pub(crate) store: S,
    pub(crate) partitions: auth::PartitionKeys,
    pub(crate) changes: ChangeStream,
    pub(crate) caches: Caches,
    pub(crate) rng: SystemRandom,
    /// The certificate authority, when the master serves HTTPS.
    pub(crate) ca: Option<Arc<grove_pki::Ca>>,
    /// Set when the master stops, so that long polls answer at once instead of holding
    /// the shutdown up.
    pub(crate) closing: Arc<watch::Sender<bool>>,
    pub(crate) apps: apps::Apps,
    pub(crate) actions: actions::Ended,
    pub(crate) metrics: Arc<metrics::Metrics>,
    pub(crate) sessions: console::Sessions,
}

impl<S: Store> Master<S> {
    pub(crate) fn secret(&self) -> Result<String, ApiError> {
        auth::random_secret(&self.rng)
            .map_err(|_| ApiError::internal("the system random source failed"))
    }

    /// A user or the admin (their token hash never changes, so it is cached).
    pub(crate) async fn principal(
        &self,
        id: i64,
    ) -> Result<Option<grove_store::PrincipalRow>, ApiError> {
        if let Some(row) = lock(&self.caches.principals).get(&id) {
            return Ok(Some(row.clone()));
        }
        let row = self.store.principal(id).await?;
        if let Some(row) = &row {
            lock(&self.caches.principals).insert(id, row.clone());
        }
        Ok(row)
    }

    /// A computer's identity: id, reference, owner and token hash (its revision, its
    /// certificate's serial and its project are not kept up to date here).
    pub(crate) async fn computer(
        &self,
        id: i64,
    ) -> Result<Option<grove_store::ComputerRow>, ApiError> {
        if let Some(row) = lock(&self.caches.computers).get(&id) {
            return Ok(Some(row.clone()));
        }
        let row = self.store.computer(id).await?;
        if let Some(row) = &row {
            lock(&self.caches.computers).insert(id, row.clone());
            lock(&self.caches.references).insert(row.reference.clone(), id);
        }
        Ok(row)
    }

    pub(crate) async fn computer_by_reference(
        &self,
        reference: &str,
    ) -> Result<Option<grove_store::ComputerRow>, ApiError> {
        let known = lock(&self.caches.references).get(reference).copied();
        if let Some(id) = known {
            return self.computer(id).await;
        }
        match self
            .store
            .computer_by_reference(reference.to_owned())
            .await?
        {
            Some(row) => self.computer(row.id).await,
            None => Ok(None),
        }
    }

    pub(crate) fn cached_desired(&self, computer: i64, generation: u64) -> Option<CachedDesired> {
        lock(&self.caches.desired)
            .get(&computer)
            .filter(|c| c.generation == generation)
            .cloned()
    }

    /// Keeps a document unless its computer changed while it was built.
    pub(crate) fn cache_desired(&self, computer: i64, document: CachedDesired) {
        let generation = document.generation;
        lock(&self.caches.desired).insert(computer, document);
        if self.changes.generation(computer) != generation {
            lock(&self.caches.desired).remove(&computer);
        }
    }
}

/// A running master.
#[derive(Debug)]
pub struct RunningMaster {
    pub addr: SocketAddr,
    /// The listener that requires client certificates, if asked for.
    pub mtls_addr: Option<SocketAddr>,
    pub admin_token_path: PathBuf,
    /// Where the store is (a PostgreSQL URL without its password).
    pub store: String,
    /// The CA's certificate file and fingerprint, when the master serves HTTPS.
    pub ca: Option<(PathBuf, String)>,
    /// Each listener's stop signal and task.
    servers: Vec<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
    closing: Arc<watch::Sender<bool>>,
}

impl RunningMaster {
    pub fn url(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The URL of the listener that requires client certificates, if any.
    pub fn mtls_url(&self) -> Option<String> {
        self.mtls_addr.map(|addr| format!("https://{addr}"))
    }

    /// Stops accepting requests and waits for the ones in flight.
    pub async fn stop(self) {
        self.closing.send_replace(true);
        let mut tasks = Vec::new();
        for (tx, task) in self.servers {
            let _ = tx.send(());
            tasks.push(task);
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}

fn write_private(path: &Path, contents: &str) -> Result<(), MasterError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let write_error = |source| MasterError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(write_error)?;
    file.write_all(contents.as_bytes()).map_err(write_error)?;
    file.sync_all().map_err(write_error)
}

/// The key partition tokens derive from: kept in the store, so that every master sharing
/// it derives the same tokens. A key file an older Grove left in the data directory is
/// what this master proposes, so that its partitions' tokens keep working.
async fn master_key(
    data_dir: &Path,
    store: &Db,
    rng: &SystemRandom,
) -> Result<Vec<u8>, MasterError> {
    let path = data_dir.join("master.key");
    let proposed = match std::fs::read_to_string(&path) {
        Ok(text) => {
            let text = text.trim();
            if text.len() < 64 {
                return Err(MasterError::BadKey { path });
            }
            text.to_owned()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            auth::random_secret(rng).map_err(|_| MasterError::Random)?
        }
        Err(source) => return Err(MasterError::Read { path, source }),
    };
    Ok(store.master_key(proposed).await?.into_bytes())
}

fn store_location(config: &MasterConfig) -> Location {
    config
        .store
        .clone()
        .unwrap_or_else(|| Location::Sqlite(config.data_dir.join("master.sqlite")))
}

/// Opens the store (`config.store`, or SQLite in the data directory), creating the admin
/// token at first start.
pub async fn open(config: &MasterConfig) -> Result<Arc<Master<Db>>, MasterError> {
    let data_dir = &config.data_dir;
    let location = store_location(config);
    let sqlite = match &location {
        Location::Sqlite(path) => Some(path.as_path()),
        Location::Postgres(_) => None,
    };
    data_dir::prepare(data_dir, sqlite)?;
    let store = Db::open(&StoreConfig {
        location,
        placement: config.placement,
    })
    .await?;
    // The WAL and shared-memory files exist now.
    data_dir::narrow_all(data_dir)?;
    let rng = SystemRandom::new();
    let key = master_key(data_dir, &store, &rng).await?;
    let token_path = data_dir.join("admin.token");
    let secret = auth::random_secret(&rng).map_err(|_| MasterError::Random)?;
    if let Some(admin) = store.ensure_admin(auth::hash_secret(&secret)).await? {
        write_private(
            &token_path,
            &format!("{}\n", auth::user_token(admin, &secret)),
        )?;
        tracing::info!(path = %token_path.display(), "admin token written");
    } else if !token_path.exists() {
        tracing::warn!(path = %token_path.display(), "the admin token file is missing; the admin token is where the master that created the store wrote it");
    }
    let ca = match &config.transport {
        Transport::Https(options) => {
            let ca = tls::certificate_authority(&store, options.ca.as_ref(), &rng).await?;
            std::fs::write(data_dir.join("ca.pem"), ca.certificate_pem()).map_err(|source| {
                MasterError::Write {
                    path: data_dir.join("ca.pem"),
                    source,
                }
            })?;
            write_private(&data_dir.join("ca.key"), ca.key_pem())?;
            Some(Arc::new(ca))
        }
        Transport::Http => None,
    };
    let master = Arc::new(Master {
        store,
        partitions: auth::PartitionKeys::new(&key),
        changes: ChangeStream::default(),
        caches: Caches::default(),
        rng,
        ca,
        closing: Arc::new(watch::channel(false).0),
        apps: apps::Apps::default(),
        actions: actions::Ended::default(),
        metrics: Arc::default(),
        sessions: console::Sessions::new(&key),
    });
    tokio::spawn(follow_elsewhere(Arc::downgrade(&master)));
    Ok(master)
}

/// Wakes this master's long polls and drops its cached documents for what other masters
/// sharing the store change.
async fn follow_elsewhere(master: std::sync::Weak<Master<Db>>) {
    let Some(mut changes) = master.upgrade().map(|m| m.store.elsewhere()) else {
        return;
    };
    loop {
        let event = changes.recv().await;
        let Some(master) = master.upgrade() else {
            return;
        };
        match event {
            Ok(Elsewhere::Changed(changed)) => {
                master.changes.notify(&changed);
                master.actions.notify(&changed);
                for id in &changed.applications {
                    master.apps.kick(*id);
                }
            }
            Ok(Elsewhere::Lost) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                master.changes.touch_all();
                master.apps.kick_all();
                master.actions.kick();
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Starts the master on `config.listen` and returns once it accepts connections.
pub async fn start(config: &MasterConfig) -> Result<RunningMaster, MasterError> {
    if matches!(config.transport, Transport::Http) && !config.listen.ip().is_loopback() {
        return Err(MasterError::PlainNotLoopback(config.listen));
    }
    let master = open(config).await?;
    let (tls, mtls) = match (&config.transport, &master.ca) {
        (Transport::Https(options), Some(ca)) => {
            let names = |listen| tls::server_names(listen, &options.names);
            let main = tls::Tls::new(ca, names(config.listen), false)?;
            let mutual = match options.mtls_listen {
                Some(listen) => Some((listen, tls::Tls::new(ca, names(listen), true)?)),
                None => None,
            };
            (Some(main), mutual)
        }
        _ => {
            tracing::warn!(
                "serving plain HTTP: tokens travel in clear beyond this machine's loopback"
            );
            (None, None)
        }
    };
    let ca = master
        .ca
        .as_ref()
        .map(|ca| (config.data_dir.join("ca.pem"), ca.fingerprint()));
    let (listener, addr) = bind(config.listen).await?;
    let mutual = match mtls {
        Some((listen, tls)) => Some((bind(listen).await?, tls)),
        None => None,
    };
    let closing = Arc::clone(&master.closing);
    let app = routes::router(master);
    let mut servers = Vec::new();
    let mut mtls_addr = None;
    if let Some(((listener, mutual_addr), tls)) = mutual {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(
            listener,
            app.clone(),
            config.limits,
            Some(tls),
            rx,
        ));
        tracing::info!(addr = %mutual_addr, "master listening, client certificates required");
        servers.push((tx, task));
        mtls_addr = Some(mutual_addr);
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server::serve(listener, app, config.limits, tls, rx));
    servers.push((tx, task));
    tracing::info!(%addr, "master listening");
    Ok(RunningMaster {
        addr,
        mtls_addr,
        admin_token_path: config.data_dir.join("admin.token"),
        store: store_location(config).to_string(),
        ca,
        servers,
        closing,
    })
}

async fn bind(listen: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), MasterError> {
    let error = |source| MasterError::Listen {
        addr: listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(error)?;
    let addr = listener.local_addr().map_err(error)?;
    Ok((listener, addr))
}
