//! The catalog of a small domain declared here, read back from the registry.

use serde::{Deserialize, Serialize};

use super::*;
use crate::fixture::ProcessFixture;
use crate::prelude::*;
use crate::process::Issue;
use crate::registry::{EventRegistration, ProjectionKind, ProjectionRegistration};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[event(name = "catalog-test.lamp.lit")]
pub struct Lit {
    pub lumen: u32,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "catalog-test.lamp.dimmed")]
pub struct Dimmed;

#[derive(Command, Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[command(aggregate = Lamp)]
pub struct Light {
    #[id]
    pub lamp: u64,
}

#[derive(Command, Clone, Debug, Serialize, Deserialize)]
#[command(aggregate = Lamp)]
pub struct Dim {
    #[id]
    pub lamp: u64,
}

/// Targets `Lamp`, which has no handler for it.
#[derive(Command, Clone, Debug)]
#[command(aggregate = Lamp)]
pub struct Repair {
    #[id]
    pub lamp: u64,
}

#[derive(Default, Serialize, Deserialize)]
pub struct Lamp;

#[aggregate(id = u64, name = "catalog-test-lamp")]
impl Lamp {
    #[handle]
    fn light(_: &Light) -> Lit {
        Lit { lumen: 800 }
    }
    #[handle]
    fn dim(&self, _: &Dim) -> Dimmed {
        Dimmed
    }
    #[apply]
    fn lit(&mut self, _: &Lit) {}
    #[apply]
    fn dimmed(&mut self, _: &Dimmed) {}
}

#[derive(Query)]
#[query(response = Option<u64>)]
pub struct LitCount;

#[derive(Query)]
#[query(response = Vec<String>)]
pub struct Unanswered;

#[derive(Default)]
pub struct LitCounter(u64);

#[projection(name = "catalog-test-lit-counter")]
impl LitCounter {
    fn on_lit(&mut self, _: &Lit) {
        self.0 += 1;
    }
    #[query]
    fn count(&self, _: &LitCount) -> Option<u64> {
        Some(self.0)
    }
}

#[derive(Default, Clone, Serialize, Deserialize)]
pub struct Night;

#[process_manager(name = "catalog-test-night", issues = [Dim])]
impl Night {
    fn on_lit(&mut self, _: &Lit, meta: &EventMeta) -> Issue {
        let lamp = meta.stream.as_str().len() as u64;
        Issue::command(Dim { lamp })
    }
}

/// Declares nothing.
#[derive(Default, Clone, Serialize, Deserialize)]
pub struct Watcher;

#[process_manager(name = "catalog-test-watcher")]
impl Watcher {
    fn on_dimmed(&mut self, _: &Dimmed) {}
}

/// Declares an empty list, then issues a command anyway.
#[derive(Default, Clone, Serialize, Deserialize)]
pub struct Liar;

#[process_manager(name = "catalog-test-liar", issues = [])]
impl Liar {
    fn on_dimmed(&mut self, _: &Dimmed) -> Issue {
        Issue::command(Light { lamp: 1 })
    }
}

fn catalog() -> Catalog {
    Catalog::registered_in(module_path!())
}

fn names<T>(items: &[T], name: impl Fn(&T) -> &str) -> Vec<&str> {
    items.iter().map(name).collect()
}

