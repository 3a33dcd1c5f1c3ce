//! The bank's catalog committed under `docs/` is the one the code declares: this test fails
//! when a command, event, projection, query or process manager changes and the files do not.

use std::path::PathBuf;

/// Set to rewrite the committed files instead of comparing.
const UPDATE: &str = "UPDATE_CATALOG";

fn check(file: &str, format: &str, generated: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(file);
    if std::env::var_os(UPDATE).is_some() {
        std::fs::write(&path, generated).expect("docs/ is writable");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed == generated {
        return;
    }
    let line = committed
        .lines()
        .zip(generated.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
    panic!(
        "docs/{file} is out of date with the code (first difference at line {}: committed {:?}, \
         generated {:?}).\nRegenerate it with `{UPDATE}=1 cargo test -p bank --test catalog` \
         (or `cargo run -p bank -- admin catalog --format {format} > docs/{file}`), read the diff \
         and commit it.",
        line + 1,
        committed.lines().nth(line).unwrap_or("<end of file>"),
        generated.lines().nth(line).unwrap_or("<end of file>"),
    );
}

#[test]
fn the_committed_mermaid_diagram_is_current() {
    check("bank-catalog.mmd", "mermaid", &bank::catalog().to_mermaid());
}

#[test]
fn the_committed_json_catalog_is_current() {
    check("bank-catalog.json", "json", &bank::catalog().to_json());
}

#[test]
fn the_committed_schemas_are_current() {
    check(
        "bank-catalog.schema.json",
        "schema",
        &bank::catalog().schemas_json(),
    );
}

#[test]
fn the_catalog_sees_the_whole_bank() {
    let catalog = bank::catalog();
    let transfer = catalog
        .process_managers
        .iter()
        .find(|p| p.name == "transfer")
        .expect("the transfer process manager is registered");
    assert_eq!(
        transfer.issues.as_deref(),
        Some(&["ReceiveTransfer".to_owned(), "RefundTransfer".to_owned()][..])
    );
    assert!(
        catalog.command_schema("Deposit").is_some(),
        "commands derive JsonSchema"
    );
    assert!(catalog.commands.iter().all(|c| c.handled));
    let transfers = catalog
        .decisions
        .iter()
        .find(|d| d.name == "transfers")
        .expect("the transfer decision is listed as a decision");
    assert_eq!(transfers.commands, ["TransferFunds"]);
    assert_eq!(transfers.states[0].tags, ["account"]);
    assert_eq!(transfers.emits, ["account.deposited", "account.withdrawn"]);
    assert!(catalog.aggregates.iter().all(|a| a.name != "transfers"));
}

#[test]
fn the_readme_shows_the_current_diagram() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    let diagram = format!("```mermaid\n{}```", bank::catalog().to_mermaid());
    assert!(
        readme.contains(&diagram),
        "README.md's bank diagram (section \"The event catalog\") is out of date: replace the \
         ```mermaid block with the contents of docs/bank-catalog.mmd (regenerated with \
         `{UPDATE}=1 cargo test -p bank --test catalog`)"
    );
}
