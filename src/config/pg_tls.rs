//! The TLS options of `write-behind-url` that tokio-postgres does not read
//! itself: `sslmode=verify-ca` / `verify-full` and `sslrootcert`, as libpq
//! has them. They are taken out of the connection string (the rest goes to
//! tokio-postgres, with `sslmode=require` for the verify modes); the
//! write-behind engine builds its TLS connector from them.

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    /// TLS if the server offers it (libpq's default).
    Prefer,
    Require,
    /// The server's certificate must chain to `sslrootcert`.
    VerifyCa,
    /// As `VerifyCa`, and be issued for the host connected to.
    VerifyFull,
}

/// The TLS options of a PostgreSQL connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTlsOptions {
    pub mode: SslMode,
    /// `sslrootcert`: the CA certificates (PEM) the server's certificate is
    /// checked against; `None`: `~/.postgresql/root.crt` if it exists.
    pub root_cert: Option<String>,
}

/// libpq's default CA file.
pub fn default_root_cert() -> Option<String> {
    let home = std::env::var_os("HOME")?;
    let path = std::path::Path::new(&home).join(".postgresql/root.crt");
    path.exists().then(|| path.display().to_string())
}

/// Splits `url` (URL or key=value form) into what tokio-postgres parses
/// and the TLS options.
pub fn split_tls_options(url: &str) -> Result<(String, PgTlsOptions), String> {
    let mut options = PgTlsOptions {
        mode: SslMode::Prefer,
        root_cert: None,
    };
    let mut take = |key: &str, value: &str| -> Result<Option<String>, String> {
        match key {
            "sslmode" => {
                options.mode = match value {
                    "disable" => SslMode::Disable,
                    "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    _ => {
                        return Err(format!(
                            "invalid sslmode '{value}' (disable, prefer, require, verify-ca, verify-full)"
                        ))
                    }
                };
                // tokio-postgres knows the first three; TLS is required
                // for the verify modes.
                Ok(Some(match options.mode {
                    SslMode::VerifyCa | SslMode::VerifyFull => "require".to_string(),
                    _ => value.to_string(),
                }))
            }
            "sslrootcert" => {
                options.root_cert = Some(value.to_string());
                Ok(None)
            }
            _ => Ok(Some(value.to_string())),
        }
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, query),
            None => (url, ""),
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = percent_decode(value)?;
            if let Some(value) = take(key, &decoded)? {
                kept.push(if value == decoded {
                    pair.to_string()
                } else {
                    format!("{key}={value}")
                });
            }
        }
        if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else {
        let mut kept = Vec::new();
        for (key, value) in key_values(url)? {
            if let Some(value) = take(&key, &value)? {
                let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
                kept.push(format!("{key}='{quoted}'"));
            }
        }
        kept.join(" ")
    };
    let verifies = matches!(options.mode, SslMode::VerifyCa | SslMode::VerifyFull);
    if verifies && options.root_cert.is_none() && default_root_cert().is_none() {
        return Err(
            "sslmode verify-ca and verify-full need sslrootcert=<CA file> (there is no ~/.postgresql/root.crt)"
                .into(),
        );
    }
    Ok((rest, options))
}

fn percent_decode(value: &str) -> Result<String, String> {
    let bytes = value.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            let hex = value
                .get(at + 1..at + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("invalid percent-encoding in '{value}'"))?;
            decoded.push(hex);
            at += 3;
        } else {
            decoded.push(bytes[at]);
            at += 1;
        }
    }
    String::from_utf8(decoded).map_err(|_| format!("invalid UTF-8 in '{value}'"))
}

/// The pairs of a key=value connection string, values unquoted (libpq's
/// rules: single quotes, backslash escapes, spaces around `=`).
fn key_values(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!(
                "missing '=' after '{key}' in the connection string"
            ));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => value.push(chars.next().ok_or("unterminated quoted value")?),
                    Some(c) => value.push(c),
                    None => return Err("unterminated quoted value".into()),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.push(chars.next().ok_or("dangling backslash")?);
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_modes_and_root_cert_are_taken_out() {
        let (rest, options) = split_tls_options(
            "host=db port=5432 sslmode=verify-full sslrootcert='/etc/ca dir/ca.pem' user=x",
        )
        .unwrap();
        assert_eq!(rest, "host='db' port='5432' sslmode='require' user='x'");
        assert_eq!(options.mode, SslMode::VerifyFull);
        assert_eq!(options.root_cert.as_deref(), Some("/etc/ca dir/ca.pem"));
        rest.parse::<tokio_postgres::Config>().unwrap();

        let (rest, options) = split_tls_options(
            "postgresql://u:p@db:5432/app?sslmode=verify-ca&sslrootcert=%2Ftmp%2Fca.pem&connect_timeout=2",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgresql://u:p@db:5432/app?sslmode=require&connect_timeout=2"
        );
        assert_eq!(options.mode, SslMode::VerifyCa);
        assert_eq!(options.root_cert.as_deref(), Some("/tmp/ca.pem"));

        let (rest, options) = split_tls_options("postgresql://db/app").unwrap();
        assert_eq!(rest, "postgresql://db/app");
        assert_eq!(options.mode, SslMode::Prefer);
        assert!(split_tls_options("host=db sslmode=sometimes").is_err());
        if default_root_cert().is_none() {
            assert!(split_tls_options("host=db sslmode=verify-full").is_err());
        }
    }
}
