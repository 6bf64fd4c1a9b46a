//! What PostgreSQL adds: masters sharing a store hear each other's changes, and say so
//! when the connection that carries them was lost; a writer whose connection dies
//! connects again.

mod common;

use std::time::Duration;

use common::postgres;

use grove_store::{Changed, Db, Elsewhere, Location, Policy, Store, StoreConfig, api};
use sqlx::Connection;
use tokio::sync::broadcast::Receiver;

/// Ends the connections of this database that have this application name.
async fn terminate(location: &Location, application: &str) -> i64 {
    let Location::Postgres(url) = location else {
        unreachable!("a postgres location")
    };
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = $1",
    )
    .bind(application)
    .fetch_one(&mut conn)
    .await
    .expect("terminate")
}

/// The next event that is not an older change, within 10 seconds.
async fn any_next(heard: &mut Receiver<Elsewhere>) -> Elsewhere {
    tokio::time::timeout(Duration::from_secs(10), heard.recv())
        .await
        .expect("an event within 10 s")
        .expect("the feed is open")
}

/// The next event that names something (bare notices, of writes that changed no desired
/// state, are skipped).
async fn next(heard: &mut Receiver<Elsewhere>) -> Elsewhere {
    loop {
        match any_next(heard).await {
            Elsewhere::Changed(changed) if changed == Changed::default() => {}
            event => return event,
        }
    }
}

fn partitions(n: usize) -> Vec<api::PartitionDeclaration> {
    (0..n)
        .map(|i| api::PartitionDeclaration {
            reference: format!("slappart{i}"),
            addresses: vec![],
        })
        .collect()
}

#[tokio::test]
async fn masters_hear_each_other_say_when_they_may_have_missed_and_writers_reconnect() {
    let location = postgres().await;
    let config = StoreConfig {
        location: location.clone(),
        placement: Policy::Simple,
    };
    let a = Db::open(&config).await.expect("master A");
    let b = Db::open(&config).await.expect("master B");
    let mut heard = a.elsewhere();
    let admin = b
        .ensure_admin(vec![1; 32])
        .await
        .expect("admin")
        .expect("made");
    // A write that changes no one's desired state is heard bare (consoles show it).
    assert_eq!(
        any_next(&mut heard).await,
        Elsewhere::Changed(Changed::default())
    );
    let computer = b
        .create_computer("C".to_owned(), admin, vec![2; 32], Default::default())
        .await
        .expect("computer");

    // B's change reaches A; A's own does not come back to it.
    a.declare_partitions(computer, partitions(1))
        .await
        .expect("declared on A");
    b.declare_partitions(computer, partitions(2))
        .await
        .expect("declared on B");
    assert_eq!(
        next(&mut heard).await,
        Elsewhere::Changed(Changed {
            computers: vec![computer],
            ..Changed::default()
        })
    );
    while let Ok(event) = heard.try_recv() {
        assert_eq!(
            event,
            Elsewhere::Changed(Changed::default()),
            "A heard only B's change"
        );
    }

    // An application B changes: A hears of it (its root partitions' long polls wake).
    let app = b
        .create_application(grove_store::NewApplication {
            kind: grove_store::ROBOCONF,
            name: "app".to_owned(),
            owner: admin,
            project: None,
            archive: vec![0; 4],
            model: "{}".to_owned(),
            roots: vec!["/vm".to_owned()],
        })
        .await
        .expect("stored on B");
    b.report_application(app, "/vm".to_owned(), "{}".to_owned())
        .await
        .expect("reported on B");
    assert_eq!(
        next(&mut heard).await,
        Elsewhere::Changed(Changed {
            applications: vec![app],
            ..Changed::default()
        })
    );

    // The listeners' connections die: A says it may have missed changes, then hears again.
    assert!(terminate(&location, "grove-listener").await >= 1);
    assert_eq!(next(&mut heard).await, Elsewhere::Lost);
    let supply = api::Supply {
        software_release: "https://sr/a.cfg".to_owned(),
        state: api::SupplyState::Available,
        project: None,
    };
    let mut mended = false;
    for _ in 0..20 {
        b.supply(computer, supply.clone())
            .await
            .expect("supplied on B");
        match tokio::time::timeout(Duration::from_millis(500), heard.recv()).await {
            Ok(Ok(Elsewhere::Changed(changed))) if changed.computers == [computer] => {
                mended = true;
                break;
            }
            _ => continue,
        }
    }
    assert!(mended, "A hears B again once its listener is back");

    // The writers' connections die: a mutation fails at most once, none hangs, and the
    // next succeed, on both masters.
    assert!(terminate(&location, "grove-writer").await >= 2);
    for (name, db) in [("A", &a), ("B", &b)] {
        let (failed, created) = until_created(db, name).await;
        assert!(created, "{name}'s writer connected again");
        assert!(failed <= 1, "{name}: {failed} attempts failed");
    }
}

/// Creates users until one is created (three attempts): how many failed, and whether one
/// was created.
async fn until_created(db: &Db, prefix: &str) -> (usize, bool) {
    let mut failed = 0;
    for attempt in 0..3 {
        match db
            .create_user(format!("{prefix}-{attempt}"), vec![3; 32])
            .await
        {
            Ok(_) => return (failed, true),
            Err(_) => failed += 1,
        }
    }
    (failed, false)
}

/// The store talks to PostgreSQL over TLS when its URL asks for it (`sslmode=verify-ca`
/// with the CA of the server's certificate; here Debian's self-signed one): every
/// connection of the store is encrypted, and a server whose certificate that CA did not
/// sign is refused before anything is sent.
#[tokio::test]
async fn the_store_reaches_postgres_over_tls_and_checks_the_server() {
    let Location::Postgres(url) = postgres().await else {
        unreachable!("a postgres location")
    };
    let separator = if url.contains('?') { '&' } else { '?' };
    let server_ca = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    let over_tls = Location::Postgres(format!(
        "{url}{separator}sslmode=verify-ca&sslrootcert={server_ca}"
    ));
    let store = Db::open(&StoreConfig {
        location: over_tls.clone(),
        placement: Policy::Simple,
    })
    .await
    .expect("opens over TLS");
    store.ensure_admin(vec![1; 32]).await.expect("writes");
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
    let (all, encrypted): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a \
         JOIN pg_stat_ssl s USING (pid) \
         WHERE a.datname = current_database() AND a.application_name LIKE 'grove-%'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("pg_stat_ssl");
    assert!(all >= 3, "the writer, a reader and the listener: {all}");
    assert_eq!(encrypted, all, "every connection of the store is encrypted");
    // Another CA: the server is refused, and the error names the store, not its password.
    let wrong = Location::Postgres(format!(
        "{url}{separator}sslmode=verify-ca&sslrootcert=/etc/ssl/certs/ca-certificates.crt"
    ));
    let refused = Db::open(&StoreConfig {
        location: wrong,
        placement: Policy::Simple,
    })
    .await
    .expect_err("an unknown server certificate");
    let message = refused.to_string();
    assert!(!message.contains(":grove@"), "no password in {message}");
    assert!(
        message.to_lowercase().contains("certificate"),
        "says why: {message}"
    );
}
