//! `grove simple-http-server`: the file server `slapos.cookbook:simplehttpserver`
//! starts, serving a directory of the partition over HTTP or HTTPS, on an address or a
//! Unix socket; with `--allow-write`, a POST of `path` and `content` (form-encoded) writes
//! below that directory.

use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use clap::Args;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};

#[derive(Debug, Args)]
pub(crate) struct HttpServerArgs {
    /// The directory served.
    #[arg(long)]
    base_path: PathBuf,
    /// Listen on this host (with --port).
    #[arg(long, requires = "port")]
    host: Option<String>,
    #[arg(long)]
    port: Option<u16>,
    /// Listen on this Unix socket instead.
    #[arg(long, conflicts_with_all = ["host", "abstract_name"])]
    socket_path: Option<PathBuf>,
    /// Listen on this abstract Unix socket instead.
    #[arg(long = "abstract", conflicts_with = "host")]
    abstract_name: Option<String>,
    /// The access log.
    #[arg(long)]
    log_file: PathBuf,
    /// Serve HTTPS with this certificate (PEM) and --key-file.
    #[arg(long, requires = "key_file")]
    cert_file: Option<PathBuf>,
    #[arg(long, requires = "cert_file")]
    key_file: Option<PathBuf>,
    /// Accept POSTs that write files below the directory.
    #[arg(long)]
    allow_write: bool,
}

struct Served {
    base: PathBuf,
    allow_write: bool,
    log: std::sync::Mutex<std::fs::File>,
}

impl Served {
    fn log(&self, line: &str) {
        use std::io::Write;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        if let Ok(mut file) = self.log.lock() {
            // The log is best effort: a full disk must not stop the serving.
            let _ = writeln!(file, "{now} {line}");
        }
    }

    /// The file a URL path names, below the base: `..` and absolute parts refused.
    fn local(&self, url_path: &str) -> Option<PathBuf> {
        let decoded = percent_decode(url_path)?;
        let mut path = self.base.clone();
        for component in Path::new(decoded.trim_start_matches('/')).components() {
            match component {
                Component::Normal(part) => path.push(part),
                Component::CurDir => {}
                _ => return None,
            }
        }
        Some(path)
    }
}

fn percent_decode(text: &str) -> Option<String> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(|t| t.into_owned())
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" | "log" | "cfg" | "conf" => "text/plain; charset=utf-8",
        "json" => "application/json",
        "css" => "text/css",
        "js" => "text/javascript",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        _ => "application/octet-stream",
    }
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn listing(dir: &Path, url_path: &str) -> std::io::Result<Response> {
    let mut names = Vec::new();
    let mut entries = tokio::fs::read_dir(dir).await?;
    while let Some(entry) = entries.next_entry().await? {
        let mut name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().await?.is_dir() {
            name.push('/');
        }
        names.push(name);
    }
    names.sort();
    let items: String = names
        .iter()
        .map(|n| format!("<li><a href=\"{0}\">{0}</a></li>\n", escape(n)))
        .collect();
    let title = escape(url_path);
    Ok((
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        format!("<!DOCTYPE html>\n<title>{title}</title>\n<h1>{title}</h1>\n<ul>\n{items}</ul>\n"),
    )
        .into_response())
}

async fn get(served: &Served, url_path: &str, head: bool) -> Response {
    let Some(path) = served.local(url_path) else {
        return text(StatusCode::FORBIDDEN, "Forbidden");
    };
    let Ok(meta) = tokio::fs::metadata(&path).await else {
        return text(StatusCode::NOT_FOUND, "Not found");
    };
    let (path, meta) = if meta.is_dir() {
        if !url_path.ends_with('/') {
            return (
                StatusCode::MOVED_PERMANENTLY,
                [(header::LOCATION, format!("{url_path}/"))],
            )
                .into_response();
        }
        let index = path.join("index.html");
        match tokio::fs::metadata(&index).await {
            Ok(m) if m.is_file() => (index, m),
            _ => {
                return listing(&path, url_path)
                    .await
                    .unwrap_or_else(|e| text(StatusCode::FORBIDDEN, format!("cannot list: {e}")));
            }
        }
    } else {
        (path, meta)
    };
    let kind = content_type(&path);
    if head {
        return (
            [
                (header::CONTENT_TYPE, kind.to_owned()),
                (header::CONTENT_LENGTH, meta.len().to_string()),
            ],
            Body::empty(),
        )
            .into_response();
    }
    match tokio::fs::read(&path).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, kind)], bytes).into_response(),
        Err(e) => text(StatusCode::FORBIDDEN, format!("cannot read: {e}")),
    }
}

