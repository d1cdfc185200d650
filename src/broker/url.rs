//! The broker's URL: validated once, printed only with the password redacted.

use std::fmt;

/// A broker URL, validated, with a printable form that never shows the password.
#[derive(Clone)]
pub struct BrokerUrl {
    raw: String,
    redacted: String,
    /// The user the broker authenticates this URL as (AMQP's default `guest` when the URL
    /// names none): every message is published with it as its AMQP `user_id`, which
    /// RabbitMQ checks against the connection's user.
    user: String,
}

impl BrokerUrl {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut url = url::Url::parse(s).map_err(|e| {
            format!(
                "invalid AMQP URL {:?}: {e}; expected e.g. amqp://guest:guest@127.0.0.1:5672/%2f",
                redact_loose(s)
            )
        })?;
        if url.scheme() != "amqp" {
            return Err(format!(
                "unsupported URL scheme {:?} in {}: use amqp:// (TLS is not built in)",
                url.scheme(),
                redact_loose(s)
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("the AMQP URL {} names no host", redact_loose(s)));
        }
        // Let lapin's own parser have its say too (vhost, port, query options).
        s.parse::<lapin::uri::AMQPUri>()
            .map_err(|e| format!("invalid AMQP URL {}: {e}", redact_loose(s)))?;
        let user = match url.username() {
            "" => "guest".to_string(),
            u => percent_encoding::percent_decode_str(u)
                .decode_utf8_lossy()
                .into_owned(),
        };
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        Ok(BrokerUrl {
            raw: s.to_owned(),
            redacted: url.to_string(),
            user,
        })
    }

    /// The user this URL logs in as.
    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The URL as given, password included: for handing to a child process's
    /// environment, never for printing.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BrokerUrl({})", self.redacted)
    }
}

/// Redacts `user:password@` in a string that may not even parse as a URL.
pub fn redact_loose(s: &str) -> String {
    match (s.find("://"), s.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &s[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &s[..scheme_end + 3],
                    &userinfo[..colon],
                    &s[at..]
                ),
                None => s.to_owned(),
            }
        }
        _ => s.to_owned(),
    }
}
