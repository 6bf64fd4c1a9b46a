//! Several masters serve one cloud: a node and the client commands are given a list of
//! their URLs (`master_url = ["...", "..."]`, or a comma list) and go on with the next when
//! one stops answering. The list sticks to the master that answered last.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The masters' URLs, and which one answered last.
#[derive(Debug, Clone)]
pub struct Masters {
    urls: Arc<[String]>,
    current: Arc<AtomicUsize>,
}

impl Masters {
    /// From a comma list (`http://a:8080,http://b:8080`); trailing slashes dropped, empty
    /// entries ignored.
    pub fn parse(list: &str) -> Masters {
        let urls: Vec<String> = list
            .split(',')
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        Masters {
            urls: urls.into(),
            current: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The master that answered last (the first one before any call).
    pub fn current(&self) -> &str {
        let index = self.current.load(Ordering::Relaxed) % self.urls.len().max(1);
        self.urls.get(index).map_or("", String::as_str)
    }

    /// Calls `call` with the current master's URL, then, while the answer is
    /// `unreachable`, with each other master in turn. Returns the first answer that is not
    /// `unreachable`, or the last one.
    pub fn call<T, E>(
        &self,
        mut call: impl FnMut(&str) -> Result<T, E>,
        unreachable: impl Fn(&E) -> bool,
    ) -> Result<T, E> {
        let count = self.urls.len().max(1);
        let first = self.current.load(Ordering::Relaxed) % count;
        let mut last = None;
        for step in 0..count {
            let index = (first + step) % count;
            let url = self.urls.get(index).map_or("", String::as_str);
            match call(url) {
                Err(e) if unreachable(&e) => last = Some(e),
                answer => {
                    self.current.store(index, Ordering::Relaxed);
                    return answer;
                }
            }
        }
        // `count` is at least 1, so there was a call and an error.
        match last {
            Some(e) => Err(e),
            None => call(""),
        }
    }
}

/// Reads a list of master URLs written as one string (a comma list) or as an array of
/// strings, into the comma list [`Masters::parse`] reads (`#[serde(deserialize_with)]`).
pub fn deserialize_list<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<String, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum List {
        One(String),
        Many(Vec<String>),
    }
    Ok(match serde::Deserialize::deserialize(deserializer)? {
        List::One(text) => text,
        List::Many(urls) => urls.join(","),
    })
}

impl std::fmt::Display for Masters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.urls.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct File {
        #[serde(deserialize_with = "deserialize_list")]
        master_url: String,
    }

    #[test]
    fn a_list_is_a_string_or_an_array() {
        let one: File =
            serde_json::from_str(r#"{"master_url": "http://a,http://b"}"#).expect("string");
        let many: File =
            serde_json::from_str(r#"{"master_url": ["http://a", "http://b"]}"#).expect("array");
        assert_eq!(one.master_url, many.master_url);
        let error = serde_json::from_str::<File>(r#"{"master_url": 3}"#).expect_err("a number");
        assert!(error.to_string().contains("did not match"), "{error}");
    }

    #[test]
    fn lists_are_read_and_calls_go_on_with_the_next_master() {
        let masters = Masters::parse(" http://a/ , ,http://b,http://c");
        assert_eq!(masters.urls(), ["http://a", "http://b", "http://c"]);
        assert_eq!(masters.to_string(), "http://a,http://b,http://c");
        let mut tried = Vec::new();
        let answer: Result<&str, &str> = masters.call(
            |url| {
                tried.push(url.to_owned());
                if url == "http://c" {
                    Ok("answer")
                } else {
                    Err("down")
                }
            },
            |e| *e == "down",
        );
        assert_eq!(answer, Ok("answer"));
        assert_eq!(tried, ["http://a", "http://b", "http://c"]);
        // It sticks to the one that answered.
        assert_eq!(masters.current(), "http://c");
        // A refusal is an answer: no other master is asked.
        let mut tried = Vec::new();
        let answer: Result<(), &str> = masters.call(
            |url| {
                tried.push(url.to_owned());
                Err("refused")
            },
            |e| *e == "down",
        );
        assert_eq!(
            (answer, tried),
            (Err("refused"), vec!["http://c".to_owned()])
        );
        // All down: the last error.
        let answer: Result<(), String> = masters.call(|url| Err(format!("{url} down")), |_| true);
        assert_eq!(answer, Err("http://b down".to_owned()));
    }
}
