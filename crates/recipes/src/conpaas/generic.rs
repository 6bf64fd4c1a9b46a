//! A generic service's agents: ConPaaS's scripts, run as ConPaaS ran them.

use std::path::Path;

use crate::Context;
use crate::builtin::write_file;
use crate::slap::Partition;

use super::agents::{
    AgentDirs, SCRIPT_TIMEOUT, code_version, ipv4, publish, run_bounded, write_changed,
};
use super::text;

/// Runs `name` of a generic service's code (`init.sh`, `notify.sh`, `run.sh`...) if the
/// code has it, in the code's directory, its output appended to `var/log/scripts.log`;
/// how it ended.
pub(super) fn generic_script(
    ctx: &Context<'_>,
    code: &Path,
    name: &str,
    env: &[(&str, String)],
) -> Result<Option<String>, String> {
    let script = code.join(name);
    if !script.is_file() {
        return Ok(None);
    }
    let mut command = std::process::Command::new("/bin/sh");
    command.arg(&script).current_dir(code);
    for (key, value) in env {
        command.env(key, value);
    }
    let log = ctx.inside(Path::new("var/log/scripts.log"))?;
    // A script that runs too long is ended: its end says so, and the agent goes on.
    let ended = run_bounded(&mut command, &log, SCRIPT_TIMEOUT)
        .map_err(|e| format!("{name}: {e}"))?
        .to_string();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    use std::io::Write as _;
    let _ = writeln!(file, "== {name}: {ended}");
    Ok(Some(ended))
}

/// A generic service's agent (`master` or `node`): the code archive as a code version,
/// ConPaaS's scripts run as ConPaaS ran them: `init.sh` once per code version,
/// `notify.sh` whenever the members change (`$CONPAAS_AGENTS`, a JSON file of the
/// members' addresses by role), `run.sh`, `interrupt.sh`, `cleanup.sh` when the manager
/// asks.
pub(super) fn generic_node(ctx: &Context<'_>, partition: &Partition<'_>) -> Result<(), String> {
    let parameters = &partition.instance.parameters;
    let ip = ipv4(partition)?;
    AgentDirs::make(ctx)?;
    let code = code_version(ctx, text(parameters, "archive").as_deref())?;
    let agents = ctx.inside(Path::new("var/conpaas/agents.json"))?;
    let env = [
        ("CONPAAS_AGENTS", agents.display().to_string()),
        ("CONPAAS_ROLE", partition.instance.software_type.clone()),
        ("CONPAAS_IP", ip.clone()),
        ("HOME", ctx.directory.display().to_string()),
    ];
    let version = code
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let initialised = ctx.inside(&Path::new("var/conpaas").join(format!("init-{version}.done")))?;
    if !initialised.is_file() {
        generic_script(ctx, &code, "init.sh", &env)?;
        write_file(&initialised, b"", 0o600)?;
    }
    let members = text(parameters, "members").unwrap_or_else(|| "{}".to_owned());
    // Told once the manager knows who the members are, again whenever they change.
    if write_changed(&agents, &members, 0o644)? && members != "{}" {
        generic_script(ctx, &code, "notify.sh", &env)?;
    }
    let mut script =
        std::fs::read_to_string(ctx.inside(Path::new("var/conpaas/script"))?).unwrap_or_default();
    if let Some(command) = text(parameters, "command") {
        let done = ctx.inside(Path::new("var/conpaas/command"))?;
        let last = std::fs::read_to_string(&done).unwrap_or_default();
        if last != command {
            let name = command.split(' ').next().unwrap_or_default();
            if matches!(name, "run" | "interrupt" | "cleanup") {
                let ended = generic_script(ctx, &code, &format!("{name}.sh"), &env)?
                    .unwrap_or_else(|| format!("no {name}.sh"));
                script = format!("{command}: {ended}");
                write_file(
                    &ctx.inside(Path::new("var/conpaas/script"))?,
                    script.as_bytes(),
                    0o600,
                )?;
            }
            write_file(&done, command.as_bytes(), 0o600)?;
        }
    }
    let mut values = vec![("address", ip)];
    if !script.is_empty() {
        values.push(("script", script));
    }
    publish(partition, &values)
}
