//! The environment of `slapos.recipe.template:jinja2` templates: minijinja, strict about
//! undefined names, with Python's methods (`pycompat`), and lists and dicts a template may
//! change as SlapOS's templates do (`{% do part_list.append(x) %}`,
//! `{% do d.setdefault(k, []).append(x) %}`, `d.update(...)`). minijinja's own lists and
//! maps are immutable: the context's, those `dict()` and `set()` make, and the list or
//! dict literal a `{% set %}` assigns are mutable objects instead, and what is put in them
//! becomes mutable too.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use minijinja::value::{Enumerator, Kwargs, Object, ObjectRepr, Rest, Value};
use minijinja::{Environment, Error, ErrorKind, State};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A list templates may change.
#[derive(Debug, Default)]
pub(crate) struct List(Mutex<Vec<Value>>);

/// A dict templates may change, in insertion order.
#[derive(Debug, Default)]
pub(crate) struct Dict(Mutex<Vec<(Value, Value)>>);

/// `value` with its plain lists and maps, at any depth, as mutable ones (other objects,
/// such as namespaces, are left as they are).
pub(crate) fn mutable(value: Value) -> Value {
    if let Some(items) = value.downcast_object_ref::<Vec<Value>>() {
        let items = items.iter().cloned().map(mutable).collect();
        return Value::from_object(List(Mutex::new(items)));
    }
    if let Some(map) = value.downcast_object_ref::<BTreeMap<Value, Value>>() {
        let pairs = map
            .iter()
            .map(|(k, v)| (k.clone(), mutable(v.clone())))
            .collect();
        return Value::from_object(Dict(Mutex::new(pairs)));
    }
    value
}

fn none() -> Value {
    Value::from(())
}

fn arity(method: &str, args: &[Value], min: usize, max: usize) -> Result<(), Error> {
    if args.len() < min || args.len() > max {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "{method}() takes {min} to {max} arguments, {} given",
                args.len()
            ),
        ));
    }
    Ok(())
}

fn index(len: usize, at: &Value) -> Option<usize> {
    let i = i64::try_from(at.clone()).ok()?;
    let len = i64::try_from(len).ok()?;
    let i = if i < 0 { len + i } else { i };
    usize::try_from(i).ok().filter(|i| (*i as i64) < len)
}

impl Object for List {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let items = lock(&self.0);
        index(items.len(), key).map(|i| items[i].clone())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(lock(&self.0).clone())
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(lock(&self.0).len())
    }

    fn call_method(
        self: &Arc<Self>,
        _: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let mut items = lock(&self.0);
        match method {
            "append" => {
                arity(method, args, 1, 1)?;
                items.push(mutable(args[0].clone()));
                Ok(none())
            }
            "extend" => {
                arity(method, args, 1, 1)?;
                let more: Vec<Value> = args[0].try_iter()?.map(mutable).collect();
                items.extend(more);
                Ok(none())
            }
            "insert" => {
                arity(method, args, 2, 2)?;
                let at = i64::try_from(args[0].clone())?;
                let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
                let at = if at < 0 {
                    (len + at).max(0)
                } else {
                    at.min(len)
                };
                items.insert(usize::try_from(at).unwrap_or(0), mutable(args[1].clone()));
                Ok(none())
            }
            "pop" => {
                arity(method, args, 0, 1)?;
                let at = match args.first() {
                    Some(at) => index(items.len(), at),
                    None => items.len().checked_sub(1),
                };
                at.map(|i| items.remove(i)).ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidOperation,
                        "pop from an empty list or out of range",
                    )
                })
            }
            // A `set()`'s: added once.
            "add" => {
                arity(method, args, 1, 1)?;
                if !items.contains(&args[0]) {
                    items.push(mutable(args[0].clone()));
                }
                Ok(none())
            }
            "remove" => {
                arity(method, args, 1, 1)?;
                let at = items.iter().position(|v| *v == args[0]).ok_or_else(|| {
                    Error::new(ErrorKind::InvalidOperation, "list.remove(x): x not in list")
                })?;
                items.remove(at);
                Ok(none())
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

impl Dict {
    fn set(pairs: &mut Vec<(Value, Value)>, key: Value, value: Value) {
        let value = mutable(value);
        match pairs.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => pairs.push((key, value)),
        }
    }
}

