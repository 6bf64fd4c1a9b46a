//! Section conditions: `[name: expression]`.
//!
//! zc.buildout first reads the expression as a PEP 508 marker and otherwise evaluates it
//! as Python. Grove does neither with a Python interpreter: this module is a small, safe
//! evaluator of the subset profiles use (literals, the documented names such as `linux`,
//! `python3` or `bits64`, `sys.version_info`, `platform.machine()`, comparisons, `and`,
//! `or`, `not`, `in`, arithmetic). An unknown name is an error; nothing is run as code.

use std::cmp::Ordering;

use crate::load::Loader;

/// The facts a condition can test. Grove is not Python: it presents itself as CPython
/// 3.11 on the host's OS and architecture, so that profiles pinning Python 2 versions skip
/// those sections as SlapOS's own Python 3 buildout does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    pub python_version: (i64, i64, i64),
    /// `sys.platform`: `linux`, `darwin`, ...
    pub sys_platform: String,
    /// `os.name`: `posix` or `nt`.
    pub os_name: String,
    /// `platform.machine()`: `x86_64`, `aarch64`, ...
    pub machine: String,
    /// `platform.system()`: `Linux`, `Darwin`, ...
    pub system: String,
    /// `platform.release()`, the kernel release when the caller knows it.
    pub release: String,
    pub pointer_bits: u32,
    pub little_endian: bool,
    /// `sys.executable`, which zc.buildout gives as `buildout:executable`: the Python 3
    /// a profile's scripts would run with (Grove runs none itself).
    pub executable: String,
}

impl Environment {
    /// The environment of the machine Grove was built for (no IO: compile-time facts).
    pub fn host() -> Environment {
        let (sys_platform, system) = match std::env::consts::OS {
            "linux" => ("linux", "Linux"),
            "macos" => ("darwin", "Darwin"),
            "windows" => ("win32", "Windows"),
            other => (other, other),
        };
        Environment {
            python_version: (3, 11, 7),
            sys_platform: sys_platform.to_owned(),
            os_name: if cfg!(windows) { "nt" } else { "posix" }.to_owned(),
            machine: std::env::consts::ARCH.to_owned(),
            system: system.to_owned(),
            release: String::new(),
            pointer_bits: usize::BITS,
            little_endian: cfg!(target_endian = "little"),
            executable: "/usr/bin/python3".to_owned(),
        }
    }

    fn python_version_string(&self) -> String {
        format!("{}.{}", self.python_version.0, self.python_version.1)
    }

    fn python_full_version(&self) -> String {
        let (a, b, c) = self.python_version;
        format!("{a}.{b}.{c}")
    }

    /// The value of a PEP 508 marker variable.
    fn marker_variable(&self, name: &str) -> Option<String> {
        Some(match name {
            "python_version" => self.python_version_string(),
            "python_full_version" | "implementation_version" => self.python_full_version(),
            "os_name" => self.os_name.clone(),
            "sys_platform" => self.sys_platform.clone(),
            "platform_machine" => self.machine.clone(),
            "platform_system" => self.system.clone(),
            "platform_release" | "platform_version" => self.release.clone(),
            "platform_python_implementation" => "CPython".to_owned(),
            "implementation_name" => "cpython".to_owned(),
            "extra" => String::new(),
            _ => return None,
        })
    }

    /// The value of a global name of a Python-style condition.
    fn global(&self, name: &str) -> Option<Value> {
        let (major, minor, _) = self.python_version;
        let b = Value::Bool;
        Some(match name {
            "True" => b(true),
            "False" => b(false),
            "None" => Value::None,
            "sys" | "os" | "platform" | "re" => Value::Module(module_name(name)),
            "int" | "str" | "len" | "open" => Value::Function(builtin_name(name)),
            "python2" => b(major == 2),
            "python3" => b(major == 3),
            "cpython" => b(true),
            "pypy" | "jython" | "ironpython" => b(false),
            "linux" => b(self.sys_platform.contains("linux")),
            "windows" => b(self.sys_platform.contains("win32")),
            "cygwin" => b(self.sys_platform.contains("cygwin")),
            "solaris" => b(self.sys_platform.contains("sunos")),
            "macosx" => b(self.sys_platform.contains("darwin")),
            "posix" => b(self.os_name == "posix"),
            "bits32" => b(self.pointer_bits == 32),
            "bits64" => b(self.pointer_bits == 64),
            "little_endian" => b(self.little_endian),
            "big_endian" => b(!self.little_endian),
            _ => {
                let digits = name.strip_prefix("python")?;
                if digits.len() < 2 || !digits.bytes().all(|c| c.is_ascii_digit()) {
                    return None;
                }
                b(digits == format!("{major}{minor}"))
            }
        })
    }

    fn attribute(&self, module: &str, attr: &str) -> Option<Value> {
        let (major, minor, micro) = self.python_version;
        Some(match (module, attr) {
            ("sys", "version_info") => Value::Tuple(vec![
                Value::Int(major),
                Value::Int(minor),
                Value::Int(micro),
                Value::Str("final".to_owned()),
                Value::Int(0),
            ]),
            ("sys", "platform") => Value::Str(self.sys_platform.clone()),
            ("sys", "byteorder") => {
                Value::Str(if self.little_endian { "little" } else { "big" }.to_owned())
            }
            ("sys", "maxsize") => Value::Int(if self.pointer_bits == 64 {
                i64::MAX
            } else {
                i64::from(i32::MAX)
            }),
            ("sys", "version") => Value::Str(self.python_full_version()),
            ("sys", "executable") => Value::Str(self.executable.clone()),
            ("os", "name") => Value::Str(self.os_name.clone()),
            ("os", "sep") => Value::Str("/".to_owned()),
            ("os", "path") => Value::Module("os.path"),
            ("os", "F_OK") => Value::Int(0),
            ("os", "X_OK") => Value::Int(1),
            ("os", "W_OK") => Value::Int(2),
            ("os", "R_OK") => Value::Int(4),
            ("os", "access") => Value::Function("os.access"),
            ("os.path", "isdir") => Value::Function("os.path.isdir"),
            ("os.path", "isfile") => Value::Function("os.path.isfile"),
            ("os.path", "exists") => Value::Function("os.path.exists"),
            ("platform", "machine") => Value::Function("platform.machine"),
            ("platform", "system") => Value::Function("platform.system"),
            ("platform", "release") => Value::Function("platform.release"),
            ("platform", "python_version") => Value::Function("platform.python_version"),
            ("platform", "python_implementation") => {
                Value::Function("platform.python_implementation")
            }
            ("platform", "python_version_tuple") => {
                Value::Function("platform.python_version_tuple")
            }
            ("platform", "freedesktop_os_release") => {
                Value::Function("platform.freedesktop_os_release")
            }
            _ => return None,
        })
    }

