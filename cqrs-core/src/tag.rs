//! Tags: what an event is about (`course:c1`, `student:s7`), the index that dynamic
//! consistency boundaries read by ([`EventQuery`](crate::EventQuery)).
//!
//! A [`Tag`] is `key:value`. The key names what the value identifies; the value is a field's
//! value in a stable text form (see [`TagValue`]). Both parts are checked when the tag is made,
//! so a `Tag` that exists is one every store keeps:
//! - the key is 1 to [`MAX_TAG_KEY_BYTES`] (64) ASCII letters, digits, `_`, `-` or `.`: an
//!   identifier, never ambiguous with the `:` that ends it;
//! - the value is any text without NUL (PostgreSQL's `text` cannot hold it), possibly empty;
//! - the whole tag is at most [`MAX_TAG_BYTES`] (256) bytes: tags are index keys on the SQL
//!   stores, and 256 bytes hold any id or name a naming scheme produces.
//!
//! An event's [`Tags`] are a set: sorted and without repeats, so two stores, or a retry, see
//! the same list whatever order the tags were given in. Empty tags cost nothing (no
//! allocation), and clones share one list.

use std::borrow::Borrow;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// The longest tag, key and value with the `:` between them, in bytes.
pub const MAX_TAG_BYTES: usize = 256;

/// The longest tag key, in bytes.
pub const MAX_TAG_KEY_BYTES: usize = 64;

/// A validated `key:value` tag.
///
/// - the key is 1 to [`MAX_TAG_KEY_BYTES`] (64) ASCII letters, digits, `_`, `-` or `.`;
/// - the value is any text without NUL, possibly empty;
/// - the whole tag is at most [`MAX_TAG_BYTES`] (256) bytes.
///
/// Anything else is a [`TagError`] saying what is wrong.
///
/// ```
/// use eventweave_core::Tag;
///
/// let tag = Tag::new("course", "c-17").unwrap();
/// assert_eq!(tag.as_str(), "course:c-17");
/// assert_eq!((tag.key(), tag.value()), ("course", "c-17"));
/// assert_eq!(Tag::parse("course:c-17").unwrap(), tag);
/// assert!(Tag::new("my course", "c-17").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag {
    text: Arc<str>,
    /// Length of the key (the `:` follows it).
    key_len: u8,
}

impl Tag {
    /// The tag `key:value`, or why it is not valid.
    pub fn new(key: &str, value: &str) -> Result<Tag, TagError> {
        check_key(key)?;
        let len = key.len() + 1 + value.len();
        let text = format!("{key}:{value}");
        if value.contains('\0') {
            return Err(TagError::new(&text, TagProblem::ContainsNul));
        }
        if len > MAX_TAG_BYTES {
            let problem = TagProblem::TooLong {
                len,
                max: MAX_TAG_BYTES,
            };
            return Err(TagError::new(&text, problem));
        }
        Ok(Tag {
            text: text.into(),
            key_len: key.len() as u8,
        })
    }

    /// The tag written as `key:value` (the key ends at the first `:`), as stores keep it.
    pub fn parse(text: &str) -> Result<Tag, TagError> {
        match text.split_once(':') {
            Some((key, value)) => Tag::new(key, value),
            None => Err(TagError::new(text, TagProblem::NoKey)),
        }
    }

    /// The tag's key (before the `:`).
    pub fn key(&self) -> &str {
        &self.text[..usize::from(self.key_len)]
    }

    /// The tag's value (after the `:`).
    pub fn value(&self) -> &str {
        &self.text[usize::from(self.key_len) + 1..]
    }

    /// The whole tag, `key:value`.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

fn check_key(key: &str) -> Result<(), TagError> {
    let problem = if key.is_empty() {
        TagProblem::EmptyKey
    } else if key.len() > MAX_TAG_KEY_BYTES {
        TagProblem::KeyTooLong {
            len: key.len(),
            max: MAX_TAG_KEY_BYTES,
        }
    } else if let Some(c) = key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        TagProblem::BadKeyChar(c)
    } else {
        return Ok(());
    };
    Err(TagError::new(key, problem))
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.text, f)
    }
}

