//! A partition's own certificate authority: `slapos.cookbook:certificate_authority` and
//! `slapos.cookbook:certificate_authority.request`, with [`grove_pki`] instead of openssl.
//!
//! SlapOS's CA is a service that signs the requests it finds in a directory, so a
//! service that needs a certificate waits for it (up to a minute). Grove's request recipe
//! issues the certificate as it installs (making the CA first if no CA part has run
//! yet), and the CA's service, `grove certificate-authority`, signs what is left in the
//! requests directory (requests written by other means), as SlapOS's does.
//!
//! Files, as SlapOS lays them out: the CA's certificate `ca-dir/cacert.pem` and key
//! `ca-private/cakey.pem`; for a request named `name`, the key `ca-private/H.key` and the
//! certificate `ca-certs/H.crt`, `H` the SHA-512 of the name in hex; the requester's
//! `key-file` and `cert-file` are links to them.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use grove_profile::Resolved;
use serde::{Deserialize, Serialize};

use crate::builtin::{arg, grove_script, shell_quote, write_file};
use crate::{Context, Options, Recipe, Registry};

pub(crate) fn register(registry: &mut Registry) {
    registry.add(
        "slapos.cookbook:certificate_authority",
        Box::new(CertificateAuthority),
    );
    registry.add(
        "slapos.cookbook:certificate_authority.request",
        Box::new(CertificateRequest),
    );
}

/// How long a certificate of a partition's CA lasts (SlapOS's openssl configuration
/// gives ten years, as here).
const LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Where a partition's CA keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub ca_dir: PathBuf,
    pub ca_private: PathBuf,
    pub ca_certs: PathBuf,
    pub requests: PathBuf,
}

/// A request left in the requests directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Pending {
    name: String,
    key_file: PathBuf,
    certificate_file: PathBuf,
}

/// Why the CA could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the CA in {}: {source}", path.display())]
    Pki {
        path: PathBuf,
        source: grove_pki::PkiError,
    },
    #[error("request {}: {message}", path.display())]
    Request { path: PathBuf, message: String },
    #[error(transparent)]
    Write(#[from] crate::builtin::WriteError),
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CaError {
    let path = path.to_owned();
    move |source| CaError::Io { what, path, source }
}

/// Creates `dir` (and its parents) with `mode` if it is missing.
fn directory(dir: &Path, mode: u32) -> Result<(), CaError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(io("create", dir))
}