    /// Calls a function of the supported set. What it reads of the machine (files, paths,
    /// the kernel's release when the caller did not give it) comes through `host`.
    fn call(&self, host: &dyn Loader, function: &str, args: Vec<Value>) -> Result<Value, String> {
        let (major, minor, micro) = self.python_version;
        let arity = |n: usize| -> Result<(), String> {
            if args.len() == n {
                Ok(())
            } else {
                Err(format!(
                    "{function}() takes {n} argument(s), {} given",
                    args.len()
                ))
            }
        };
        let path = |value: &Value| -> Result<String, String> {
            match value {
                Value::Str(s) => Ok(s.clone()),
                other => Err(format!(
                    "{function}(): a path is a str, not {}",
                    other.type_name()
                )),
            }
        };
        Ok(match function {
            "platform.machine" => Value::Str(self.machine.clone()),
            "platform.system" => Value::Str(self.system.clone()),
            "platform.release" => Value::Str(if self.release.is_empty() {
                host.load("/proc/sys/kernel/osrelease")
                    .map(|t| t.trim().to_owned())
                    .unwrap_or_default()
            } else {
                self.release.clone()
            }),
            "platform.python_version" => Value::Str(self.python_full_version()),
            "platform.python_implementation" => Value::Str("CPython".to_owned()),
            "platform.python_version_tuple" => Value::Tuple(
                [major, minor, micro]
                    .iter()
                    .map(|v| Value::Str(v.to_string()))
                    .collect(),
            ),
            "platform.freedesktop_os_release" => {
                arity(0)?;
                let text = host
                    .load("/etc/os-release")
                    .or_else(|_| host.load("/usr/lib/os-release"))
                    .map_err(|_| {
                        "platform.freedesktop_os_release(): neither /etc/os-release nor /usr/lib/os-release can be read".to_owned()
                    })?;
                Value::Dict(os_release(&text))
            }
            "os.path.isdir" | "os.path.isfile" | "os.path.exists" => {
                arity(1)?;
                let kind = host.probe(&path(&args[0])?);
                Value::Bool(match function {
                    "os.path.isdir" => kind == Some(PathKind::Directory),
                    "os.path.isfile" => kind == Some(PathKind::File),
                    _ => kind.is_some(),
                })
            }
            "os.access" => {
                arity(2)?;
                let target = path(&args[0])?;
                match args[1].int() {
                    Some(0) => Value::Bool(host.probe(&target).is_some()),
                    Some(4) => Value::Bool(match host.probe(&target) {
                        Some(PathKind::Directory) => true,
                        Some(PathKind::File) => host.load(&target).is_ok(),
                        None => false,
                    }),
                    _ => {
                        return Err(
                            "os.access: conditions may test os.F_OK and os.R_OK only (they read, never write or run)".to_owned(),
                        );
                    }
                }
            }
            "open" => {
                if args.is_empty() || args.len() > 2 {
                    return Err(format!(
                        "open() takes a path and a mode, {} given",
                        args.len()
                    ));
                }
                if let Some(mode) = args.get(1)
                    && !matches!(mode, Value::Str(m) if m == "r" || m == "rt")
                {
                    return Err("open(): conditions read files, mode 'r' only".to_owned());
                }
                let target = path(&args[0])?;
                let text = host
                    .load(&target)
                    .map_err(|_| format!("open(): cannot read {target}"))?;
                Value::File(text)
            }
            "int" => {
                arity(1)?;
                match &args[0] {
                    Value::Str(s) => Value::Int(s.trim().parse().map_err(|_| {
                        format!("int(): invalid literal for int() with base 10: {s:?}")
                    })?),
                    #[expect(clippy::cast_possible_truncation, reason = "Python's int() truncates")]
                    Value::Float(f) if f.is_finite() => Value::Int(f.trunc() as i64),
                    other => Value::Int(
                        other
                            .int()
                            .ok_or_else(|| format!("int() of {}", other.type_name()))?,
                    ),
                }
            }
            "str" => {
                arity(1)?;
                Value::Str(match &args[0] {
                    Value::Str(s) => s.clone(),
                    Value::Int(i) => i.to_string(),
                    Value::Bool(b) => if *b { "True" } else { "False" }.to_owned(),
                    other => return Err(format!("str() of {}", other.type_name())),
                })
            }
            "len" => {
                arity(1)?;
                let n = match &args[0] {
                    Value::Str(s) => s.chars().count(),
                    Value::Tuple(items) | Value::List(items) => items.len(),
                    Value::Dict(items) => items.len(),
                    other => return Err(format!("len() of {}", other.type_name())),
                };
                Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
            }
            _ => return Err(format!("unknown function {function}")),
        })
    }
}

/// What is at a local path, as a section condition may ask (`os.path.isdir`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    File,
    Directory,
}

/// `/etc/os-release`'s `KEY=value` lines (values quoted or not), as Python's
/// `platform.freedesktop_os_release()` gives them.
fn os_release(text: &str) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        let value = value.replace("\\\"", "\"").replace("\\\\", "\\");
        out.retain(|(k, _)| k != key);
        out.push((key.to_owned(), Value::Str(value)));
    }
    out
}