impl AsRef<str> for Tag {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl Borrow<str> for Tag {
    fn borrow(&self) -> &str {
        &self.text
    }
}

impl TryFrom<&str> for Tag {
    type Error = TagError;
    fn try_from(text: &str) -> Result<Tag, TagError> {
        Tag::parse(text)
    }
}

/// What is wrong with a tag.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TagProblem {
    /// There is no `:` between key and value.
    NoKey,
    /// The key is empty.
    EmptyKey,
    /// The key is `len` bytes, above `max`.
    KeyTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The key holds a character other than ASCII letters, digits, `_`, `-` and `.`.
    BadKeyChar(char),
    /// The value holds NUL (U+0000).
    ContainsNul,
    /// The tag is `len` bytes, above `max`.
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl fmt::Display for TagProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagProblem::NoKey => f.write_str("it has no `key:` before its value"),
            TagProblem::EmptyKey => f.write_str("its key is empty"),
            TagProblem::KeyTooLong { len, max } => {
                write!(f, "its key is {len} bytes, above the limit of {max}")
            }
            TagProblem::BadKeyChar(c) => write!(
                f,
                "its key holds {c:?}; keys are ASCII letters, digits, `_`, `-` and `.`"
            ),
            TagProblem::ContainsNul => f.write_str("its value holds the NUL character (U+0000)"),
            TagProblem::TooLong { len, max } => {
                write!(f, "it is {len} bytes, above the limit of {max}")
            }
        }
    }
}

/// A tag that could not be made: the text (cut after 64 characters) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TagError {
    /// The refused text (or key), shortened for messages.
    pub text: String,
    /// What is wrong with it.
    pub problem: TagProblem,
}

impl TagError {
    fn new(text: &str, problem: TagProblem) -> Self {
        let mut shown: String = text.chars().take(64).flat_map(char::escape_debug).collect();
        if text.chars().nth(64).is_some() {
            shown.push('…');
        }
        TagError {
            text: shown,
            problem,
        }
    }
}

impl fmt::Display for TagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tag `{}` refused: {}", self.text, self.problem)
    }
}

impl StdError for TagError {}

/// One `#[tag]` field of an event or a command, as the macros describe it: the tag's key, the
/// field's name and its type as written (the compile-time checks compare them; see
/// [`DecisionState`](crate::DecisionState)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TagField {
    /// The tag's key (`#[tag(key = "…")]`, default: the field's name).
    pub key: &'static str,
    /// The field's name.
    pub field: &'static str,
    /// The field's type, as written (its last path segment with its arguments).
    pub ty: &'static str,
}

/// A value in the stable text form tags use: what `#[tag]` fields are turned into.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a tag's value",
    label = "not a tag value",
    note = "implement `TagValue` for `{Self}` with a text form that never changes (an id newtype forwards to its inner value)"
)]
///
/// The form must never change for a given value, since stored events are found by it:
/// integers in decimal, `bool` as `true`/`false`, strings and chars as they are, UUIDs in
/// lowercase hyphenated form. Id newtypes implement it by forwarding to their inner value
/// (or to their `Display`, if that is stable).
pub trait TagValue {
    /// The value as tag text.
    fn tag_text(&self) -> String;
}

macro_rules! tag_value_by_display {
    ($($t:ty),* $(,)?) => {
        $(impl TagValue for $t {
            fn tag_text(&self) -> String {
                self.to_string()
            }
        })*
    };
}

tag_value_by_display!(
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    bool,
    char,
    str,
    String,
    crate::ids::Uuid,
    crate::ids::StreamId,
);

impl<T: TagValue + ?Sized> TagValue for &T {
    fn tag_text(&self) -> String {
        (**self).tag_text()
    }
}

impl<T: TagValue + ?Sized> TagValue for Box<T> {
    fn tag_text(&self) -> String {
        (**self).tag_text()
    }
}

impl<T: TagValue + ?Sized> TagValue for Arc<T> {
    fn tag_text(&self) -> String {
        (**self).tag_text()
    }
}

/// An event's tags: a sorted set without repeats, shared between clones, free when empty.
///
/// ```
/// use eventweave_core::{Tag, Tags};
///
/// let c = Tag::new("course", "c1").unwrap();
/// let s = Tag::new("student", "s1").unwrap();
/// let tags = Tags::from_iter([s.clone(), c.clone(), s.clone()]);
/// assert_eq!(tags.as_slice(), [c.clone(), s]);
/// assert!(tags.contains(&c));
/// assert!(Tags::empty().is_empty());
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Tags(Option<Arc<[Tag]>>);

