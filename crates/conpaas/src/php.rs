//! The configurations of a PHP service's agents, as text: the proxy (nginx balancing
//! over the web nodes) and a web node (nginx serving the code, PHP through php-fpm). Each
//! runs as its partition's user, with every path below the partition.

use std::fmt::Write as _;
use std::path::Path;

/// Where an agent's servers keep their files, below its partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs<'a> {
    /// Pid files and sockets.
    pub run: &'a Path,
    /// nginx's temporary files.
    pub tmp: &'a Path,
    /// Logs.
    pub log: &'a Path,
}

/// A path as nginx reads it: quoted, with quotes and backslashes escaped.
fn quoted(path: &Path) -> String {
    quoted_text(&path.display().to_string())
}

fn quoted_text(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn nginx_head(dirs: &Dirs<'_>) -> String {
    let tmp = |name: &str| quoted(&dirs.tmp.join(name));
    format!(
        "# Written by Grove; changes are lost at the next deployment.\n\
         pid {pid};\n\
         error_log stderr warn;\n\
         worker_processes 1;\n\
         events {{\n    worker_connections 512;\n}}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   default_type application/octet-stream;\n\
         \x20   types {{\n        text/html html htm;\n        text/css css;\n        application/javascript js;\n        image/png png;\n    }}\n\
         \x20   client_body_temp_path {client};\n\
         \x20   proxy_temp_path {proxy};\n\
         \x20   fastcgi_temp_path {fastcgi};\n\
         \x20   uwsgi_temp_path {uwsgi};\n\
         \x20   scgi_temp_path {scgi};\n",
        pid = quoted(&dirs.run.join("nginx.pid")),
        client = tmp("client"),
        proxy = tmp("proxy"),
        fastcgi = tmp("fastcgi"),
        uwsgi = tmp("uwsgi"),
        scgi = tmp("scgi"),
    )
}

/// The proxy: `listen` (`ip:port`) balanced over `backends` (`ip:port` each). A request
/// a backend fails to answer (gone, refusing) is tried on the next one, so that a web
/// node taken out loses no request. Without backends, it answers 503.
pub fn proxy_nginx(listen: &str, backends: &[String], dirs: &Dirs<'_>) -> String {
    let mut text = nginx_head(dirs);
    if backends.is_empty() {
        let _ = write!(
            text,
            "    server {{\n        listen {listen};\n        location / {{\n            return 503 \"no web node is up yet\\n\";\n        }}\n    }}\n}}\n"
        );
        return text;
    }
    text.push_str("    upstream web {\n");
    for backend in backends {
        let _ = writeln!(
            text,
            "        server {backend} max_fails=3 fail_timeout=1s;"
        );
    }
    let _ = write!(
        text,
        "    }}\n\
         \x20   server {{\n\
         \x20       listen {listen};\n\
         \x20       location / {{\n\
         \x20           proxy_pass http://web;\n\
         \x20           proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent;\n\
         \x20           proxy_next_upstream_tries 0;\n\
         \x20           proxy_connect_timeout 2s;\n\
         \x20           proxy_set_header Host $host;\n\
         \x20           proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
         \x20       }}\n\
         \x20   }}\n\
         }}\n"
    );
    text
}

/// A web node: `listen` serving `root`, `.php` files through php-fpm's `socket`.
pub fn web_nginx(listen: &str, root: &Path, socket: &Path, dirs: &Dirs<'_>) -> String {
    let mut text = nginx_head(dirs);
    let params = [
        ("SCRIPT_FILENAME", "$document_root$fastcgi_script_name"),
        ("SCRIPT_NAME", "$fastcgi_script_name"),
        ("QUERY_STRING", "$query_string"),
        ("REQUEST_METHOD", "$request_method"),
        ("CONTENT_TYPE", "$content_type"),
        ("CONTENT_LENGTH", "$content_length"),
        ("REQUEST_URI", "$request_uri"),
        ("DOCUMENT_URI", "$document_uri"),
        ("DOCUMENT_ROOT", "$document_root"),
        ("SERVER_PROTOCOL", "$server_protocol"),
        ("REMOTE_ADDR", "$remote_addr"),
        ("REMOTE_PORT", "$remote_port"),
        ("SERVER_ADDR", "$server_addr"),
        ("SERVER_PORT", "$server_port"),
        ("SERVER_NAME", "$server_name"),
        ("REDIRECT_STATUS", "200"),
    ];
    let _ = write!(
        text,
        "    server {{\n\
         \x20       listen {listen};\n\
         \x20       root {root};\n\
         \x20       index index.php index.html;\n\
         \x20       location ~ \\.php$ {{\n\
         \x20           try_files $uri =404;\n\
         \x20           fastcgi_pass {socket};\n",
        root = quoted(root),
        socket = quoted_text(&format!("unix:{}", socket.display())),
    );
    for (name, value) in params {
        let _ = writeln!(text, "            fastcgi_param {name} {value};");
    }
    text.push_str("        }\n    }\n}\n");
    text
}