fn module_name(name: &str) -> &'static str {
    match name {
        "sys" => "sys",
        "os" => "os",
        "platform" => "platform",
        _ => "re",
    }
}

fn builtin_name(name: &str) -> &'static str {
    match name {
        "int" => "int",
        "str" => "str",
        "len" => "len",
        _ => "open",
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// A dict with str keys, in insertion order.
    Dict(Vec<(String, Value)>),
    Module(&'static str),
    Function(&'static str),
    /// A method of a value, bound to it (`"a.b".split`).
    Method(Box<Value>, String),
    /// An opened file: its text, for `.read()`.
    File(String),
}

impl Value {
    fn truthy(&self) -> bool {
        match self {
            Value::None => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Tuple(t) | Value::List(t) => !t.is_empty(),
            Value::Dict(d) => !d.is_empty(),
            Value::Module(_) | Value::Function(_) | Value::Method(..) | Value::File(_) => true,
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            #[expect(clippy::cast_precision_loss, reason = "comparing small literals")]
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    fn int(&self) -> Option<i64> {
        match self {
            Value::Bool(b) => Some(i64::from(*b)),
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Module(_) => "module",
            Value::Function(_) | Value::Method(..) => "function",
            Value::File(_) => "file",
        }
    }

    /// The items a `for` goes over.
    fn items(&self) -> Result<Vec<Value>, String> {
        match self {
            Value::Tuple(items) | Value::List(items) => Ok(items.clone()),
            Value::Str(s) => Ok(s.chars().map(|c| Value::Str(c.to_string())).collect()),
            Value::Dict(d) => Ok(d.iter().map(|(k, _)| Value::Str(k.clone())).collect()),
            other => Err(format!("{} is not iterable", other.type_name())),
        }
    }
}

/// Calls a method of a str, a dict or a file.
fn call_method(receiver: &Value, name: &str, args: &[Value]) -> Result<Value, String> {
    let str_arg = |i: usize| -> Result<&str, String> {
        match args.get(i) {
            Some(Value::Str(s)) => Ok(s),
            Some(other) => Err(format!(
                "{name}(): expected a str, not {}",
                other.type_name()
            )),
            None => Err(format!("{name}(): missing an argument")),
        }
    };
    let text_list = |parts: Vec<&str>| {
        Value::List(
            parts
                .into_iter()
                .map(|p| Value::Str(p.to_owned()))
                .collect(),
        )
    };
    Ok(match (receiver, name) {
        (Value::Str(s), "split") => match args.first() {
            None | Some(Value::None) => text_list(s.split_whitespace().collect()),
            Some(_) => {
                let sep = str_arg(0)?;
                if sep.is_empty() {
                    return Err("split(): empty separator".to_owned());
                }
                text_list(s.split(sep).collect())
            }
        },
        (Value::Str(s), "strip") => Value::Str(s.trim().to_owned()),
        (Value::Str(s), "lstrip") => Value::Str(s.trim_start().to_owned()),
        (Value::Str(s), "rstrip") => Value::Str(s.trim_end().to_owned()),
        (Value::Str(s), "lower") => Value::Str(s.to_lowercase()),
        (Value::Str(s), "upper") => Value::Str(s.to_uppercase()),
        (Value::Str(s), "startswith") => Value::Bool(s.starts_with(str_arg(0)?)),
        (Value::Str(s), "endswith") => Value::Bool(s.ends_with(str_arg(0)?)),
        (Value::File(text), "read") => Value::Str(text.clone()),
        (Value::Dict(d), "get") => {
            let key = str_arg(0)?;
            d.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| args.get(1).cloned().unwrap_or(Value::None))
        }
        (other, _) => return Err(format!("{} has no method {name}", other.type_name())),
    })
}

fn py_eq(a: &Value, b: &Value) -> bool {
    match (a.number(), b.number()) {
        (Some(x), Some(y)) => x == y,
        _ => match (a, b) {
            (Value::Tuple(x), Value::Tuple(y)) | (Value::List(x), Value::List(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q))
            }
            _ => a == b,
        },
    }
}

fn py_cmp(a: &Value, b: &Value) -> Result<Ordering, String> {
    if let (Some(x), Some(y)) = (a.number(), b.number()) {
        return x
            .partial_cmp(&y)
            .ok_or_else(|| "cannot compare NaN".to_owned());
    }
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
        (Value::Tuple(x), Value::Tuple(y)) | (Value::List(x), Value::List(y)) => {
            for (p, q) in x.iter().zip(y) {
                if !py_eq(p, q) {
                    return py_cmp(p, q);
                }
            }
            Ok(x.len().cmp(&y.len()))
        }
        _ => Err(format!(
            "cannot order {} and {}",
            a.type_name(),
            b.type_name()
        )),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Name(String),
    Int(i64),
    Float(f64),
    Str(String),
    Punct(&'static str),
}

const PUNCTS: &[&str] = &[
    "===", "==", "!=", "<=", ">=", "~=", "//", "<", ">", "(", ")", "[", "]", ",", ".", "+", "-",
    "*", "/", "%", ":",
];

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token::Name(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '_') {
                i += 1;
            }
            let is_float = i + 1 < chars.len() && chars[i] == '.' && chars[i + 1].is_ascii_digit();
            if is_float {
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            let digits: String = chars[start..i].iter().filter(|c| **c != '_').collect();
            if is_float {
                tokens.push(Token::Float(
                    digits.parse().map_err(|_| format!("bad number {digits}"))?,
                ));
            } else {
                tokens.push(Token::Int(
                    digits
                        .parse()
                        .map_err(|_| format!("number too large: {digits}"))?,
                ));
            }
        } else if c == '"' || c == '\'' {
            let quote = c;
            i += 1;
            let mut s = String::new();
            loop {
                let Some(&ch) = chars.get(i) else {
                    return Err("unterminated string".to_owned());
                };
                i += 1;
                if ch == quote {
                    break;
                }
                if ch == '\\' {
                    let Some(&esc) = chars.get(i) else {
                        return Err("unterminated string".to_owned());
                    };
                    i += 1;
                    match esc {
                        'n' => s.push('\n'),
                        't' => s.push('\t'),
                        '\\' | '\'' | '"' => s.push(esc),
                        other => {
                            s.push('\\');
                            s.push(other);
                        }
                    }
                } else {
                    s.push(ch);
                }
            }
            tokens.push(Token::Str(s));
        } else {
            let rest: String = chars[i..chars.len().min(i + 3)].iter().collect();
            let Some(p) = PUNCTS.iter().find(|p| rest.starts_with(**p)) else {
                return Err(format!("unexpected character {c:?}"));
            };
            i += p.chars().count();
            tokens.push(Token::Punct(p));
        }
    }
    Ok(tokens)
}

/// Evaluates a section condition to true or false. What it reads of the machine (files,
/// paths, the kernel's release) it asks `host`; nothing is written or run.
pub(crate) fn evaluate(
    expression: &str,
    env: &Environment,
    host: &dyn Loader,
) -> Result<bool, String> {
    let tokens = tokenize(expression)?;
    if tokens.is_empty() {
        return Err("empty condition".to_owned());
    }
    if let Some(value) = (Marker {
        tokens: &tokens,
        pos: 0,
        env,
    })
    .evaluate()
    {
        return Ok(value);
    }
    let budget = std::cell::Cell::new(ELEMENT_BUDGET);
    let mut parser = Parser::new(&tokens, env, host, &[], 0, &budget);
    // zc.buildout evaluates `[expression]` and takes its first item, so a top-level
    // comma list is allowed and only its first element counts.
    let first = parser.expr()?;
    while parser.eat(",") {
        if parser.pos < tokens.len() {
            parser.expr()?;
        }
    }
    if parser.pos != tokens.len() {
        return Err(format!(
            "unexpected {} in condition",
            describe(&tokens[parser.pos])
        ));
    }
    Ok(first.truthy())
}

fn describe(token: &Token) -> String {
    match token {
        Token::Name(n) => format!("name {n}"),
        Token::Int(i) => format!("number {i}"),
        Token::Float(f) => format!("number {f}"),
        Token::Str(s) => format!("string {s:?}"),
        Token::Punct(p) => format!("'{p}'"),
    }
}

/// PEP 508 markers: `python_version < "3.11" and platform_system == "Linux"`.
struct Marker<'t> {
    tokens: &'t [Token],
    pos: usize,
    env: &'t Environment,
}

