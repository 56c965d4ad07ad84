//! `schema/` must equal what the manifest types generate. Regenerate with
//! `UPDATE_EXPECT=1 cargo test -p model --test schema_fresh`.

use std::path::PathBuf;

#[test]
fn committed_schemas_are_fresh() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schema");
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut stale = Vec::new();
    for (name, text) in model::schema::generate() {
        let path = dir.join(name);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current != text {
            if update {
                std::fs::write(&path, &text).expect("write schema");
            } else {
                stale.push(name);
            }
        }
    }
    assert!(
        stale.is_empty(),
        "schema/ is stale for {stale:?}; regenerate with `UPDATE_EXPECT=1 cargo test -p model --test schema_fresh`"
    );
}

#[test]
fn schemas_are_valid_json_schema() {
    for (name, text) in model::schema::generate() {
        let value: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert!(
            jsonschema::meta::is_valid(&value),
            "{name} is not a valid JSON Schema"
        );
    }
}
