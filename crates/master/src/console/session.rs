//! Who is signed in to the console: a session cookie the master signs, and the CSRF token
//! every form carries.
//!
//! The cookie holds no secret of the user's: `<user id>.<expires>.<how>.<tag>`, the tag an
//! HMAC under the master key over those fields and what the sign-in proved (the hash of
//! the user's token, or the serial of the certificate). Any master sharing the store checks
//! it without a session table, and a session ends when its user's certificate is renewed or
//! revoked. The CSRF token is an HMAC of the cookie, so a page of another site can neither
//! read nor forge it.

use axum::http::{HeaderMap, header};
use ring::hmac;

use crate::auth::{constant_time_eq, hex};

/// The session cookie's name.
pub(crate) const COOKIE: &str = "grove_session";

/// How long a session lasts (seconds).
pub(crate) const LIFETIME: i64 = 12 * 3600;

/// How the user signed in: what the tag also covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proof {
    /// A user token: the tag covers the hash of its secret.
    Token,
    /// A client certificate: the tag covers its serial.
    Certificate,
}

impl Proof {
    fn letter(self) -> &'static str {
        match self {
            Proof::Token => "t",
            Proof::Certificate => "c",
        }
    }
}

/// A session cookie's fields, read but not yet checked against the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    pub(crate) user: i64,
    pub(crate) expires: i64,
    pub(crate) proof: Proof,
    tag: String,
}

/// Signs and checks sessions and CSRF tokens.
#[derive(Debug)]
pub(crate) struct Sessions {
    key: hmac::Key,
}

impl Sessions {
    pub(crate) fn new(master_key: &[u8]) -> Sessions {
        Sessions {
            key: hmac::Key::new(hmac::HMAC_SHA256, master_key),
        }
    }

    fn tag(&self, user: i64, expires: i64, proof: Proof, proved: &[u8]) -> String {
        // The prefix keeps these tags apart from partition tokens under the same key.
        let message = format!(
            "console-session:{user}:{expires}:{}:{}",
            proof.letter(),
            hex(proved)
        );
        hex(hmac::sign(&self.key, message.as_bytes()).as_ref())
    }

    /// The cookie value of a new session.
    pub(crate) fn issue(&self, user: i64, now: i64, proof: Proof, proved: &[u8]) -> String {
        let expires = now + LIFETIME;
        format!(
            "{user}.{expires}.{}.{}",
            proof.letter(),
            self.tag(user, expires, proof, proved)
        )
    }

    /// Reads a cookie value; `None` when it is not one of ours or has expired.
    pub(crate) fn read(cookie: &str, now: i64) -> Option<Claim> {
        let mut fields = cookie.split('.');
        let user = fields.next()?.parse().ok()?;
        let expires: i64 = fields.next()?.parse().ok()?;
        let proof = match fields.next()? {
            "t" => Proof::Token,
            "c" => Proof::Certificate,
            _ => return None,
        };
        let tag = fields.next()?.to_owned();
        if fields.next().is_some() || expires <= now {
            return None;
        }
        Some(Claim {
            user,
            expires,
            proof,
            tag,
        })
    }

    /// Whether the claim was signed here for what the store holds now.
    pub(crate) fn verify(&self, claim: &Claim, proved: &[u8]) -> bool {
        let expected = self.tag(claim.user, claim.expires, claim.proof, proved);
        constant_time_eq(expected.as_bytes(), claim.tag.as_bytes())
    }

    /// The CSRF token of a session: forms and scripts send it back.
    pub(crate) fn csrf(&self, cookie: &str) -> String {
        let message = format!("console-csrf:{cookie}");
        hex(hmac::sign(&self.key, message.as_bytes()).as_ref())
    }

    pub(crate) fn csrf_matches(&self, cookie: &str, sent: &str) -> bool {
        constant_time_eq(self.csrf(cookie).as_bytes(), sent.as_bytes())
    }
}

/// The value of one cookie in a `Cookie` header.
pub(crate) fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

/// The `Set-Cookie` value for a session (an empty value with `Max-Age=0` ends it).
pub(crate) fn set_cookie(value: &str, secure: bool) -> String {
    let max_age = if value.is_empty() { 0 } else { LIFETIME };
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// Whether a state-changing request comes from this origin, as far as the browser says
/// (`Sec-Fetch-Site`, `Origin`): a second guard beside the CSRF token and SameSite.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    match (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest == host),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn sessions() -> Sessions {
        Sessions::new(b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn a_session_verifies_for_what_it_proved_only() {
        let s = sessions();
        let cookie = s.issue(7, NOW, Proof::Token, b"hash");
        let claim = Sessions::read(&cookie, NOW + 10).expect("well formed");
        assert_eq!((claim.user, claim.proof), (7, Proof::Token));
        assert!(s.verify(&claim, b"hash"));
        assert!(!s.verify(&claim, b"another hash"), "a new token ends it");
        let other = Sessions::new(b"another key another key another k");
        assert!(!other.verify(&claim, b"hash"), "another master key");
    }

    #[test]
    fn altered_or_expired_cookies_are_refused() {
        let s = sessions();
        let cookie = s.issue(7, NOW, Proof::Token, b"hash");
        assert!(Sessions::read(&cookie, NOW + LIFETIME).is_none(), "expired");
        let forged = cookie.replacen("7.", "8.", 1);
        let claim = Sessions::read(&forged, NOW).expect("well formed");
        assert!(!s.verify(&claim, b"hash"), "another user");
        let longer = {
            let mut f: Vec<&str> = cookie.split('.').collect();
            let later = (NOW + 10 * LIFETIME).to_string();
            f[1] = &later;
            f.join(".")
        };
        let claim = Sessions::read(&longer, NOW).expect("well formed");
        assert!(!s.verify(&claim, b"hash"), "a later expiry");
        let as_certificate = cookie.replacen(".t.", ".c.", 1);
        let claim = Sessions::read(&as_certificate, NOW).expect("well formed");
        assert!(!s.verify(&claim, b"hash"), "another proof");
        for bad in [
            "",
            "7",
            "x.1.t.ab",
            "7.x.t.ab",
            "7.1900000000.z.ab",
            "7.1900000000.t.ab.c",
        ] {
            assert!(Sessions::read(bad, NOW).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let s = sessions();
        let one = s.issue(7, NOW, Proof::Token, b"hash");
        let two = s.issue(8, NOW, Proof::Token, b"hash");
        assert!(s.csrf_matches(&one, &s.csrf(&one)));
        assert!(!s.csrf_matches(&one, &s.csrf(&two)));
        assert!(!s.csrf_matches(&one, ""));
    }

    #[test]
    fn cookies_are_found_by_name() {
        let header = "a=1; grove_session=7.2.t.ff; b=2";
        assert_eq!(cookie(header, COOKIE), Some("7.2.t.ff"));
        assert_eq!(cookie(header, "c"), None);
        let set = set_cookie("v", true);
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.ends_with("Secure")
        );
        assert!(!set_cookie("v", false).contains("Secure"));
        assert!(set_cookie("", false).contains("Max-Age=0"));
    }

    #[test]
    fn requests_from_other_sites_are_told_apart() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, axum::http::HeaderValue::from_static(v));
            }
            h
        };
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(same_origin(&headers(&[
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080")
        ])));
        assert!(!same_origin(&headers(&[
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:8080")
        ])));
        assert!(same_origin(&headers(&[])));
    }
}