#[test]
fn lists_what_the_module_declares_sorted() {
    let c = catalog();
    assert_eq!(names(&c.aggregates, |a| &a.name), ["catalog-test-lamp"]);
    assert_eq!(c.aggregates[0].commands, ["Dim", "Light"]);
    assert_eq!(
        c.aggregates[0].events,
        ["catalog-test.lamp.dimmed", "catalog-test.lamp.lit"]
    );
    assert_eq!(names(&c.commands, |c| &c.name), ["Dim", "Light", "Repair"]);
    assert_eq!(
        c.commands.iter().map(|c| c.handled).collect::<Vec<_>>(),
        [true, true, false],
        "Repair has no handler"
    );
    assert_eq!(c.commands[0].issued_by, ["catalog-test-night"]);
    assert_eq!(
        c.commands[1].type_name.as_deref(),
        Some(concat!(module_path!(), "::Light"))
    );
    assert_eq!(
        c.commands[1].aggregate.as_deref(),
        Some("catalog-test-lamp")
    );
    assert_eq!(
        names(&c.projections, |p| &p.name),
        ["catalog-test-lit-counter"],
        "process managers are listed apart"
    );
    assert_eq!(c.projections[0].kind, "in-memory");
    assert_eq!(
        c.projections[0].queries,
        [concat!(module_path!(), "::LitCount")]
    );
    assert_eq!(
        names(&c.process_managers, |p| &p.name),
        [
            "catalog-test-liar",
            "catalog-test-night",
            "catalog-test-watcher"
        ]
    );
    assert_eq!(c.process_managers[0].issues, Some(vec![]));
    assert_eq!(c.process_managers[1].issues, Some(vec!["Dim".to_owned()]));
    assert_eq!(c.process_managers[2].issues, None, "undeclared is unknown");
    let lit = &c.events[1];
    assert_eq!(lit.name, "catalog-test.lamp.lit");
    assert_eq!(lit.recorded_by, ["catalog-test-lamp"]);
    assert_eq!(lit.projections, ["catalog-test-lit-counter"]);
    assert_eq!(lit.process_managers, ["catalog-test-night"]);
    assert_eq!(
        c.queries
            .iter()
            .map(|q| (q.response.as_str(), q.projection.as_deref()))
            .collect::<Vec<_>>(),
        [
            ("Option<u64>", Some("catalog-test-lit-counter")),
            ("Vec<String>", None)
        ]
    );
}

#[test]
fn the_mermaid_diagram_draws_every_link() {
    let text = catalog().to_mermaid();
    let body: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("classDef"))
        .collect();
    assert_eq!(
        body,
        [
            "%% Generated by eventweave from the registered types; do not edit by hand.",
            "flowchart LR",
            r#"    cmd_Dim_catalog_test_lamp["Dim"]:::command"#,
            r#"    cmd_Light_catalog_test_lamp["Light"]:::command"#,
            r#"    cmd_Repair_catalog_test_lamp["Repair"]:::command"#,
            r#"    agg_catalog_test_lamp[["catalog-test-lamp"]]:::aggregate"#,
            r#"    evt_catalog_test_lamp_dimmed(["catalog-test.lamp.dimmed"]):::event"#,
            r#"    evt_catalog_test_lamp_lit(["catalog-test.lamp.lit"]):::event"#,
            r#"    prj_catalog_test_lit_counter("catalog-test-lit-counter"):::projection"#,
            r#"    pm_catalog_test_liar{{"catalog-test-liar"}}:::process"#,
            r#"    pm_catalog_test_night{{"catalog-test-night"}}:::process"#,
            r#"    pm_catalog_test_watcher{{"catalog-test-watcher"}}:::process"#,
            r#"    qry_eventweave_core__catalog__tests__LitCount[/"LitCount"/]:::query"#,
            r#"    qry_eventweave_core__catalog__tests__Unanswered[/"Unanswered"/]:::query"#,
            "    cmd_Dim_catalog_test_lamp --> agg_catalog_test_lamp",
            "    cmd_Light_catalog_test_lamp --> agg_catalog_test_lamp",
            "    agg_catalog_test_lamp --> evt_catalog_test_lamp_dimmed",
            "    agg_catalog_test_lamp --> evt_catalog_test_lamp_lit",
            "    evt_catalog_test_lamp_dimmed --> pm_catalog_test_liar",
            "    evt_catalog_test_lamp_dimmed --> pm_catalog_test_watcher",
            "    evt_catalog_test_lamp_lit --> prj_catalog_test_lit_counter",
            "    evt_catalog_test_lamp_lit --> pm_catalog_test_night",
            "    pm_catalog_test_night -. issues .-> cmd_Dim_catalog_test_lamp",
            "    prj_catalog_test_lit_counter -. answers .-> qry_eventweave_core__catalog__tests__LitCount",
        ]
    );
}

