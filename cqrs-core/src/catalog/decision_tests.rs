//! The catalog of a decision declared here: its states, what it reads (types and tag keys),
//! the commands it decides, the events it emits, and a process manager issuing one of them.

use serde::{Deserialize, Serialize};

use super::*;
use crate::prelude::*;
use crate::process::Issue;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "catalog-dcb.room.opened")]
pub struct RoomOpened {
    #[tag]
    pub room: u32,
    pub seats: u32,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "catalog-dcb.seat.booked")]
pub struct SeatBooked {
    #[tag]
    pub room: u32,
    #[tag]
    pub guest: u32,
}

#[derive(Command, Clone, Debug, Serialize, Deserialize)]
#[command(decision = Rooms)]
pub struct OpenRoom {
    #[tag]
    pub room: u32,
    pub seats: u32,
}

#[derive(Command, Clone, Debug, Serialize, Deserialize)]
#[command(decision = Rooms)]
pub struct BookSeat {
    #[tag]
    pub room: u32,
    #[tag]
    pub guest: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("full")]
pub struct Full;

#[derive(Default)]
pub struct RoomSeats {
    free: u32,
}

#[decision_state(tags = [room])]
impl RoomSeats {
    #[apply]
    fn opened(&mut self, e: &RoomOpened) {
        self.free = e.seats;
    }
    #[apply]
    fn booked(&mut self, _: &SeatBooked) {
        self.free = self.free.saturating_sub(1);
    }
}

#[derive(Default)]
pub struct GuestSeats;

#[decision_state(tags = [guest])]
impl GuestSeats {
    #[apply]
    fn booked(&mut self, _: &SeatBooked) {}
}

pub struct Rooms;

#[decision(name = "catalog-dcb-rooms")]
impl Rooms {
    #[handle]
    fn open(cmd: &OpenRoom, _: &RoomSeats) -> RoomOpened {
        RoomOpened {
            room: cmd.room,
            seats: cmd.seats,
        }
    }
    #[handle]
    fn book(cmd: &BookSeat, room: &RoomSeats, _: &GuestSeats) -> Result<SeatBooked, Full> {
        if room.free == 0 {
            return Err(Full);
        }
        Ok(SeatBooked {
            room: cmd.room,
            guest: cmd.guest,
        })
    }
}

#[derive(Default, Clone, Serialize, Deserialize)]
pub struct Usher;

#[process_manager(name = "catalog-dcb-usher", issues = [BookSeat])]
impl Usher {
    fn on_opened(&mut self, e: &RoomOpened) -> Issue {
        Issue::command(BookSeat {
            room: e.room,
            guest: 0,
        })
    }
}

fn catalog() -> Catalog {
    Catalog::registered_in(module_path!())
}

#[test]
fn decisions_are_listed_as_decisions() {
    let c = catalog();
    assert!(c.aggregates.is_empty(), "not as aggregates");
    assert_eq!(c.decisions.len(), 1);
    let d = &c.decisions[0];
    assert_eq!(d.name, "catalog-dcb-rooms");
    assert_eq!(d.commands, ["BookSeat", "OpenRoom"]);
    assert_eq!(
        d.states,
        [
            StateEntry {
                name: "GuestSeats".into(),
                tags: vec!["guest".into()],
                events: vec!["catalog-dcb.seat.booked".into()],
            },
            StateEntry {
                name: "RoomSeats".into(),
                tags: vec!["room".into()],
                events: vec![
                    "catalog-dcb.room.opened".into(),
                    "catalog-dcb.seat.booked".into()
                ],
            },
        ]
    );
    assert_eq!(
        d.emits,
        ["catalog-dcb.room.opened", "catalog-dcb.seat.booked"]
    );
    let book = &c.commands[0];
    assert_eq!(
        (book.name.as_str(), book.aggregate.as_deref()),
        ("BookSeat", None)
    );
    assert_eq!(book.decision.as_deref(), Some("catalog-dcb-rooms"));
    assert!(book.handled);
    assert_eq!(book.issued_by, ["catalog-dcb-usher"]);
    let booked = &c.events[1];
    assert_eq!(booked.name, "catalog-dcb.seat.booked");
    assert_eq!(booked.emitted_by, ["catalog-dcb-rooms"]);
    assert_eq!(booked.read_by, ["catalog-dcb-rooms"]);
    assert!(booked.recorded_by.is_empty());
}

#[test]
fn the_json_document_shows_states_reads_and_emits() {
    let doc: serde_json::Value = serde_json::from_str(&catalog().to_json()).unwrap();
    assert_eq!(
        doc["decisions"][0]["states"][1],
        serde_json::json!({
            "name": "RoomSeats",
            "tags": ["room"],
            "events": ["catalog-dcb.room.opened", "catalog-dcb.seat.booked"],
        })
    );
    assert_eq!(
        doc["commands"][1],
        serde_json::json!({
            "name": "OpenRoom",
            "type": concat!(module_path!(), "::OpenRoom"),
            "aggregate": null,
            "decision": "catalog-dcb-rooms",
            "handled": true,
            "issued_by": [],
        })
    );
    assert_eq!(
        doc["events"][0]["read_by"],
        serde_json::json!(["catalog-dcb-rooms"])
    );
}

#[test]
fn the_mermaid_diagram_draws_decisions() {
    let text = catalog().to_mermaid();
    for line in [
        r#"    dec_catalog_dcb_rooms{"catalog-dcb-rooms"}:::decision"#,
        "    cmd_BookSeat_catalog_dcb_rooms --> dec_catalog_dcb_rooms",
        "    dec_catalog_dcb_rooms --> evt_catalog_dcb_seat_booked",
        r#"    evt_catalog_dcb_room_opened -.->|"reads by room"| dec_catalog_dcb_rooms"#,
        r#"    evt_catalog_dcb_seat_booked -.->|"reads by guest or room"| dec_catalog_dcb_rooms"#,
        "    pm_catalog_dcb_usher -. issues .-> cmd_BookSeat_catalog_dcb_rooms",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from\n{text}"
        );
    }
}

#[test]
fn a_fixture_accepts_a_declared_decision_command() {
    crate::fixture::ProcessFixture::<Usher>::new()
        .when(RoomOpened { room: 4, seats: 2 })
        .expect_commands([Issue::command(BookSeat { room: 4, guest: 0 })]);
}
