//! `slapos.cookbook:slapconfiguration.jsonschema`: `slapconfiguration`, with the instance's
//! parameters (and its shared instances') checked against the JSON schema the release
//! declares for its software type in `software.cfg.json`, and optionally completed with the
//! schema's defaults and unstringified (`"3"` to `3` where the schema wants an integer).
//!
//! A main instance whose parameters do not match fails the run with every mismatch named
//! by its parameter; a shared instance that does not match is listed apart
//! (`invalid-shared-instance-list`) so that its host serves the others.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use grove_profile::Value;
use serde_json::Value as Json;
use url::Url;

use crate::cookbook::{SlapConfiguration, as_text};
use crate::{Context, Recipe, Registry};

pub(crate) fn register(registry: &mut Registry) {
    registry.add(
        "slapos.cookbook:slapconfiguration.jsonschema",
        Box::new(JsonSchemaConfiguration),
    );
}

/// Which instances an option applies to (`all`, `main`, `shared`, `none`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scope {
    main: bool,
    shared: bool,
}

fn scope(options: &BTreeMap<String, Value>, name: &str, default: &str) -> Result<Scope, String> {
    let value = options
        .get(name)
        .map(|v| v.as_text().trim().to_owned())
        .unwrap_or_else(|| default.to_owned());
    let (main, shared) = match value.as_str() {
        "all" => (true, true),
        "main" => (true, false),
        "shared" => (false, true),
        "none" => (false, false),
        other => {
            return Err(format!(
                "{other:?} is not a valid value for option {name} (all, main, shared or none)"
            ));
        }
    };
    Ok(Scope { main, shared })
}

/// The JSON documents of a release's description, read once each through the fetcher.
struct Documents<'a> {
    ctx: &'a Context<'a>,
    read: HashMap<Url, Json>,
}

/// Where a path or URL option points, as a URL that relative `$ref`s resolve against.
fn location(text: &str) -> Result<Url, String> {
    if text.contains("://") {
        return Url::parse(text).map_err(|e| format!("{text} is not a valid URL: {e}"));
    }
    let path = PathBuf::from(text);
    Url::from_file_path(&path).map_err(|()| format!("{text} is not an absolute path"))
}

fn read_json(fetcher: &grove_fetch::Fetcher, url: &Url) -> Result<Json, String> {
    let location = match url.scheme() {
        "file" => url
            .to_file_path()
            .map_err(|()| format!("{url} is not a file"))?
            .display()
            .to_string(),
        _ => url.to_string(),
    };
    let mut bytes = Vec::new();
    fetcher.download(&location, &mut bytes)?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{location} is not JSON: {e}"))
}