fn hash(name: &str) -> String {
    ring::digest::digest(&ring::digest::SHA512, name.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Layout {
    fn ca_certificate(&self) -> PathBuf {
        self.ca_dir.join("cacert.pem")
    }

    fn ca_key(&self) -> PathBuf {
        self.ca_private.join("cakey.pem")
    }

    /// The key and certificate a request named `name` gets.
    pub fn issued(&self, name: &str) -> (PathBuf, PathBuf) {
        let hash = hash(name);
        (
            self.ca_private.join(format!("{hash}.key")),
            self.ca_certs.join(format!("{hash}.crt")),
        )
    }

    /// The CA, made now if there is none yet (its key private to the partition's user).
    pub fn open_or_create(&self) -> Result<grove_pki::Ca, CaError> {
        directory(&self.ca_dir, 0o755)?;
        directory(&self.ca_private, 0o700)?;
        directory(&self.ca_certs, 0o755)?;
        directory(&self.requests, 0o755)?;
        let (cert_path, key_path) = (self.ca_certificate(), self.ca_key());
        let pki = |source| CaError::Pki {
            path: self.ca_dir.clone(),
            source,
        };
        if cert_path.exists() && key_path.exists() {
            let cert = std::fs::read_to_string(&cert_path).map_err(io("read", &cert_path))?;
            let key = std::fs::read_to_string(&key_path).map_err(io("read", &key_path))?;
            return grove_pki::Ca::from_pem(&cert, &key).map_err(pki);
        }
        let rng = ring::rand::SystemRandom::new();
        let ca = grove_pki::Ca::create("partition CA", SystemTime::now(), &rng).map_err(pki)?;
        write_file(&key_path, ca.key_pem().as_bytes(), 0o600)?;
        write_file(&cert_path, ca.certificate_pem().as_bytes(), 0o644)?;
        Ok(ca)
    }

    /// Issues the key and certificate of `name` unless they are there already.
    fn issue(&self, ca: &grove_pki::Ca, name: &str) -> Result<(PathBuf, PathBuf), CaError> {
        let (key, certificate) = self.issued(name);
        if key.exists() && certificate.exists() {
            return Ok((key, certificate));
        }
        let rng = ring::rand::SystemRandom::new();
        let issued = ca
            .issue_named(name, SystemTime::now(), LIFETIME, &rng)
            .map_err(|source| CaError::Pki {
                path: self.ca_dir.clone(),
                source,
            })?;
        // The key first: whoever waits for the certificate finds both.
        write_file(&key, issued.key_pem.as_bytes(), 0o600)?;
        write_file(&certificate, issued.certificate_pem.as_bytes(), 0o644)?;
        Ok((key, certificate))
    }

    /// Signs every request of the requests directory not signed yet; returns how many.
    /// The CA is read only when there is something to sign: the service calls this every
    /// second. [`Layout::open_or_create`] makes the directories first.
    pub fn issue_pending(&self) -> Result<usize, CaError> {
        let mut ca = None;
        let mut issued = 0;
        let list = std::fs::read_dir(&self.requests).map_err(io("read", &self.requests))?;
        let mut paths: Vec<PathBuf> = list.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            if !path.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(io("read", &path))?;
            let pending: Pending = serde_json::from_str(&text).map_err(|e| CaError::Request {
                path: path.clone(),
                message: e.to_string(),
            })?;
            let (key, certificate) = self.issued(&pending.name);
            if key.exists() && certificate.exists() {
                continue;
            }
            let ca = match &mut ca {
                Some(ca) => ca,
                None => ca.insert(self.open_or_create()?),
            };
            self.issue(ca, &pending.name)?;
            issued += 1;
        }
        Ok(issued)
    }
}

fn layout(ctx: &Context<'_>, options: &Options<'_>, with_ca_dir: bool) -> Result<Layout, String> {
    let path = |name: &str| -> Result<PathBuf, String> {
        ctx.inside(Path::new(options.required(name)?.trim()))
    };
    let ca_private = path("ca-private")?;
    Ok(Layout {
        // A request knows the CA's directory when it extends the CA's section, as
        // SlapOS's profiles write it; else the CA's files are beside its private ones.
        ca_dir: match (with_ca_dir, options.get("ca-dir")) {
            (_, Some(dir)) => ctx.inside(Path::new(dir.trim()))?,
            (true, None) => return Err("missing option ca-dir".to_owned()),
            (false, None) => ca_private
                .parent()
                .map(Path::to_owned)
                .unwrap_or_else(|| ca_private.clone()),
        },
        ca_private,
        ca_certs: path("ca-certs")?,
        requests: path("requests-directory")?,
    })
}

/// `slapos.cookbook:certificate_authority`: the CA (made once), and `wrapper`, the
/// service that signs the requests left in `requests-directory`.
struct CertificateAuthority;

impl Recipe for CertificateAuthority {
    fn install(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        _: &Resolved,
    ) -> Result<Vec<PathBuf>, String> {
        let layout = layout(ctx, options, true)?;
        layout.open_or_create().map_err(|e| e.to_string())?;
        layout.issue_pending().map_err(|e| e.to_string())?;
        let wrapper = ctx.inside(Path::new(options.required("wrapper")?.trim()))?;
        let script = grove_script(&[
            "certificate-authority",
            "--ca-dir",
            &arg(&layout.ca_dir),
            "--ca-private",
            &arg(&layout.ca_private),
            "--ca-certs",
            &arg(&layout.ca_certs),
            "--requests",
            &arg(&layout.requests),
        ])?;
        write_file(&wrapper, script.as_bytes(), 0o755)?;
        // The CA itself stays when the part goes: certificates it signed are in use.
        Ok(vec![wrapper])
    }

    fn update(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        resolved: &Resolved,
    ) -> Result<(), String> {
        self.install(ctx, options, resolved).map(drop)
    }
}

/// `slapos.cookbook:certificate_authority.request`: a key and a certificate named `name`
/// (the part's name by default), signed by the partition's CA, linked at `key-file` and
/// `cert-file`, and `wrapper`, which starts `executable` once both are there.
/// `key-content` and `cert-content` give them instead (checked to match).
struct CertificateRequest;

impl Recipe for CertificateRequest {
    fn install(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        _: &Resolved,
    ) -> Result<Vec<PathBuf>, String> {
        let layout = layout(ctx, options, false)?;
        let name = options
            .get("name")
            .map(|n| n.trim().to_owned())
            .unwrap_or_else(|| options.part.to_owned());
        let ca = layout.open_or_create().map_err(|e| e.to_string())?;
        let (key, certificate) = layout.issued(&name);
        match (options.get("key-content"), options.get("cert-content")) {
            (Some(key_pem), Some(cert_pem)) => {
                check_pair(key_pem.trim(), cert_pem.trim())?;
                write_file(&key, key_pem.trim().as_bytes(), 0o600)?;
                write_file(&certificate, cert_pem.trim().as_bytes(), 0o644)?;
            }
            (None, None) => {
                let pending = Pending {
                    name: name.clone(),
                    key_file: key.clone(),
                    certificate_file: certificate.clone(),
                };
                let request = layout.requests.join(hash(&name));
                let text = serde_json::to_vec_pretty(&pending).map_err(|e| e.to_string())?;
                write_file(&request, &text, 0o644)?;
                layout.issue(&ca, &name).map_err(|e| e.to_string())?;
            }
            _ => return Err("give key-content and cert-content together".to_owned()),
        }
        let mut paths = Vec::new();
        for (option, target) in [("key-file", &key), ("cert-file", &certificate)] {
            let link = ctx.inside(Path::new(options.required(option)?.trim()))?;
            match std::fs::symlink_metadata(&link) {
                Ok(meta) if meta.file_type().is_symlink() => std::fs::remove_file(&link)
                    .map_err(|e| format!("cannot replace {}: {e}", link.display()))?,
                Ok(_) => {
                    return Err(format!(
                        "{option} {} is there and is not a link",
                        link.display()
                    ));
                }
                Err(_) => {}
            }
            if let Some(parent) = link.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            std::os::unix::fs::symlink(target, &link)
                .map_err(|e| format!("cannot link {}: {e}", link.display()))?;
            paths.push(link);
        }
        if let Some(executable) = options.get("executable") {
            let wrapper = ctx.inside(Path::new(options.required("wrapper")?.trim()))?;
            let quote = |p: &Path| shell_quote(&p.display().to_string());
            let script = format!(
                "#!/bin/sh\nwhile [ ! -e {key} ] || [ ! -e {cert} ]; do sleep 1; done\nexec {}\n",
                shell_quote(executable.trim()),
                key = quote(&key),
                cert = quote(&certificate),
            );
            write_file(&wrapper, script.as_bytes(), 0o755)?;
            paths.push(wrapper);
        }
        Ok(paths)
    }
}

/// A key and a certificate given together must belong together.
fn check_pair(key_pem: &str, cert_pem: &str) -> Result<(), String> {
    grove_pki::Ca::from_pem(cert_pem, key_pem)
        .map(drop)
        .map_err(|e| match e {
            grove_pki::PkiError::Mismatch => {
                "key-content and cert-content do not belong together".to_owned()
            }
            other => format!("key-content and cert-content: {other}"),
        })
}