impl Marker<'_> {
    /// `None` when the text is not a marker (it is then tried as a Python expression).
    fn evaluate(mut self) -> Option<bool> {
        let value = self.or(0)?;
        (self.pos == self.tokens.len()).then_some(value)
    }

    fn peek_name(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Name(n)) if n == word)
    }

    fn or(&mut self, depth: u32) -> Option<bool> {
        let mut value = self.and(depth)?;
        while self.peek_name("or") {
            self.pos += 1;
            let rhs = self.and(depth)?;
            value = value || rhs;
        }
        Some(value)
    }

    fn and(&mut self, depth: u32) -> Option<bool> {
        let mut value = self.atom(depth)?;
        while self.peek_name("and") {
            self.pos += 1;
            let rhs = self.atom(depth)?;
            value = value && rhs;
        }
        Some(value)
    }

    fn atom(&mut self, depth: u32) -> Option<bool> {
        if depth > 64 {
            return None;
        }
        if self.tokens.get(self.pos) == Some(&Token::Punct("(")) {
            self.pos += 1;
            let value = self.or(depth + 1)?;
            if self.tokens.get(self.pos) != Some(&Token::Punct(")")) {
                return None;
            }
            self.pos += 1;
            return Some(value);
        }
        let lhs = self.variable()?;
        let op = match self.tokens.get(self.pos)? {
            Token::Punct(p @ ("<" | "<=" | "!=" | "==" | ">=" | ">" | "~=" | "===")) => {
                (*p).to_owned()
            }
            Token::Name(n) if n == "in" => "in".to_owned(),
            Token::Name(n)
                if n == "not"
                    && matches!(self.tokens.get(self.pos + 1), Some(Token::Name(m)) if m == "in") =>
            {
                self.pos += 1;
                "not in".to_owned()
            }
            _ => return None,
        };
        self.pos += 1;
        let rhs = self.variable()?;
        Some(marker_compare(&lhs, &op, &rhs))
    }

    fn variable(&mut self) -> Option<String> {
        let value = match self.tokens.get(self.pos)? {
            Token::Str(s) => s.clone(),
            Token::Name(n) => self.env.marker_variable(n)?,
            _ => return None,
        };
        self.pos += 1;
        Some(value)
    }
}

fn marker_compare(lhs: &str, op: &str, rhs: &str) -> bool {
    match op {
        "in" => rhs.contains(lhs),
        "not in" => !rhs.contains(lhs),
        "===" => lhs == rhs,
        _ => match (parse_version(lhs), parse_version(rhs)) {
            (Some(l), Some(r)) => {
                let ord = compare_versions(&l, &r);
                match op {
                    "<" => ord == Ordering::Less,
                    "<=" => ord != Ordering::Greater,
                    ">" => ord == Ordering::Greater,
                    ">=" => ord != Ordering::Less,
                    "==" => ord == Ordering::Equal,
                    "!=" => ord != Ordering::Equal,
                    // ~= X.Y: >= X.Y and == X.*
                    _ => {
                        let prefix = r.len().saturating_sub(1).max(1);
                        ord != Ordering::Less && l.iter().take(prefix).eq(r.iter().take(prefix))
                    }
                }
            }
            _ => match op {
                "==" => lhs == rhs,
                "!=" => lhs != rhs,
                "<" => lhs < rhs,
                "<=" => lhs <= rhs,
                ">" => lhs > rhs,
                ">=" => lhs >= rhs,
                _ => false,
            },
        },
    }
}

