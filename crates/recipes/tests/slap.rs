//! The recipes that talk to the master, against a real master on loopback.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::{run, run_in};
use grove_api as api;
use grove_client::{Client, ClientError, Identity};
use grove_recipes::slap::{Master, Partition};
use serde_json::{Value, json};

fn client(url: &str, token: &str) -> Client {
    Client::new(url, &Identity::token(token)).expect("client")
}

const PROFILE: &str = "\
[buildout]
parts = publish

[slap-configuration]
recipe = slapos.cookbook:slapconfiguration
configuration.colour = blue
configuration.db-computer =
configuration.db-zone =

[db]
recipe = slapos.cookbook:request
name = db
software-url = child.cfg
config-size = 2
sla-computer_guid = ${slap-configuration:configuration.db-computer}
sla-zone = ${slap-configuration:configuration.db-zone}
return = url

[publish]
recipe = slapos.cookbook:publish
greeting = Hello ${slap-configuration:configuration.name}!
colour = ${slap-configuration:configuration.colour}
address = ${slap-configuration:ipv4-random}
db = ${db:connection-url}
";

#[test]
fn configuration_request_and_publish_go_through_the_master() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let config = grove_master::MasterConfig::new(
        "127.0.0.1:0".parse().expect("addr"),
        dir.path().join("master"),
    );
    let master = runtime
        .block_on(grove_master::start(&config))
        .expect("master");
    let url = master.url();
    let admin = std::fs::read_to_string(&master.admin_token_path)
        .expect("token")
        .trim()
        .to_owned();
    let admin = client(&url, &admin);
    let node = admin
        .register_computer(&api::NewComputer {
            reference: "COMP-1".to_owned(),
            labels: Default::default(),
        })
        .expect("computer");
    let node = client(&url, &node.token);
    let declare = |reference: &str, addresses: &[&str]| api::PartitionDeclaration {
        reference: reference.to_owned(),
        addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
    };
    node.declare_partitions(
        "COMP-1",
        &[
            declare("slappart0", &["127.0.1.1", "fd00::1"]),
            declare("slappart1", &["127.0.1.2"]),
        ],
    )
    .expect("partitions");
    for sr in ["parent.cfg", "child.cfg"] {
        let supply = api::Supply {
            software_release: sr.to_owned(),
            state: api::SupplyState::Available,
            project: None,
        };
        admin.supply("COMP-1", &supply).expect("supply");
    }
    admin
        .request_instance(&api::InstanceRequest {
            title: "app".to_owned(),
            software_release: "parent.cfg".to_owned(),
            software_type: "default".to_owned(),
            parameters: json!({"name": "Alice", "db-computer": "COMP-1"})
                .as_object()
                .cloned()
                .expect("object"),
            state: api::RequestedState::Started,
            shared: false,
            sla: Default::default(),
            project: None,
        })
        .expect("request");

    let desired = node
        .desired("COMP-1", None, Duration::ZERO)
        .expect("desired");
    let slot = &desired.partitions[0];
    let instance = slot.instance.clone().expect("app runs in slappart0");
    let app_id = instance.id;
    let as_partition = client(&url, &instance.token);
    let partition = Partition {
        computer: "COMP-1".to_owned(),
        reference: slot.reference.clone(),
        addresses: slot.addresses.clone(),
        instance,
        master: &as_partition,
        connection: Default::default(),
        requested: Mutex::new(Vec::new()),
    };
    let work = dir.path().join("slappart0");
    std::fs::create_dir_all(&work).expect("partition dir");
    let run = || run_in(&work, PROFILE, Some(&partition));

    // The child is requested, but has published nothing: the run fails, saying so.
    let error = run().expect_err("the child has not published yet");
    assert!(
        error
            .to_string()
            .contains("connection parameter url of db is not published yet"),
        "{error}"
    );
    assert_eq!(*partition.requested.lock().expect("lock"), vec!["db"]);
    let child = admin
        .list_instances()
        .expect("list")
        .into_iter()
        .find(|i| i.title == "db")
        .expect("db requested");
    assert_eq!(child.parent, Some(app_id));
    assert_eq!(json!(child.parameters), json!({"size": "2"}));
    assert_eq!(child.partition.as_deref(), Some("slappart1"));
    // A parameter given fills its filter; an empty one filters nothing.
    assert_eq!(json!(child.sla), json!({"computer_guid": "COMP-1"}));

    // The child publishes; the parent's next run reads it and publishes its own.
    let desired = node
        .desired("COMP-1", None, Duration::ZERO)
        .expect("desired");
    let child_slot = desired.partitions[1]
        .instance
        .clone()
        .expect("db runs in slappart1");
    let mut published = api::Parameters::new();
    published.insert("url".to_owned(), json!("redis://127.0.1.2:6379"));
    client(&url, &child_slot.token)
        .publish(
            child_slot.id,
            &api::Publish {
                parameters: published,
                shared_instance: None,
            },
        )
        .expect("child publishes");
    run().expect("the parent converges");
    let app = admin.show_instance(app_id).expect("app");
    assert_eq!(
        json!(app.connection),
        json!({"greeting": "Hello Alice!", "colour": "blue", "address": "127.0.1.1", "db": "redis://127.0.1.2:6379"})
    );
    runtime.block_on(master.stop());
}

