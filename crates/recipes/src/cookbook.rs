//! The recipes of `slapos.cookbook` that talk to the partition and its master:
//! `slapconfiguration`, `publish` and `request` (each with its `.serialised` variant, which
//! packs the parameters as one JSON document under `_`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use grove_api as api;
use grove_profile::{Resolved, Value};

use crate::slap::Partition;
use crate::{Context, Options, Recipe, Registry};

/// The key SlapOS's serialised recipes put the JSON document under.
const SERIALISED: &str = "_";

pub(crate) fn register(registry: &mut Registry) {
    registry.add(
        "slapos.cookbook:slapconfiguration",
        Box::new(SlapConfiguration { serialised: false }),
    );
    registry.add(
        "slapos.cookbook:slapconfiguration.serialised",
        Box::new(SlapConfiguration { serialised: true }),
    );
    registry.add(
        "slapos.cookbook:switch-softwaretype",
        Box::new(SwitchSoftwareType),
    );
    registry.add(
        "slapos.cookbook:publish",
        Box::new(Publish { serialised: false }),
    );
    registry.add(
        "slapos.cookbook:publish.serialised",
        Box::new(Publish { serialised: true }),
    );
    registry.add("slapos.cookbook:publish-early", Box::new(PublishEarly));
    registry.add(
        "slapos.cookbook:request",
        Box::new(Request {
            serialised: false,
            optional: false,
        }),
    );
    registry.add(
        "slapos.cookbook:request.serialised",
        Box::new(Request {
            serialised: true,
            optional: false,
        }),
    );
    registry.add(
        "slapos.cookbook:requestoptional",
        Box::new(Request {
            serialised: false,
            optional: true,
        }),
    );
    registry.add(
        "slapos.cookbook:requestoptional.serialised",
        Box::new(Request {
            serialised: true,
            optional: true,
        }),
    );
}

fn partition<'a>(ctx: &'a Context<'_>) -> Result<&'a Partition<'a>, String> {
    ctx.partition
        .ok_or_else(|| "needs a partition: this is not an instance profile".to_owned())
}

/// Unpacks `{"_": "<json object>"}` into the object.
fn unserialise(parameters: &api::Parameters) -> Result<api::Parameters, String> {
    match parameters.get(SERIALISED) {
        Some(serde_json::Value::String(text)) => serde_json::from_str(text)
            .map_err(|e| format!("the serialised parameters are not a JSON object: {e}")),
        Some(_) => Err("the serialised parameters are not a JSON string".to_owned()),
        None => Ok(api::Parameters::new()),
    }
}

fn serialise(parameters: &api::Parameters) -> api::Parameters {
    let mut packed = api::Parameters::new();
    let text = serde_json::Value::Object(parameters.clone()).to_string();
    packed.insert(SERIALISED.to_owned(), serde_json::Value::String(text));
    packed
}

pub(crate) fn as_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `slapos.cookbook:slapconfiguration`: the instance's parameters as `configuration.<key>`
/// (and `configuration` whole), its addresses, title, type and shared instances.
pub(crate) struct SlapConfiguration {
    pub(crate) serialised: bool,
}

impl Recipe for SlapConfiguration {
    fn computes_options(&self) -> bool {
        true
    }

