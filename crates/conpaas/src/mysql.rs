//! The MySQL service's agents, as text: the statements that set the service user's
//! password, and the balancer (`glb`: HAProxy in TCP mode over the MySQL nodes).

use std::fmt::Write as _;
use std::path::Path;

/// The user a MySQL service's clients connect as (ConPaaS's).
pub const USER: &str = "mysqldb";

/// `text` as an SQL string literal.
pub fn sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// Creates the service's user if needed and gives it `password` and every right, from
/// anywhere (the web nodes connect over the network).
pub fn password_sql(password: &str) -> String {
    let user = format!("{}@'%'", sql_string(USER));
    let password = sql_string(password);
    format!(
        "CREATE USER IF NOT EXISTS {user} IDENTIFIED BY {password};\n\
         ALTER USER {user} IDENTIFIED BY {password};\n\
         GRANT ALL PRIVILEGES ON *.* TO {user} WITH GRANT OPTION;\n\
         FLUSH PRIVILEGES;\n"
    )
}

/// HAProxy balancing TCP connections on `listen` over `backends` (`ip:port` each).
pub fn glb_haproxy(listen: &str, backends: &[String], pid: &Path) -> String {
    let mut text = format!(
        "# Written by Grove; changes are lost at the next deployment.\n\
         global\n    pidfile {}\n    maxconn 512\n\n\
         defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 1h\n    timeout server 1h\n    retries 2\n    option redispatch\n\n\
         listen mysql\n    bind {listen}\n    balance leastconn\n",
        pid.display()
    );
    for (n, backend) in backends.iter().enumerate() {
        let _ = writeln!(text, "    server mysql{n} {backend} check inter 2s");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_sql_strings() {
        assert_eq!(sql_string("a'b\\c"), "'a''b\\\\c'");
        let sql = password_sql("s3'cret");
        assert!(sql.contains("CREATE USER IF NOT EXISTS 'mysqldb'@'%' IDENTIFIED BY 's3''cret';"));
        assert!(sql.contains("GRANT ALL PRIVILEGES ON *.* TO 'mysqldb'@'%' WITH GRANT OPTION;"));
    }

    #[test]
    fn the_balancer_lists_every_node() {
        let text = glb_haproxy(
            "10.0.0.1:3306",
            &["10.0.0.2:3306".to_owned(), "10.0.0.3:3306".to_owned()],
            Path::new("/p/var/run/haproxy.pid"),
        );
        assert!(text.contains("bind 10.0.0.1:3306\n"));
        assert!(text.contains("server mysql0 10.0.0.2:3306 check"));
        assert!(text.contains("server mysql1 10.0.0.3:3306 check"));
        assert!(text.contains("pidfile /p/var/run/haproxy.pid"));
    }
}