fn parse_version(text: &str) -> Option<Vec<u64>> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    text.split('.').map(|part| part.parse().ok()).collect()
}

fn compare_versions(a: &[u64], b: &[u64]) -> Ordering {
    let len = a.len().max(b.len());
    (0..len)
        .map(|i| {
            a.get(i)
                .copied()
                .unwrap_or(0)
                .cmp(&b.get(i).copied().unwrap_or(0))
        })
        .find(|o| *o != Ordering::Equal)
        .unwrap_or(Ordering::Equal)
}

/// A Python-expression subset parser that evaluates as it parses. The right side of an
/// `and` or `or` that the left side decides is skipped, not evaluated (a file tested
/// absent is not opened); a comprehension's element is parsed again for each item, with
/// its name bound.
struct Parser<'t> {
    tokens: &'t [Token],
    pos: usize,
    env: &'t Environment,
    host: &'t dyn Loader,
    /// Names bound by the comprehensions around.
    locals: &'t [(String, Value)],
    depth: u32,
    /// Comprehension elements left to evaluate: nested comprehensions multiply, and a
    /// condition must not run for long.
    budget: &'t std::cell::Cell<u32>,
}

/// The most comprehension elements one condition evaluates.
const ELEMENT_BUDGET: u32 = 10_000;

impl<'t> Parser<'t> {
    fn new(
        tokens: &'t [Token],
        env: &'t Environment,
        host: &'t dyn Loader,
        locals: &'t [(String, Value)],
        depth: u32,
        budget: &'t std::cell::Cell<u32>,
    ) -> Parser<'t> {
        Parser {
            tokens,
            pos: 0,
            env,
            host,
            locals,
            depth,
            budget,
        }
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn eat(&mut self, punct: &str) -> bool {
        if matches!(self.peek(), Some(Token::Punct(p)) if *p == punct) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_name(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Name(n)) if n == word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, punct: &str) -> Result<(), String> {
        if self.eat(punct) {
            Ok(())
        } else {
            Err(match self.peek() {
                Some(t) => format!("expected '{punct}', found {}", describe(t)),
                None => format!("expected '{punct}' at the end of the condition"),
            })
        }
    }

    fn expr(&mut self) -> Result<Value, String> {
        self.depth += 1;
        if self.depth > 100 {
            return Err("condition nested too deeply".to_owned());
        }
        let result = self.or();
        self.depth -= 1;
        result
    }

