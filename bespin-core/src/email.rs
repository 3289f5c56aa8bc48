//! Syntactic e-mail validation and normalisation (spec README decision 16).
//!
//! Accepted: surrounding white space (trimmed), the `Display Name <local@domain>` form (only the
//! address is kept), a non-empty local part of RFC 5322 `atext` characters and dots (no leading,
//! trailing or doubled dot), a domain of at least two dot-separated labels (letters, digits and
//! hyphens, Unicode letters allowed; no label starting or ending with a hyphen; 1–63 characters),
//! and at most 254 characters in all. The domain is lower-cased, the local part keeps its case.
//! Reserved names such as `*.test` and `*.example` are accepted. No DNS check is made.

/// Normalises `input`, or returns the reason it is not an address (the text after
/// `value is not a valid email address: ` in the contract's 422 item).
pub fn normalize(input: &str) -> Result<String, String> {
    if input.chars().count() > 2048 {
        return Err("Length must not exceed 2048 characters".into());
    }
    let mut s = input.trim();
    if let (Some(open), true) = (s.rfind('<'), s.ends_with('>')) {
        s = s[open + 1..s.len() - 1].trim();
    }
    let Some(at) = s.find('@') else {
        return Err("An email address must have an @-sign.".into());
    };
    let (local, domain) = (&s[..at], &s[at + 1..]);
    if local.is_empty() {
        return Err("There must be something before the @-sign.".into());
    }
    if let Some(bad) = local.chars().find(|c| !is_atext(*c) && *c != '.') {
        return Err(format!(
            "The email address contains invalid characters before the @-sign: {}.",
            describe(bad)
        ));
    }
    if local.starts_with('.') {
        return Err("An email address cannot start with a period.".into());
    }
    if local.ends_with('.') {
        return Err("An email address cannot have a period immediately before the @-sign.".into());
    }
    if local.contains("..") {
        return Err("An email address cannot have two periods in a row.".into());
    }
    if domain.is_empty() {
        return Err("There must be something after the @-sign.".into());
    }
    if let Some(bad) = domain
        .chars()
        .find(|c| !(c.is_alphanumeric() || *c == '-' || *c == '.'))
    {
        return Err(format!(
            "The part after the @-sign contains invalid characters: {}.",
            describe_quoted(bad)
        ));
    }
    let domain = domain.to_lowercase();
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err("The part after the @-sign is not valid. It should have a period.".into());
    }
    for label in &labels {
        if label.is_empty() {
            return Err(
                "An email address cannot have a period in the wrong place after the @-sign.".into(),
            );
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(
                "An email address cannot have a hyphen immediately next to a period.".into(),
            );
        }
        if label.chars().count() > 63 {
            return Err("The part after the @-sign has a label that is too long.".into());
        }
    }
    let address = format!("{local}@{domain}");
    let n = address.chars().count();
    if n > 254 {
        return Err(format!(
            "The email address is too long ({} characters too many).",
            n - 254
        ));
    }
    Ok(address)
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~".contains(c)
        || (!c.is_ascii() && c.is_alphanumeric())
}

fn describe(c: char) -> String {
    match c {
        ' ' => "SPACE".into(),
        '\t' => "TAB".into(),
        c if c.is_control() => format!("U+{:04X}", c as u32),
        c => format!("'{c}'"),
    }
}

fn describe_quoted(c: char) -> String {
    describe(c)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::normalize;

    #[test]
    fn normalises_domain_case_and_display_names() {
        assert_eq!(
            normalize("  Admin@Example.COM ").as_deref(),
            Ok("Admin@example.com")
        );
        assert_eq!(
            normalize("Jane Doe <jane@Acme.io>").as_deref(),
            Ok("jane@acme.io")
        );
        assert_eq!(
            normalize("ops@team.example").as_deref(),
            Ok("ops@team.example")
        );
        assert_eq!(normalize("qa@lab.test").as_deref(), Ok("qa@lab.test"));
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        assert_eq!(
            normalize("nobody").expect_err("refused"),
            "An email address must have an @-sign."
        );
        assert_eq!(
            normalize("jd@localhost").expect_err("refused"),
            "The part after the @-sign is not valid. It should have a period."
        );
        assert_eq!(
            normalize("j d@x.com").expect_err("refused"),
            "The email address contains invalid characters before the @-sign: SPACE."
        );
        assert!(normalize("@x.com").is_err());
        assert!(normalize("a@-x.com").is_err());
        assert!(normalize("a..b@x.com").is_err());
        assert!(normalize(&format!("{}@x.com", "a".repeat(260))).is_err());
    }
}
