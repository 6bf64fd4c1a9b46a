//! `openapi.json` is the committed contract: these tests fail when it drifts from the code.

use std::collections::BTreeSet;

use grove_api as api;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn document() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
        .expect("openapi.json");
    serde_json::from_str(&text).expect("openapi.json is JSON")
}

#[test]
fn every_endpoint_is_documented_and_every_documented_operation_exists() {
    let doc = document();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let id = operation["operationId"].as_str().expect("operationId");
            documented.insert((method.to_uppercase(), path.clone(), id.to_owned()));
        }
    }
    let code: BTreeSet<(String, String, String)> = api::endpoints::OPERATIONS
        .iter()
        .map(|o| {
            (
                o.method().as_str().to_owned(),
                o.path().to_owned(),
                o.id().to_owned(),
            )
        })
        .collect();
    let only_doc: Vec<_> = documented.difference(&code).collect();
    let only_code: Vec<_> = code.difference(&documented).collect();
    assert!(
        only_doc.is_empty() && only_code.is_empty(),
        "documented only: {only_doc:?}\nin code only: {only_code:?}"
    );
}

/// The example of a schema reads into the Rust type, and the type writes back exactly the
/// documented properties.
fn check<T: DeserializeOwned + Serialize>(doc: &Value, name: &str) {
    let schema = &doc["components"]["schemas"][name];
    assert!(schema.is_object(), "schema {name} is documented");
    let example = schema["example"].clone();
    let value: T =
        serde_json::from_value(example).unwrap_or_else(|e| panic!("example of {name}: {e}"));
    let written = serde_json::to_value(&value).expect("serializes");
    let written: BTreeSet<&str> = written
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    let documented: BTreeSet<&str> = schema["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(written, documented, "properties of {name}");
    // The schema allows unknown properties exactly when the type does.
    let mut extended = schema["example"].clone();
    extended["surely_unknown"] = Value::Bool(true);
    let refuses = serde_json::from_value::<T>(extended).is_err();
    let closed = schema["additionalProperties"] == Value::Bool(false);
    assert_eq!(
        refuses, closed,
        "{name}: additionalProperties says otherwise"
    );
    for required in schema["required"].as_array().expect("required") {
        assert!(
            documented.contains(required.as_str().expect("name")),
            "{name}: required {required} is a property"
        );
    }
}

#[test]
fn schemas_match_the_wire_types() {
    let doc = document();
    // Every error code the master answers is one the document lists.
    let documented: std::collections::BTreeSet<&str> = doc["components"]["schemas"]
        ["ErrorBody"]["properties"]["error"]["properties"]["code"]["enum"]
        .as_array()
        .expect("codes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let answered: std::collections::BTreeSet<&str> = api::codes::ALL.iter().copied().collect();
    assert_eq!(documented, answered, "error codes");
    check::<api::InstanceRequest>(&doc, "InstanceRequest");
    check::<api::Instance>(&doc, "Instance");
    check::<api::NewUser>(&doc, "NewUser");
    check::<api::Credentials>(&doc, "Credentials");
    check::<api::NewComputer>(&doc, "NewComputer");
    check::<api::Labels>(&doc, "Labels");
    check::<api::Computer>(&doc, "Computer");
    check::<api::PartitionInfo>(&doc, "PartitionInfo");
    check::<api::SoftwareInstallation>(&doc, "SoftwareInstallation");
    check::<api::PartitionDeclaration>(&doc, "PartitionDeclaration");
    check::<api::Supply>(&doc, "Supply");
    check::<api::SoftwareReport>(&doc, "SoftwareReport");
    check::<api::StateReport>(&doc, "StateReport");
    check::<api::Publish>(&doc, "Publish");
    check::<api::Children>(&doc, "Children");
    check::<api::SharedInstance>(&doc, "SharedInstance");
    check::<api::PartitionInstance>(&doc, "PartitionInstance");
    check::<api::PartitionState>(&doc, "PartitionState");
    check::<api::DesiredState>(&doc, "DesiredState");
    check::<api::PartitionUsage>(&doc, "PartitionUsage");
    check::<api::UsageReport>(&doc, "UsageReport");
    check::<api::UsageSample>(&doc, "UsageSample");
    check::<api::ErrorBody>(&doc, "ErrorBody");
    check::<api::NewJoinToken>(&doc, "NewJoinToken");
    check::<api::JoinToken>(&doc, "JoinToken");
    check::<api::JoinRequest>(&doc, "JoinRequest");
    check::<api::Joined>(&doc, "Joined");
    check::<api::CaCertificate>(&doc, "CaCertificate");
    check::<api::CertificateRequest>(&doc, "CertificateRequest");
    check::<api::CertificateBundle>(&doc, "CertificateBundle");
    check::<api::PartitionCertificate>(&doc, "PartitionCertificate");
    check::<api::NewProject>(&doc, "NewProject");
    check::<api::Membership>(&doc, "Membership");
    check::<api::Quota>(&doc, "Quota");
    check::<api::QuotaUsage>(&doc, "QuotaUsage");
    check::<api::Member>(&doc, "Member");
    check::<api::Project>(&doc, "Project");
    check::<api::Prices>(&doc, "Prices");
    check::<api::InvoiceLine>(&doc, "InvoiceLine");
    check::<api::Invoice>(&doc, "Invoice");
    check::<api::Credit>(&doc, "Credit");
    check::<api::Estimate>(&doc, "Estimate");
    check::<api::MonthTotal>(&doc, "MonthTotal");
    check::<api::Size>(&doc, "Size");
    check::<api::Resources>(&doc, "Resources");
    check::<api::Capacity>(&doc, "Capacity");
    check::<api::Dedication>(&doc, "Dedication");
    check::<api::apps::AppSummary>(&doc, "AppSummary");
    check::<api::apps::AppImport>(&doc, "AppImport");
    check::<api::apps::AppInstance>(&doc, "AppInstance");
    check::<api::apps::AppView>(&doc, "AppView");
    check::<api::apps::NewAppInstance>(&doc, "NewAppInstance");
    check::<api::apps::AppInstanceState>(&doc, "AppInstanceState");
    check::<api::apps::AppImports>(&doc, "AppImports");
    check::<api::apps::AppTarget>(&doc, "AppTarget");
    check::<api::apps::AppPartition>(&doc, "AppPartition");
    check::<api::apps::AppObserved>(&doc, "AppObserved");
    check::<api::apps::AppReport>(&doc, "AppReport");
    check::<api::apps::AppCommand>(&doc, "AppCommand");
    check::<api::apps::AppEvent>(&doc, "AppEvent");
    check::<api::apps::AppEvents>(&doc, "AppEvents");
    check::<api::apps::AppReaction>(&doc, "AppReaction");
    check::<api::apps::AppBinding>(&doc, "AppBinding");
    check::<api::apps::AppService>(&doc, "AppService");
    check::<api::apps::AppType>(&doc, "AppType");
    check::<api::apps::AppTypeRelease>(&doc, "AppTypeRelease");
    check::<api::actions::ActionRequest>(&doc, "ActionRequest");
    check::<api::actions::Action>(&doc, "Action");
    check::<api::actions::PendingAction>(&doc, "PendingAction");
    check::<api::actions::ActionOutcome>(&doc, "ActionOutcome");
    let documented = doc["components"]["schemas"]
        .as_object()
        .expect("schemas")
        .len();
    assert_eq!(
        documented, 70,
        "a schema was added or removed: check it here too"
    );
}

#[test]
fn every_documented_operation_is_routed_and_guarded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let config = grove_master::MasterConfig::new(
        "127.0.0.1:0".parse().expect("addr"),
        dir.path().to_owned(),
    );
    let master = runtime
        .block_on(grove_master::start(&config))
        .expect("master");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    for endpoint in api::endpoints::OPERATIONS {
        let (method, path, operation) =
            (&endpoint.method().as_str(), endpoint.path(), &endpoint.id());
        let url = format!(
            "{}{}",
            master.url(),
            path.replace("{reference}", "COMP-1")
                .replace("{id}", "1")
                .replace("{name}", "alice")
        );
        let response = match *method {
            "GET" => agent.get(&url).call(),
            "DELETE" => agent.delete(&url).call(),
            "POST" => agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send("{}"),
            _ => agent
                .put(&url)
                .header("Content-Type", "application/json")
                .send("{}"),
        }
        .expect("answer");
        let status = response.status().as_u16();
        match *operation {
            "health" => assert_eq!(status, 200, "{method} {path}"),
            // Public, and refused here for what they are: this master serves plain HTTP
            // and has no CA; `{}` is no join request.
            "caCertificate" | "join" => assert_eq!(status, 400, "{method} {path}"),
            _ => assert_eq!(status, 401, "{method} {path}"),
        }
    }
    runtime.block_on(master.stop());
}
