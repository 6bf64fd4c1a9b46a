//! Periodic jobs: `slapos.cookbook:cron` (the daemon) and `slapos.cookbook:cron.d` (one
//! job), and the daemon itself, [`run`], behind `grove cron`.
//!
//! SlapOS builds dcron and runs it in every partition. Grove runs its own: the `binary`
//! the `cron` recipe writes starts `grove cron` on the entries directory, and the profile
//! makes it a service as it would dcron's (`slapos.cookbook:wrapper` into
//! `etc/service`), so the agent supervises it as the partition's user, it outlives the
//! agent like every service, and it stops with the instance. Each job's output goes to
//! the `catcher` (SlapOS's simplelogger) or, without one, to the log file.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Local, TimeZone, Timelike};
use grove_profile::Resolved;

use crate::builtin::{arg, grove_script, write_file};
use crate::{Context, Options, Recipe, Registry};

pub(crate) fn register(registry: &mut Registry) {
    registry.add("slapos.cookbook:cron", Box::new(Daemon));
    registry.add("slapos.cookbook:cron.d", Box::new(Job));
}

/// A schedule (`m h dom mon dow` or an `@` nickname) that cannot be used, with why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schedule {spec:?}: {reason}")]
pub struct ScheduleError {
    pub spec: String,
    pub reason: String,
}

/// A parsed crontab schedule.
#[derive(Debug, Clone)]
pub struct Schedule(croner::Cron);

impl Schedule {
    pub fn parse(spec: &str) -> Result<Schedule, ScheduleError> {
        let error = |reason: String| ScheduleError {
            spec: spec.to_owned(),
            reason,
        };
        // croner also takes a sixth field for seconds; crontab has five.
        if !spec.starts_with('@') && spec.split_whitespace().count() != 5 {
            return Err(error(
                "a schedule has five fields: minute hour day month weekday".into(),
            ));
        }
        croner::Cron::new(spec)
            .parse()
            .map(Schedule)
            .map_err(|e| error(e.to_string()))
    }

