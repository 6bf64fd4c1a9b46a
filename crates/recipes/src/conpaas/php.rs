//! A PHP service's agents: the web nodes (nginx and php-fpm) and the proxy (nginx).

use grove_conpaas::php::{self};

use crate::Context;
use crate::builtin::shell_quote;
use crate::slap::Partition;

use super::agents::{
    AgentDirs, backends, code_version, ipv4, kept_port, listening_promise, nginx_service, program,
    publish, reload, socket_promise, startup_script, write_changed, write_service,
};
use super::text;

/// A PHP web node: nginx serving the code, `.php` through php-fpm.
pub(super) fn php_web(ctx: &Context<'_>, partition: &Partition<'_>) -> Result<(), String> {
    let parameters = &partition.instance.parameters;
    let fpm = program(&["php-fpm"], Some("php-fpm"), "php-fpm")?;
    let ip = ipv4(partition)?;
    let port = kept_port(ctx, "web", &ip, 8000..=8999)?;
    let dirs = AgentDirs::make(ctx)?;
    let code = code_version(ctx, text(parameters, "archive").as_deref())?;
    if let Some(url) = text(parameters, "startupscript") {
        startup_script(ctx, &url)?;
    }
    let socket = dirs.run.join("php-fpm.sock");
    let listen = format!("{ip}:{port}");
    let nginx_conf = dirs.etc.join("nginx.conf");
    let fpm_conf = dirs.etc.join("php-fpm.conf");
    let mut env = vec![
        (
            "CONPAAS_SERVICE".to_owned(),
            text(parameters, "service").unwrap_or_default(),
        ),
        (
            "CONPAAS_ROLE".to_owned(),
            partition.instance.software_type.clone(),
        ),
    ];
    for (key, name) in [
        ("mysql_host", "MYSQL_IP"),
        ("mysql_port", "MYSQL_PORT"),
        ("mysql_user", "MYSQL_USER"),
        ("mysql_password", "MYSQL_PASSWORD"),
    ] {
        if let Some(value) = text(parameters, key) {
            env.push((name.to_owned(), value));
        }
    }
    let nginx_changed = write_changed(
        &nginx_conf,
        &php::web_nginx(&listen, &code, &socket, &dirs.php()),
        0o600,
    )?;
    let fpm_changed = write_changed(
        &fpm_conf,
        &php::fpm_config(&socket, &dirs.php(), &env),
        0o600,
    )?;
    nginx_service(ctx, &nginx_conf)?;
    listening_promise(ctx, "nginx", &listen)?;
    socket_promise(ctx, "php-fpm", &socket)?;
    write_service(
        ctx,
        "php-fpm",
        &format!(
            "{} -F -y {} -p {}",
            shell_quote(&fpm.display().to_string()),
            shell_quote(&fpm_conf.display().to_string()),
            shell_quote(&ctx.directory.display().to_string()),
        ),
    )?;
    if nginx_changed {
        reload(
            &dirs.run.join("nginx.pid"),
            nix::sys::signal::Signal::SIGHUP,
        );
    }
    if fpm_changed {
        reload(
            &dirs.run.join("php-fpm.pid"),
            nix::sys::signal::Signal::SIGUSR2,
        );
    }
    publish(
        partition,
        &[
            ("address", listen.clone()),
            ("url", format!("http://{listen}/")),
        ],
    )
}

/// A PHP service's proxy: nginx balancing over the web nodes the manager gives.
pub(super) fn php_proxy(ctx: &Context<'_>, partition: &Partition<'_>) -> Result<(), String> {
    let parameters = &partition.instance.parameters;
    let backends = backends(parameters)?;
    let ip = ipv4(partition)?;
    let port = kept_port(ctx, "proxy", &ip, 8080..=8999)?;
    let dirs = AgentDirs::make(ctx)?;
    let listen = format!("{ip}:{port}");
    let conf = dirs.etc.join("nginx.conf");
    let changed = write_changed(
        &conf,
        &php::proxy_nginx(&listen, &backends, &dirs.php()),
        0o600,
    )?;
    nginx_service(ctx, &conf)?;
    listening_promise(ctx, "nginx", &listen)?;
    if changed {
        reload(
            &dirs.run.join("nginx.pid"),
            nix::sys::signal::Signal::SIGHUP,
        );
    }
    publish(
        partition,
        &[
            ("address", listen.clone()),
            ("url", format!("http://{listen}/")),
            ("backends", backends.join(" ")),
        ],
    )
}