impl Tags {
    /// No tags.
    pub const fn empty() -> Self {
        Tags(None)
    }

    /// The tags, sorted, each once.
    pub fn new(tags: impl IntoIterator<Item = Tag>) -> Self {
        let mut all: Vec<Tag> = tags.into_iter().collect();
        if all.is_empty() {
            return Tags(None);
        }
        all.sort_unstable();
        all.dedup();
        Tags(Some(all.into()))
    }

    /// The tags in order.
    pub fn as_slice(&self) -> &[Tag] {
        self.0.as_deref().unwrap_or(&[])
    }

    /// Whether `tag` is one of them.
    pub fn contains(&self, tag: &Tag) -> bool {
        self.as_slice().binary_search(tag).is_ok()
    }

    /// Whether every tag of `tags` is one of them.
    pub fn contains_all(&self, tags: &[Tag]) -> bool {
        tags.iter().all(|t| self.contains(t))
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The tags in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Tag> {
        self.as_slice().iter()
    }
}

impl FromIterator<Tag> for Tags {
    fn from_iter<I: IntoIterator<Item = Tag>>(iter: I) -> Self {
        Tags::new(iter)
    }
}

impl From<Vec<Tag>> for Tags {
    fn from(tags: Vec<Tag>) -> Self {
        Tags::new(tags)
    }
}

impl<'a> IntoIterator for &'a Tags {
    type Item = &'a Tag;
    type IntoIter = std::slice::Iter<'a, Tag>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Debug for Tags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_tags_and_their_parts() {
        let t = Tag::new("a.b-c_1", "").unwrap();
        assert_eq!(
            (t.key(), t.value(), t.as_str()),
            ("a.b-c_1", "", "a.b-c_1:")
        );
        let t = Tag::parse("k:v:w").unwrap();
        assert_eq!((t.key(), t.value()), ("k", "v:w"));
        let long = "x".repeat(MAX_TAG_BYTES - 2);
        assert_eq!(Tag::new("k", &long).unwrap().as_str().len(), MAX_TAG_BYTES);
    }

    #[test]
    fn invalid_tags_are_typed_errors() {
        let problem = |r: Result<Tag, TagError>| r.unwrap_err().problem;
        assert_eq!(problem(Tag::parse("novalue")), TagProblem::NoKey);
        assert_eq!(problem(Tag::new("", "v")), TagProblem::EmptyKey);
        assert_eq!(problem(Tag::new("a b", "v")), TagProblem::BadKeyChar(' '));
        assert_eq!(problem(Tag::new("é", "v")), TagProblem::BadKeyChar('é'));
        assert_eq!(problem(Tag::new("k", "a\0b")), TagProblem::ContainsNul);
        assert_eq!(
            problem(Tag::new(&"k".repeat(65), "v")),
            TagProblem::KeyTooLong { len: 65, max: 64 }
        );
        assert_eq!(
            problem(Tag::new("k", &"x".repeat(MAX_TAG_BYTES - 1))),
            TagProblem::TooLong {
                len: MAX_TAG_BYTES + 1,
                max: MAX_TAG_BYTES
            }
        );
        let shown = Tag::new("k", &"x".repeat(300)).unwrap_err().to_string();
        assert!(shown.len() < 200, "{shown}");
    }

    #[test]
    fn tags_are_a_sorted_set() {
        let t = |s: &str| Tag::parse(s).unwrap();
        let tags = Tags::new([t("b:1"), t("a:2"), t("b:1")]);
        assert_eq!(tags.as_slice(), [t("a:2"), t("b:1")]);
        assert!(tags.contains_all(&[t("b:1"), t("a:2")]));
        assert!(!tags.contains_all(&[t("b:1"), t("c:1")]));
        assert_eq!(Tags::new([]), Tags::empty());
    }

    #[test]
    fn tag_values_have_one_text_form() {
        let id = crate::ids::Uuid::from_u128(0xA1);
        assert_eq!(id.tag_text(), "00000000-0000-0000-0000-0000000000a1");
        assert_eq!((-7i32).tag_text(), "-7");
        assert_eq!(true.tag_text(), "true");
        assert_eq!("s".tag_text(), "s");
    }
}