    /// Whether the job runs in the minute that starts at `minute`.
    pub fn matches<Tz: TimeZone>(&self, minute: &DateTime<Tz>) -> bool {
        self.0.is_time_matching(minute).unwrap_or(false)
    }
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

/// Converts what systemd.time(7) calls a calendar event, as `cron.d`'s `time` takes it
/// (`daily`, `Mon,Fri *-*-* 4:00`, `*:0/5`), to a crontab schedule. Only what crontab can
/// say is accepted: no years, no seconds, no weekday together with a day of the month.
pub fn calendar_to_cron(spec: &str) -> Result<String, ScheduleError> {
    let error = |reason: &str| ScheduleError {
        spec: spec.to_owned(),
        reason: reason.to_owned(),
    };
    let nickname = match spec.trim() {
        "minutely" => Some("* * * * *"),
        "hourly" => Some("0 * * * *"),
        "daily" => Some("0 0 * * *"),
        "weekly" => Some("0 0 * * 0"),
        "monthly" => Some("0 0 1 * *"),
        "yearly" | "annually" => Some("0 0 1 1 *"),
        "" => return Err(error("the calendar event is empty")),
        _ => None,
    };
    if let Some(cron) = nickname {
        return Ok(cron.to_owned());
    }
    let mut tokens: Vec<&str> = spec.split_whitespace().collect();
    let weekday = |name: &str| {
        let name = name.to_ascii_lowercase();
        WEEKDAYS
            .iter()
            .position(|d| *d == name || (name.len() == 3 && d.starts_with(&name)))
    };
    let mut weekdays = "*".to_owned();
    if let Some(first) = tokens.first()
        && first
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
    {
        let mut list = Vec::new();
        for item in first.split(',').filter(|i| !i.is_empty()) {
            let mut days = Vec::new();
            for day in item.splitn(2, '-') {
                days.push(
                    weekday(day)
                        .ok_or_else(|| error(&format!("{day} is not a day of the week")))?,
                );
            }
            // A range ending on Sunday ends on crontab's 7.
            if let [start, 0] = days.as_mut_slice()
                && *start > 0
            {
                days[1] = 7;
            }
            let days: Vec<String> = days.iter().map(ToString::to_string).collect();
            list.push(days.join("-"));
        }
        list.sort();
        weekdays = list.join(",");
        tokens.remove(0);
    }
    let (date, time) = match tokens.as_slice() {
        [] => ("*-*", "0:0"),
        [one] if one.contains(':') => ("*-*", *one),
        [one] => (*one, "0:0"),
        [date, time] => (*date, *time),
        _ => return Err(error("a calendar event is [weekdays] [date] [time]")),
    };
    let mut date: Vec<&str> = date.split('-').collect();
    if date.len() == 3 {
        if date[0] != "*" {
            return Err(error("a year cannot be said in crontab"));
        }
        date.remove(0);
    }
    let [month, day] = date.as_slice() else {
        return Err(error("a date is [year-]month-day"));
    };
    if weekdays != "*" && *day != "*" {
        return Err(error(
            "a weekday together with a day of the month is read differently by cron",
        ));
    }
    let mut time: Vec<&str> = time.split(':').collect();
    if time.len() == 3 {
        let seconds = time.pop().unwrap_or("0");
        if seconds.parse::<u32>().ok() != Some(0) {
            return Err(error("seconds cannot be said in crontab"));
        }
    }
    let [hour, minute] = time.as_slice() else {
        return Err(error("a time is hour:minute[:second]"));
    };
    let field = |value: &str, low: u32, count: u32| -> Result<String, ScheduleError> {
        if value == "*" {
            return Ok(value.to_owned());
        }
        let mut items = Vec::new();
        for item in value.split(',') {
            let (start, step) = match item.split_once('/') {
                Some((start, step)) => (start, Some(step)),
                None => (item, None),
            };
            let start: u32 = start
                .parse()
                .map_err(|_| error(&format!("{item} is not a number or a repetition")))?;
            if start < low || start - low >= count {
                return Err(error(&format!("{start} is out of range")));
            }
            items.push(match step {
                None => start.to_string(),
                Some(step) => {
                    let step: u32 = step
                        .parse()
                        .ok()
                        .filter(|s| *s > 0)
                        .ok_or_else(|| error(&format!("{item} has no valid repetition")))?;
                    // systemd repeats `start/step` up to the end of the range.
                    let last = start + (count - 1 - (start - low)) / step * step;
                    format!("{start}-{last}/{step}")
                }
            });
        }
        Ok(items.join(","))
    };
    let cron = format!(
        "{} {} {} {} {}",
        field(minute, 0, 60)?,
        field(hour, 0, 24)?,
        field(day, 1, 31)?,
        field(month, 1, 12)?,
        weekdays
    );
    Schedule::parse(&cron).map_err(|e| error(&e.reason))?;
    Ok(cron)
}

/// One line of an entries file.
#[derive(Debug, Clone)]
pub struct Entry {
    pub file: PathBuf,
    pub line: usize,
    pub schedule: Schedule,
    pub command: String,
}

impl Entry {
    /// What tells this job from the others across readings of the directory.
    fn key(&self) -> (PathBuf, usize, String) {
        (self.file.clone(), self.line, self.command.clone())
    }
}

/// A line of an entries file that is not a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {message}", file.display())]
pub struct EntryError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

/// Reads the jobs of `text` (lines `SCHEDULE COMMAND`, blank lines and `#` comments
/// skipped); every bad line is reported, the good ones kept.
pub fn parse_entries(file: &Path, text: &str) -> (Vec<Entry>, Vec<EntryError>) {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields = if trimmed.starts_with('@') { 1 } else { 5 };
        let mut rest = trimmed;
        let mut spec = Vec::new();
        for _ in 0..fields {
            match rest.split_once(char::is_whitespace) {
                Some((field, tail)) => {
                    spec.push(field);
                    rest = tail.trim_start();
                }
                None => {
                    rest = "";
                    break;
                }
            }
        }
        let failed = |message: String| EntryError {
            file: file.to_owned(),
            line: index + 1,
            message,
        };
        if spec.len() < fields || rest.is_empty() {
            errors.push(failed(
                "a job is a schedule followed by a command".to_owned(),
            ));
            continue;
        }
        match Schedule::parse(&spec.join(" ")) {
            Ok(schedule) => entries.push(Entry {
                file: file.to_owned(),
                line: index + 1,
                schedule,
                command: rest.to_owned(),
            }),
            Err(e) => errors.push(failed(e.to_string())),
        }
    }
    (entries, errors)
}

