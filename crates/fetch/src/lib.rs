//! Reading profiles and sources: local files, `file://` URLs and `http(s)://` URLs.
//!
//! This is the IO side the profile engine leaves to its caller: [`Fetcher`] implements
//! [`grove_profile::Loader`].

use std::io::Read;
use std::time::Duration;

use grove_profile::LoadError;

/// The largest profile accepted over HTTP: profiles are text, not archives.
const MAX_PROFILE_BYTES: u64 = 16 * 1024 * 1024;

/// Reads files and fetches http(s) URLs.
#[derive(Debug, Clone)]
pub struct Fetcher {
    agent: ureq::Agent,
}

impl Default for Fetcher {
    fn default() -> Fetcher {
        Fetcher::new(Duration::from_secs(30))
    }
}

impl Fetcher {
    /// A fetcher whose HTTP requests give up after `timeout`.
    pub fn new(timeout: Duration) -> Fetcher {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            // Statuses are mapped to errors below, with the URL in the message.
            .http_status_as_error(false)
            .build();
        Fetcher {
            agent: config.into(),
        }
    }

    /// Copies what `location` (a path, `file://` or `http(s)://` URL) holds into `writer`;
    /// returns the number of bytes.
    pub fn download(&self, location: &str, writer: &mut dyn std::io::Write) -> Result<u64, String> {
        if location.starts_with("http://") || location.starts_with("https://") {
            let response = self
                .agent
                .get(location)
                .call()
                .map_err(|e| format!("cannot fetch {location}: {e}"))?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("cannot fetch {location}: http status {status}"));
            }
            let mut reader = response.into_body().into_reader();
            return std::io::copy(&mut reader, writer)
                .map_err(|e| format!("cannot fetch {location}: {e}"));
        }
        let path = location.strip_prefix("file://").unwrap_or(location);
        if grove_profile::is_url(path) {
            return Err(format!("cannot fetch {location}: unsupported url scheme"));
        }
        let mut file = std::fs::File::open(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        std::io::copy(&mut file, writer).map_err(|e| format!("cannot read {path}: {e}"))
    }

    fn fetch_http(&self, url: &str) -> Result<String, LoadError> {
        let response = self
            .agent
            .get(url)
            .call()
            .map_err(|e| LoadError::Failed(e.to_string()))?;
        let status = response.status();
        if status == 404 || status == 410 {
            return Err(LoadError::NotFound);
        }
        if !status.is_success() {
            return Err(LoadError::Failed(format!("http status {status}")));
        }
        let mut body = Vec::new();
        response
            .into_body()
            .into_reader()
            .take(MAX_PROFILE_BYTES + 1)
            .read_to_end(&mut body)
            .map_err(|e| LoadError::Failed(e.to_string()))?;
        if body.len() as u64 > MAX_PROFILE_BYTES {
            return Err(LoadError::Failed(format!(
                "larger than {MAX_PROFILE_BYTES} bytes"
            )));
        }
        String::from_utf8(body).map_err(|_| LoadError::Failed("not valid utf-8".to_owned()))
    }
}

fn read_file(path: &str) -> Result<String, LoadError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            String::from_utf8(bytes).map_err(|_| LoadError::Failed("not valid utf-8".to_owned()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(LoadError::NotFound),
        Err(e) => Err(LoadError::Failed(e.to_string())),
    }
}

impl grove_profile::Loader for Fetcher {
    fn load(&self, location: &str) -> Result<String, LoadError> {
        if let Some(path) = location.strip_prefix("file://") {
            return read_file(path);
        }
        if location.starts_with("http://") || location.starts_with("https://") {
            return self.fetch_http(location);
        }
        if grove_profile::is_url(location) {
            let scheme = location.split("://").next().unwrap_or_default();
            return Err(LoadError::Failed(format!(
                "unsupported url scheme {scheme}"
            )));
        }
        read_file(location)
    }

    /// A local path as Python's `os.path` sees it (links followed).
    fn probe(&self, path: &str) -> Option<grove_profile::PathKind> {
        if grove_profile::is_url(path) {
            return None;
        }
        let meta = std::fs::metadata(path).ok()?;
        Some(if meta.is_dir() {
            grove_profile::PathKind::Directory
        } else {
            grove_profile::PathKind::File
        })
    }
}