    fn init(
        &self,
        ctx: &Context<'_>,
        _: &str,
        options: &mut BTreeMap<String, Value>,
    ) -> Result<(), String> {
        let partition = partition(ctx)?;
        let instance = &partition.instance;
        let parameters = if self.serialised {
            unserialise(&instance.parameters)?
        } else {
            instance.parameters.clone()
        };
        for (key, value) in &parameters {
            options.insert(format!("configuration.{key}"), Value::Text(as_text(value)));
        }
        options.insert(
            "configuration".to_owned(),
            Value::Structured(serde_json::Value::Object(parameters)),
        );
        let mut ipv4: Vec<&String> = partition
            .addresses
            .iter()
            .filter(|a| !a.contains(':'))
            .collect();
        let mut ipv6: Vec<&String> = partition
            .addresses
            .iter()
            .filter(|a| a.contains(':'))
            .collect();
        ipv4.sort();
        ipv6.sort();
        let first = |list: &[&String]| list.first().map(|a| (*a).clone()).unwrap_or_default();
        options.insert("ipv4-random".to_owned(), Value::Text(first(&ipv4)));
        options.insert("ipv6-random".to_owned(), Value::Text(first(&ipv6)));
        options.insert(
            "ipv4".to_owned(),
            Value::Structured(serde_json::json!(ipv4)),
        );
        options.insert(
            "ipv6".to_owned(),
            Value::Structured(serde_json::json!(ipv6)),
        );
        options.insert(
            "instance-title".to_owned(),
            Value::Text(instance.title.clone()),
        );
        options.insert(
            "root-instance-title".to_owned(),
            Value::Text(instance.root_title.clone()),
        );
        options.insert(
            "slap-software-type".to_owned(),
            Value::Text(instance.software_type.clone()),
        );
        options.insert(
            "instance-guid".to_owned(),
            Value::Text(instance.id.to_string()),
        );
        options.insert(
            "instance-state".to_owned(),
            Value::Text(instance.requested_state.as_str().to_owned()),
        );
        options.insert(
            "computer-id".to_owned(),
            Value::Text(partition.computer.clone()),
        );
        options.insert(
            "partition-id".to_owned(),
            Value::Text(partition.reference.clone()),
        );
        let mut shared = Vec::new();
        // A destroyed shared instance has left its host.
        let hosted = instance
            .shared_instances
            .iter()
            .filter(|s| s.requested_state != api::RequestedState::Destroyed);
        for s in hosted {
            let mut entry = if self.serialised {
                unserialise(&s.parameters)?
            } else {
                s.parameters.clone()
            };
            entry.insert(
                "slave_reference".to_owned(),
                serde_json::json!(s.id.to_string()),
            );
            entry.insert("slave_title".to_owned(), serde_json::json!(s.title));
            entry.insert(
                "slap_software_type".to_owned(),
                serde_json::json!(s.software_type),
            );
            shared.push(serde_json::Value::Object(entry));
        }
        options.insert(
            "slave-instance-list".to_owned(),
            Value::Structured(serde_json::Value::Array(shared)),
        );
        Ok(())
    }
}

/// `slapos.cookbook:publish-early`: values other sections compute (a generated password)
/// published before anything else runs, and kept from run to run through what was
/// published. `-init` lines `KEY SECTION:OPTION`: before `SECTION` is initialized, its
/// `OPTION` is set to the published `KEY` if there is one; once initialized, `OPTION` moves
/// to this section as `KEY` (only `${publish-early:KEY}` gives it), and what changed is
/// published, serialised. A `KEY` this section sets itself is not taken from anywhere.
struct PublishEarly;

/// The `-init` lines: `(key, section, option)`, in order.
fn early_lines(options: &BTreeMap<String, Value>) -> Result<Vec<(String, String, String)>, String> {
    let text = options
        .get("-init")
        .map(|v| v.as_text().into_owned())
        .ok_or("missing option -init")?;
    let mut lines = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let parsed = match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            [key, target] => target.split_once(':').map(|(section, option)| {
                ((*key).to_owned(), section.to_owned(), option.to_owned())
            }),
            _ => None,
        };
        lines.push(parsed.ok_or_else(|| format!("-init line {line:?} is not KEY SECTION:OPTION"))?);
    }
    Ok(lines)
}

/// What the partition published before, unpacked if it was serialised.
fn published(ctx: &Context<'_>) -> Result<api::Parameters, String> {
    let connection = &partition(ctx)?.instance.connection;
    if connection.contains_key(SERIALISED) {
        unserialise(connection)
    } else {
        Ok(connection.clone())
    }
}

impl Recipe for PublishEarly {
    fn computes_options(&self) -> bool {
        true
    }

    fn initializes_others(&self) -> bool {
        true
    }

    fn early(
        &self,
        ctx: &Context<'_>,
        _: &str,
        options: &BTreeMap<String, Value>,
    ) -> Result<Vec<grove_profile::Early>, String> {
        let published = published(ctx)?;
        let mut early: Vec<grove_profile::Early> = Vec::new();
        for (key, section, option) in early_lines(options)? {
            if options.contains_key(&key) {
                continue;
            }
            let index = match early.iter().position(|e| e.section == section) {
                Some(index) => index,
                None => {
                    early.push(grove_profile::Early {
                        section: section.clone(),
                        ..Default::default()
                    });
                    early.len() - 1
                }
            };
            if let Some(value) = published.get(&key) {
                early[index]
                    .preset
                    .insert(option.clone(), Value::Text(as_text(value)));
            }
            early[index].taken.push((option, key));
        }
        Ok(early)
    }