/// The jobs of every file in `dir` (hidden files and editors' leftovers skipped, as cron
/// does), in file order.
pub fn read_entries(dir: &Path) -> (Vec<Entry>, Vec<EntryError>) {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(list) => list.flatten().map(|e| e.path()).collect(),
        Err(e) => {
            errors.push(EntryError {
                file: dir.to_owned(),
                line: 0,
                message: format!("cannot read the entries: {e}"),
            });
            return (entries, errors);
        }
    };
    files.sort();
    for file in files {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || name.ends_with('~') || !file.is_file() {
            continue;
        }
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                let (mut found, mut bad) = parse_entries(&file, &text);
                entries.append(&mut found);
                errors.append(&mut bad);
            }
            Err(e) => errors.push(EntryError {
                file: file.clone(),
                line: 0,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    (entries, errors)
}

/// What `grove cron` is given.
#[derive(Debug, Clone)]
pub struct Daemonized {
    /// The directory of entries files (`cron-entries`).
    pub entries: PathBuf,
    /// Where the daemon writes what it runs and what failed (`log-file`).
    pub log: PathBuf,
    /// A program that takes each job's output on its standard input (`catcher`); without
    /// one the output is appended to the log.
    pub catcher: Option<PathBuf>,
}

/// The cron daemon: at every minute, runs the jobs due then. Never returns but on an
/// error with its log file.
pub fn run(config: &Daemonized) -> std::io::Result<()> {
    let mut cron = Cron::new(config.clone());
    loop {
        let now = Local::now();
        let next = (now + chrono::Duration::minutes(1))
            .with_second(0)
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(now + chrono::Duration::minutes(1));
        let wait = (next - now).to_std().unwrap_or(Duration::ZERO);
        std::thread::sleep(wait);
        cron.tick(&next)?;
    }
}

/// The daemon's state: the jobs still running, so that a slow job is not started again
/// over itself.
#[derive(Debug)]
pub struct Cron {
    config: Daemonized,
    running: HashMap<(PathBuf, usize, String), Vec<Child>>,
}

impl Cron {
    pub fn new(config: Daemonized) -> Cron {
        Cron {
            config,
            running: HashMap::new(),
        }
    }

    fn log(&self, line: &str) -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.config.log)?;
        writeln!(file, "{} {line}", Local::now().format("%Y-%m-%d %H:%M:%S"))
    }

    /// Runs the jobs due in the minute that starts at `minute`; returns how many started.
    pub fn tick<Tz: TimeZone>(&mut self, minute: &DateTime<Tz>) -> std::io::Result<usize> {
        self.reap()?;
        let (entries, errors) = read_entries(&self.config.entries);
        for error in errors {
            self.log(&format!("skipped {error}"))?;
        }
        let mut started = 0;
        for entry in entries.iter().filter(|e| e.schedule.matches(minute)) {
            let key = entry.key();
            if self.running.contains_key(&key) {
                self.log(&format!(
                    "not started {}:{}: it is still running",
                    entry.file.display(),
                    entry.line
                ))?;
                continue;
            }
            self.log(&format!(
                "running {}:{}: {}",
                entry.file.display(),
                entry.line,
                entry.command
            ))?;
            match self.start(&entry.command) {
                Ok(children) => {
                    self.running.insert(key, children);
                    started += 1;
                }
                Err(e) => self.log(&format!(
                    "cannot start {}:{}: {e}",
                    entry.file.display(),
                    entry.line
                ))?,
            }
        }
        Ok(started)
    }

    /// Starts a job, its output (both streams) to the catcher or the log.
    fn start(&self, command: &str) -> std::io::Result<Vec<Child>> {
        let mut job = Command::new("/bin/sh");
        job.arg("-c").arg(command).stdin(Stdio::null());
        match &self.config.catcher {
            Some(catcher) => {
                let (reader, writer) = std::io::pipe()?;
                job.stdout(writer.try_clone()?).stderr(writer);
                let catcher = Command::new(catcher).stdin(reader).spawn()?;
                let child = job.spawn()?;
                // The job holds the only write end left, so its end ends the catcher.
                drop(job);
                Ok(vec![child, catcher])
            }
            None => {
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.config.log)?;
                job.stdout(log.try_clone()?).stderr(log);
                Ok(vec![job.spawn()?])
            }
        }
    }

    /// Collects the jobs that ended, logging the ones that failed.
    fn reap(&mut self) -> std::io::Result<()> {
        let mut ended = Vec::new();
        for (key, children) in &mut self.running {
            let mut done = true;
            for child in children.iter_mut() {
                match child.try_wait()? {
                    Some(_) => {}
                    None => done = false,
                }
            }
            if done {
                ended.push(key.clone());
            }
        }
        for key in ended {
            if let Some(mut children) = self.running.remove(&key) {
                let status = children[0].wait()?;
                if !status.success() {
                    self.log(&format!("{}:{}: {status}", key.0.display(), key.1))?;
                }
            }
        }
        Ok(())
    }

    /// Waits for every running job (for tests and a clean stop).
    pub fn wait(&mut self) -> std::io::Result<()> {
        for children in self.running.values_mut() {
            for child in children {
                child.wait()?;
            }
        }
        self.reap()
    }
}

