//! Text from outside (providers' ids and messages, other processes'
//! names) as it may be shown on a terminal.

/// `text` with control characters escaped (`\n`, `\u{1b}`), so that it
/// cannot forge lines or move the cursor on the user's screen.
pub(crate) fn escaped(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::escaped;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escaped("shortapi:abc"), "shortapi:abc");
        assert_eq!(escaped("a\nb"), "a\\nb");
        assert_eq!(escaped("x\u{1b}[2Jy"), "x\\u{1b}[2Jy");
        assert_eq!(escaped("é ü"), "é ü");
    }
}