    fn init(
        &self,
        ctx: &Context<'_>,
        _: &str,
        options: &mut BTreeMap<String, Value>,
    ) -> Result<(), String> {
        let before = published(ctx)?;
        let mut now = api::Parameters::new();
        for (key, _, _) in early_lines(options)? {
            if let Some(value) = options.get(&key) {
                now.insert(key, serde_json::Value::String(value.as_text().into_owned()));
            }
        }
        let changed = now
            .iter()
            .any(|(key, value)| before.get(key).map(as_text) != Some(as_text(value)));
        if changed {
            let partition = partition(ctx)?;
            let mut parameters = before;
            parameters.extend(now);
            partition
                .master
                .publish(
                    partition.instance.id,
                    &api::Publish {
                        parameters: serialise(&parameters),
                        shared_instance: None,
                    },
                )
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// `slapos.cookbook:publish`: every option but `recipe` and those starting with `-`
/// becomes a connection parameter; `-slave-reference` publishes for a shared instance.
struct Publish {
    serialised: bool,
}

impl Publish {
    fn publish(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        resolved: &Resolved,
    ) -> Result<(), String> {
        let partition = partition(ctx)?;
        let mut parameters = api::Parameters::new();
        // `-extends`: other sections' options first, this section's own win.
        let mut sources = Vec::new();
        for section in options
            .get("-extends")
            .unwrap_or_default()
            .split_whitespace()
        {
            let values = resolved.sections.get(section).ok_or_else(|| {
                match resolved
                    .diagnostics
                    .iter()
                    .find(|d| d.section.as_deref() == Some(section))
                {
                    Some(d) => format!("-extends names section {section}, which failed: {d}"),
                    None => format!("-extends names section {section}, which does not exist"),
                }
            })?;
            sources.push(values);
        }
        sources.push(options.values);
        for (key, value) in sources.into_iter().flatten() {
            if key == "recipe"
                || key.starts_with('-')
                || key.starts_with('_')
                || key.starts_with('<')
            {
                continue;
            }
            parameters.insert(
                key.clone(),
                serde_json::Value::String(value.as_text().into_owned()),
            );
        }
        let shared_instance = match options.get("-slave-reference") {
            Some(text) => Some(
                text.trim()
                    .parse()
                    .map_err(|_| format!("-slave-reference {text:?} is not an instance id"))?,
            ),
            None => None,
        };
        let parameters = if self.serialised {
            serialise(&parameters)
        } else {
            parameters
        };
        partition
            .master
            .publish(
                partition.instance.id,
                &api::Publish {
                    parameters,
                    shared_instance,
                },
            )
            .map_err(|e| e.to_string())
    }
}

impl Recipe for Publish {
    fn install(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        resolved: &Resolved,
    ) -> Result<Vec<PathBuf>, String> {
        self.publish(ctx, options, resolved).map(|()| Vec::new())
    }

    /// Published on every run: the master keeps what did not change as it is.
    fn update(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        resolved: &Resolved,
    ) -> Result<(), String> {
        self.publish(ctx, options, resolved)
    }
}

/// `slapos.cookbook:request`: requests a child instance as this partition; `config-<key>`
/// are its parameters, `sla-<key>` its filters (an empty one filters nothing, so that a
/// profile can pass an optional parameter through), and each key of `return` comes back as
/// `connection-<key>` once the child published it (`request` fails until then,
/// `requestoptional` leaves it empty).
struct Request {
    serialised: bool,
    optional: bool,
}

impl Recipe for Request {
    fn computes_options(&self) -> bool {
        true
    }

    fn init(
        &self,
        ctx: &Context<'_>,
        part: &str,
        options: &mut BTreeMap<String, Value>,
    ) -> Result<(), String> {
        let partition = partition(ctx)?;
        let text = |name: &str| options.get(name).map(|v| v.as_text().trim().to_owned());
        let title = text("name").ok_or("missing option name")?;
        let software_release = text("software-url").ok_or("missing option software-url")?;
        let software_type = text("software-type").unwrap_or_else(|| "default".to_owned());
        let shared = text("shared").is_some_and(|v| crate::truthy(&v));
        let state = match text("state") {
            Some(s) => api::RequestedState::parse(&s)
                .ok_or_else(|| format!("state {s:?} is not one of started, stopped, destroyed"))?,
            None => partition.instance.requested_state,
        };
        let mut parameters = api::Parameters::new();
        let mut sla = BTreeMap::new();
        for (key, value) in options.iter() {
            if let Some(name) = key.strip_prefix("config-") {
                parameters.insert(
                    name.to_owned(),
                    serde_json::Value::String(value.as_text().into_owned()),
                );
            } else if let Some(name) = key.strip_prefix("sla-") {
                let value = value.as_text().trim().to_owned();
                if !value.is_empty() {
                    sla.insert(name.to_owned(), value);
                }
            }
        }
        let parameters = if self.serialised {
            serialise(&parameters)
        } else {
            parameters
        };
        let request = api::InstanceRequest {
            title: title.clone(),
            software_release,
            software_type,
            parameters,
            state,
            shared,
            sla,
            project: None,
        };
        let child = partition
            .master
            .request(&request)
            .map_err(|e| e.to_string())?;
        if let Ok(mut requested) = partition.requested.lock() {
            requested.push(title.clone());
        }
        let connection = if self.serialised {
            unserialise(&child.connection)?
        } else {
            child.connection.clone()
        };
        let wanted: Vec<String> = text("return")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        for key in wanted {
            match connection.get(&key) {
                Some(value) => {
                    options.insert(format!("connection-{key}"), Value::Text(as_text(value)));
                }
                None if self.optional => {
                    tracing::warn!(part, %key, child = %title, "connection parameter not published yet");
                    options.insert(format!("connection-{key}"), Value::Text(String::new()));
                }
                None => {
                    return Err(format!(
                        "connection parameter {key} of {title} is not published yet; the instance \
                         runs again when it is"
                    ));
                }
            }
        }
        options.insert(
            "instance-guid".to_owned(),
            Value::Text(child.id.to_string()),
        );
        options.insert(
            "requested-state".to_owned(),
            Value::Text(child.requested_state.as_str().to_owned()),
        );
        let reported = child
            .reported_state
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        options.insert("instance-state".to_owned(), Value::Text(reported));
        Ok(())
    }
}

/// `slapos.cookbook:switch-softwaretype`: runs the profile named for the instance's software
/// type (`<type> = /path/to/profile` or `<type> = section:option` naming one) as a
/// sub-profile in the same partition, with `[slap-connection]` and the computed
/// `[slap-configuration]` passed through. It runs on every run, since the instance's
/// parameters reach the sub-profile without changing this part's options.
struct SwitchSoftwareType;

const SWITCH_PROFILE: &str = "buildout-switch.cfg";
const SWITCH_STATE: &str = ".installed-switch.json";

impl SwitchSoftwareType {
    fn run(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        resolved: &Resolved,
    ) -> Result<Vec<PathBuf>, String> {
        let partition = partition(ctx)?;
        let software_type = partition.instance.software_type.as_str();
        // SlapOS's former name of the default type.
        let chosen = options
            .get(software_type)
            .or_else(|| {
                (software_type == "RootSoftwareInstance")
                    .then(|| options.get("default"))
                    .flatten()
            })
            .ok_or_else(|| format!("no profile for software type {software_type}"))?;
        let chosen = chosen.trim();
        let path = match chosen.split_once(':') {
            Some((section, option)) if !chosen.contains('/') => resolved
                .text(section, option)
                .ok_or_else(|| format!("{chosen} names no option"))?,
            _ => chosen.to_owned(),
        };
        let mut text = format!(
            "# Written by grove for software type {software_type}.\n[buildout]\nextends = {}\n",
            escape(&path)
        );
        for section in ["slap-connection", "slap-configuration"] {
            let Some(values) = resolved.sections.get(section) else {
                continue;
            };
            text.push_str(&format!("\n[{section}]\n"));
            for (key, value) in values {
                if key == "recipe" || key.starts_with('_') {
                    continue;
                }
                let value = escape(&value.as_text());
                text.push_str(&format!("{key} = {}\n", value.replace('\n', "\n  ")));
            }
        }
        let main = ctx.inside(std::path::Path::new(SWITCH_PROFILE))?;
        std::fs::write(&main, text).map_err(|e| format!("cannot write {}: {e}", main.display()))?;
        let profile = crate::load_profile(&main, ctx.fetcher)?;
        crate::install::install_recording(&profile, &Registry::builtin(), ctx, SWITCH_STATE)
            .map_err(|e| format!("software type {software_type}: {e}"))?;
        Ok(vec![main])
    }
}

/// A value written into a profile stays literal.
fn escape(text: &str) -> String {
    text.replace('$', "$$")
}

impl Recipe for SwitchSoftwareType {
    fn install(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        resolved: &Resolved,
    ) -> Result<Vec<PathBuf>, String> {
        self.run(ctx, options, resolved)
    }

    fn update(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        resolved: &Resolved,
    ) -> Result<(), String> {
        self.run(ctx, options, resolved).map(|_| ())
    }
}