/// php-fpm for a web node: one pool on `socket`, in the foreground.
pub fn fpm_config(socket: &Path, dirs: &Dirs<'_>, env: &[(String, String)]) -> String {
    let mut text = format!(
        "; Written by Grove; changes are lost at the next deployment.\n\
         [global]\n\
         pid = {pid}\n\
         error_log = {log}\n\
         daemonize = no\n\
         \n\
         [web]\n\
         listen = {socket}\n\
         listen.mode = 0600\n\
         pm = static\n\
         pm.max_children = 4\n\
         catch_workers_output = yes\n\
         clear_env = yes\n",
        pid = dirs.run.join("php-fpm.pid").display(),
        log = dirs.log.join("php-fpm.log").display(),
        socket = socket.display(),
    );
    for (name, value) in env {
        // Values are quoted; php-fpm's ini reader takes no escapes, so quotes are dropped.
        let _ = writeln!(text, "env[{name}] = \"{}\"", value.replace('"', ""));
    }
    text
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn dirs() -> (PathBuf, PathBuf, PathBuf) {
        (
            PathBuf::from("/srv/p/var/run"),
            PathBuf::from("/srv/p/tmp"),
            PathBuf::from("/srv/p/var/log"),
        )
    }

    #[test]
    fn the_proxy_balances_over_its_backends_and_retries_the_next() {
        let (run, tmp, log) = dirs();
        let dirs = Dirs {
            run: &run,
            tmp: &tmp,
            log: &log,
        };
        let text = proxy_nginx(
            "10.0.0.1:8080",
            &["10.0.0.2:8000".to_owned(), "10.0.0.3:8000".to_owned()],
            &dirs,
        );
        assert!(text.contains("pid \"/srv/p/var/run/nginx.pid\";"));
        assert!(text.contains("server 10.0.0.2:8000 max_fails=3 fail_timeout=1s;"));
        assert!(text.contains("server 10.0.0.3:8000 max_fails=3 fail_timeout=1s;"));
        assert!(text.contains("listen 10.0.0.1:8080;"));
        assert!(text.contains("proxy_next_upstream error timeout"));
        let empty = proxy_nginx("10.0.0.1:8080", &[], &dirs);
        assert!(!empty.contains("upstream"));
        assert!(empty.contains("return 503"));
        assert_eq!(text.matches('{').count(), text.matches('}').count());
        assert_eq!(empty.matches('{').count(), empty.matches('}').count());
    }

    #[test]
    fn a_web_node_serves_php_through_its_pool() {
        let (run, tmp, log) = dirs();
        let dirs = Dirs {
            run: &run,
            tmp: &tmp,
            log: &log,
        };
        let socket = run.join("php-fpm.sock");
        let text = web_nginx(
            "10.0.0.2:8000",
            Path::new("/srv/p/srv/code \"1\""),
            &socket,
            &dirs,
        );
        assert!(text.contains("root \"/srv/p/srv/code \\\"1\\\"\";"));
        assert!(text.contains("fastcgi_pass \"unix:/srv/p/var/run/php-fpm.sock\";"));
        assert_eq!(text.matches('{').count(), text.matches('}').count());
        let fpm = fpm_config(
            &socket,
            &dirs,
            &[("MYSQL_IP".to_owned(), "10.0.0.9".to_owned())],
        );
        assert!(fpm.contains("listen = /srv/p/var/run/php-fpm.sock\n"));
        assert!(fpm.contains("daemonize = no\n"));
        assert!(fpm.contains("env[MYSQL_IP] = \"10.0.0.9\"\n"));
    }
}
