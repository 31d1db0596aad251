//! The one rule for names people type and others read: authenticator labels,
//! issuers and account names. They reach audit events, emails and the app's
//! screen, so nothing in them may hide, reorder or break text.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Whether `c` may appear in a name: no control (Cc) or format (Cf) character
/// (zero-width spaces, bidirectional overrides) and no line or paragraph separator.
pub(crate) fn printable(c: char) -> bool {
    !matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    )
}

/// `text` trimmed, if what is left is not empty and every character is [`printable`].
pub(crate) fn printable_name(text: &str) -> Option<&str> {
    let trimmed = text.trim();
    (!trimmed.is_empty() && trimmed.chars().all(printable)).then_some(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_and_reordering_characters_are_refused() {
        for bad in [
            "a\u{2028}b",
            "a\u{2029}b",
            "\u{200b}",
            "x\u{202e}y",
            "a\u{7}",
            "a\nb",
            "\u{feff}a",
            "  ",
            "",
        ] {
            assert_eq!(printable_name(bad), None, "{bad:?}");
        }
        for good in ["Pixel 8", "  Work phone ", "Téléphone", "手机", "📱 phone", "a:b"] {
            assert_eq!(printable_name(good), Some(good.trim()), "{good:?}");
        }
    }
}