#[test]
fn instance_recipes_need_a_partition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let error = run(
        dir.path(),
        "[buildout]\nparts = c\n[c]\nrecipe = slapos.cookbook:slapconfiguration\n",
    )
    .expect_err("no partition");
    assert!(error.to_string().contains("needs a partition"), "{error}");
}

/// Records what a partition publishes: enough for the publish recipe's own options.
#[derive(Debug, Default)]
struct Recorder {
    published: Mutex<Vec<api::Publish>>,
}

impl Master for Recorder {
    fn publish(&self, _instance: i64, publish: &api::Publish) -> Result<(), ClientError> {
        self.published.lock().expect("lock").push(publish.clone());
        Ok(())
    }

    fn request(&self, _request: &api::InstanceRequest) -> Result<api::Instance, ClientError> {
        Err(not_here())
    }

    fn application(&self, _name: &str) -> Result<api::apps::AppView, ClientError> {
        Err(not_here())
    }

    fn action(
        &self,
        _instance: i64,
        _request: &api::actions::ActionRequest,
    ) -> Result<api::actions::Action, ClientError> {
        Err(not_here())
    }
}

fn not_here() -> ClientError {
    ClientError::Refused {
        status: 501,
        code: "not_here".to_owned(),
        message: "not in this test".to_owned(),
    }
}

/// A partition whose master is `recorder`, for an instance of this software type.
fn partition<'a>(recorder: &'a Recorder, software_type: &str) -> Partition<'a> {
    Partition {
        computer: "COMP-1".to_owned(),
        reference: "slappart0".to_owned(),
        addresses: vec!["127.0.1.1".to_owned()],
        instance: api::PartitionInstance {
            id: 7,
            title: "app".to_owned(),
            root_title: "app".to_owned(),
            software_release: "sr.cfg".to_owned(),
            software_type: software_type.to_owned(),
            requested_state: api::RequestedState::Started,
            parameters: [("colour".to_owned(), json!("blue"))].into_iter().collect(),
            connection: api::Parameters::new(),
            shared_instances: Vec::new(),
            timestamp: 1,
            token: "t".to_owned(),
            size: None,
            actions: Vec::new(),
        },
        master: recorder,
        connection: Default::default(),
        requested: Mutex::new(Vec::new()),
    }
}