impl Object for Dict {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        lock(&self.0)
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(lock(&self.0).iter().map(|(k, _)| k.clone()).collect())
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(lock(&self.0).len())
    }

    fn call_method(
        self: &Arc<Self>,
        _: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "update" => {
                arity(method, args, 1, 1)?;
                // Read the other mapping before taking the lock: it may be this one.
                let other = &args[0];
                let pairs: Vec<(Value, Value)> = other
                    .try_iter()?
                    .map(|k| {
                        let v = other.get_item(&k).unwrap_or_default();
                        (k, v)
                    })
                    .collect();
                let mut mine = lock(&self.0);
                for (k, v) in pairs {
                    Dict::set(&mut mine, k, v);
                }
                Ok(none())
            }
            "setdefault" => {
                arity(method, args, 1, 2)?;
                let mut pairs = lock(&self.0);
                if let Some((_, v)) = pairs.iter().find(|(k, _)| *k == args[0]) {
                    return Ok(v.clone());
                }
                let value = mutable(args.get(1).cloned().unwrap_or_else(none));
                pairs.push((args[0].clone(), value.clone()));
                Ok(value)
            }
            "pop" => {
                arity(method, args, 1, 2)?;
                let mut pairs = lock(&self.0);
                match pairs.iter().position(|(k, _)| *k == args[0]) {
                    Some(i) => Ok(pairs.remove(i).1),
                    None => args.get(1).cloned().ok_or_else(|| {
                        Error::new(ErrorKind::InvalidOperation, format!("no key {}", args[0]))
                    }),
                }
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

/// `dict(mapping, key=value...)`: a mutable dict.
fn dict(args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let mut pairs = Vec::new();
    for mapping in args.iter() {
        for k in mapping.try_iter()? {
            let v = mapping.get_item(&k).unwrap_or_default();
            Dict::set(&mut pairs, k, v);
        }
    }
    for key in kwargs.args() {
        let value: Value = kwargs.get(key)?;
        Dict::set(&mut pairs, Value::from(key), value);
    }
    Ok(Value::from_object(Dict(Mutex::new(pairs))))
}

/// The environment templates render in.
pub(crate) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("dict", dict);
    // Python's `set()`, as a list that `add` keeps free of duplicates.
    env.add_function("set", |items: Rest<Value>| -> Result<Value, Error> {
        let mut list: Vec<Value> = Vec::new();
        for source in items.iter() {
            for item in source.try_iter()? {
                if !list.contains(&item) {
                    list.push(mutable(item));
                }
            }
        }
        Ok(Value::from_object(List(Mutex::new(list))))
    });
    env.add_function("_grove_mutable", mutable);
    env
}

/// The template with the `[]` and `{}` a `{% set NAME = ... %}` starts from made
/// mutable, so that the template can fill them.
pub(crate) fn prepare(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{%") {
        let Some(len) = rest[start..].find("%}") else {
            break;
        };
        let tag = &rest[start..start + len + 2];
        out.push_str(&rest[..start]);
        out.push_str(&rewrite_set(tag));
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

/// `{%- set x = [...] -%}` -> `{%- set x = _grove_mutable([...]) -%}` (and `{...}`); other
/// tags as they are.
fn rewrite_set(tag: &str) -> String {
    let inner = tag[2..tag.len() - 2]
        .trim_start_matches('-')
        .trim_end_matches('-')
        .trim();
    let Some(assignment) = inner.strip_prefix("set ") else {
        return tag.to_owned();
    };
    let Some((_, value)) = assignment.split_once('=') else {
        return tag.to_owned();
    };
    let literal = value.trim();
    let display = (literal.starts_with('[') && literal.ends_with(']'))
        || (literal.starts_with('{') && literal.ends_with('}'));
    if !display {
        return tag.to_owned();
    }
    // Wrap the literal where it stands, keeping the tag's whitespace control.
    match tag.rfind(literal) {
        Some(at) => format!(
            "{}_grove_mutable({literal}){}",
            &tag[..at],
            &tag[at + literal.len()..]
        ),
        None => tag.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str, context: serde_json::Value) -> Result<String, String> {
        let env = environment();
        let context: BTreeMap<String, Value> = context
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), mutable(Value::from(minijinja::value::Serde(v)))))
            .collect();
        env.render_str(&prepare(template), context)
            .map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn templates_fill_lists_and_dicts_as_slapos_templates_do() {
        let cases: &[(&str, serde_json::Value, &str)] = &[
            (
                "{% set parts = [] %}{% do parts.append('a') %}{% do parts.extend(['b', 'c']) %}{{ parts | join(' ') }}",
                serde_json::json!({}),
                "a b c",
            ),
            (
                "{%- set d = {} -%}{% do d.setdefault('k', []).append(1) %}{% do d.setdefault('k', []).append(2) %}{{ d['k'] }}",
                serde_json::json!({}),
                "[1, 2]",
            ),
            (
                "{% do slapparameter_dict.update({'b': 2}) %}{{ slapparameter_dict.get('a') }}{{ slapparameter_dict['b'] }}{{ slapparameter_dict | length }}",
                serde_json::json!({"slapparameter_dict": {"a": 1}}),
                "122",
            ),
            (
                "{% do nested['l'].append(3) %}{{ nested['l'] }} {{ nested.keys() | list | length }}",
                serde_json::json!({"nested": {"l": [1, 2]}}),
                "[1, 2, 3] 1",
            ),
            (
                "{% set d = dict(x=1) %}{% do d.update(dict(y=2)) %}{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{{ d.pop('x') }}{{ d | length }}",
                serde_json::json!({}),
                "x=1;y=2;11",
            ),
            (
                "{% set l = [1] %}{% do l.append(2) %}{% set s = set() %}{% do s.add('x') %}{% do s.add('x') %}{{ l }} {{ s | length }} {{ 'x' in s }}",
                serde_json::json!({}),
                "[1, 2] 1 True",
            ),
            (
                "{% set l = [] %}{% do l.insert(0, 'b') %}{% do l.insert(0, 'a') %}{{ l.pop() }}{{ l | length }}{{ l[0] }}{{ l[-1] }}",
                serde_json::json!({}),
                "b1aa",
            ),
        ];
        for (template, context, expected) in cases {
            assert_eq!(
                render(template, context.clone()).as_deref(),
                Ok(*expected),
                "{template}"
            );
        }
    }

    #[test]
    fn only_the_set_idiom_is_rewritten() {
        for (template, expected) in [
            ("{%- set x = [] -%}", "{%- set x = _grove_mutable([]) -%}"),
            ("{% set x={} %}", "{% set x=_grove_mutable({}) %}"),
            (
                "{% set y = ['a', 'b'] %}",
                "{% set y = _grove_mutable(['a', 'b']) %}",
            ),
            ("{{ [] }} {% if x == [] %}", "{{ [] }} {% if x == [] %}"),
            ("{% set z = f([1]) %} {%", "{% set z = f([1]) %} {%"),
        ] {
            assert_eq!(prepare(template), expected, "{template}");
        }
        let error =
            render("{% set l = [] %}{% do l.pop() %}", serde_json::json!({})).expect_err("empty");
        assert!(error.contains("pop from an empty list"), "{error}");
    }
}
