//! A conditional append of one event to one stream, as one statement
//! (`statements::append_one`): the common decision's path. It answers what it can (the row
//! inserted, or the first conflicting position); a refusal by the version check, or a unique
//! violation, sends the caller to the append function (`append.rs`), which explains or retries.

use std::collections::HashMap;
use std::time::SystemTime;

use eventweave_core::{AppendCondition, Uuid};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::append::{Answer, Batch};
use super::locks;
use super::statements::OneShape;
use crate::decode::JsonParam;
use crate::error::backend;
use crate::group::text_array_literal;

/// The parameters of [`statements::append_one`](super::statements::append_one) that the
/// [`Batch`] does not hold: the dcb keys, each once, and the condition's items as
/// `conflict_function` takes them.
pub(super) struct One<'a> {
    batch: &'a Batch,
    shape: OneShape,
    /// The condition's exclusive keys, then the event's shared keys not among them.
    keys: Vec<&'a str>,
    exclusive: Vec<bool>,
    /// Per item with tags: its driving tag, all its tags (a `text[]` literal, NULL when the
    /// driving tag is the only one) and its types (a literal, NULL for any type).
    driving: Vec<&'a str>,
    all_tags: Vec<Option<String>>,
    types: Vec<Option<String>>,
    /// The types of the items without tags.
    untagged_types: Vec<&'a str>,
}

impl<'a> One<'a> {
    /// The statement's parameters, when the append is one event to one stream under a
    /// condition with items (a condition on every event locks the table: the function's path).
    pub(super) fn of(batch: &'a Batch, condition: Option<&'a AppendCondition>) -> Option<One<'a>> {
        let items = condition?.query.items()?;
        if batch.streams.len() != 1 || batch.ids.len() != 1 {
            return None;
        }
        let shape = match batch.expected[0] {
            e if e < 0 => OneShape::Any,
            0 => OneShape::New,
            _ => OneShape::Checked,
        };
        let mut keys: Vec<&str> = Vec::with_capacity(batch.exclusive.len() + batch.shared.len());
        for key in batch.exclusive.iter().chain(&batch.shared) {
            if !keys.contains(&key.as_str()) {
                keys.push(key);
            }
        }
        let exclusive = (0..keys.len()).map(|i| i < batch.exclusive.len()).collect();
        let mut one = One {
            batch,
            shape,
            keys,
            exclusive,
            driving: Vec::with_capacity(items.len()),
            all_tags: Vec::with_capacity(items.len()),
            types: Vec::with_capacity(items.len()),
            untagged_types: Vec::new(),
        };
        for item in items {
            let types = item.event_types();
            let Some(driving) = locks::driving_tag(item) else {
                one.untagged_types.extend(types.iter().map(|t| t.as_ref()));
                continue;
            };
            let tags = item.required_tags();
            one.driving.push(driving.as_str());
            one.all_tags.push(
                (tags.len() > 1).then(|| text_array_literal(tags.iter().map(|t| t.as_str()))),
            );
            one.types.push(
                (!types.is_empty()).then(|| text_array_literal(types.iter().map(|t| t.as_ref()))),
            );
        }
        Some(one)
    }

    /// The statement's text, among the store's three (`DcbState::one`).
    pub(super) fn statement<'s>(&self, texts: &'s [String; 3]) -> &'s str {
        &texts[match self.shape {
            OneShape::New => 0,
            OneShape::Checked => 1,
            OneShape::Any => 2,
        }]
    }

    /// Runs the statement; borrows every parameter for the request.
    pub(super) async fn execute(
        &self,
        client: &tokio_postgres::Client,
        statement: &tokio_postgres::Statement,
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let b = self.batch;
        let payload = JsonParam(&b.payloads[0]);
        let metadata = b.metadata[0].as_deref().map(JsonParam);
        let params: [&(dyn ToSql + Sync); 17] = [
            &b.streams[0],
            &b.expected[0],
            &b.ids[0],
            &b.names[0],
            &b.versions[0],
            &payload,
            &metadata,
            &b.correlations[0],
            &b.causations[0],
            &b.tags[0],
            &self.keys,
            &self.exclusive,
            &self.driving,
            &self.all_tags,
            &self.types,
            &self.untagged_types,
            &b.after,
        ];
        client.query(statement, &params).await
    }

    /// The statement's one row as the function's answer: the event inserted, or refused with
    /// the first conflicting position, or refused by the version check with no explanation
    /// (`actual` empty: the caller runs the function, which explains).
    pub(super) fn answer(&self, rows: &[Row]) -> Result<Answer, eventweave_core::StoreError> {
        let [row] = rows else {
            return Err(eventweave_core::StoreError::Backend(
                format!(
                    "a conditional append answered {} rows where one was expected",
                    rows.len()
                )
                .into(),
            ));
        };
        let position: Option<i64> = row.try_get(0).map_err(backend)?;
        let conflicting: Option<i64> = row.try_get(3).map_err(backend)?;
        let mut inserted = HashMap::new();
        if let Some(position) = position {
            let version: i64 = row.try_get(1).map_err(backend)?;
            let at: SystemTime = row.try_get(2).map_err(backend)?;
            inserted.insert(self.event_id(), (position, version, at));
        }
        Ok(Answer {
            refused: position.is_none(),
            inserted,
            conflicting,
            actual: Vec::new(),
        })
    }

    fn event_id(&self) -> Uuid {
        self.batch.ids[0]
    }
}