#[test]
fn node_ids_stay_distinct_when_names_differ_only_in_punctuation() {
    static A: EventRegistration = EventRegistration {
        name: "a.b",
        version: 2,
        type_name: "x::A",
        schema: || None,
        decode: crate::__private::event_json::<Lit>,
    };
    static B: EventRegistration = EventRegistration {
        name: "a_b",
        version: 1,
        type_name: "x::B",
        schema: || None,
        decode: crate::__private::event_json::<Lit>,
    };
    static P: ProjectionRegistration = ProjectionRegistration {
        name: "p\"q",
        type_name: "x::P",
        events: &["a_b", "a.b", "unregistered"],
        kind: ProjectionKind::Durable,
        create: None,
    };
    let catalog = Catalog::from_parts(&Registrations {
        events: vec![&B, &A],
        projections: vec![&P],
        ..Registrations::default()
    });
    let text = catalog.to_mermaid();
    for line in [
        r#"    evt_a_b(["a.b v2"]):::event"#,
        r#"    evt_a_b_2(["a_b"]):::event"#,
        r#"    evt_unregistered(["unregistered"]):::event"#,
        r#"    prj_p_q[("p#quot;q")]:::projection"#,
        "    evt_a_b --> prj_p_q",
        "    evt_a_b_2 --> prj_p_q",
        "    evt_unregistered --> prj_p_q",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from\n{text}"
        );
    }
    assert_eq!(catalog.events[2].type_name, None, "known only by name");
}

#[test]
fn the_json_document_has_a_fixed_shape() {
    let text = catalog().to_json();
    assert!(
        text.starts_with(
            "{\n  \"format\": \"eventweave-catalog\",\n  \"version\": 2,\n  \"aggregates\": ["
        ),
        "{text}"
    );
    assert!(text.ends_with("}\n"));
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&str> = doc
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "aggregates",
        "decisions",
        "commands",
        "events",
        "projections",
        "process_managers",
        "queries",
    ] {
        assert!(keys.contains(&key), "{key} in {keys:?}");
    }
    assert_eq!(
        doc["commands"][2],
        serde_json::json!({
            "name": "Repair",
            "type": concat!(module_path!(), "::Repair"),
            "aggregate": "catalog-test-lamp",
            "decision": null,
            "handled": false,
            "issued_by": [],
        })
    );
    assert_eq!(
        doc["process_managers"][2]["issues"],
        serde_json::Value::Null
    );
    assert_eq!(text, catalog().to_json(), "same catalog, same bytes");
}

#[test]
fn schemas_come_from_schemars_only_with_the_feature() {
    let c = catalog();
    let doc: serde_json::Value = serde_json::from_str(&c.schemas_json()).unwrap();
    assert_eq!(doc["format"], "eventweave-catalog-schemas");
    assert_eq!(
        doc["commands"][0]["schema"],
        serde_json::Value::Null,
        "Dim derives no JsonSchema"
    );
    assert_eq!(doc["events"][0]["schema"], serde_json::Value::Null);
    let light = c.command_schema("Light");
    let lit = c.event_schema("catalog-test.lamp.lit");
    if cfg!(feature = "schemars") {
        let light = light.expect("Light derives JsonSchema");
        assert_eq!(light["properties"]["lamp"]["type"], "integer");
        let lit = lit.expect("Lit derives JsonSchema");
        assert_eq!(lit["required"], serde_json::json!(["lumen"]));
        assert_eq!(doc["events"][1]["schema"]["title"], "Lit");
    } else {
        assert_eq!((light, lit), (None, None));
    }
}

#[test]
fn a_fixture_accepts_declared_commands() {
    ProcessFixture::<Night>::new()
        .when(Lit { lumen: 1 })
        .expect_commands([Issue::command(Dim { lamp: 7 })]);
    ProcessFixture::<Watcher>::new()
        .when(Dimmed)
        .expect_nothing();
}

#[test]
#[should_panic(
    expected = "`catalog-test-liar` issued `Light`, which its `#[process_manager(issues = [...])]` does not list"
)]
fn a_fixture_fails_on_an_undeclared_command() {
    let _ = ProcessFixture::<Liar>::new().when(Dimmed);
}
