//! Create-or-update handlers (`fn …(state: Option<&Self>, cmd: &C)`): one command that
//! catalogues a book the first time and adds a copy every time, with the concurrency
//! guarantees of the other forms.

use std::collections::BTreeSet;

use eventweave_core::fixture::AggregateFixture;
use eventweave_core::prelude::*;
use eventweave_core::{HandlerKind, Handles};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "test-upsert.catalogued")]
pub struct Catalogued {
    pub title: String,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "test-upsert.copy_added")]
pub struct CopyAdded {
    pub copy: u32,
}

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
#[command(aggregate = Book)]
pub struct AddCopy {
    #[id]
    pub isbn: u64,
    pub title: String,
}

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("the catalogue says `{catalogued}`, the copy says `{given}`")]
pub struct TitleMismatch {
    catalogued: String,
    given: String,
}

#[derive(Default, Debug)]
pub struct Book {
    title: String,
    copies: u32,
}

#[aggregate(id = u64, name = "test-upsert-book")]
impl Book {
    /// Catalogues the book if it is new, and adds a copy.
    #[handle]
    fn add_copy(
        book: Option<&Self>,
        cmd: &AddCopy,
    ) -> Result<(Option<Catalogued>, CopyAdded), TitleMismatch> {
        match book {
            None => Ok((
                Some(Catalogued {
                    title: cmd.title.clone(),
                }),
                CopyAdded { copy: 1 },
            )),
            Some(book) if book.title != cmd.title => Err(TitleMismatch {
                catalogued: book.title.clone(),
                given: cmd.title.clone(),
            }),
            Some(book) => Ok((
                None,
                CopyAdded {
                    copy: book.copies + 1,
                },
            )),
        }
    }

    #[apply]
    fn catalogued(&mut self, e: &Catalogued) {
        self.title = e.title.clone();
    }

    #[apply]
    fn copy_added(&mut self, e: &CopyAdded) {
        self.copies = e.copy;
    }
}

fn add(isbn: u64) -> AddCopy {
    AddCopy {
        isbn,
        title: "Dune".into(),
    }
}

#[test]
fn the_handler_kind_is_create_or_update() {
    assert_eq!(
        <Book as Handles<AddCopy>>::KIND,
        HandlerKind::CreateOrUpdate
    );
}

#[tokio::test]
async fn a_new_aggregate_is_created_and_an_existing_one_updated() {
    AggregateFixture::<Book>::new()
        .when(add(1))
        .await
        .expect_events((
            Catalogued {
                title: "Dune".into(),
            },
            CopyAdded { copy: 1 },
        ));
    AggregateFixture::<Book>::new()
        .given((
            Catalogued {
                title: "Dune".into(),
            },
            CopyAdded { copy: 1 },
        ))
        .when(add(1))
        .await
        .expect_events(CopyAdded { copy: 2 });
    AggregateFixture::<Book>::new()
        .given(Catalogued {
            title: "Emma".into(),
        })
        .when(add(1))
        .await
        .expect_error(TitleMismatch {
            catalogued: "Emma".into(),
            given: "Dune".into(),
        });
}

/// Sixteen commands race to add the first copies of one new book: exactly one catalogues it,
/// every other one retries after its conflict and sees the book, and no copy is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_creations_create_once_and_lose_no_update() {
    // Enough retries for the worst case (each command losing to every other once).
    let app = Cqrs::builder(MemoryStore::new())
        .max_retries(16)
        .build()
        .await
        .unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.execute(add(7)).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("every copy is added");
    }
    let events = app
        .store()
        .read_stream(&"test-upsert-book-7".into(), 1, 100)
        .await
        .unwrap();
    let names: Vec<_> = events.iter().map(|e| &*e.meta.event_name).collect();
    assert_eq!(
        names.iter().filter(|n| n.ends_with("catalogued")).count(),
        1
    );
    assert_eq!(names[0], "test-upsert.catalogued");
    let copies: BTreeSet<u32> = events
        .iter()
        .filter(|e| e.meta.event_name.ends_with("copy_added"))
        .map(|e| {
            serde_json::from_str::<CopyAdded>(e.payload.as_str())
                .unwrap()
                .copy
        })
        .collect();
    assert_eq!(copies, (1..=16).collect(), "copies 1 to 16, each once");
    let (book, version) = app.load::<Book>(&7).await.unwrap();
    assert_eq!((book.copies, version), (16, 17));
}