#[cfg(test)]
mod tests {
    use eventweave_core::testing::dcb::{tag, tagged_event};
    use eventweave_core::{EventQuery, ExpectedVersion, Position, QueryItem, StreamWrite};

    use super::*;

    fn batch(events: usize, expected: ExpectedVersion, condition: &AppendCondition) -> Batch {
        let (c, s) = (tag("course:c1"), tag("student:s1"));
        let write = StreamWrite::new(
            "s".into(),
            expected,
            (0..events)
                .map(|_| tagged_event("booked", &[&c, &s]))
                .collect(),
        );
        Batch::new(&[write], Some(condition)).unwrap()
    }

    #[test]
    fn a_lone_event_sends_each_key_once_the_conditions_exclusively() {
        let (c, s) = (tag("course:c1"), tag("student:s1"));
        let condition = AppendCondition::new(
            EventQuery::from_items([
                QueryItem::types(["booked"]).with_tags([c.clone(), s.clone()]),
                QueryItem::tags([s.clone()]),
                QueryItem::types(["limits", "other"]),
            ]),
            Position(7),
        );
        let b = batch(1, ExpectedVersion::NoStream, &condition);
        let one = One::of(&b, Some(&condition)).expect("a lone event");
        assert_eq!(one.shape, OneShape::New);
        // Exclusive: the first item's pair with its driving tag, the second's tag, the types.
        let exclusive: Vec<&str> = one
            .keys
            .iter()
            .zip(&one.exclusive)
            .filter(|(_, x)| **x)
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(
            exclusive,
            ["Pcourse:c1\u{1}booked", "Gstudent:s1", "Tlimits", "Tother"]
        );
        // Shared: the event's keys not already taken exclusively, each once.
        let shared: Vec<&str> = one
            .keys
            .iter()
            .zip(&one.exclusive)
            .filter(|(_, x)| !**x)
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(shared, ["Tbooked", "Gcourse:c1", "Pstudent:s1\u{1}booked"]);
        assert_eq!(one.driving, ["course:c1", "student:s1"]);
        assert_eq!(
            one.all_tags,
            [Some(r#"{"course:c1","student:s1"}"#.to_owned()), None]
        );
        assert_eq!(one.types, [Some(r#"{"booked"}"#.to_owned()), None]);
        assert_eq!(one.untagged_types, ["limits", "other"]);
    }

    #[test]
    fn only_a_lone_event_under_items_takes_the_statement() {
        let items = AppendCondition::new(
            EventQuery::from_items([QueryItem::tags([tag("course:c1")])]),
            Position(1),
        );
        let every = AppendCondition::new(EventQuery::all(), Position(1));
        let shape = |expected| {
            let b = batch(1, expected, &items);
            One::of(&b, Some(&items)).map(|o| o.shape)
        };
        assert_eq!(shape(ExpectedVersion::Any), Some(OneShape::Any));
        assert_eq!(shape(ExpectedVersion::Exact(3)), Some(OneShape::Checked));
        assert_eq!(shape(ExpectedVersion::NoStream), Some(OneShape::New));
        let two = batch(2, ExpectedVersion::Any, &items);
        assert!(One::of(&two, Some(&items)).is_none(), "two events");
        let b = batch(1, ExpectedVersion::Any, &every);
        assert!(
            One::of(&b, Some(&every)).is_none(),
            "a condition on every event"
        );
        assert!(One::of(&b, None).is_none(), "no condition");
    }
}