impl Documents<'_> {
    fn get(&mut self, url: &Url) -> Result<&Json, String> {
        let mut document = url.clone();
        document.set_fragment(None);
        if !self.read.contains_key(&document) {
            let json = read_json(self.ctx.fetcher, &document)?;
            self.read.insert(document.clone(), json);
        }
        let json = &self.read[&document];
        match url.fragment() {
            None | Some("") => Ok(json),
            Some(pointer) => json
                .pointer(pointer)
                .ok_or_else(|| format!("{url} points to nothing")),
        }
    }

    /// `schema` with its `$ref` followed (a chain of them), and the URL it is at.
    fn follow(&mut self, base: &Url, schema: &Json) -> Result<(Url, Json), String> {
        let mut base = base.clone();
        let mut schema = schema.clone();
        for _ in 0..32 {
            let Some(reference) = schema.get("$ref").and_then(Json::as_str) else {
                return Ok((base, schema));
            };
            let target = base
                .join(reference)
                .map_err(|e| format!("$ref {reference} in {base}: {e}"))?;
            schema = self.get(&target)?.clone();
            base = target;
        }
        Err(format!("$ref chain too long at {base}"))
    }

    /// Fills in what the schema says of the members `instance` lacks (defaults), and turns
    /// strings into the integers and booleans it wants (unstringify), through `properties`
    /// and `allOf`, into the objects present. Alternatives (`oneOf`, `anyOf`) are left
    /// alone: which one applies is the validator's to say.
    fn complete(
        &mut self,
        base: &Url,
        schema: &Json,
        instance: &mut Json,
        defaults: bool,
        unstringify: bool,
    ) -> Result<(), String> {
        let (base, schema) = self.follow(base, schema)?;
        if let Some(all) = schema.get("allOf").and_then(Json::as_array) {
            for member in all {
                self.complete(&base, member, instance, defaults, unstringify)?;
            }
        }
        let Some(properties) = schema.get("properties").and_then(Json::as_object) else {
            return Ok(());
        };
        let Json::Object(members) = instance else {
            return Ok(());
        };
        for (key, property) in properties {
            let (_, property) = self.follow(&base, property)?;
            match members.get_mut(key) {
                None => {
                    if defaults && let Some(default) = property.get("default") {
                        members.insert(key.clone(), default.clone());
                    }
                }
                Some(value) => {
                    if unstringify
                        && let Json::String(text) = value
                        && let Some(typed) = unstringified(&property, text)
                    {
                        *value = typed;
                    }
                    if value.is_object() {
                        self.complete(&base, &property, value, defaults, unstringify)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// `text` as the integer or boolean `property` wants, when it wants one and `text` is one.
fn unstringified(property: &Json, text: &str) -> Option<Json> {
    let types: Vec<&str> = match property.get("type")? {
        Json::String(t) => vec![t.as_str()],
        Json::Array(list) => list.iter().filter_map(Json::as_str).collect(),
        _ => return None,
    };
    types.into_iter().find_map(|t| match t {
        "integer" => text.trim().parse::<i64>().ok().map(Json::from),
        "boolean" => match text.trim() {
            "True" | "true" => Some(Json::Bool(true)),
            "False" | "false" => Some(Json::Bool(false)),
            _ => None,
        },
        _ => None,
    })
}

/// Loads what a schema refers to, through the same fetcher as the rest.
struct Loader(grove_fetch::Fetcher);

impl boon::UrlLoader for Loader {
    fn load(&self, url: &str) -> Result<Json, Box<dyn std::error::Error>> {
        let url = Url::parse(url)?;
        Ok(read_json(&self.0, &url)?)
    }
}

/// A compiled schema and what validating with it says.
struct Validator {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

impl Validator {
    /// The schema at `url`, compiled with the documents already read (each file is read
    /// once, for defaults and for validation); what it refers to beyond them is loaded.
    fn new(documents: &mut Documents<'_>, url: &Url) -> Result<Validator, String> {
        documents.get(url)?;
        let mut compiler = boon::Compiler::new();
        for (location, json) in &documents.read {
            compiler
                .add_resource(location.as_str(), json.clone())
                .map_err(|e| format!("the schema {location} cannot be used: {e}"))?;
        }
        let mut loaders = boon::SchemeUrlLoader::new();
        for scheme in ["file", "http", "https"] {
            loaders.register(scheme, Box::new(Loader(documents.ctx.fetcher.clone())));
        }
        compiler.use_loader(Box::new(loaders));
        let mut schemas = boon::Schemas::new();
        let index = compiler
            .compile(url.as_str(), &mut schemas)
            .map_err(|e| format!("the schema {url} cannot be used: {e}"))?;
        Ok(Validator { schemas, index })
    }

    /// Every mismatch, each naming the parameter it is about.
    fn errors(&self, instance: &Json) -> Vec<String> {
        let Err(error) = self.schemas.validate(instance, self.index) else {
            return Vec::new();
        };
        let mut leaves = Vec::new();
        let mut stack = vec![&error];
        while let Some(e) = stack.pop() {
            if e.causes.is_empty() {
                let at = e.instance_location.to_string();
                let at = if at.is_empty() {
                    "the parameters".to_owned()
                } else {
                    format!("parameter {at}")
                };
                leaves.push(format!("{at}: {}", e.kind));
            } else {
                stack.extend(e.causes.iter().rev());
            }
        }
        leaves.dedup();
        leaves
    }
}

/// What `software.cfg.json` says of a software type: the schema of its parameters.
fn request_schema(
    description: &Json,
    base: &Url,
    software_type: &str,
    shared: bool,
) -> Result<Url, String> {
    let types = description
        .get("software-type")
        .and_then(Json::as_object)
        .ok_or_else(|| format!("{base} has no software-type object"))?;
    let entry = types.values().find(|entry| {
        entry.get("software-type").and_then(Json::as_str) == Some(software_type)
            && entry.get("shared").and_then(Json::as_bool).unwrap_or(false) == shared
    });
    let what = if shared {
        "shared software type"
    } else {
        "software type"
    };
    let request = entry
        .and_then(|e| e.get("request"))
        .and_then(Json::as_str)
        .ok_or_else(|| format!("{what} {software_type:?} has no JSON schema entry in {base}"))?;
    base.join(request)
        .map_err(|e| format!("request {request} in {base}: {e}"))
}

struct JsonSchemaConfiguration;

impl Recipe for JsonSchemaConfiguration {
    fn computes_options(&self) -> bool {
        true
    }

    fn init(
        &self,
        ctx: &Context<'_>,
        part: &str,
        options: &mut BTreeMap<String, Value>,
    ) -> Result<(), String> {
        let validate = scope(options, "validate-parameters", "all")?;
        let defaults = scope(options, "set-default", "none")?;
        let unstringify = scope(options, "unstringify", "none")?;
        // Grove reports every failed run to the master with its error already.
        scope(options, "report-error", "all")?;
        let description_url = location(
            options
                .get("jsonschema")
                .ok_or("missing option jsonschema")?
                .as_text()
                .trim(),
        )?;
        let mut documents = Documents {
            ctx,
            read: HashMap::new(),
        };
        let description = documents.get(&description_url)?.clone();
        let serialised =
            description.get("serialisation").and_then(Json::as_str) == Some("json-in-xml");
        SlapConfiguration { serialised }.init(ctx, part, options)?;
        let software_type = options
            .get("slap-software-type")
            .map(|v| v.as_text().into_owned())
            .unwrap_or_default();

        if validate.main {
            let url = request_schema(&description, &description_url, &software_type, false)?;
            let mut parameters = match options.get("configuration") {
                Some(Value::Structured(json)) => json.clone(),
                _ => Json::Object(Default::default()),
            };
            if defaults.main || unstringify.main {
                let schema = documents.get(&url)?.clone();
                documents.complete(
                    &url,
                    &schema,
                    &mut parameters,
                    defaults.main,
                    unstringify.main,
                )?;
            }
            let errors = Validator::new(&mut documents, &url)?.errors(&parameters);
            if !errors.is_empty() {
                return Err(format!("invalid parameters:\n  {}", errors.join("\n  ")));
            }
            if let Json::Object(members) = &parameters {
                for (key, value) in members {
                    options.insert(format!("configuration.{key}"), Value::Text(as_text(value)));
                }
            }
            options.insert("configuration".to_owned(), Value::Structured(parameters));
        }

        if validate.shared {
            let shared = match options.remove("slave-instance-list") {
                Some(Value::Structured(Json::Array(list))) => list,
                _ => Vec::new(),
            };
            let (mut valid, mut invalid) = (Vec::new(), Vec::new());
            if !shared.is_empty() {
                let url = request_schema(&description, &description_url, &software_type, true)?;
                let schema = documents.get(&url)?.clone();
                let validator = Validator::new(&mut documents, &url)?;
                for mut instance in shared {
                    let reference = instance
                        .as_object_mut()
                        .and_then(|o| o.remove("slave_reference"))
                        .unwrap_or(Json::Null);
                    if defaults.shared || unstringify.shared {
                        documents.complete(
                            &url,
                            &schema,
                            &mut instance,
                            defaults.shared,
                            unstringify.shared,
                        )?;
                    }
                    let errors = validator.errors(&instance);
                    let mut item = serde_json::json!({
                        "reference": reference,
                        "parameters": instance,
                    });
                    if errors.is_empty() {
                        valid.push(item);
                    } else {
                        item["errors"] = Json::String(errors.join("\n"));
                        invalid.push(item);
                    }
                }
            }
            options.insert(
                "valid-shared-instance-list".to_owned(),
                Value::Structured(Json::Array(valid)),
            );
            options.insert(
                "invalid-shared-instance-list".to_owned(),
                Value::Structured(Json::Array(invalid)),
            );
        }
        Ok(())
    }
}