/// `slapos.cookbook:cron`: writes `binary`, the program that runs the jobs in
/// `cron-entries` (the profile makes it a service). `dcrond-binary`, `crontabs` and
/// `cronstamps` are dcron's and accepted unused.
struct Daemon;

impl Recipe for Daemon {
    fn install(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        _: &Resolved,
    ) -> Result<Vec<PathBuf>, String> {
        let binary = ctx.inside(Path::new(options.required("binary")?.trim()))?;
        let entries = ctx.inside(Path::new(options.required("cron-entries")?.trim()))?;
        let log = ctx.inside(Path::new(options.required("log-file")?.trim()))?;
        let mut args = vec![
            "cron".to_owned(),
            "--entries".to_owned(),
            arg(&entries),
            "--log".to_owned(),
            arg(&log),
        ];
        if let Some(catcher) = options.get("catcher") {
            args.push("--catcher".to_owned());
            args.push(arg(&ctx.inside(Path::new(catcher.trim()))?));
        }
        std::fs::create_dir_all(&entries)
            .map_err(|e| format!("cannot create {}: {e}", entries.display()))?;
        write_file(&binary, grove_script(&args)?.as_bytes(), 0o755)?;
        Ok(vec![binary])
    }
}

/// `slapos.cookbook:cron.d`: one job, `command` at `frequency` (crontab) or `time`
/// (systemd calendar event), in the file `name` of `cron-entries`.
struct Job;

impl Recipe for Job {
    fn install(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        _: &Resolved,
    ) -> Result<Vec<PathBuf>, String> {
        let schedule = match (options.get("frequency"), options.get("time")) {
            (Some(frequency), _) => frequency.trim().to_owned(),
            (None, Some(time)) => calendar_to_cron(time.trim()).map_err(|e| e.to_string())?,
            (None, None) => return Err("missing option frequency or time".to_owned()),
        };
        Schedule::parse(&schedule).map_err(|e| e.to_string())?;
        let name = options.required("name")?;
        let name = name.trim();
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(format!("name {name:?} is not a file name"));
        }
        let command = options.required("command")?;
        let command = command.trim();
        if command.contains('\n') {
            return Err("the command is more than one line".to_owned());
        }
        let entries = ctx.inside(Path::new(options.required("cron-entries")?.trim()))?;
        let file = ctx.inside(&entries.join(name))?;
        write_file(&file, format!("{schedule} {command}\n").as_bytes(), 0o644)?;
        Ok(vec![file])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_events_become_crontab_schedules() {
        let cases: &[(&str, Option<&str>)] = &[
            ("daily", Some("0 0 * * *")),
            ("hourly", Some("0 * * * *")),
            ("weekly", Some("0 0 * * 0")),
            ("*:0/5", Some("0-55/5 * * * *")),
            ("*:5/20", Some("5-45/20 * * * *")),
            ("4:30", Some("30 4 * * *")),
            ("*-*-* 01:02:00", Some("2 1 * * *")),
            ("Mon,Fri 3:00", Some("0 3 * * 1,5")),
            ("Sat-Sun *-* 0:0", Some("0 0 * * 6-7")),
            ("Fri-Mon 0:0", None),
            ("*-12-25", Some("0 0 25 12 *")),
            ("2027-01-01", None),
            ("*:*:30", None),
            ("Mon *-*-1", None),
            ("Someday", None),
            ("", None),
            ("*:61", None),
            ("*:0/0", None),
        ];
        for (spec, expected) in cases {
            let got = calendar_to_cron(spec).ok();
            assert_eq!(got.as_deref(), *expected, "{spec}");
        }
    }

