//! The operating system boundary: users, ownership and addresses. The agent's logic goes
//! through [`Os`], so that it is tested without root; [`Host`] is the real thing.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

/// What the agent asks of the operating system.
pub trait Os: Send + Sync + std::fmt::Debug {
    /// Whether the agent may create users, change owners and add addresses.
    fn is_root(&self) -> bool;
    /// The uid and gid of `name`, creating the user (and its group) if missing.
    fn ensure_user(&self, name: &str, home: &Path) -> Result<(u32, u32), String>;
    fn chown(&self, path: &Path, uid: u32, gid: u32) -> Result<(), String>;
    /// Adds `address` to `interface` unless it is already there.
    fn add_address(&self, interface: &str, address: IpAddr) -> Result<(), String>;
}

/// This machine.
#[derive(Debug, Default, Clone, Copy)]
pub struct Host;

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

impl Os for Host {
    fn is_root(&self) -> bool {
        nix::unistd::geteuid().is_root()
    }

    fn ensure_user(&self, name: &str, home: &Path) -> Result<(u32, u32), String> {
        let lookup = || {
            nix::unistd::User::from_name(name)
                .map_err(|e| format!("cannot look up user {name}: {e}"))
        };
        if lookup()?.is_none() {
            let home = home
                .to_str()
                .ok_or_else(|| format!("{} is not UTF-8", home.display()))?;
            // useradd fails while another one holds the lock on /etc/passwd.
            let mut attempt = 0;
            while let Err(e) = run(
                "useradd",
                &[
                    "--system",
                    "--user-group",
                    "--no-create-home",
                    "--home-dir",
                    home,
                    "--shell",
                    "/usr/sbin/nologin",
                    name,
                ],
            ) {
                attempt += 1;
                if lookup()?.is_some() {
                    break;
                }
                if attempt >= 20 {
                    return Err(e);
                }
                std::thread::sleep(std::time::Duration::from_millis(50 * attempt));
            }
        }
        let user = lookup()?.ok_or_else(|| format!("user {name} was not created"))?;
        Ok((user.uid.as_raw(), user.gid.as_raw()))
    }

    fn chown(&self, path: &Path, uid: u32, gid: u32) -> Result<(), String> {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| format!("cannot change the owner of {}: {e}", path.display()))
    }

    fn add_address(&self, interface: &str, address: IpAddr) -> Result<(), String> {
        let family = if address.is_ipv6() { "-6" } else { "-4" };
        let present = run("ip", &[family, "-o", "addr", "show", "dev", interface])?;
        let wanted = address.to_string();
        let has = present
            .split_whitespace()
            .any(|word| word.split('/').next() == Some(wanted.as_str()));
        if has {
            return Ok(());
        }
        let prefix = if address.is_ipv6() { "128" } else { "32" };
        run(
            "ip",
            &[
                family,
                "addr",
                "add",
                &format!("{wanted}/{prefix}"),
                "dev",
                interface,
            ],
        )
        .map(|_| ())
    }
}
