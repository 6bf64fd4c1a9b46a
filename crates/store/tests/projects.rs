//! What a project holds against its quota, kept as counters by the statements that create
//! instances and change their requested state, on both backends: after every step the
//! counters say what counting the project's instances says.

mod common;

use common::{cloud, postgres};
use grove_store::{Location, Requester, Store, api};

fn usage(instances: u64, partitions: u64, millicores: u64) -> api::QuotaUsage {
    api::QuotaUsage {
        instances,
        partitions,
        shared: 0,
        millicores,
        memory: millicores << 20,
        disk: 0,
    }
}

fn request(title: &str, size: Option<&str>, state: api::RequestedState) -> api::InstanceRequest {
    let mut request = api::InstanceRequest::new(title, "sr.cfg");
    if let Some(size) = size {
        request.sla.insert("size".to_owned(), size.to_owned());
    }
    request.state = state;
    request
}

#[tokio::test]
async fn a_projects_counters_follow_its_instances_and_their_children() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, location) in [
        ("sqlite", Location::Sqlite(dir.path().join("store.sqlite"))),
        ("postgres", postgres().await),
    ] {
        let (store, admin, computer) = cloud(location, 10).await;
        store
            .set_capacity(
                computer,
                api::Capacity {
                    millicores: 8000,
                    memory: 8 << 30,
                    disk: 8 << 30,
                    enforced: false,
                },
            )
            .await
            .expect("capacity");
        store
            .create_size(api::Size {
                name: "small".to_owned(),
                millicores: 500,
                memory: 500 << 20,
                disk: 0,
            })
            .await
            .expect("size");
        let project = store.create_project("lab".to_owned()).await.expect("lab");
        let in_lab = Requester::Project {
            project,
            user: admin,
        };
        let held = || store.project_usage(project);
        use api::RequestedState::{Destroyed, Started, Stopped};

        let (root, _) = store
            .request(admin, in_lab, request("root", Some("small"), Started))
            .await
            .expect("root");
        assert_eq!(held().await.expect("usage"), usage(1, 1, 500), "{name}");
        // A child is in its parent's project.
        store
            .request(
                admin,
                Requester::Instance(root.id),
                request("child", Some("small"), Started),
            )
            .await
            .expect("child");
        store
            .request(admin, in_lab, request("plain", None, Started))
            .await
            .expect("plain");
        assert_eq!(held().await.expect("usage"), usage(3, 3, 1000), "{name}");
        // Stopping changes nothing; the same request again changes nothing.
        store
            .request(admin, in_lab, request("plain", None, Stopped))
            .await
            .expect("stopped");
        store
            .request(admin, in_lab, request("plain", None, Stopped))
            .await
            .expect("again");
        assert_eq!(held().await.expect("usage"), usage(3, 3, 1000), "{name}");
        // Destroying the root destroys its child: both give their share back.
        store
            .request(admin, in_lab, request("root", None, Destroyed))
            .await
            .expect("destroyed");
        assert_eq!(held().await.expect("usage"), usage(1, 1, 0), "{name}");
        store
            .request(admin, in_lab, request("plain", None, Destroyed))
            .await
            .expect("destroyed");
        assert_eq!(held().await.expect("usage"), usage(0, 0, 0), "{name}");
        // A user's own instance is no project's.
        store
            .request(
                admin,
                Requester::User(admin),
                request("mine", None, Started),
            )
            .await
            .expect("mine");
        assert_eq!(held().await.expect("usage"), usage(0, 0, 0), "{name}");
    }
}