    #[test]
    fn entries_keep_good_lines_and_report_bad_ones_with_their_line() {
        let text = "# a comment\n\n*/5 * * * * echo five  minutes\n@daily echo day\n\
                    61 * * * * echo never\n* * * echo short\n";
        let (entries, errors) = parse_entries(Path::new("jobs"), text);
        let commands: Vec<(usize, &str)> = entries
            .iter()
            .map(|e| (e.line, e.command.as_str()))
            .collect();
        assert_eq!(commands, [(3, "echo five  minutes"), (4, "echo day")]);
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [5, 6]);
        assert!(
            errors[0]
                .to_string()
                .starts_with("jobs:5: invalid schedule")
        );
    }

    #[test]
    fn schedules_match_their_minutes() {
        let at = |h, m| {
            chrono::Utc
                .with_ymd_and_hms(2026, 12, 6, h, m, 0)
                .single()
                .expect("a time")
        };
        // 2026-12-06 is a Sunday.
        let cases = [
            ("* * * * *", at(3, 7), true),
            ("*/5 * * * *", at(3, 10), true),
            ("*/5 * * * *", at(3, 11), false),
            ("0 0 * * 0", at(0, 0), true),
            ("0 0 * * 7", at(0, 0), true),
            ("0 0 * * 1", at(0, 0), false),
            ("30 4 6 12 *", at(4, 30), true),
            ("@hourly", at(5, 0), true),
            ("@hourly", at(5, 1), false),
        ];
        for (spec, minute, expected) in cases {
            let schedule = Schedule::parse(spec).expect(spec);
            assert_eq!(schedule.matches(&minute), expected, "{spec} at {minute}");
        }
        assert!(Schedule::parse("* * * * * *").is_err());
    }

    #[test]
    fn a_tick_runs_the_due_jobs_with_their_output_logged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let entries = dir.path().join("cron.d");
        std::fs::create_dir(&entries).expect("mkdir");
        let out = dir.path().join("out");
        std::fs::write(
            entries.join("jobs"),
            format!(
                "* * * * * echo ran >> {0}\n0 0 1 1 * echo new year >> {0}\n\
                 * * * * * echo to the log; exit 3\nnot a job\n",
                out.display()
            ),
        )
        .expect("write");
        std::fs::write(entries.join(".hidden"), "* * * * * touch hidden\n").expect("write");
        let log = dir.path().join("cron.log");
        let mut cron = Cron::new(Daemonized {
            entries,
            log: log.clone(),
            catcher: None,
        });
        let minute = chrono::Utc
            .with_ymd_and_hms(2026, 12, 6, 3, 7, 0)
            .single()
            .expect("a time");
        assert_eq!(cron.tick(&minute).expect("tick"), 2);
        cron.wait().expect("wait");
        assert_eq!(std::fs::read_to_string(&out).expect("out"), "ran\n");
        let log = std::fs::read_to_string(&log).expect("log");
        assert!(log.contains("to the log\n"), "{log}");
        assert!(log.contains("jobs:3: exit status: 3"), "{log}");
        assert!(log.contains("skipped "), "{log}");
        assert!(log.contains("jobs:4: a job is a schedule"), "{log}");
        assert!(!dir.path().join("hidden").exists());
    }

    #[test]
    fn a_job_still_running_is_not_started_again_and_the_catcher_takes_output() {
        let dir = tempfile::tempdir().expect("tempdir");
        let entries = dir.path().join("cron.d");
        std::fs::create_dir(&entries).expect("mkdir");
        let caught = dir.path().join("caught");
        let catcher = dir.path().join("catcher");
        std::fs::write(
            &catcher,
            format!("#!/bin/sh\ncat >> {}\n", caught.display()),
        )
        .expect("write");
        std::fs::set_permissions(
            &catcher,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        let gate = dir.path().join("gate");
        std::fs::write(
            entries.join("slow"),
            format!(
                "* * * * * echo started; while test ! -e {}; do sleep 0.05; done; echo done >&2\n",
                gate.display()
            ),
        )
        .expect("write");
        let log = dir.path().join("cron.log");
        let mut cron = Cron::new(Daemonized {
            entries,
            log: log.clone(),
            catcher: Some(catcher),
        });
        let minute = chrono::Utc
            .with_ymd_and_hms(2026, 12, 6, 3, 7, 0)
            .single()
            .expect("a time");
        assert_eq!(cron.tick(&minute).expect("tick"), 1);
        assert_eq!(cron.tick(&minute).expect("tick"), 0);
        std::fs::write(&gate, "").expect("open the gate");
        cron.wait().expect("wait");
        assert_eq!(
            std::fs::read_to_string(&caught).expect("caught"),
            "started\ndone\n"
        );
        let log = std::fs::read_to_string(&log).expect("log");
        assert!(log.contains("it is still running"), "{log}");
    }
}
