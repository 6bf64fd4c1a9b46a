//! Computers: capacity and what is allocated, labels and zones, partitions and who holds
//! them, software releases with their build state and error.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::response::Response;
use grove_api as api;
use grove_api::units::{format_bytes, format_cores};
use grove_store::Store;
use minijinja::{Value, context};

use super::{Shared, Viewer};

fn resources(r: &api::Resources) -> Value {
    context! { cpu => format_cores(r.millicores), memory => format_bytes(r.memory), disk => format_bytes(r.disk) }
}

/// A computer as the list shows it.
pub(crate) fn summary(c: &api::Computer) -> Value {
    let used = c.partitions.iter().filter(|p| p.instance.is_some()).count();
    let failed = c
        .software
        .iter()
        .filter(|s| s.reported_state == Some(api::SoftwareState::Error))
        .count();
    context! {
        reference => &c.reference,
        owner => &c.owner,
        zone => c.labels.get("zone"),
        labels => c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        partitions => c.partitions.len(),
        used,
        software => c.software.len(),
        failed,
        capacity => c.capacity.as_ref().map(|cap| resources(&cap.resources())),
        allocated => resources(&c.allocated),
        project => &c.project,
    }
}

pub(crate) fn list_context(computers: &[api::Computer]) -> Value {
    let partitions: usize = computers.iter().map(|c| c.partitions.len()).sum();
    let used: usize = computers
        .iter()
        .map(|c| c.partitions.iter().filter(|p| p.instance.is_some()).count())
        .sum();
    context! {
        computers => computers.iter().map(summary).collect::<Vec<_>>(),
        partitions,
        used,
    }
}

pub(crate) async fn list<S: Store>(State(console): Shared<S>, viewer: Viewer) -> Response {
    match console
        .api(&viewer)
        .get::<Vec<api::Computer>>("/v1/computers")
        .await
    {
        Ok(computers) => console.page("computers.html", &viewer, list_context(&computers)),
        Err(refusal) => console.refused(&viewer, &refusal),
    }
}

pub(crate) async fn show<S: Store>(
    State(console): Shared<S>,
    viewer: Viewer,
    Path(reference): Path<String>,
) -> Response {
    let api = console.api(&viewer);
    let computer = match console
        .read::<api::Computer>(
            &viewer,
            &format!("/v1/computers/{}", super::percent_encode(&reference)),
        )
        .await
    {
        Ok(computer) => computer,
        Err(page) => return page,
    };
    // The titles of the holders the viewer may see.
    let titles: HashMap<i64, String> = api
        .get::<Vec<api::Instance>>("/v1/instances")
        .await
        .map(|all| all.into_iter().map(|i| (i.id, i.title)).collect())
        .unwrap_or_default();
    let partitions: Vec<Value> = computer
        .partitions
        .iter()
        .map(|p| {
            context! {
                reference => &p.reference,
                addresses => p.addresses.join(" "),
                instance => &p.instance,
                title => p.instance.and_then(|id| titles.get(&id)),
            }
        })
        .collect();
    let software: Vec<Value> = computer
        .software
        .iter()
        .map(|s| {
            context! {
                url => &s.software_release,
                requested => s.requested_state.as_str(),
                reported => s.reported_state.map(api::SoftwareState::as_str),
                error => &s.error,
            }
        })
        .collect();
    let page = context! {
        computer => summary(&computer),
        labels => &computer.labels,
        enforced => computer.capacity.as_ref().is_some_and(|c| c.enforced),
        partition_rows => partitions,
        software_rows => software,
    };
    console.page("computer.html", &viewer, page)
}