    /// Moves past the operand of an `and` (`stops` holds `and`) or an `or`, without
    /// evaluating it: up to the next of `stops`, a `,`, `if`, `for` or closing bracket at
    /// its own depth.
    fn skip_operand(&mut self, stops: &[&str]) -> Result<(), String> {
        let mut depth = 0usize;
        let start = self.pos;
        while let Some(token) = self.peek() {
            match token {
                Token::Punct("(" | "[") => depth += 1,
                Token::Punct(")" | "]") if depth == 0 => break,
                Token::Punct(")" | "]") => depth -= 1,
                Token::Punct(",") if depth == 0 => break,
                Token::Name(n)
                    if depth == 0 && (stops.contains(&n.as_str()) || n == "if" || n == "for") =>
                {
                    break;
                }
                _ => {}
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err("unexpected end of condition".to_owned());
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Value, String> {
        let mut value = self.and()?;
        while self.eat_name("or") {
            if value.truthy() {
                self.skip_operand(&["or"])?;
            } else {
                value = self.and()?;
            }
        }
        Ok(value)
    }

    fn and(&mut self) -> Result<Value, String> {
        let mut value = self.not()?;
        while self.eat_name("and") {
            if value.truthy() {
                value = self.not()?;
            } else {
                self.skip_operand(&["and", "or"])?;
            }
        }
        Ok(value)
    }

    fn not(&mut self) -> Result<Value, String> {
        if self.eat_name("not") {
            self.depth += 1;
            if self.depth > 100 {
                return Err("condition nested too deeply".to_owned());
            }
            let v = self.not()?;
            self.depth -= 1;
            return Ok(Value::Bool(!v.truthy()));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Value, String> {
        let mut lhs = self.arith()?;
        let mut result: Option<bool> = None;
        loop {
            let op = match self.peek() {
                Some(Token::Punct(p @ ("<" | ">" | "==" | "!=" | "<=" | ">="))) => *p,
                Some(Token::Name(n)) if n == "in" => "in",
                Some(Token::Name(n)) if n == "is" => "is",
                Some(Token::Name(n)) if n == "not" => "not in",
                _ => break,
            };
            self.pos += 1;
            let op = match op {
                "not in" => {
                    if !self.eat_name("in") {
                        return Err("expected 'in' after 'not'".to_owned());
                    }
                    "not in"
                }
                "is" if self.eat_name("not") => "is not",
                other => other,
            };
            let rhs = self.arith()?;
            let holds = match op {
                "==" | "is" => py_eq(&lhs, &rhs),
                "!=" | "is not" => !py_eq(&lhs, &rhs),
                "<" => py_cmp(&lhs, &rhs)? == Ordering::Less,
                ">" => py_cmp(&lhs, &rhs)? == Ordering::Greater,
                "<=" => py_cmp(&lhs, &rhs)? != Ordering::Greater,
                ">=" => py_cmp(&lhs, &rhs)? != Ordering::Less,
                _ => {
                    let contained = match (&lhs, &rhs) {
                        (Value::Str(needle), Value::Str(hay)) => hay.contains(needle.as_str()),
                        (_, Value::Tuple(items) | Value::List(items)) => {
                            items.iter().any(|i| py_eq(i, &lhs))
                        }
                        (Value::Str(key), Value::Dict(d)) => d.iter().any(|(k, _)| k == key),
                        _ => {
                            return Err(format!(
                                "'in' needs a str, a tuple, a list or a dict, not {}",
                                rhs.type_name()
                            ));
                        }
                    };
                    if op == "in" { contained } else { !contained }
                }
            };
            result = Some(result.unwrap_or(true) && holds);
            lhs = rhs;
        }
        Ok(match result {
            Some(b) => Value::Bool(b),
            None => lhs,
        })
    }

    fn arith(&mut self) -> Result<Value, String> {
        let mut value = self.term()?;
        loop {
            let plus = if self.eat("+") {
                true
            } else if self.eat("-") {
                false
            } else {
                break;
            };
            let rhs = self.term()?;
            value = match (&value, &rhs, plus) {
                (Value::Str(a), Value::Str(b), true) => Value::Str(format!("{a}{b}")),
                (Value::Tuple(a), Value::Tuple(b), true) => {
                    Value::Tuple(a.iter().chain(b).cloned().collect())
                }
                _ => match (value.int(), rhs.int()) {
                    (Some(a), Some(b)) => {
                        let r = if plus {
                            a.checked_add(b)
                        } else {
                            a.checked_sub(b)
                        };
                        Value::Int(r.ok_or("integer overflow")?)
                    }
                    _ => match (value.number(), rhs.number()) {
                        (Some(a), Some(b)) => Value::Float(if plus { a + b } else { a - b }),
                        _ => {
                            return Err(format!(
                                "cannot add {} and {}",
                                value.type_name(),
                                rhs.type_name()
                            ));
                        }
                    },
                },
            };
        }
        Ok(value)
    }

    fn term(&mut self) -> Result<Value, String> {
        let mut value = self.unary()?;
        while let Some(Token::Punct(op @ ("*" | "/" | "//" | "%"))) = self.peek() {
            let op = *op;
            self.pos += 1;
            let rhs = self.unary()?;
            value = match (value.int(), rhs.int(), op) {
                (Some(a), Some(b), "*") => Value::Int(a.checked_mul(b).ok_or("integer overflow")?),
                (Some(a), Some(b), "//") => {
                    Value::Int(a.checked_div_euclid(b).ok_or("division by zero")?)
                }
                (Some(a), Some(b), "%") => {
                    Value::Int(a.checked_rem_euclid(b).ok_or("division by zero")?)
                }
                _ => match (value.number(), rhs.number()) {
                    (Some(_), Some(b)) if b == 0.0 && op != "*" => {
                        return Err("division by zero".to_owned());
                    }
                    (Some(a), Some(b)) => Value::Float(match op {
                        "*" => a * b,
                        "/" => a / b,
                        "//" => (a / b).floor(),
                        _ => a % b,
                    }),
                    _ => {
                        return Err(format!(
                            "cannot apply '{op}' to {} and {}",
                            value.type_name(),
                            rhs.type_name()
                        ));
                    }
                },
            };
        }
        Ok(value)
    }

    fn unary(&mut self) -> Result<Value, String> {
        if self.eat("-") {
            self.depth += 1;
            if self.depth > 100 {
                return Err("condition nested too deeply".to_owned());
            }
            let v = self.unary()?;
            self.depth -= 1;
            return match v {
                Value::Float(f) => Ok(Value::Float(-f)),
                other => Ok(Value::Int(
                    other
                        .int()
                        .ok_or_else(|| format!("cannot negate {}", other.type_name()))?
                        .checked_neg()
                        .ok_or("integer overflow")?,
                )),
            };
        }
        if self.eat("+") {
            return self.unary();
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Value, String> {
        let mut value = self.atom()?;
        loop {
            if self.eat(".") {
                let Some(Token::Name(attr)) = self.peek().cloned() else {
                    return Err("expected a name after '.'".to_owned());
                };
                self.pos += 1;
                value = match value {
                    Value::Module(m) => self
                        .env
                        .attribute(m, &attr)
                        .ok_or_else(|| format!("unknown name {m}.{attr}"))?,
                    Value::Str(_) | Value::Dict(_) | Value::File(_) => {
                        Value::Method(Box::new(value), attr)
                    }
                    other => return Err(format!("{} has no attribute {attr}", other.type_name())),
                };
            } else if self.eat("(") {
                let mut args = Vec::new();
                while !self.eat(")") {
                    args.push(self.expr()?);
                    if !self.eat(",") {
                        self.expect(")")?;
                        break;
                    }
                }
                value = match value {
                    Value::Function(f) => self.env.call(self.host, f, args)?,
                    Value::Method(receiver, name) => call_method(&receiver, &name, &args)?,
                    other => return Err(format!("{} is not callable", other.type_name())),
                };
            } else if self.eat("[") {
                value = self.subscript(&value)?;
            } else {
                return Ok(value);
            }
        }
    }

    /// `[index]`, `[key]` or `[start:end]`, the `[` read.
    fn subscript(&mut self, value: &Value) -> Result<Value, String> {
        let start = if matches!(self.peek(), Some(Token::Punct(":"))) {
            None
        } else {
            Some(self.expr()?)
        };
        if self.eat(":") {
            if matches!(self.peek(), Some(Token::Punct(":"))) {
                return Err("a slice's step is not supported".to_owned());
            }
            let end = if matches!(self.peek(), Some(Token::Punct("]" | ":"))) {
                None
            } else {
                Some(self.expr()?)
            };
            if matches!(self.peek(), Some(Token::Punct(":"))) {
                return Err("a slice's step is not supported".to_owned());
            }
            self.expect("]")?;
            let bound = |b: Option<Value>| -> Result<Option<i64>, String> {
                b.map(|v| {
                    v.int()
                        .ok_or_else(|| "slice bounds must be integers".to_owned())
                })
                .transpose()
            };
            let (from, to) = (bound(start)?, bound(end)?);
            return Ok(match value {
                Value::Tuple(items) => Value::Tuple(slice(items, from, to).to_vec()),
                Value::List(items) => Value::List(slice(items, from, to).to_vec()),
                Value::Str(s) => {
                    let chars: Vec<char> = s.chars().collect();
                    Value::Str(slice(&chars, from, to).iter().collect())
                }
                other => return Err(format!("{} cannot be sliced", other.type_name())),
            });
        }
        self.expect("]")?;
        let index = start.ok_or("an index is needed")?;
        Ok(match (value, &index) {
            (Value::Dict(d), Value::Str(key)) => d
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| format!("no key {key:?}"))?,
            (Value::Tuple(items) | Value::List(items), _) => {
                let i = index.int().ok_or("index must be an integer")?;
                index_into(items, i)?.clone()
            }
            (Value::Str(s), _) => {
                let i = index.int().ok_or("index must be an integer")?;
                let chars: Vec<char> = s.chars().collect();
                Value::Str(index_into(&chars, i)?.to_string())
            }
            (other, _) => return Err(format!("{} cannot be indexed", other.type_name())),
        })
    }

    fn atom(&mut self) -> Result<Value, String> {
        let Some(token) = self.peek().cloned() else {
            return Err("unexpected end of condition".to_owned());
        };
        self.pos += 1;
        match token {
            Token::Int(i) => Ok(Value::Int(i)),
            Token::Float(f) => Ok(Value::Float(f)),
            Token::Str(s) => {
                let mut s = s;
                // Adjacent string literals concatenate.
                while let Some(Token::Str(next)) = self.peek() {
                    s.push_str(next);
                    self.pos += 1;
                }
                Ok(Value::Str(s))
            }
            Token::Name(name) => {
                if let Some((_, value)) = self.locals.iter().rev().find(|(n, _)| *n == name) {
                    return Ok(value.clone());
                }
                self.env
                    .global(&name)
                    .ok_or_else(|| format!("unknown name {name}"))
            }
            Token::Punct("[") => {
                if let Some(value) = self.comprehension()? {
                    return Ok(value);
                }
                self.sequence("]").map(Value::List)
            }
            Token::Punct("(") => {
                if self.eat(")") {
                    return Ok(Value::Tuple(Vec::new()));
                }
                let first = self.expr()?;
                if self.eat(")") {
                    return Ok(first);
                }
                let mut items = vec![first];
                while self.eat(",") {
                    if self.eat(")") {
                        return Ok(Value::Tuple(items));
                    }
                    items.push(self.expr()?);
                }
                self.expect(")")?;
                Ok(Value::Tuple(items))
            }
            other => Err(format!("unexpected {}", describe(&other))),
        }
    }

    /// The items of a list display up to `close`, the opening bracket read.
    fn sequence(&mut self, close: &str) -> Result<Vec<Value>, String> {
        let mut items = Vec::new();
        while !self.eat(close) {
            items.push(self.expr()?);
            if !self.eat(",") {
                self.expect(close)?;
                break;
            }
        }
        Ok(items)
    }

    /// `[element for name in iterable]` or `[... if condition]`, the `[` read; `None` (and
    /// nothing consumed) when the brackets hold no `for` of their own.
    fn comprehension(&mut self) -> Result<Option<Value>, String> {
        let open = self.pos;
        let mut depth = 0usize;
        let mut at_for = None;
        let mut close = None;
        for (i, token) in self.tokens.iter().enumerate().skip(open) {
            match token {
                Token::Punct("(" | "[") => depth += 1,
                Token::Punct(")" | "]") if depth == 0 => {
                    close = Some(i);
                    break;
                }
                Token::Punct(")" | "]") => depth -= 1,
                Token::Name(n) if n == "for" && depth == 0 && at_for.is_none() => at_for = Some(i),
                _ => {}
            }
        }
        let Some(at_for) = at_for else {
            return Ok(None);
        };
        let Some(close) = close else {
            return Err("expected ']' to end the comprehension".to_owned());
        };
        if self.tokens.get(close) != Some(&Token::Punct("]")) {
            return Err("expected ']' to end the comprehension".to_owned());
        }
        let element = &self.tokens[open..at_for];
        self.pos = at_for + 1;
        let Some(Token::Name(name)) = self.peek().cloned() else {
            return Err("expected a name after 'for'".to_owned());
        };
        self.pos += 1;
        if !self.eat_name("in") {
            return Err("expected 'in' in the comprehension".to_owned());
        }
        let iterable = self.or()?;
        let condition = if self.eat_name("if") {
            let from = self.pos;
            self.pos = close;
            Some(&self.tokens[from..close])
        } else {
            None
        };
        self.expect("]")?;
        if self.pos != close + 1 {
            return Err("unexpected tokens in the comprehension".to_owned());
        }
        let mut out = Vec::new();
        for item in iterable.items()? {
            let mut locals = self.locals.to_vec();
            locals.push((name.clone(), item));
            if let Some(condition) = condition
                && !self.sub(condition, &locals)?.truthy()
            {
                continue;
            }
            out.push(self.sub(element, &locals)?);
        }
        Ok(Some(Value::List(out)))
    }

    /// Evaluates a whole slice of tokens with `locals` bound.
    fn sub(&self, tokens: &[Token], locals: &[(String, Value)]) -> Result<Value, String> {
        if self.depth > 100 {
            return Err("condition nested too deeply".to_owned());
        }
        let left = self.budget.get();
        if left == 0 {
            return Err(format!(
                "a condition evaluates at most {ELEMENT_BUDGET} comprehension elements"
            ));
        }
        self.budget.set(left - 1);
        let mut parser = Parser::new(
            tokens,
            self.env,
            self.host,
            locals,
            self.depth + 1,
            self.budget,
        );
        let value = parser.expr()?;
        if parser.pos != tokens.len() {
            return Err(format!(
                "unexpected {} in condition",
                describe(&tokens[parser.pos])
            ));
        }
        Ok(value)
    }
}

/// Python's `items[from:to]`, negative bounds from the end, out of range clamped.
fn slice<T>(items: &[T], from: Option<i64>, to: Option<i64>) -> &[T] {
    let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
    let clamp = |b: i64| -> usize {
        let b = if b < 0 { (len + b).max(0) } else { b.min(len) };
        usize::try_from(b).unwrap_or(0)
    };
    let start = from.map_or(0, clamp);
    let end = to.map_or(items.len(), clamp);
    if start >= end {
        &[]
    } else {
        &items[start..end]
    }
}

fn index_into<T>(items: &[T], i: i64) -> Result<&T, String> {
    let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
    let idx = if i < 0 { len + i } else { i };
    usize::try_from(idx)
        .ok()
        .and_then(|idx| items.get(idx))
        .ok_or_else(|| "index out of range".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(expr: &str, expected: Result<bool, &str>) {
        let env = Environment {
            release: "6.1.0".to_owned(),
            machine: "x86_64".to_owned(),
            ..Environment::host()
        };
        let files: std::collections::HashMap<String, String> = [
            ("/etc/os-release", "ID=debian\nVERSION_ID=\"11\"\n"),
            ("/proc/device-tree/model", "OLinuXino\n"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let got = evaluate(expr, &env, &files);
        match expected {
            Ok(b) => assert_eq!(got, Ok(b), "{expr}"),
            Err(fragment) => {
                let err = got.expect_err(expr);
                assert!(err.contains(fragment), "{expr}: {err}");
            }
        }
    }

    #[test]
    fn python_expressions() {
        check("2 + 2 == 4", Ok(true));
        check(" 2 + 2 == 5", Ok(false));
        check("41 + 1 == 42", Ok(true));
        check("linux", Ok(true));
        check("windows or macosx", Ok(false));
        check("python3 and not python2", Ok(true));
        check("python311", Ok(true));
        check("python27", Ok(false));
        check("sys.version_info < (3,8)", Ok(false));
        check("sys.version_info >= (3, 0)", Ok(true));
        check("linux and platform.machine() == \"x86_64\"", Ok(true));
        check("bits64", Ok(true));
        check("'a' in 'abc'", Ok(true));
        check("1 < 2 < 3", Ok(true));
        check("3 > 2 > 2", Ok(false));
        check("sys.platform.startswith('linux')", Ok(true));
        check("sys.version_info.major", Err("no attribute"));
        check("import_os", Err("unknown name import_os"));
        check(
            "__import__('os').system('true')",
            Err("unknown name __import__"),
        );
        check("(", Err("unexpected end"));
        check("1 +", Err("unexpected end"));
        check("True, False", Ok(true));
    }

    #[test]
    fn the_forms_real_profiles_write() {
        check(
            "[int(q) for q in platform.release().split('.')[:2]] < [4,14]",
            Ok(false),
        );
        check(
            "[int(q) for q in platform.release().split('.')[:2]] == [6, 1]",
            Ok(true),
        );
        check(
            "platform.freedesktop_os_release()['ID'] == 'debian' and int(platform.freedesktop_os_release()['VERSION_ID']) < 12",
            Ok(true),
        );
        check(
            "os.path.isdir('/proc/device-tree') and 'OLinuXino' in open('/proc/device-tree/model').read()",
            Ok(true),
        );
        check(
            "os.path.isdir('/nope') and open('/nope/x').read()",
            Ok(false),
        );
        check("os.access('/proc/device-tree/model', os.R_OK)", Ok(true));
        check("os.access('/nope', os.F_OK)", Ok(false));
        check("[x for x in (1, 2, 3) if x > 1] == [2, 3]", Ok(true));
        check("'ID' in platform.freedesktop_os_release()", Ok(true));
        check("'abcdef'[::2]", Err("step is not supported"));
        check("'abcdef'[1:5:2]", Err("step is not supported"));
    }

    #[test]
    fn the_kernels_release_is_read_when_the_caller_did_not_give_it() {
        let env = Environment {
            release: String::new(),
            ..Environment::host()
        };
        let host: std::collections::HashMap<String, String> = [(
            "/proc/sys/kernel/osrelease".to_owned(),
            "4.9.0-13-amd64\n".to_owned(),
        )]
        .into_iter()
        .collect();
        let old = "[int(q) for q in platform.release().split('.')[:2]] < [4, 14]";
        assert_eq!(evaluate(old, &env, &host), Ok(true));
        // Nothing to read: the release is empty, and int('') is an error naming it.
        let none = std::collections::HashMap::<String, String>::new();
        let error = evaluate(old, &env, &none).expect_err("no release");
        assert!(error.contains("invalid literal"), "{error}");
    }

    #[test]
    fn what_conditions_may_not_do_is_an_error_naming_it() {
        check("open('/etc/os-release', 'w')", Err("mode 'r' only"));
        check(
            "os.access('/bin/sh', os.X_OK)",
            Err("os.F_OK and os.R_OK only"),
        );
        check("open('/nope').read()", Err("cannot read /nope"));
        check("int('x')", Err("invalid literal"));
        check("[1, 2] < (1, 2)", Err("cannot order list and tuple"));
        check(
            "platform.freedesktop_os_release()['NOPE']",
            Err("no key \"NOPE\""),
        );
        check("os.system('true')", Err("unknown name os.system"));
        check("'a'.format()", Err("no method format"));
        check("[q for q in 3]", Err("int is not iterable"));
        check("[q for q in", Err("expected ']' to end the comprehension"));
        check(
            "[[[c for c in 'abcdefghijklmnopqrstuvwxyz'] for b in 'abcdefghijklmnopqrstuvwxyz'] for a in 'abcdefghijklmnopqrstuvwxyz']",
            Err("at most 10000 comprehension elements"),
        );
    }

    #[test]
    fn markers() {
        check("python_version < \"3.11\"", Ok(false));
        check("python_version >= \"3.9\"", Ok(true));
        check("platform_system == \"msdos\"", Ok(false));
        check(
            "python_version < \"2.6\" or platform_system == \"Linux\"",
            Ok(true),
        );
        check("sys_platform == 'linux' and os_name == 'posix'", Ok(true));
        check("'linux' in sys_platform", Ok(true));
    }
}
