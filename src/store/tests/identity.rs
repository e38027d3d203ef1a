//! The node's keys and its data directory.

use std::os::unix::fs::PermissionsExt;

use super::*;

#[test]
fn keys_persist_and_are_not_regenerated_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let node_key = vec![8, 1, 18, 64, 7, 7, 7];
    let swarm_key = [0x5a; SWARM_KEY_LEN];
    {
        let mut store = open(dir.path());
        assert_eq!(store.swarm_key().unwrap(), None);
        assert_eq!(store.api_token().unwrap(), None);
        let made = store.load_or_create_node_key(|| node_key.clone()).unwrap();
        assert_eq!(made, node_key);
        // Within one run too, the saved key wins.
        let again = store
            .load_or_create_node_key(|| panic!("the node key was generated twice"))
            .unwrap();
        assert_eq!(again, node_key);
        store.set_swarm_key(&swarm_key).unwrap();
        store.set_api_token("s3cret-token").unwrap();
    }
    let mut store = open(dir.path());
    let loaded = store
        .load_or_create_node_key(|| panic!("the node key was generated on reopen"))
        .unwrap();
    assert_eq!(loaded, node_key);
    assert_eq!(store.swarm_key().unwrap(), Some(swarm_key));
    let loaded = store
        .load_or_create_swarm_key(|| panic!("the swarm key was generated on reopen"))
        .unwrap();
    assert_eq!(loaded, swarm_key);
    assert_eq!(store.api_token().unwrap().as_deref(), Some("s3cret-token"));
    let token = store
        .load_or_create_api_token(|| panic!("the API token was generated on reopen"))
        .unwrap();
    assert_eq!(token, "s3cret-token");
}

#[test]
fn joining_an_office_replaces_the_swarm_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let own = store
        .load_or_create_swarm_key(|| [1; SWARM_KEY_LEN])
        .unwrap();
    assert_eq!(own, [1; SWARM_KEY_LEN]);
    store.set_swarm_key(&[2; SWARM_KEY_LEN]).unwrap();
    drop(store);
    assert_eq!(
        open(dir.path()).swarm_key().unwrap(),
        Some([2; SWARM_KEY_LEN])
    );
}

#[test]
fn a_swarm_key_of_the_wrong_length_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .conn
        .execute(
            "INSERT INTO secrets (name, value) VALUES ('swarm_key', x'0102')",
            [],
        )
        .unwrap();
    let error = store.swarm_key().unwrap_err();
    assert!(
        matches!(&error, StoreError::Corrupt { detail, .. } if detail.contains("2 bytes")),
        "{error:?}"
    );
}

#[test]
fn the_data_directory_and_database_are_private() {
    let parent = tempfile::tempdir().unwrap();
    let data_dir = parent.path().join("nested").join("data");
    let store = open(&data_dir);
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data_dir), 0o700);
    assert_eq!(mode(store.path()), 0o600);
    assert_eq!(store.path(), data_dir.join(DB_FILE_NAME));
}

#[test]
fn a_second_store_on_the_same_directory_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    let error = Store::open(dir.path())
        .err()
        .expect("a second open must fail");
    assert!(matches!(error, StoreError::Locked { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains(&first.path().display().to_string()),
        "{error}"
    );
    drop(first);
    open(dir.path());
}

/// The node moves its store to a thread of its own.
#[test]
fn a_store_can_move_to_another_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<Store>();
}