/// A form-encoded POST: `path`, `content`, and `clear` (`1`, the default: replace; else
/// append).
async fn post(served: &Served, headers: &HeaderMap, body: Bytes) -> Response {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send application/x-www-form-urlencoded",
        );
    }
    let mut path = None;
    let mut content = None;
    let mut clear = true;
    for (key, value) in url::form_urlencoded::parse(&body) {
        match key.as_ref() {
            "path" => path = Some(value.into_owned()),
            "content" => content = Some(value.into_owned()),
            "clear" => clear = value == "1",
            _ => {}
        }
    }
    let (Some(name), Some(content)) = (path, content) else {
        return text(StatusCode::BAD_REQUEST, "path and content are required");
    };
    let Some(target) = served.local(&name) else {
        return text(StatusCode::FORBIDDEN, "Forbidden");
    };
    let written = async {
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(clear)
            .append(!clear)
            .open(&target)
            .await?;
        tokio::io::AsyncWriteExt::write_all(&mut file, content.as_bytes()).await
    };
    match written.await {
        Ok(()) => text(StatusCode::OK, format!("Content written to {name}")),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot write {name}: {e}"),
        ),
    }
}

async fn handle(State(served): State<Arc<Served>>, request: Request) -> Response {
    let method = request.method().clone();
    let url_path = request.uri().path().to_owned();
    let headers = request.headers().clone();
    let response = match method {
        Method::GET => get(&served, &url_path, false).await,
        Method::HEAD => get(&served, &url_path, true).await,
        Method::POST if served.allow_write => {
            match axum::body::to_bytes(request.into_body(), 64 * 1024 * 1024).await {
                Ok(body) => post(&served, &headers, body).await,
                Err(e) => text(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {e}"),
                ),
            }
        }
        _ => text(StatusCode::FORBIDDEN, "Forbidden"),
    };
    served.log(&format!(
        "\"{method} {url_path}\" {}",
        response.status().as_u16()
    ));
    response
}

fn tls(cert: &Path, key: &Path) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|c| c.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read the certificates in {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read the key in {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate and key do not go together")?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn serve<I>(io: I, router: axum::Router)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(30))
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(router));
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Serves one connection in a task of its own, after its TLS handshake if any.
fn spawn<I>(io: I, acceptor: Option<tokio_rustls::TlsAcceptor>, router: axum::Router)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        match acceptor {
            None => serve(io, router).await,
            Some(acceptor) => match acceptor.accept(io).await {
                Ok(stream) => serve(stream, router).await,
                Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
            },
        }
    });
}

enum Listening {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

fn listen(args: &HttpServerArgs) -> anyhow::Result<Listening> {
    if let (Some(host), Some(port)) = (&args.host, args.port) {
        let listener = std::net::TcpListener::bind((host.as_str(), port))
            .with_context(|| format!("cannot listen on {host}:{port}"))?;
        listener.set_nonblocking(true)?;
        return Ok(Listening::Tcp(tokio::net::TcpListener::from_std(listener)?));
    }
    let listener = match (&args.socket_path, &args.abstract_name) {
        (Some(path), None) => {
            // A socket left by a previous run would refuse the bind.
            if std::fs::symlink_metadata(path)
                .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
            {
                std::fs::remove_file(path)?;
            }
            std::os::unix::net::UnixListener::bind(path)
                .with_context(|| format!("cannot listen on {}", path.display()))?
        }
        (None, Some(name)) => {
            use std::os::linux::net::SocketAddrExt;
            let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            std::os::unix::net::UnixListener::bind_addr(&address)
                .with_context(|| format!("cannot listen on abstract socket {name}"))?
        }
        _ => anyhow::bail!("give --host and --port, --socket-path or --abstract"),
    };
    listener.set_nonblocking(true)?;
    Ok(Listening::Unix(tokio::net::UnixListener::from_std(
        listener,
    )?))
}

pub(crate) fn run(args: HttpServerArgs) -> anyhow::Result<ExitCode> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.log_file)
        .with_context(|| format!("cannot open the log {}", args.log_file.display()))?;
    let base = args
        .base_path
        .canonicalize()
        .with_context(|| format!("cannot serve {}", args.base_path.display()))?;
    let served = Arc::new(Served {
        base,
        allow_write: args.allow_write,
        log: std::sync::Mutex::new(log),
    });
    let router = axum::Router::new().fallback(handle).with_state(served);
    let acceptor = match (&args.cert_file, &args.key_file) {
        (Some(cert), Some(key)) => Some(tls(cert, key)?),
        _ => None,
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listening = listen(&args)?;
        tracing::info!(base = %args.base_path.display(), "serving files");
        loop {
            match &listening {
                Listening::Tcp(listener) => {
                    if let Ok((stream, _)) = listener.accept().await {
                        spawn(stream, acceptor.clone(), router.clone());
                    }
                }
                Listening::Unix(listener) => {
                    if let Ok((stream, _)) = listener.accept().await {
                        spawn(stream, acceptor.clone(), router.clone());
                    }
                }
            }
        }
    })
}
