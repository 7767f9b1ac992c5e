//! Environment helpers with the names the Open Payments Rust snippets use
//! (`get_env_var`, `load_env`), so code written from the seeds reads the same.

use crate::error::ClientError;

/// The value of environment variable `name`, or [`ClientError::MissingEnv`] naming it when it
/// is unset or empty.
///
/// ```no_run
/// # fn main() -> Result<(), latchkey_client::ClientError> {
/// let access_token = latchkey_client::get_env_var("ACCESS_TOKEN")?;
/// # Ok(()) }
/// ```
pub fn get_env_var(name: &str) -> Result<String, ClientError> {
    get_env_var_with_hint(name, None)
}

pub(crate) fn get_env_var_with_hint(name: &str, hint: Option<&str>) -> Result<String, ClientError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        Ok(_) => Err(ClientError::MissingEnv {
            name: name.to_string(),
            hint: Some(format!(
                "it is empty{}",
                hint.map(|h| format!("; {h}")).unwrap_or_default()
            )),
        }),
        Err(std::env::VarError::NotPresent) => Err(ClientError::MissingEnv {
            name: name.to_string(),
            hint: hint.map(str::to_string),
        }),
        Err(std::env::VarError::NotUnicode(_)) => Err(ClientError::InvalidEnv {
            name: name.to_string(),
            reason: "the value is not valid UTF-8".into(),
        }),
    }
}

/// Loads `KEY=VALUE` lines from `./.env`, if that file exists, into the process environment.
/// Variables already set are left alone. Blank lines and `#` comments are skipped, an optional
/// leading `export ` is ignored, and values may be wrapped in single or double quotes (a double
/// quoted value may span lines, which is how a PEM key is usually written there).
///
/// Call it at the start of `main`, before any thread is spawned: it changes the process
/// environment.
pub fn load_env() -> Result<(), ClientError> {
    load_env_from(std::path::Path::new(".env"))
}

/// Like [`load_env`] with an explicit file; a missing file is not an error.
pub fn load_env_from(path: &std::path::Path) -> Result<(), ClientError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(ClientError::InvalidConfig(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    };
    for (name, value) in parse_dotenv(&text)
        .map_err(|e| ClientError::InvalidConfig(format!("{}: {e}", path.display())))?
    {
        if std::env::var_os(&name).is_none() {
            std::env::set_var(name, value);
        }
    }
    Ok(())
}

/// Parses `.env` text into `(name, value)` pairs.
fn parse_dotenv(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((number, line)) = lines.next() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            return Err(format!("line {}: expected NAME=VALUE", number + 1));
        };
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "line {}: `{name}` is not a variable name",
                number + 1
            ));
        }
        let value = value.trim();
        let value = if let Some(rest) = value.strip_prefix('"') {
            let mut collected = rest.to_string();
            while !collected.ends_with('"') {
                match lines.next() {
                    Some((_, more)) => {
                        collected.push('\n');
                        collected.push_str(more);
                    }
                    None => {
                        return Err(format!(
                            "line {}: unterminated double-quoted value",
                            number + 1
                        ))
                    }
                }
            }
            collected.pop();
            collected.replace("\\n", "\n")
        } else if let Some(rest) = value.strip_prefix('\'') {
            rest.strip_suffix('\'')
                .ok_or_else(|| format!("line {}: unterminated single-quoted value", number + 1))?
                .to_string()
        } else {
            // An unquoted value ends at a ` #` comment.
            value
                .split_once(" #")
                .map_or(value, |(v, _)| v)
                .trim()
                .to_string()
        };
        out.push((name.to_string(), value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_forms() {
        let text = "# comment\n\nKEY_ID=alice-1\nexport WALLET_ADDRESS_URL = http://w.example/alice # mine\n\
                    PRIVATE_KEY=\"-----BEGIN PRIVATE KEY-----\nMC4C\n-----END PRIVATE KEY-----\"\nQ='a b'\n\
                    ESC=\"x\\ny\"\n";
        let vars = parse_dotenv(text).expect("parses");
        assert_eq!(vars[0], ("KEY_ID".into(), "alice-1".into()));
        assert_eq!(
            vars[1],
            ("WALLET_ADDRESS_URL".into(), "http://w.example/alice".into())
        );
        assert_eq!(
            vars[2].1,
            "-----BEGIN PRIVATE KEY-----\nMC4C\n-----END PRIVATE KEY-----"
        );
        assert_eq!(vars[3], ("Q".into(), "a b".into()));
        assert_eq!(vars[4], ("ESC".into(), "x\ny".into()));
    }

    #[test]
    fn dotenv_errors_name_the_line() {
        assert!(parse_dotenv("JUST TEXT").unwrap_err().contains("line 1"));
        assert!(parse_dotenv("A=1\nB=\"open")
            .unwrap_err()
            .contains("line 2"));
        assert!(parse_dotenv("BAD-NAME=1").unwrap_err().contains("BAD-NAME"));
    }

    #[test]
    fn missing_file_is_fine() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(load_env_from(&dir.path().join("nope.env")).is_ok());
    }
}
