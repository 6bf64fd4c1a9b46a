//! What the store's tests share: a scratch PostgreSQL database, a small cloud.

use grove_store::{Db, Location, Policy, Store, StoreConfig, api};

/// A fresh database on the test server (`GROVE_TEST_POSTGRES`); CI has one.
pub(crate) async fn postgres() -> Location {
    grove_store::scratch::database()
        .await
        .unwrap_or_else(|e| panic!("this test needs PostgreSQL: {e}"))
}

/// A store at `location` with its admin and computer C1 of `partitions` partitions
/// (`slappart0`...) supplied with `sr.cfg`: the store, the admin's id, C1's id.
#[allow(dead_code)] // Not every test file builds a cloud.
pub(crate) async fn cloud(location: Location, partitions: usize) -> (Db, i64, i64) {
    let store = Db::open(&StoreConfig {
        location,
        placement: Policy::Simple,
    })
    .await
    .expect("opens");
    let admin = store
        .ensure_admin(vec![1; 32])
        .await
        .expect("admin")
        .expect("made");
    let computer = store
        .create_computer("C1".to_owned(), admin, vec![2; 32], Default::default())
        .await
        .expect("computer");
    let declared = (0..partitions)
        .map(|i| api::PartitionDeclaration {
            reference: format!("slappart{i}"),
            addresses: vec![],
        })
        .collect();
    store
        .declare_partitions(computer, declared)
        .await
        .expect("partitions");
    store
        .supply(
            computer,
            api::Supply {
                software_release: "sr.cfg".to_owned(),
                state: api::SupplyState::Available,
                project: None,
            },
        )
        .await
        .expect("supply");
    (store, admin, computer)
}