#[test]
fn publish_extends_merges_other_sections_under_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recorder = Recorder::default();
    let partition = partition(&recorder, "default");
    let profile = "[buildout]\nparts = publish\n\n[monitor]\nurl = http://monitor\nuser = admin\n\n\
                   [backend]\nurl = http://backend\n\n[publish]\nrecipe = slapos.cookbook:publish\n\
                   -extends = monitor backend\nuser = root\n";
    run_in(dir.path(), profile, Some(&partition)).expect("installs");
    let published = recorder.published.lock().expect("lock");
    let parameters = &published[0].parameters;
    // Later sections win over earlier ones, the section's own options over all.
    assert_eq!(
        Value::Object(parameters.clone()),
        json!({"url": "http://backend", "user": "root"})
    );

    let missing = profile.replace("monitor backend", "monitor nowhere");
    let error = run_in(dir.path(), &missing, Some(&partition)).expect_err("no such section");
    assert_eq!(
        error.to_string(),
        "part publish (recipe slapos.cookbook:publish): -extends names section nowhere, which does not exist"
    );
}

#[test]
fn switch_softwaretype_runs_the_profile_of_the_instance_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sub = |name: &str| {
        format!(
            "[buildout]\nparts = mark publish\n[slap-configuration]\n\
             recipe = slapos.cookbook:slapconfiguration\n\
             [mark]\nrecipe = plone.recipe.command\ncommand = echo {name} > chosen\n\
             [publish]\nrecipe = slapos.cookbook:publish\n\
             colour = ${{slap-configuration:configuration.colour}}\n\
             computer = ${{slap-connection:computer-id}}\n"
        )
    };
    std::fs::write(dir.path().join("default.cfg"), sub("default")).expect("write");
    std::fs::write(dir.path().join("other.cfg"), sub("other")).expect("write");
    let profile = format!(
        "[buildout]\nparts = switch\n[slap-connection]\ncomputer-id = COMP-1\n\
         [switch]\nrecipe = slapos.cookbook:switch-softwaretype\n\
         default = {0}/default.cfg\nother = {0}/other.cfg\n",
        dir.path().display()
    );
    let run = |software_type: &str| {
        let recorder = Recorder::default();
        let partition = partition(&recorder, software_type);
        run_in(dir.path(), &profile, Some(&partition))
            .map(|_| recorder.published.lock().expect("lock").clone())
    };
    let published = run("other").expect("installs");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("chosen")).expect("ran"),
        "other\n"
    );
    assert_eq!(
        Value::Object(published[0].parameters.clone()),
        json!({"colour": "blue", "computer": "COMP-1"})
    );
    // Unchanged, it runs the sub-profile again (its parameters may have changed).
    let again = run("other").expect("installs again");
    assert_eq!(again.len(), 1);

    let error = run("missing").expect_err("no such type").to_string();
    assert_eq!(
        error,
        "part switch (recipe slapos.cookbook:switch-softwaretype): no profile for software type missing"
    );
}

/// A release's description and schemas, as SlapOS lays them out: `software.cfg.json`
/// naming each software type's schema, which refers to a shared file.
fn describe_release(dir: &std::path::Path) -> std::path::PathBuf {
    let files = [
        (
            "software.cfg.json",
            json!({"serialisation": "json-in-xml", "software-type": {
                "default": {"software-type": "default", "request": "schema/input.json"},
                "shared": {"software-type": "default", "shared": true,
                           "request": "schema/shared.json"}}}),
        ),
        (
            "schema/input.json",
            json!({"$schema": "https://json-schema.org/draft/2020-12/schema",
                   "type": "object", "additionalProperties": false,
                   "properties": {
                       "colour": {"$ref": "common.json#/$defs/colour"},
                       "port": {"type": "integer", "default": 80},
                       "tls": {"type": "boolean"},
                       "limits": {"type": "object",
                                  "properties": {"cpu": {"type": "integer", "default": 2}}}}}),
        ),
        (
            "schema/common.json",
            json!({"$defs": {"colour": {"type": "string", "enum": ["green", "blue"],
                                        "default": "green"}}}),
        ),
        (
            "schema/shared.json",
            json!({"type": "object", "required": ["domain"],
                   "properties": {"domain": {"type": "string"}}}),
        ),
    ];
    for (name, json) in files {
        let path = dir.join("release").join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, json.to_string()).expect("write");
    }
    dir.join("release/software.cfg.json")
}

