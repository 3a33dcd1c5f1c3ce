//! Names derived from the user's identifiers.

use syn::Ident;
use syn::ext::IdentExt;

/// `BankAccount` → `bank_account`, `HTTPServer` → `http_server`, `Account2` → `account2`.
pub(crate) fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev = i.checked_sub(1).map(|j| chars[j]);
            let next = chars.get(i + 1).copied();
            let starts_word = match prev {
                None | Some('_') => false,
                Some(p) if p.is_lowercase() || p.is_ascii_digit() => true,
                // The last capital of an acronym starts the next word: `HTTPServer`.
                Some(p) if p.is_uppercase() => next.is_some_and(char::is_lowercase),
                Some(_) => false,
            };
            if starts_word {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The identifier as the user wrote it, without `r#`.
pub(crate) fn plain(ident: &Ident) -> String {
    ident.unraw().to_string()
}

/// `{prefix}{suffix}` as a new identifier, spanned like `prefix`.
pub(crate) fn suffixed(prefix: &Ident, suffix: &str) -> Ident {
    Ident::new(&format!("{}{suffix}", plain(prefix)), prefix.span())
}

/// A type as it reads in source (`Option<Vec<u64>>`, `&'static str`), from its tokens, whose
/// text has a space between every two tokens.
pub(crate) fn type_text(ty: &syn::Type) -> String {
    let mut text = quote::ToTokens::to_token_stream(ty).to_string();
    for (from, to) in [
        (" ::", "::"),
        (":: ", "::"),
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" ,", ","),
        ("& ", "&"),
        ("( ", "("),
        (" )", ")"),
        ("[ ", "["),
        (" ]", "]"),
        (" ;", ";"),
    ] {
        while text.contains(from) {
            text = text.replace(from, to);
        }
    }
    text
}

/// A tag field's type as the compile-time checks compare it: as written, without the module
/// path before its last segment (`crate::ids::CourseId` and `CourseId` are the same name).
pub(crate) fn tag_type_text(ty: &syn::Type) -> String {
    let text = type_text(ty);
    let mut depth = 0usize;
    let mut start = 0;
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'<' | b'(' | b'[' => depth += 1,
            b'>' | b')' | b']' => depth = depth.saturating_sub(1),
            b':' if depth == 0 && bytes.get(i + 1) == Some(&b':') => start = i + 2,
            _ => {}
        }
    }
    text[start..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::{snake_case, tag_type_text, type_text};

    #[test]
    fn tag_types_lose_their_module_path() {
        let ty = |s: &str| syn::parse_str::<syn::Type>(s).unwrap();
        assert_eq!(tag_type_text(&ty("crate::ids::CourseId")), "CourseId");
        assert_eq!(tag_type_text(&ty("::std::string::String")), "String");
        assert_eq!(tag_type_text(&ty("Vec<a::B>")), "Vec<a::B>");
        assert_eq!(tag_type_text(&ty("u64")), "u64");
    }

    #[test]
    fn writes_types_as_in_source() {
        let text = |s: &str| type_text(&syn::parse_str(s).unwrap());
        assert_eq!(text("Option < u64 >"), "Option<u64>");
        assert_eq!(text("Vec<std::string::String>"), "Vec<std::string::String>");
        assert_eq!(
            text("HashMap<K, Vec<(u8, u16)>>"),
            "HashMap<K, Vec<(u8, u16)>>"
        );
        assert_eq!(text("&'static str"), "&'static str");
        assert_eq!(text("[u8; 4]"), "[u8; 4]");
    }

    #[test]
    fn converts_type_names_to_snake_case() {
        assert_eq!(snake_case("Account"), "account");
        assert_eq!(snake_case("BankAccount"), "bank_account");
        assert_eq!(snake_case("HTTPServer"), "http_server");
        assert_eq!(snake_case("MyXMLParser"), "my_xml_parser");
        assert_eq!(snake_case("Account2"), "account2");
        assert_eq!(snake_case("V2Account"), "v2_account");
        assert_eq!(snake_case("already_snake"), "already_snake");
        assert_eq!(snake_case("Some_Thing"), "some_thing");
        assert_eq!(snake_case("A"), "a");
        assert_eq!(snake_case(""), "");
    }
}