fn with_parameters<'a>(
    recorder: &'a Recorder,
    parameters: Value,
    shared: Vec<Value>,
) -> Partition<'a> {
    let serialised = |p: Value| -> api::Parameters {
        [("_".to_owned(), json!(p.to_string()))]
            .into_iter()
            .collect()
    };
    let mut partition = partition(recorder, "default");
    partition.instance.parameters = serialised(parameters);
    partition.instance.shared_instances = shared
        .into_iter()
        .enumerate()
        .map(|(i, p)| api::SharedInstance {
            id: 10 + i as i64,
            title: format!("shared{i}"),
            software_type: "default".to_owned(),
            parameters: serialised(p),
            requested_state: api::RequestedState::Started,
            timestamp: 1,
        })
        .collect();
    partition
}

fn schema_profile(description: &std::path::Path, scopes: &str) -> String {
    format!(
        "[buildout]\nparts = out\n\n[config]\nrecipe = slapos.cookbook:slapconfiguration.jsonschema\n\
         jsonschema = {}\n{scopes}\n\n[out]\nrecipe = collective.recipe.template\n\
         output = ${{buildout:directory}}/out\ninline =\n  ${{config:configuration}}\n",
        description.display()
    )
}

#[test]
fn parameters_are_checked_against_the_release_schema_with_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let description = describe_release(dir.path());
    let recorder = Recorder::default();
    let scopes = "validate-parameters = main\nset-default = main\nunstringify = main";
    let partition = with_parameters(
        &recorder,
        json!({"port": "8080", "tls": "True", "limits": {}}),
        vec![],
    );
    run_in(
        dir.path(),
        &schema_profile(&description, scopes),
        Some(&partition),
    )
    .expect("valid parameters install");
    let out: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out")).expect("out"))
            .expect("json");
    assert_eq!(
        out,
        json!({"colour": "green", "port": 8080, "tls": true, "limits": {"cpu": 2}})
    );

    // Without unstringify, a string where the schema wants an integer is an error; every
    // mismatch is named by its parameter.
    let partition = with_parameters(
        &recorder,
        json!({"port": "8080", "colour": "red", "size": 3}),
        vec![],
    );
    let strict = "validate-parameters = main\nset-default = main";
    let error = run_in(
        dir.path(),
        &schema_profile(&description, strict),
        Some(&partition),
    )
    .expect_err("invalid parameters")
    .to_string();
    assert!(
        error.contains(
            "buildout.cfg:5: [config]: recipe slapos.cookbook:slapconfiguration.jsonschema: invalid parameters:"
        ),
        "{error}"
    );
    for expected in [
        "parameter /port: want integer, but got string",
        "parameter /colour: value must be one of 'green', 'blue'",
        "additionalProperties 'size' not allowed",
    ] {
        assert!(error.contains(expected), "{expected} in {error}");
    }

    let partition = with_parameters(&recorder, json!({}), vec![]);
    let error = run_in(
        dir.path(),
        &schema_profile(&description, "validate-parameters = everything"),
        Some(&partition),
    )
    .expect_err("bad option")
    .to_string();
    assert!(
        error.contains("\"everything\" is not a valid value for option validate-parameters"),
        "{error}"
    );
}

#[test]
fn shared_instances_that_do_not_match_are_set_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let description = describe_release(dir.path());
    let recorder = Recorder::default();
    let partition = with_parameters(
        &recorder,
        json!({}),
        vec![json!({"domain": "a.example"}), json!({"domian": "typo"})],
    );
    let profile = format!(
        "[buildout]\nparts = out\n\n[config]\nrecipe = slapos.cookbook:slapconfiguration.jsonschema\n\
         jsonschema = {}\nvalidate-parameters = shared\n\n[out]\nrecipe = collective.recipe.template\n\
         output = ${{buildout:directory}}/out\ninline =\n  {{\"valid\": ${{config:valid-shared-instance-list}}, \"invalid\": ${{config:invalid-shared-instance-list}}}}\n",
        description.display()
    );
    run_in(dir.path(), &profile, Some(&partition)).expect("installs");
    let out: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out")).expect("out"))
            .expect("json");
    assert_eq!(out["valid"][0]["reference"], "10");
    assert_eq!(out["valid"][0]["parameters"]["domain"], "a.example");
    assert_eq!(out["valid"].as_array().map(Vec::len), Some(1));
    assert_eq!(out["invalid"][0]["reference"], "11");
    let errors = out["invalid"][0]["errors"].as_str().expect("errors");
    assert!(errors.contains("missing properties 'domain'"), "{errors}");
}

const PUBLISH_EARLY: &str = "[buildout]\nparts = publish\n\n\
    [publish-early]\nrecipe = slapos.cookbook:publish-early\n-init =\n  password gen:passwd\n  \
    colour gen-colour:value\ncolour = set-here\n\n\
    [gen]\nrecipe = slapos.cookbook:generate.password\nstorage-path = ${buildout:directory}/.password\n\n\
    [gen-colour]\nvalue = never taken\n\n\
    [publish]\nrecipe = slapos.cookbook:publish.serialised\n-extends = publish-early\nurl = http://x\n";

fn serialised_parameters(publish: &api::Publish) -> Value {
    let text = publish.parameters["_"].as_str().expect("serialised");
    serde_json::from_str(text).expect("json")
}

#[test]
fn publish_early_publishes_a_generated_value_first_and_keeps_the_published_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recorder = Recorder::default();
    let first = partition(&recorder, "default");
    run_in(dir.path(), PUBLISH_EARLY, Some(&first)).expect("installs");
    let published = recorder.published.lock().expect("lock").clone();
    assert_eq!(published.len(), 2, "{published:?}");
    let early = serialised_parameters(&published[0]);
    let password = early["password"].as_str().expect("a password").to_owned();
    assert_eq!(password.len(), 16);
    // The `-init` keys are published early, not the section's other options.
    assert_eq!(early, json!({"password": password, "colour": "set-here"}));
    assert_eq!(
        serialised_parameters(&published[1]),
        json!({"password": password, "colour": "set-here", "url": "http://x"})
    );

    // On another run (a new partition, say), what was published wins over what the
    // section would compute, and nothing changed means nothing published early.
    let other = tempfile::tempdir().expect("tempdir");
    let recorder = Recorder::default();
    let mut second = partition(&recorder, "default");
    second.instance.connection = [(
        "_".to_owned(),
        json!(
            json!({"password": "kept-secret", "colour": "set-here", "url": "http://x"}).to_string()
        ),
    )]
    .into_iter()
    .collect();
    run_in(other.path(), PUBLISH_EARLY, Some(&second)).expect("installs");
    let published = recorder.published.lock().expect("lock").clone();
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(
        serialised_parameters(&published[0])["password"],
        "kept-secret"
    );
    assert_eq!(
        std::fs::read_to_string(other.path().join(".password")).expect("stored"),
        "kept-secret"
    );

    // The value is the early section's alone: a section that took it first is an error.
    let early_use = PUBLISH_EARLY.replace(
        "[buildout]\nparts = publish\n",
        "[buildout]\nparts = early-user publish\n\n[early-user]\nrecipe = plone.recipe.command\ncommand = echo ${gen:passwd}\n",
    );
    let error = run_in(dir.path(), &early_use, Some(&second))
        .expect_err("gen initialized before publish-early")
        .to_string();
    assert!(
        error.contains("section gen was already initialized"),
        "{error}"
    );
}
